//! How much each contribution of a round was worth (DESIGN section 6).
//!
//! - **Alignment**: the cosine between a contribution and the round's
//!   reference (the robust aggregate, or the sponsor's root update);
//!   **trust** is `max(0, alignment)`.
//! - **Near-duplicates**: colluding clients (ALIE, IPM, Sybil pairs) send
//!   identical or near-identical vectors, while honest clients with their own
//!   data do not (FoolsGold, Fung et al. 2020); a near-duplicate gets trust 0.
//! - **Score**: `trust * verdict weight * nominal weight`, times the
//!   validation-loss improvement when it was measured; 0 when the aggregator
//!   rejected the contribution.
//!
//! Everything is accumulated in `f64` and deterministic: the same inputs give
//! bit-identical results whatever the number of threads.

use std::ops::Range;

use ndarray::parallel::prelude::*;
use ndarray::{ArrayView1, ArrayView2, Axis, Zip, s};

use crate::{AggregationError, Aggregator, RoundContext, Verdict};

/// Cosine above which two contributions count as near-duplicates.
pub const DEFAULT_DUPLICATE_THRESHOLD: f64 = 0.99;

/// Why contributions could not be scored. Nothing is half-updated when one
/// of these is returned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QualityError {
    /// A per-contribution input has the wrong number of entries.
    #[error("{what} has {found} entries for {expected} contributions")]
    CountMismatch {
        /// Which input (`weights`, `verdicts`, `loss improvements`).
        what: &'static str,
        /// Number of contributions.
        expected: usize,
        /// Number of entries given.
        found: usize,
    },
    /// The reference has a different dimension than the contributions.
    #[error("reference has {found} coordinates, the contributions have {expected}")]
    DimensionMismatch {
        /// The contributions' dimension.
        expected: usize,
        /// The reference's dimension.
        found: usize,
    },
    /// A contribution holds NaN or infinity.
    #[error("contribution {input} has a non-finite value")]
    NonFinite {
        /// Index of the contribution.
        input: usize,
    },
    /// The reference holds NaN or infinity.
    #[error("the reference has a non-finite value")]
    NonFiniteReference,
    /// A per-contribution number is out of its range.
    #[error("{what} of contribution {input} is {value}, expected {expected}")]
    InvalidValue {
        /// Which input.
        what: &'static str,
        /// Index of the contribution.
        input: usize,
        /// The value.
        value: f64,
        /// The valid range.
        expected: &'static str,
    },
    /// A parameter is out of its range.
    #[error("{parameter} is {value}, expected {expected}")]
    InvalidParameter {
        /// The parameter.
        parameter: &'static str,
        /// Its value.
        value: f64,
        /// The valid range.
        expected: &'static str,
    },
}

/// Cosine of the angle between `a` and `b`, accumulated in `f64`; 0 when
/// either is the zero vector (it points nowhere, so it agrees with nothing).
///
/// NaN when a value is not finite. `a` and `b` must have the same length.
pub fn cosine(a: ArrayView1<f32>, b: ArrayView1<f32>) -> f64 {
    let (dot, norm_a_sq, norm_b_sq) = Zip::from(a).and(b).fold(
        (0.0f64, 0.0f64, 0.0f64),
        |(dot, norm_a_sq, norm_b_sq), &x, &y| {
            let (x, y) = (f64::from(x), f64::from(y));
            (dot + x * y, norm_a_sq + x * x, norm_b_sq + y * y)
        },
    );
    cosine_from_products(dot, norm_a_sq, norm_b_sq)
}

/// `dot / (|a| |b|)` clamped to `[-1, 1]` against rounding, 0 for a zero
/// vector.
fn cosine_from_products(dot: f64, norm_a_sq: f64, norm_b_sq: f64) -> f64 {
    if norm_a_sq == 0.0 || norm_b_sq == 0.0 {
        return 0.0;
    }
    (dot / (norm_a_sq.sqrt() * norm_b_sq.sqrt())).clamp(-1.0, 1.0)
}

