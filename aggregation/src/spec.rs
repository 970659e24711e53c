//! Building an [`Aggregator`] from the task spec's `[aggregation]` section.

use fedstake_protocol::spec::{AggregationRule, AggregationSpec};

use crate::{AggregationError, Aggregator, Rule};

/// The spec's rule and bucketing, with its f64 parameters narrowed to the
/// rules' f32 and its counts widened to `usize`. Parameters are checked as by
/// [`Aggregator::new`]; a value that only becomes invalid in f32 (a trim
/// fraction that rounds to 0.5, say) is reported like any invalid parameter.
impl TryFrom<&AggregationSpec> for Aggregator {
    type Error = AggregationError;

    fn try_from(spec: &AggregationSpec) -> Result<Self, AggregationError> {
        let rule = match spec.rule {
            AggregationRule::FedAvg => Rule::FedAvg,
            AggregationRule::Median => Rule::Median,
            AggregationRule::TrimmedMean { trim_fraction } => Rule::TrimmedMean {
                trim_fraction: trim_fraction as f32,
            },
            AggregationRule::Krum { f } => Rule::Krum { f: f as usize },
            AggregationRule::MultiKrum { f, m } => Rule::MultiKrum {
                f: f as usize,
                m: m as usize,
            },
            AggregationRule::Bulyan { f } => Rule::Bulyan { f: f as usize },
            AggregationRule::GeometricMedian {
                max_iters,
                tolerance,
                smoothing,
            } => Rule::GeometricMedian {
                max_iters: max_iters as usize,
                tolerance: tolerance as f32,
                smoothing: smoothing as f32,
            },
            AggregationRule::CenteredClipping { radius, iterations } => Rule::CenteredClipping {
                radius: radius as f32,
                iterations: iterations as usize,
            },
            AggregationRule::NormBounding { bound } => Rule::NormBounding {
                bound: bound as f32,
            },
            AggregationRule::FlTrust => Rule::FlTrust,
        };
        Aggregator::new(rule, spec.bucketing.map(|b| b.size as usize))
    }
}
