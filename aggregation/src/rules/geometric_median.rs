//! STUB
use crate::{Aggregate, AggregationError};
use ndarray::ArrayView2;
pub(crate) fn geometric_median(
    _u: ArrayView2<f32>,
    _w: &[f32],
    _i: usize,
    _t: f32,
    _s: f32,
) -> Result<Aggregate, AggregationError> {
    Err(AggregationError::InvalidParameter {
        rule: "geometric-median",
        reason: "pending".into(),
    })
}