/// The cosine of each contribution (row of `updates`) to `reference`,
/// parallel over contributions.
pub fn alignments(
    updates: ArrayView2<f32>,
    reference: ArrayView1<f32>,
) -> Result<Vec<f64>, QualityError> {
    check_reference(updates, reference)?;
    let cosines: Vec<f64> = updates
        .axis_iter(Axis(0))
        .into_par_iter()
        .map(|update| cosine(update, reference))
        .collect();
    // The reference is finite, so a NaN cosine means a non-finite update.
    match cosines.iter().position(|c| c.is_nan()) {
        Some(input) => Err(QualityError::NonFinite { input }),
        None => Ok(cosines),
    }
}

/// Cosine of contribution `index` to the aggregate of the *other*
/// contributions (leave-one-out).
///
/// A rejected input still moves a robust aggregate a little (a coordinate-wise
/// rule keeps it in the coordinates where it was not extreme), so its cosine
/// to the full aggregate is biased towards agreeing with it; a random vector
/// scores a positive alignment that way. Slashing evidence asks whether the
/// input pointed away from what everybody else agreed on, so it is measured
/// against the aggregate without it. One extra aggregation per call: callers
/// use it for the few inputs a rule rejected.
pub fn leave_one_out_alignment(
    aggregator: &Aggregator,
    updates: ArrayView2<f32>,
    weights: &[f32],
    context: &RoundContext,
    index: usize,
) -> Result<f64, AggregationError> {
    let others: Vec<usize> = (0..updates.nrows()).filter(|&i| i != index).collect();
    let other_weights: Vec<f32> = others.iter().map(|&i| weights[i]).collect();
    let rest = updates.select(Axis(0), &others);
    let aggregate = aggregator.aggregate(rest.view(), &other_weights, context)?;
    Ok(cosine(updates.row(index), aggregate.update.view()))
}

/// Trust of a contribution with this alignment: `max(0, alignment)`.
pub fn trust(alignment: f64) -> f64 {
    alignment.max(0.0)
}

/// Checks the reference has the contributions' dimension and is finite.
fn check_reference(
    updates: ArrayView2<f32>,
    reference: ArrayView1<f32>,
) -> Result<(), QualityError> {
    if reference.len() != updates.ncols() {
        return Err(QualityError::DimensionMismatch {
            expected: updates.ncols(),
            found: reference.len(),
        });
    }
    if reference.iter().any(|x| !x.is_finite()) {
        return Err(QualityError::NonFiniteReference);
    }
    Ok(())
}

/// The other contribution a contribution nearly duplicates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NearDuplicate {
    /// Index of the most similar other contribution.
    pub partner: usize,
    /// Their cosine (of the deviations from the center, when one was given).
    pub cosine: f64,
}

/// Flags contributions nearly identical to another one.
///
/// Given a center (the contributions' mean), it compares deviations from it,
/// `u_i - center`, rather than the updates themselves: honest clients on
/// similar data all move roughly along the common descent direction, so
/// their raw cosines can come close to 1, but what is left after removing
/// that direction is their own data's noise and differs; copies stay
/// copies. A contribution that equals the center has no deviation and is
/// never flagged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DuplicateDetector {
    threshold: f64,
}

impl Default for DuplicateDetector {
    fn default() -> Self {
        Self {
            threshold: DEFAULT_DUPLICATE_THRESHOLD,
        }
    }
}

impl DuplicateDetector {
    /// A detector flagging pairs whose cosine exceeds `threshold`, in
    /// `(0, 1]`.
    pub fn new(threshold: f64) -> Result<Self, QualityError> {
        if !(threshold > 0.0 && threshold <= 1.0) {
            return Err(QualityError::InvalidParameter {
                parameter: "near-duplicate threshold",
                value: threshold,
                expected: "in (0, 1]",
            });
        }
        Ok(Self { threshold })
    }

