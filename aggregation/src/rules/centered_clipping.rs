//! STUB
use crate::{Aggregate, AggregationError};
use ndarray::{ArrayView1, ArrayView2};
pub(crate) fn centered_clipping(
    _u: ArrayView2<f32>,
    _w: &[f32],
    _p: Option<ArrayView1<f32>>,
    _r: f32,
    _i: usize,
) -> Result<Aggregate, AggregationError> {
    Err(AggregationError::InvalidParameter {
        rule: "centered-clipping",
        reason: "pending".into(),
    })
}
