//! The geometric median by smoothed Weiszfeld iterations, as in RFA (Pillutla,
//! Kakade and Harchaoui, "Robust Aggregation for Federated Learning", IEEE TSP
//! 2022).
//!
//! The estimate `z` minimizes `sum_i alpha_i ||z - u_i||` with `alpha_i` the
//! normalized nominal weights. Starting from the weighted mean, each iteration
//! sets `beta_i = alpha_i / max(nu, ||z - u_i||)` and `z = sum_i beta_i u_i /
//! sum_i beta_i`; the smoothing `nu` keeps the weights finite when `z` lands on
//! an input. Iterations stop after `max_iters`, or as soon as the objective
//! improves by less than `tolerance` times its new value.
//!
//! The rule never rejects an input. Its verdict reports the input's Weiszfeld
//! weight `1 / max(nu, ||z - u_i||)` at the final estimate relative to the
//! largest one ([`Reason::Reweighted`]): 1 for the input closest to the
//! median, near 0 for a far outlier.

use ndarray::{Array1, ArrayView2};

use super::kernels::{Rows, distances_to, linear_combination};
use crate::{Aggregate, AggregationError, Reason, Verdict};

/// The smoothed Weiszfeld geometric median of the rows of `updates`.
pub(crate) fn geometric_median(
    updates: ArrayView2<f32>,
    weights: &[f32],
    max_iters: usize,
    tolerance: f32,
    smoothing: f32,
) -> Result<Aggregate, AggregationError> {
    let rows = Rows::new(updates);
    let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
    let alpha: Vec<f64> = weights.iter().map(|&w| f64::from(w) / total).collect();
    let nu = f64::from(smoothing);
    let objective =
        |distances: &[f64]| -> f64 { alpha.iter().zip(distances).map(|(a, d)| a * d).sum() };

    let mut estimate = linear_combination(&rows, &to_f32(&alpha));
    let mut distances = distances_to(&rows, &estimate);
    let mut value = objective(&distances);
    for _ in 0..max_iters {
        let beta: Vec<f64> = alpha
            .iter()
            .zip(&distances)
            .map(|(a, d)| a / d.max(nu))
            .collect();
        let beta_total: f64 = beta.iter().sum();
        let coefficients: Vec<f64> = beta.iter().map(|b| b / beta_total).collect();
        estimate = linear_combination(&rows, &to_f32(&coefficients));
        distances = distances_to(&rows, &estimate);
        let next = objective(&distances);
        let improvement = value - next;
        value = next;
        if improvement <= f64::from(tolerance) * next {
            break;
        }
    }

    let closest = distances
        .iter()
        .fold(f64::INFINITY, |m, &d| m.min(d.max(nu)));
    let verdicts = distances
        .iter()
        .map(|&d| {
            // Floored at the smallest normal f32 so that no input reads as rejected.
            let factor = ((closest / d.max(nu)) as f32).max(f32::MIN_POSITIVE);
            Verdict {
                weight: factor,
                reason: Reason::Reweighted { factor },
            }
        })
        .collect();
    Ok(Aggregate {
        update: Array1::from(estimate),
        verdicts,
    })
}

fn to_f32(values: &[f64]) -> Vec<f32> {
    values.iter().map(|&v| v as f32).collect()
}
