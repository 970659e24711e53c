//! STUB: replaced by the coordinate-wise rules.
use crate::{Aggregate, AggregationError};
use ndarray::ArrayView2;
fn pending(rule: &'static str) -> Result<Aggregate, AggregationError> {
    Err(AggregationError::InvalidParameter {
        rule,
        reason: "pending".into(),
    })
}
pub(crate) fn median(_u: ArrayView2<f32>) -> Result<Aggregate, AggregationError> {
    pending("median")
}
pub(crate) fn trimmed_mean(_u: ArrayView2<f32>, _t: f32) -> Result<Aggregate, AggregationError> {
    pending("trimmed-mean")
}
