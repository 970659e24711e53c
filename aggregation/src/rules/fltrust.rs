//! STUB
use crate::{Aggregate, AggregationError};
use ndarray::{ArrayView1, ArrayView2};
pub(crate) fn fltrust(
    _u: ArrayView2<f32>,
    _root: ArrayView1<f32>,
) -> Result<Aggregate, AggregationError> {
    Err(AggregationError::InvalidParameter {
        rule: "fltrust",
        reason: "pending".into(),
    })
}