    /// The cosine a pair must exceed to be flagged.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// For each contribution, its most similar other contribution when their
    /// cosine exceeds the threshold (ties go to the lower index).
    pub fn detect(
        &self,
        updates: ArrayView2<f32>,
        center: Option<ArrayView1<f32>>,
    ) -> Result<Vec<Option<NearDuplicate>>, QualityError> {
        if let Some(center) = center {
            check_reference(updates, center)?;
        }
        let n = updates.nrows();
        let gram = deviation_gram(updates, center);
        let entry = |a: usize, b: usize| gram[a.min(b) * n + a.max(b)];
        if let Some(input) = (0..n).find(|&a| !entry(a, a).is_finite()) {
            return Err(QualityError::NonFinite { input });
        }
        Ok((0..n)
            .map(|a| {
                (0..n)
                    .filter(|&b| b != a)
                    .map(|b| NearDuplicate {
                        partner: b,
                        cosine: cosine_from_products(entry(a, b), entry(a, a), entry(b, b)),
                    })
                    .filter(|pair| pair.cosine > self.threshold)
                    .reduce(|best, pair| {
                        if pair.cosine > best.cosine {
                            pair
                        } else {
                            best
                        }
                    })
            })
            .collect())
    }
}

/// Coordinates per block of the Gram computation: the `n` rows' deviations
/// of one block (n * 8 KiB) stay in cache while all pairs are formed.
const GRAM_BLOCK: usize = 1024;

/// Most coordinate ranges computed in parallel; their partial sums are added
/// in a fixed order, so the result does not depend on the thread count.
const GRAM_PARTS: usize = 32;

/// Memory all partial `n x n` sums may take together; large cohorts get
/// fewer parts (the split depends only on `n` and `d`, never on threads).
const GRAM_PARTIALS_BYTES: usize = 64 << 20;

/// Inner products of all pairs of deviations `u_a - center` (the updates
/// themselves without a center), as a row-major `n x n` matrix of which the
/// upper triangle (`a <= b`) is filled. Parallel over coordinate ranges.
pub(crate) fn deviation_gram(
    updates: ArrayView2<f32>,
    center: Option<ArrayView1<f32>>,
) -> Vec<f64> {
    let (n, d) = updates.dim();
    let affordable_parts =
        GRAM_PARTIALS_BYTES / n.saturating_mul(n).saturating_mul(size_of::<f64>()).max(1);
    let parts = d
        .div_ceil(GRAM_BLOCK)
        .min(GRAM_PARTS)
        .min(affordable_parts)
        .max(1);
    let part_len = d.div_ceil(parts);
    let partials: Vec<Vec<f64>> = (0..parts)
        .into_par_iter()
        .map(|part| {
            let range = (part * part_len).min(d)..((part + 1) * part_len).min(d);
            gram_of_range(updates, center, range)
        })
        .collect();
    let mut gram = vec![0.0; n * n];
    for partial in partials {
        gram.iter_mut().zip(partial).for_each(|(sum, x)| *sum += x);
    }
    gram
}

/// [`deviation_gram`] restricted to the coordinates in `range`, sequential.
fn gram_of_range(
    updates: ArrayView2<f32>,
    center: Option<ArrayView1<f32>>,
    range: Range<usize>,
) -> Vec<f64> {
    let n = updates.nrows();
    let mut gram = vec![0.0; n * n];
    let mut deviations = vec![0.0f64; n * GRAM_BLOCK];
    for start in range.clone().step_by(GRAM_BLOCK) {
        let end = (start + GRAM_BLOCK).min(range.end);
        let len = end - start;
        for (update, row) in updates
            .axis_iter(Axis(0))
            .zip(deviations.chunks_exact_mut(GRAM_BLOCK))
        {
            let update = update.slice(s![start..end]);
            // The difference of two f32 is exact in f64 (up to extreme
            // exponent gaps), so copies of a vector stay exact copies.
            match center {
                Some(center) => Zip::from(&mut row[..len])
                    .and(update)
                    .and(center.slice(s![start..end]))
                    .for_each(|dev, &x, &c| *dev = f64::from(x) - f64::from(c)),
                None => Zip::from(&mut row[..len])
                    .and(update)
                    .for_each(|dev, &x| *dev = f64::from(x)),
            }
        }
        for a in 0..n {
            let row_a = &deviations[a * GRAM_BLOCK..][..len];
            for b in a..n {
                gram[a * n + b] += dot(row_a, &deviations[b * GRAM_BLOCK..][..len]);
            }
        }
    }
    gram
}

