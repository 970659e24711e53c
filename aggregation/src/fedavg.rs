//! Weighted federated averaging (FedAvg, McMahan et al. 2017).

use ndarray::{Array1, ArrayView2};
use rayon::prelude::*;

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
    check_finite(updates)?;
    let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
    if total == 0.0 {
        return Err(AggregationError::ZeroTotalWeight);
    }
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

/// Fails on the first NaN or infinite value, naming its input and coordinate.
pub fn check_finite(updates: ArrayView2<f32>) -> Result<(), AggregationError> {
    for (input, row) in updates.rows().into_iter().enumerate() {
        if let Some(coordinate) = row.iter().position(|v| !v.is_finite()) {
            return Err(AggregationError::NonFinite { input, coordinate });
        }
    }
    Ok(())
}

/// Why an aggregation could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AggregationError {
    /// No update was given.
    #[error("cannot aggregate zero updates")]
    NoInputs,
    /// Weights and updates differ in number.
    #[error("{updates} updates but {weights} weights")]
    WeightCount {
        /// Number of updates.
        updates: usize,
        /// Number of weights.
        weights: usize,
    },
    /// A weight is negative, NaN or infinite.
    #[error("weight {weight} of input {input} is not a finite non-negative number")]
    InvalidWeight {
        /// Index of the input.
        input: usize,
        /// The weight.
        weight: f32,
    },
    /// All weights are zero.
    #[error("all weights are zero")]
    ZeroTotalWeight,
    /// An update holds NaN or infinity.
    #[error("input {input} has a non-finite value at coordinate {coordinate}")]
    NonFinite {
        /// Index of the input.
        input: usize,
        /// The first offending coordinate.
        coordinate: usize,
    },
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
