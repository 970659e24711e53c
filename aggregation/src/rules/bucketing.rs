//! STUB
use crate::{Aggregate, AggregationError, RoundContext, Rule};
use ndarray::ArrayView2;
/// STUB
pub fn aggregate(
    _r: &Rule,
    _s: usize,
    _u: ArrayView2<f32>,
    _w: &[f32],
    _c: &RoundContext,
) -> Result<Aggregate, AggregationError> {
    Err(AggregationError::InvalidParameter {
        rule: "bucketing",
        reason: "pending".into(),
    })
}