/// Inner product with four independent accumulators, so the compiler can
/// vectorize it (one running sum is a serial dependency chain).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    const LANES: usize = 4;
    let mut sums = [0.0f64; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f64 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for lane in 0..LANES {
            sums[lane] += x[lane] * y[lane];
        }
    }
    sums.iter().sum::<f64>() + tail
}

/// The score of one contribution: `trust * verdict_weight * nominal_weight`,
/// times `max(0, improvement)` when a validation-loss improvement was
/// measured. A rejected contribution (verdict weight 0) scores 0.
pub fn score(
    trust: f64,
    verdict_weight: f64,
    nominal_weight: f64,
    improvement: Option<f64>,
) -> f64 {
    let improvement_factor = improvement.map_or(1.0, |gain| gain.max(0.0));
    trust * verdict_weight * nominal_weight * improvement_factor
}

/// One round's contributions and what the aggregator made of them.
#[derive(Debug, Clone, Copy)]
pub struct RoundContributions<'a> {
    /// The contributions, one per row.
    pub updates: ArrayView2<'a, f32>,
    /// The round's reference: its robust aggregate or the root update.
    pub reference: ArrayView1<'a, f32>,
    /// Nominal (capped example count) weight of each contribution.
    pub weights: &'a [f32],
    /// The aggregator's verdict on each contribution.
    pub verdicts: &'a [Verdict],
    /// Validation-loss improvement each contribution brought, when measured
    /// (negative values count as 0).
    pub loss_improvements: Option<&'a [f64]>,
}

/// The quality of one contribution, with the numbers behind its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContributionQuality {
    /// Cosine to the reference.
    pub alignment: f64,
    /// Set when the contribution nearly duplicated another one.
    pub near_duplicate: Option<NearDuplicate>,
    /// `max(0, alignment)`, or 0 for a near-duplicate.
    pub trust: f64,
    /// The score (see [`score`]).
    pub score: f64,
}

impl RoundContributions<'_> {
    /// Scores every contribution, flagging near-duplicates with `detector`
    /// (deviations taken from the contributions' mean).
    pub fn score(
        &self,
        detector: &DuplicateDetector,
    ) -> Result<Vec<ContributionQuality>, QualityError> {
        self.validate()?;
        let alignments = alignments(self.updates, self.reference)?;
        // Deviations are taken from the plain mean of the contributions, not
        // from the reference: a reference can be one of the contributions
        // (Krum selects one), and copies of it would show no deviation.
        let Some(center) = self.updates.mean_axis(Axis(0)) else {
            return Ok(Vec::new());
        };
        let duplicates = detector.detect(self.updates, Some(center.view()))?;
        Ok((0..alignments.len())
            .map(|i| {
                let near_duplicate = duplicates[i];
                let trust_given = match near_duplicate {
                    Some(_) => 0.0,
                    None => trust(alignments[i]),
                };
                ContributionQuality {
                    alignment: alignments[i],
                    near_duplicate,
                    trust: trust_given,
                    score: score(
                        trust_given,
                        f64::from(self.verdicts[i].weight),
                        f64::from(self.weights[i]),
                        self.loss_improvements.map(|gains| gains[i]),
                    ),
                }
            })
            .collect())
    }

    /// Checks the per-contribution inputs: counts, finite non-negative
    /// weights, verdict weights in `[0, 1]`, finite improvements.
    fn validate(&self) -> Result<(), QualityError> {
        let n = self.updates.nrows();
        let count = |what, found| {
            if found == n {
                Ok(())
            } else {
                Err(QualityError::CountMismatch {
                    what,
                    expected: n,
                    found,
                })
            }
        };
        count("weights", self.weights.len())?;
        count("verdicts", self.verdicts.len())?;
        let weights = self.weights.iter().map(|&w| f64::from(w));
        first_invalid("weight", weights, "finite and >= 0", |w| w >= 0.0)?;
        let verdicts = self.verdicts.iter().map(|v| f64::from(v.weight));
        first_invalid("verdict weight", verdicts, "in [0, 1]", |w| {
            (0.0..=1.0).contains(&w)
        })?;
        if let Some(gains) = self.loss_improvements {
            count("loss improvements", gains.len())?;
            first_invalid("loss improvement", gains.iter().copied(), "finite", |_| {
                true
            })?;
        }
        Ok(())
    }
}

