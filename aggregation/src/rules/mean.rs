//! Weighted federated averaging (FedAvg, McMahan et al. 2017) and norm bounding.

use ndarray::{Array1, ArrayView2};

use super::kernels::{
    Rows, checked_linear_combination, linear_combination, non_finite, non_finite_seen, norms,
};
use crate::{Aggregate, AggregationError, Reason, RoundContext, Verdict};

/// The weighted mean `sum_i w_i u_i / sum_i w_i` of the rows of `updates`
/// (`n` updates of dimension `d`), parallel over coordinates.
///
/// Rejects an empty input, a weight count that differs from `n`, negative or
/// non-finite weights, an all-zero weight vector and non-finite update values.
pub fn weighted_mean(
    updates: ArrayView2<f32>,
    weights: &[f32],
) -> Result<Array1<f32>, AggregationError> {
    // The values are checked while they are combined: one pass, not two.
    super::check_inputs(updates, weights, &RoundContext::default(), false)?;
    let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
    let scaled: Vec<f32> = weights
        .iter()
        .map(|&w| (f64::from(w) / total) as f32)
        .collect();
    let rows = Rows::new(updates);
    checked_linear_combination(&rows, &scaled)
        .map(Array1::from)
        .ok_or_else(|| non_finite_seen(&rows))
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
    let rows = Rows::new(updates);
    let bound_f64 = f64::from(bound);
    let norms = norms(&rows);
    let scales: Vec<f64> = norms
        .iter()
        .map(|&norm| (bound_f64 / norm).min(1.0))
        .collect();
    let verdicts = norms
        .iter()
        .zip(&scales)
        .map(|(&norm, &scale)| {
            if scale < 1.0 {
                Verdict {
                    weight: scale as f32,
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
    let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
    let coefficients: Vec<f32> = weights
        .iter()
        .zip(&scales)
        .map(|(&w, c)| (f64::from(w) * c / total) as f32)
        .collect();
    Ok(Aggregate {
        update: Array1::from(linear_combination(&rows, &coefficients)),
        verdicts,
    })
}

/// Fails on the first NaN or infinite value, naming its input and coordinate.
pub fn check_finite(updates: ArrayView2<f32>) -> Result<(), AggregationError> {
    non_finite(&Rows::new(updates)).map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::kernels::CHUNK;
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
        // An infinite value is an error even in an input of weight zero, and
        // in a later chunk of coordinates: the check reads every row whole.
        let mut late = ndarray::Array2::<f32>::zeros((2, CHUNK + 3));
        late[[1, CHUNK + 1]] = f32::INFINITY;
        assert_eq!(
            weighted_mean(late.view(), &[1.0, 0.0]),
            Err(AggregationError::NonFinite {
                input: 1,
                coordinate: CHUNK + 1
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
