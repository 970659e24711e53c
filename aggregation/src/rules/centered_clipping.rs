//! Centered clipping (Karimireddy, He and Jaggi, "Learning from History for
//! Byzantine Robust Optimization", ICML 2021).
//!
//! The estimate `v` starts at the previous round's aggregate (the paper's
//! momentum; zeros without one) and each of `l` iterations moves it by the
//! weighted mean of the inputs' differences to it, each clipped to L2 norm
//! `tau`:
//!
//! `v += sum_i w_i (u_i - v) min(1, tau / ||u_i - v||) / sum_i w_i`
//!
//! An input's verdict is its clipping factor `min(1, tau / ||u_i - v||)` in the
//! last iteration: [`Verdict::KEPT`] when it was within `tau` of the estimate,
//! otherwise [`Reason::Clipped`] with that distance.

use ndarray::{Array1, ArrayView1, ArrayView2};
use rayon::prelude::*;

use super::kernels::{CHUNK, Rows, contiguous, distances_to, linear_combination};
use crate::{Aggregate, AggregationError, Reason, Verdict};

/// Centered clipping of the rows of `updates` around `previous` (zeros when
/// `None`) with radius `radius` and `iterations` iterations.
pub(crate) fn centered_clipping(
    updates: ArrayView2<f32>,
    weights: &[f32],
    previous: Option<ArrayView1<f32>>,
    radius: f32,
    iterations: usize,
) -> Result<Aggregate, AggregationError> {
    let rows = Rows::new(updates);
    let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
    let tau = f64::from(radius);
    let mut estimate = match previous {
        Some(previous) => contiguous(previous).into_owned(),
        None => vec![0.0; rows.dim()],
    };
    let mut verdicts = vec![Verdict::KEPT; rows.count()];
    for _ in 0..iterations {
        let distances = distances_to(&rows, &estimate);
        let scales: Vec<f64> = distances
            .iter()
            .map(|&d| if d > tau { tau / d } else { 1.0 })
            .collect();
        // v + sum_i c_i (u_i - v) = (1 - sum_i c_i) v + sum_i c_i u_i.
        let coefficients: Vec<f64> = weights
            .iter()
            .zip(&scales)
            .map(|(&w, s)| f64::from(w) * s / total)
            .collect();
        let stay = (1.0 - coefficients.iter().sum::<f64>()) as f32;
        let coefficients: Vec<f32> = coefficients.iter().map(|&c| c as f32).collect();
        let mut next = linear_combination(&rows, &coefficients);
        next.par_chunks_mut(CHUNK)
            .zip(estimate.par_chunks(CHUNK))
            .for_each(|(next, current)| {
                next.iter_mut()
                    .zip(current)
                    .for_each(|(n, &v)| *n += stay * v);
            });
        estimate = next;
        verdicts = distances
            .iter()
            .zip(&scales)
            .map(|(&distance, &scale)| {
                if scale < 1.0 {
                    Verdict {
                        weight: scale as f32,
                        reason: Reason::Clipped {
                            norm: distance as f32,
                            bound: radius,
                        },
                    }
                } else {
                    Verdict::KEPT
                }
            })
            .collect();
    }
    Ok(Aggregate {
        update: Array1::from(estimate),
        verdicts,
    })
}
