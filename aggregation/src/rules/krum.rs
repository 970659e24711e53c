//! Krum and Multi-Krum (Blanchard et al., NeurIPS 2017) and Bulyan (El Mhamdi
//! et al., ICML 2018).
//!
//! All three rank inputs by their Krum score: the sum of squared distances to
//! the input's `n - f - 2` nearest other inputs. The pairwise squared
//! distances are computed once (parallel over coordinate chunks, accumulated
//! in f64). Equal scores (two inputs that are each other's only counted
//! neighbour score the same) are ordered by the sum of squared distances to
//! all candidates, then by the vectors themselves (lexicographically), and
//! only then by index, so the selection does not depend on the order of the
//! inputs. Inputs left out get [`Reason::NotSelected`] with their Krum score
//! among all inputs.

use std::cmp::Ordering;

use ndarray::{Array1, ArrayView2};

use super::coordinate;
use super::kernels::{Rows, linear_combination, squared_distance, sum_over_coordinates};
use crate::{Aggregate, AggregationError, Reason, Verdict};

/// Krum: the single input with the best score. Needs `n > 2f + 2`.
pub(crate) fn krum(updates: ArrayView2<f32>, f: usize) -> Result<Aggregate, AggregationError> {
    let rows = Rows::new(updates);
    select_and_average("krum", &rows, &vec![1.0; rows.count()], f, 1)
}

/// Multi-Krum: the weighted mean of the `m` inputs with the best scores,
/// with their nominal weights. Needs `n > 2f + 2` and `m <= n - f`; fails
/// with [`AggregationError::ZeroTotalWeight`] when every selected input has
/// weight 0.
pub(crate) fn multi_krum(
    updates: ArrayView2<f32>,
    weights: &[f32],
    f: usize,
    m: usize,
) -> Result<Aggregate, AggregationError> {
    select_and_average("multi-krum", &Rows::new(updates), weights, f, m)
}

/// Bulyan: `theta = n - 2f` inputs chosen by Krum one at a time (each round
/// scoring the inputs not yet chosen), then the coordinate-wise trimmed mean
/// of those with `f` values dropped at each end, i.e. the mean of the
/// `theta - 2f` central values (unweighted). Needs `n >= 4f + 3`.
///
/// Late rounds have fewer candidates than Krum's `n > 2f + 2` assumes; their
/// scores use at least one neighbour. Chosen inputs get the trimmed-mean
/// verdicts of the second stage (module docs of the coordinate-wise rules).
pub(crate) fn bulyan(updates: ArrayView2<f32>, f: usize) -> Result<Aggregate, AggregationError> {
    let rows = Rows::new(updates);
    let n = rows.count();
    let needed = f.saturating_mul(4).saturating_add(3);
    if n < needed {
        return Err(AggregationError::TooFewInputs {
            rule: "bulyan",
            n,
            requirement: format!("n >= 4f + 3 = {needed}"),
        });
    }
    let distances = pairwise_squared_distances(&rows);
    let everyone: Vec<usize> = (0..n).collect();
    let scores = krum_scores(&distances, &everyone, n - f - 2);

    let mut remaining = everyone;
    let mut chosen = Vec::with_capacity(n - 2 * f);
    while chosen.len() < n - 2 * f {
        let neighbours = (remaining.len().saturating_sub(f + 2)).max(1);
        let round = krum_scores(&distances, &remaining, neighbours);
        let best = ranking(&remaining, &round, &rows)[0];
        remaining.retain(|&i| i != best);
        chosen.push(best);
    }
    // In input order, so rows are read in memory order.
    chosen.sort_unstable();
    let (update, chosen_verdicts) = coordinate::trimmed_mean_of(&rows, &chosen, f)?;

    let mut verdicts = not_selected(&scores);
    for (&i, verdict) in chosen.iter().zip(chosen_verdicts) {
        verdicts[i] = verdict;
    }
    Ok(Aggregate { update, verdicts })
}

