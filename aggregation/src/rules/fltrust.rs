//! FLTrust (Cao, Fang, Liu and Gong, "FLTrust: Byzantine-robust Federated
//! Learning via Trust Bootstrapping", NDSS 2021).
//!
//! The sponsor computes a root update on a small clean data set. Each input
//! gets trust `t_i = max(0, cos(u_i, root))`, is rescaled to the root update's
//! norm, and the aggregate is `sum_i t_i (||root|| / ||u_i||) u_i / sum_i t_i`.
//!
//! - As in the paper the nominal weights are ignored: trust alone weighs the
//!   inputs, so a client cannot gain influence by claiming more examples.
//! - When no input has positive trust (including a zero root update or
//!   all-zero inputs, whose cosine is taken as 0) the aggregate is the zero
//!   vector: the round changes nothing.
//! - Verdicts: [`Reason::Trust`] with the cosine, weight `t_i / max_j t_j`;
//!   an input with trust 0 is rejected.

use ndarray::{Array1, ArrayView1, ArrayView2};

use super::kernels::{Rows, contiguous, dot, linear_combination, sum_over_coordinates};
use crate::{Aggregate, AggregationError, Reason, Verdict};

/// FLTrust of the rows of `updates` against the root update `root`.
pub(crate) fn fltrust(
    updates: ArrayView2<f32>,
    root: ArrayView1<f32>,
) -> Result<Aggregate, AggregationError> {
    let rows = Rows::new(updates);
    let root = contiguous(root);
    let n = rows.count();
    // One pass over the data: per input its dot product with the root update
    // and its squared norm, then the root's squared norm.
    let sums = sum_over_coordinates(rows.dim(), 2 * n + 1, |range, sums| {
        let root = &root[range.clone()];
        for (i, pair) in sums.chunks_exact_mut(2).enumerate() {
            let row = &rows.row(i)[range.clone()];
            pair[0] += dot(row, root);
            pair[1] += dot(row, row);
        }
        sums[2 * n] += dot(root, root);
    });
    let root_norm = sums[2 * n].sqrt();
    let (cosines, norms): (Vec<f64>, Vec<f64>) = sums[..2 * n]
        .chunks_exact(2)
        .map(|pair| {
            let norm = pair[1].sqrt();
            let cosine = if norm > 0.0 && root_norm > 0.0 {
                (pair[0] / (norm * root_norm)).clamp(-1.0, 1.0)
            } else {
                0.0
            };
            (cosine, norm)
        })
        .unzip();
    let trust: Vec<f64> = cosines.iter().map(|&c| c.max(0.0)).collect();
    let total: f64 = trust.iter().sum();
    let most = trust.iter().fold(0.0f64, |m, &t| m.max(t));

    let update = if total > 0.0 {
        let coefficients: Vec<f32> = trust
            .iter()
            .zip(&norms)
            .map(|(&t, &norm)| {
                if t > 0.0 {
                    (t * root_norm / norm / total) as f32
                } else {
                    0.0
                }
            })
            .collect();
        Array1::from(linear_combination(&rows, &coefficients))
    } else {
        Array1::zeros(rows.dim())
    };
    let verdicts = cosines
        .iter()
        .zip(&trust)
        .map(|(&cosine, &t)| Verdict {
            weight: if t > 0.0 { (t / most) as f32 } else { 0.0 },
            reason: Reason::Trust {
                cosine: cosine as f32,
            },
        })
        .collect();
    Ok(Aggregate { update, verdicts })
}