/// The first value that is not finite or fails `valid`, as an error.
fn first_invalid(
    what: &'static str,
    values: impl Iterator<Item = f64>,
    expected: &'static str,
    valid: impl Fn(f64) -> bool,
) -> Result<(), QualityError> {
    match values
        .enumerate()
        .find(|&(_, v)| !(v.is_finite() && valid(v)))
    {
        Some((input, value)) => Err(QualityError::InvalidValue {
            what,
            input,
            value,
            expected,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use ndarray::{Array1, Array2, array};

    use super::*;
    use crate::Reason;

    #[test]
    fn leave_one_out_alignment_ignores_the_input_itself() {
        use crate::{Aggregator, RoundContext, Rule};
        // Four inputs agree on +x; the fifth points along -x and +y. Under
        // FedAvg its own share pulls the full mean towards it; without it the
        // others' mean is exactly +x.
        let updates = ndarray::array![
            [1.0f32, 0.0],
            [1.0, 0.1],
            [1.0, -0.1],
            [1.0, 0.0],
            [-1.0, 4.0],
        ];
        let weights = [1.0f32; 5];
        let fedavg = Aggregator::new(Rule::FedAvg, None).unwrap();
        let context = RoundContext::default();
        let alone =
            leave_one_out_alignment(&fedavg, updates.view(), &weights, &context, 4).unwrap();
        let expected = -1.0 / 17f64.sqrt();
        assert!((alone - expected).abs() < 1e-6, "{alone} vs {expected}");
        let full = fedavg
            .aggregate(updates.view(), &weights, &context)
            .unwrap();
        let with_itself = cosine(updates.row(4), full.update.view());
        assert!(with_itself > alone, "its own share raises its alignment");
        // Too few others for the rule: the rule's error comes back.
        let krum = Aggregator::new(Rule::Krum { f: 1 }, None).unwrap();
        assert!(matches!(
            leave_one_out_alignment(&krum, updates.view(), &weights, &context, 0),
            Err(AggregationError::TooFewInputs { .. })
        ));
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn cosine_by_hand_and_of_zero_vectors() {
        let (a, b) = (array![1.0f32, 0.0], array![1.0f32, 1.0]);
        assert!(close(cosine(a.view(), b.view()), 0.5f64.sqrt()));
        assert!(close(cosine(a.view(), (-&a).view()), -1.0));
        assert_eq!(cosine(a.view(), array![0.0f32, 0.0].view()), 0.0);
        assert!(cosine(a.view(), array![f32::NAN, 0.0].view()).is_nan());
    }

    #[test]
    fn alignments_and_trust() {
        let updates = array![[2.0f32, 0.0], [0.0, 3.0], [-1.0, 0.0], [0.0, 0.0]];
        let cosines = alignments(updates.view(), array![1.0f32, 0.0].view()).unwrap();
        assert_eq!(cosines, vec![1.0, 0.0, -1.0, 0.0]);
        assert_eq!(
            cosines.iter().map(|&c| trust(c)).collect::<Vec<_>>(),
            vec![1.0, 0.0, 0.0, 0.0]
        );
    }

    #[test]
    fn alignments_refuse_bad_inputs() {
        let updates = array![[1.0f32, 0.0], [f32::INFINITY, 0.0]];
        assert_eq!(
            alignments(updates.view(), array![1.0f32, 0.0].view()),
            Err(QualityError::NonFinite { input: 1 })
        );
        assert_eq!(
            alignments(updates.view(), array![1.0f32].view()),
            Err(QualityError::DimensionMismatch {
                expected: 2,
                found: 1
            })
        );
        assert_eq!(
            alignments(updates.view(), array![f32::NAN, 0.0].view()),
            Err(QualityError::NonFiniteReference)
        );
    }

    /// `n` honest-looking updates around a common direction plus per-client
    /// noise, deterministic.
    fn honest_updates(n: usize, d: usize, noise: f32) -> Array2<f32> {
        Array2::from_shape_fn((n, d), |(i, j)| {
            // A cheap hash as noise: no RNG needed for a fixed pattern.
            let h = ((i * 7919 + j * 104_729) % 1000) as f32 / 1000.0 - 0.5;
            1.0 + noise * h
        })
    }

    #[test]
    fn copies_are_flagged_honest_clients_are_not() {
        let d = 3000; // spans several Gram blocks
        let mut updates = honest_updates(6, d, 0.2);
        let copied = updates.row(1).to_owned();
        updates.row_mut(4).assign(&copied);
        let mut near_copy = updates.row(2).to_owned();
        near_copy[0] += 1e-3;
        updates.row_mut(5).assign(&near_copy);
        let reference = Array1::from_elem(d, 1.0f32);
        let detector = DuplicateDetector::default();

        let flagged = detector
            .detect(updates.view(), Some(reference.view()))
            .unwrap();
        let partners: Vec<Option<usize>> = flagged.iter().map(|f| f.map(|p| p.partner)).collect();
        assert_eq!(
            partners,
            vec![None, Some(4), Some(5), None, Some(1), Some(2)]
        );
        assert!(close(flagged[1].unwrap().cosine, 1.0));

        // Raw cosines of these updates are all close to 1 (a common
        // direction); only the centered comparison tells copies apart.
        let raw = detector.detect(updates.view(), None).unwrap();
        assert!(raw.iter().all(Option::is_some));
    }

    #[test]
    fn gram_is_deterministic_and_matches_direct_products() {
        let updates = honest_updates(5, 40_000, 0.5);
        let center = Array1::from_shape_fn(40_000, |j| (j % 3) as f32);
        let gram = deviation_gram(updates.view(), Some(center.view()));
        let one_thread = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let sequential = one_thread.install(|| deviation_gram(updates.view(), Some(center.view())));
        assert_eq!(gram, sequential);
        let deviation = |a: usize| updates.row(a).mapv(f64::from) - center.mapv(f64::from);
        for a in 0..5 {
            for b in a..5 {
                let direct = deviation(a).dot(&deviation(b));
                assert!((gram[a * 5 + b] - direct).abs() <= 1e-9 * direct.abs());
            }
        }
    }

    #[test]
    fn detector_edge_cases() {
        assert!(DuplicateDetector::new(0.0).is_err());
        assert!(DuplicateDetector::new(f64::NAN).is_err());
        assert_eq!(DuplicateDetector::new(1.0).unwrap().threshold(), 1.0);
        let detector = DuplicateDetector::default();
        // One contribution has no partner; zero vectors match nothing.
        let single = array![[1.0f32, 2.0]];
        assert_eq!(detector.detect(single.view(), None).unwrap(), vec![None]);
        let zeros = Array2::<f32>::zeros((3, 4));
        assert_eq!(detector.detect(zeros.view(), None).unwrap(), vec![None; 3]);
        let bad = array![[1.0f32, 2.0], [f32::NAN, 0.0]];
        assert_eq!(
            detector.detect(bad.view(), None),
            Err(QualityError::NonFinite { input: 1 })
        );
    }

    fn verdict(weight: f32) -> Verdict {
        Verdict {
            weight,
            reason: Reason::Trimmed {
                fraction: 1.0 - weight,
            },
        }
    }

    #[test]
    fn scores_combine_trust_verdict_weight_and_improvement() {
        assert_eq!(score(0.5, 1.0, 10.0, None), 5.0);
        assert_eq!(score(0.5, 0.5, 10.0, Some(2.0)), 5.0);
        assert_eq!(score(0.5, 1.0, 10.0, Some(-1.0)), 0.0);
        assert_eq!(score(0.9, 0.0, 10.0, None), 0.0);

        let updates = array![
            [1.0f32, 0.1],
            [0.1, 1.0],
            [-1.0, 0.0],
            [0.5, 0.8],
            [0.5, 0.8]
        ];
        let reference = array![1.0f32, 1.0];
        let weights = [2.0f32, 1.0, 1.0, 1.0, 1.0];
        let verdicts = [
            verdict(1.0),
            verdict(0.5),
            verdict(0.0),
            verdict(1.0),
            verdict(1.0),
        ];
        let round = RoundContributions {
            updates: updates.view(),
            reference: reference.view(),
            weights: &weights,
            verdicts: &verdicts,
            loss_improvements: None,
        };
        let quality = round.score(&DuplicateDetector::default()).unwrap();
        let cos = 1.1 / (1.01f64.sqrt() * 2.0f64.sqrt());
        assert!((quality[0].alignment - cos).abs() < 1e-6 && quality[0].near_duplicate.is_none());
        assert!((quality[0].score - 2.0 * cos).abs() < 1e-6);
        assert!((quality[1].score - 0.5 * cos).abs() < 1e-6);
        assert_eq!((quality[2].trust, quality[2].score), (0.0, 0.0));
        // Rows 3 and 4 are copies: trust 0 despite a good alignment.
        for q in &quality[3..] {
            assert!(q.alignment > 0.9 && q.near_duplicate.is_some());
            assert_eq!((q.trust, q.score), (0.0, 0.0));
        }

        let gains = [0.5, -0.2, 1.0, 1.0, 1.0];
        let with_gains = RoundContributions {
            loss_improvements: Some(&gains),
            ..round
        };
        let quality = with_gains.score(&DuplicateDetector::default()).unwrap();
        assert!((quality[0].score - cos).abs() < 1e-6);
        assert_eq!(quality[1].score, 0.0);
    }

    #[test]
    fn scoring_refuses_bad_inputs() {
        let updates = array![[1.0f32, 0.0], [0.0, 1.0]];
        let reference = array![1.0f32, 1.0];
        let round = RoundContributions {
            updates: updates.view(),
            reference: reference.view(),
            weights: &[1.0, 1.0],
            verdicts: &[Verdict::KEPT, Verdict::KEPT],
            loss_improvements: None,
        };
        let detector = DuplicateDetector::default();
        assert!(round.score(&detector).is_ok());
        let short = RoundContributions {
            verdicts: &[Verdict::KEPT],
            ..round
        };
        assert_eq!(
            short.score(&detector),
            Err(QualityError::CountMismatch {
                what: "verdicts",
                expected: 2,
                found: 1
            })
        );
        let negative = RoundContributions {
            weights: &[1.0, -1.0],
            ..round
        };
        assert!(matches!(
            negative.score(&detector),
            Err(QualityError::InvalidValue {
                what: "weight",
                input: 1,
                ..
            })
        ));
        let overweight = [Verdict::KEPT, verdict(1.5)];
        let overweight = RoundContributions {
            verdicts: &overweight,
            ..round
        };
        assert!(overweight.score(&detector).is_err());
        let nan_gain = RoundContributions {
            loss_improvements: Some(&[0.1, f64::NAN]),
            ..round
        };
        assert!(nan_gain.score(&detector).is_err());
    }
}
