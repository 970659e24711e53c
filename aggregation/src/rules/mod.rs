//! The implementations behind [`crate::Aggregator`], one module per family.

pub mod bucketing;
mod centered_clipping;
mod coordinate;
mod fltrust;
mod geometric_median;
mod kernels;
mod krum;
pub mod mean;

use ndarray::ArrayView2;

use crate::{Aggregate, AggregationError, RoundContext, Rule};

/// Checks the parameters of `rule` that do not depend on the inputs.
pub(crate) fn validate(rule: &Rule) -> Result<(), AggregationError> {
    let invalid = |rule: &'static str, reason: String| {
        Err(AggregationError::InvalidParameter { rule, reason })
    };
    match *rule {
        Rule::TrimmedMean { trim_fraction } if !(0.0..0.5).contains(&trim_fraction) => invalid(
            "trimmed-mean",
            format!("trim_fraction must be in [0, 0.5), got {trim_fraction}"),
        ),
        Rule::MultiKrum { m: 0, .. } => invalid("multi-krum", "m must be at least 1".into()),
        Rule::GeometricMedian {
            max_iters,
            tolerance,
            smoothing,
        } => {
            if max_iters == 0 {
                invalid("geometric-median", "max_iters must be at least 1".into())
            } else if !(tolerance.is_finite() && tolerance > 0.0) {
                invalid(
                    "geometric-median",
                    format!("tolerance must be > 0, got {tolerance}"),
                )
            } else if !(smoothing.is_finite() && smoothing > 0.0) {
                invalid(
                    "geometric-median",
                    format!("smoothing must be > 0, got {smoothing}"),
                )
            } else {
                Ok(())
            }
        }
        Rule::CenteredClipping { radius, iterations } => {
            if !(radius.is_finite() && radius > 0.0) {
                invalid(
                    "centered-clipping",
                    format!("radius must be > 0, got {radius}"),
                )
            } else if iterations == 0 {
                invalid("centered-clipping", "iterations must be at least 1".into())
            } else {
                Ok(())
            }
        }
        Rule::NormBounding { bound } if !(bound.is_finite() && bound > 0.0) => {
            invalid("norm-bounding", format!("bound must be > 0, got {bound}"))
        }
        _ => Ok(()),
    }
}

/// Checks what every rule needs of its inputs; with `check_values`, also
/// checks the updates for NaN and infinite values (the coordinate-wise
/// rules do it during their own pass and pass `false`).
pub(crate) fn check_inputs(
    updates: ArrayView2<f32>,
    weights: &[f32],
    context: &RoundContext,
    check_values: bool,
) -> Result<(), AggregationError> {
    let (n, d) = updates.dim();
    if n == 0 {
        return Err(AggregationError::NoInputs);
    }
    if weights.len() != n {
        return Err(AggregationError::WeightCount {
            updates: n,
            weights: weights.len(),
        });
    }
    if let Some((input, &weight)) = weights
        .iter()
        .enumerate()
        .find(|&(_, w)| !w.is_finite() || *w < 0.0)
    {
        return Err(AggregationError::InvalidWeight { input, weight });
    }
    if weights.iter().all(|&w| w == 0.0) {
        return Err(AggregationError::ZeroTotalWeight);
    }
    if check_values {
        mean::check_finite(updates)?;
    }
    for (what, vector) in [
        ("root update", context.root_update),
        ("previous aggregate", context.previous_aggregate),
    ] {
        if let Some(v) = vector {
            if v.len() != d {
                return Err(AggregationError::DimensionMismatch {
                    what,
                    expected: d,
                    found: v.len(),
                });
            }
            if let Some(coordinate) = v.iter().position(|x| !x.is_finite()) {
                return Err(AggregationError::InvalidParameter {
                    rule: "context",
                    reason: format!("{what} has a non-finite value at coordinate {coordinate}"),
                });
            }
        }
    }
    Ok(())
}

/// Runs `rule` on checked inputs (no bucketing).
pub(crate) fn aggregate(
    rule: &Rule,
    updates: ArrayView2<f32>,
    weights: &[f32],
    context: &RoundContext,
) -> Result<Aggregate, AggregationError> {
    match *rule {
        Rule::FedAvg => mean::fedavg(updates, weights),
        Rule::NormBounding { bound } => mean::norm_bounding(updates, weights, bound),
        Rule::Median => coordinate::median(updates),
        Rule::TrimmedMean { trim_fraction } => coordinate::trimmed_mean(updates, trim_fraction),
        Rule::Krum { f } => krum::krum(updates, f),
        Rule::MultiKrum { f, m } => krum::multi_krum(updates, weights, f, m),
        Rule::Bulyan { f } => krum::bulyan(updates, f),
        Rule::GeometricMedian {
            max_iters,
            tolerance,
            smoothing,
        } => geometric_median::geometric_median(updates, weights, max_iters, tolerance, smoothing),
        Rule::CenteredClipping { radius, iterations } => centered_clipping::centered_clipping(
            updates,
            weights,
            context.previous_aggregate,
            radius,
            iterations,
        ),
        Rule::FlTrust => fltrust::fltrust(
            updates,
            context
                .root_update
                .ok_or(AggregationError::MissingRootUpdate)?,
        ),
    }
}