/// Krum (`m = 1`, unit weights) and Multi-Krum.
fn select_and_average(
    rule: &'static str,
    rows: &Rows,
    weights: &[f32],
    f: usize,
    m: usize,
) -> Result<Aggregate, AggregationError> {
    let n = rows.count();
    let bound = f.saturating_mul(2).saturating_add(2);
    if n <= bound {
        return Err(AggregationError::TooFewInputs {
            rule,
            n,
            requirement: format!("n > 2f + 2 = {bound}"),
        });
    }
    if m > n - f {
        return Err(AggregationError::TooFewInputs {
            rule,
            n,
            requirement: format!("n >= m + f = {}", m + f),
        });
    }
    let everyone: Vec<usize> = (0..n).collect();
    let scores = krum_scores(&pairwise_squared_distances(rows), &everyone, n - f - 2);
    let mut selected = ranking(&everyone, &scores, rows);
    selected.truncate(m);

    let total: f64 = selected.iter().map(|&i| f64::from(weights[i])).sum();
    if total == 0.0 {
        return Err(AggregationError::ZeroTotalWeight);
    }
    let mut coefficients = vec![0.0f32; n];
    let mut verdicts = not_selected(&scores);
    for &i in &selected {
        coefficients[i] = (f64::from(weights[i]) / total) as f32;
        verdicts[i] = Verdict::KEPT;
    }
    Ok(Aggregate {
        update: Array1::from(linear_combination(rows, &coefficients)),
        verdicts,
    })
}

/// Every input not selected, with its Krum score.
fn not_selected(scores: &[KrumScore]) -> Vec<Verdict> {
    scores
        .iter()
        .map(|score| Verdict {
            weight: 0.0,
            reason: Reason::NotSelected {
                score: score.nearest as f32,
            },
        })
        .collect()
}

/// The `n x n` matrix of squared distances between rows, row-major.
fn pairwise_squared_distances(rows: &Rows) -> Vec<f64> {
    let n = rows.count();
    let pairs: Vec<(usize, usize)> = (0..n)
        .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
        .collect();
    let sums = sum_over_coordinates(rows.dim(), pairs.len(), |range, sums| {
        for (sum, &(i, j)) in sums.iter_mut().zip(&pairs) {
            *sum += squared_distance(&rows.row(i)[range.clone()], &rows.row(j)[range.clone()]);
        }
    });
    let mut matrix = vec![0.0; n * n];
    for (&(i, j), &sum) in pairs.iter().zip(&sums) {
        matrix[i * n + j] = sum;
        matrix[j * n + i] = sum;
    }
    matrix
}

/// A candidate's sums of squared distances to the other candidates.
#[derive(Clone, Copy, Default)]
struct KrumScore {
    /// To its nearest ones: the Krum score.
    nearest: f64,
    /// To all of them: breaks ties of `nearest`.
    all: f64,
}

/// The score of each candidate among `candidates`, counting its `neighbours`
/// nearest (all of them if fewer), indexed by input; non-candidates score 0.
fn krum_scores(distances: &[f64], candidates: &[usize], neighbours: usize) -> Vec<KrumScore> {
    let n = distances.len().isqrt();
    let mut scores = vec![KrumScore::default(); n];
    let mut others = Vec::with_capacity(candidates.len());
    for &i in candidates {
        others.clear();
        others.extend(
            candidates
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| distances[i * n + j]),
        );
        // Sorted, so the sums' rounding does not depend on the input order.
        others.sort_unstable_by(f64::total_cmp);
        scores[i] = KrumScore {
            nearest: others.iter().take(neighbours).sum(),
            all: others.iter().sum(),
        };
    }
    scores
}

/// `candidates` from the best (lowest) score to the worst; ties as in the
/// module docs.
fn ranking(candidates: &[usize], scores: &[KrumScore], rows: &Rows) -> Vec<usize> {
    let mut ranked = candidates.to_vec();
    ranked.sort_unstable_by(|&a, &b| {
        (scores[a].nearest.total_cmp(&scores[b].nearest))
            .then(scores[a].all.total_cmp(&scores[b].all))
            .then_with(|| lexicographic(rows.row(a), rows.row(b)))
            .then(a.cmp(&b))
    });
    ranked
}

fn lexicographic(a: &[f32], b: &[f32]) -> Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.total_cmp(y))
        .find(|order| order.is_ne())
        .unwrap_or(Ordering::Equal)
}
