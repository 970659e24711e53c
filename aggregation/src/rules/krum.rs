//! STUB
use crate::{Aggregate, AggregationError};
use ndarray::ArrayView2;
fn pending(rule: &'static str) -> Result<Aggregate, AggregationError> {
    Err(AggregationError::InvalidParameter {
        rule,
        reason: "pending".into(),
    })
}
pub(crate) fn krum(_u: ArrayView2<f32>, _f: usize) -> Result<Aggregate, AggregationError> {
    pending("krum")
}
pub(crate) fn multi_krum(
    _u: ArrayView2<f32>,
    _w: &[f32],
    _f: usize,
    _m: usize,
) -> Result<Aggregate, AggregationError> {
    pending("multi-krum")
}
pub(crate) fn bulyan(_u: ArrayView2<f32>, _f: usize) -> Result<Aggregate, AggregationError> {
    pending("bulyan")
}
