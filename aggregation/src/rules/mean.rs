//! Weighted federated averaging (FedAvg, McMahan et al. 2017) and norm bounding.

use ndarray::{Array1, ArrayView2};
use rayon::prelude::*;

use crate::norm::l2_norm;
use crate::{Aggregate, AggregationError, Reason, RoundContext, Verdict};

/// Coordinates per parallel task: large enough to amortize scheduling, small
/// enough that the rows of one chunk stay in cache.
const CHUNK: usize = 16 * 1024;

/// The weighted mean `sum_i w_i u_i / sum_i w_i` of the rows of `updates`
/// (`n` updates of dimension `d`), parallel over coordinates.
///
/// Rejects an empty input, a weight count that differs from `n`, negative or
/// non-finite weights, an all-zero weight vector and non-finite update values.
pub fn weighted_mean(
    updates: ArrayView2<f32>,
    weights: &[f32],
) -> Result<Array1<f32>, AggregationError> {
    super::check_inputs(updates, weights, &RoundContext::default())?;
    let d = updates.ncols();
    let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
    let scaled: Vec<f32> = weights
        .iter()
        .map(|&w| (f64::from(w) / total) as f32)
        .collect();

    let mut mean = Array1::<f32>::zeros(d);
    let out = mean.as_slice_mut().ok_or(AggregationError::NoInputs)?;
    out.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(chunk, acc)| {
            let start = chunk * CHUNK;
            for (row, &w) in updates.rows().into_iter().zip(&scaled) {
                let row = row.slice(ndarray::s![start..start + acc.len()]);
                for (a, &u) in acc.iter_mut().zip(row.iter()) {
                    *a += w * u;
                }
            }
        });
    Ok(mean)
}

/// FedAvg: the weighted mean of every input, each kept with its full weight.
pub(crate) fn fedavg(
    updates: ArrayView2<f32>,
    weights: &[f32],
) -> Result<Aggregate, AggregationError> {
    Ok(Aggregate {
        update: weighted_mean(updates, weights)?,
        verdicts: vec![Verdict::KEPT; updates.nrows()],
    })
}

/// Norm bounding (Sun et al. 2019): every input longer than `bound` is scaled
/// to norm `bound` (its verdict weight is the scale), then the weighted mean.
pub(crate) fn norm_bounding(
    updates: ArrayView2<f32>,
    weights: &[f32],
    bound: f32,
) -> Result<Aggregate, AggregationError> {
    let verdicts: Vec<Verdict> = updates
        .rows()
        .into_iter()
        .map(|row| {
            let norm = row
                .as_slice()
                .map_or_else(|| row.dot(&row).sqrt() as f64, l2_norm);
            if norm > f64::from(bound) {
                let weight = (f64::from(bound) / norm) as f32;
                Verdict {
                    weight,
                    reason: Reason::Clipped {
                        norm: norm as f32,
                        bound,
                    },
                }
            } else {
                Verdict::KEPT
            }
        })
        .collect();
    // Scaling input i by c_i is the same as scaling its weight by c_i and the
    // normalizer by nothing: mean = sum w_i c_i u_i / sum w_i.
    let scaled: Vec<f32> = weights
        .iter()
        .zip(&verdicts)
        .map(|(w, v)| w * v.weight)
        .collect();
    let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
    let scaled_total: f64 = scaled.iter().map(|&w| f64::from(w)).sum();
    let mut update = weighted_mean(updates, &scaled)?;
    let correction = (scaled_total / total) as f32;
    update.mapv_inplace(|v| v * correction);
    Ok(Aggregate { update, verdicts })
}

/// Fails on the first NaN or infinite value, naming its input and coordinate.
pub fn check_finite(updates: ArrayView2<f32>) -> Result<(), AggregationError> {
    for (input, row) in updates.rows().into_iter().enumerate() {
        if let Some(coordinate) = row.iter().position(|v| !v.is_finite()) {
            return Err(AggregationError::NonFinite { input, coordinate });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn weighted_mean_matches_hand_computation() {
        let updates = array![[1.0f32, 2.0, -3.0], [3.0, 6.0, 1.0]];
        let mean = weighted_mean(updates.view(), &[1.0, 3.0]).unwrap();
        assert_eq!(mean, array![2.5f32, 5.0, 0.0]);
    }

    #[test]
    fn spans_several_chunks() {
        let d = CHUNK * 2 + 7;
        let a = Array1::from_iter((0..d).map(|i| i as f32));
        let b = Array1::from_iter((0..d).map(|i| -(i as f32) + 2.0));
        let updates = ndarray::stack![ndarray::Axis(0), a, b];
        let mean = weighted_mean(updates.view(), &[1.0, 1.0]).unwrap();
        assert!(mean.iter().all(|&v| v == 1.0));
    }

    #[test]
    fn rejects_bad_inputs() {
        let updates = array![[1.0f32, f32::NAN], [0.0, 0.0]];
        assert_eq!(
            weighted_mean(updates.view(), &[1.0, 1.0]),
            Err(AggregationError::NonFinite {
                input: 0,
                coordinate: 1
            })
        );
        let ok = array![[1.0f32], [2.0]];
        assert_eq!(
            weighted_mean(ok.view(), &[1.0]),
            Err(AggregationError::WeightCount {
                updates: 2,
                weights: 1
            })
        );
        assert_eq!(
            weighted_mean(ok.view(), &[1.0, -1.0]),
            Err(AggregationError::InvalidWeight {
                input: 1,
                weight: -1.0
            })
        );
        assert_eq!(
            weighted_mean(ok.view(), &[0.0, 0.0]),
            Err(AggregationError::ZeroTotalWeight)
        );
        assert_eq!(
            weighted_mean(ArrayView2::from_shape((0, 3), &[]).unwrap(), &[]),
            Err(AggregationError::NoInputs)
        );
    }
}
