//! The aggregation rules behind one interface, with a verdict per input.
//!
//! Every rule takes `n` updates of dimension `d` (the rows of an
//! `ArrayView2`), their nominal weights (capped example counts) and the
//! round's context, and returns the aggregate plus one [`Verdict`] per input:
//! whether the rule counted it, with what share of its nominal weight, and why.
//! Rewards and slashing are computed from these verdicts, so a rule that
//! down-weights or rejects an input must say so.

use std::fmt;

use ndarray::{Array1, ArrayView1, ArrayView2};

use crate::AggregationError;
use crate::rules;

/// The robust aggregation rules (DESIGN section 5).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    /// Weighted mean of all inputs.
    FedAvg,
    /// Coordinate-wise median (unweighted).
    Median,
    /// Coordinate-wise mean after dropping the `trim_fraction` smallest and
    /// largest values of each coordinate (unweighted).
    TrimmedMean {
        /// Fraction trimmed at each end, in `[0, 0.5)`.
        trim_fraction: f32,
    },
    /// Krum (Blanchard et al. 2017): the input closest to its `n - f - 2`
    /// nearest neighbours.
    Krum {
        /// Assumed number of Byzantine inputs; needs `n > 2f + 2`.
        f: usize,
    },
    /// Multi-Krum: weighted mean of the `m` inputs with the best Krum scores.
    MultiKrum {
        /// Assumed number of Byzantine inputs; needs `n > 2f + 2`.
        f: usize,
        /// Number of inputs averaged, `1 <= m <= n - f`.
        m: usize,
    },
    /// Bulyan (El Mhamdi et al. 2018): `n - 2f` inputs selected by repeated
    /// Krum, then a coordinate-wise trimmed mean around the median of those.
    /// Needs `n >= 4f + 3`.
    Bulyan {
        /// Assumed number of Byzantine inputs.
        f: usize,
    },
    /// Geometric median by smoothed Weiszfeld iterations (RFA, Pillutla et al.).
    GeometricMedian {
        /// Iteration cap, >= 1.
        max_iters: usize,
        /// Stop when the objective improves by less than this (relative), > 0.
        tolerance: f32,
        /// Smoothing `nu` that keeps weights finite near an input, > 0.
        smoothing: f32,
    },
    /// Centered clipping (Karimireddy et al. 2021, "Learning from History"):
    /// start from the previous round's aggregate and repeatedly add the mean
    /// of the inputs' differences to it, each clipped to `radius`.
    CenteredClipping {
        /// Clipping radius tau, > 0.
        radius: f32,
        /// Iterations, >= 1.
        iterations: usize,
    },
    /// Clip every input to L2 norm `bound`, then the weighted mean.
    NormBounding {
        /// L2 bound, > 0.
        bound: f32,
    },
    /// FLTrust (Cao et al. 2021): trust = ReLU(cosine to the root update),
    /// inputs rescaled to the root update's norm, trust-weighted mean.
    FlTrust,
}

impl Rule {
    /// The rule's name as task specs and reports write it.
    pub fn name(&self) -> &'static str {
        match self {
            Rule::FedAvg => "fedavg",
            Rule::Median => "median",
            Rule::TrimmedMean { .. } => "trimmed-mean",
            Rule::Krum { .. } => "krum",
            Rule::MultiKrum { .. } => "multi-krum",
            Rule::Bulyan { .. } => "bulyan",
            Rule::GeometricMedian { .. } => "geometric-median",
            Rule::CenteredClipping { .. } => "centered-clipping",
            Rule::NormBounding { .. } => "norm-bounding",
            Rule::FlTrust => "fltrust",
        }
    }
}

/// A rule, optionally applied to bucket means (Karimireddy et al. 2022):
/// inputs are shuffled into buckets of `bucket_size`, each bucket averaged,
/// and the rule runs on the bucket means; an input's verdict is its bucket's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aggregator {
    rule: Rule,
    bucket_size: Option<usize>,
}

/// Per-round information some rules need beyond the updates.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundContext<'a> {
    /// The sponsor's root update on clean data (FLTrust).
    pub root_update: Option<ArrayView1<'a, f32>>,
    /// The previous round's aggregate, the starting point of centered clipping
    /// (zeros when absent).
    pub previous_aggregate: Option<ArrayView1<'a, f32>>,
    /// Seed of any randomness of the round (bucketing's shuffle).
    pub seed: u64,
}

/// The result of an aggregation.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// The aggregate update, dimension `d`.
    pub update: Array1<f32>,
    /// One verdict per input, in input order.
    pub verdicts: Vec<Verdict>,
}

/// What a rule did with one input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// Share of the input's nominal weight that reached the aggregate, in
    /// `[0, 1]`: 1 = counted fully, 0 = rejected.
    pub weight: f32,
    /// Why.
    pub reason: Reason,
}

impl Verdict {
    /// Counted fully.
    pub const KEPT: Verdict = Verdict {
        weight: 1.0,
        reason: Reason::Kept,
    };

    /// True when the rule rejected the input (nothing of it reached the aggregate).
    pub fn is_rejected(&self) -> bool {
        self.weight == 0.0
    }

    /// True when the rule rejected the input *as an outlier*: trimmed in far
    /// more coordinates than an honest input is expected to be (the
    /// coordinate-wise rules' test, see `rules::coordinate`). This is the
    /// rejection slashing evidence rests on. Being left out of a selection
    /// that keeps few inputs (Krum and its relatives flag `f` inputs every
    /// round, attack or not), or having no trust in FLTrust (whose root data
    /// may simply differ from a client's non-IID data), is not.
    pub fn is_outlier(&self) -> bool {
        self.is_rejected() && matches!(self.reason, Reason::Trimmed { .. })
    }
}

/// Why a rule counted, down-weighted or rejected an input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reason {
    /// Counted with its nominal weight.
    Kept,
    /// Scaled down because its norm (or its distance to the center) exceeded
    /// a bound.
    Clipped {
        /// The norm or distance before clipping.
        norm: f32,
        /// The bound.
        bound: f32,
    },
    /// Coordinate-wise rules: the input was trimmed (or, for the median,
    /// outside the central half) in this fraction of coordinates.
    Trimmed {
        /// Fraction of coordinates where the input was discarded; a value
        /// tied with others at the cut counts for its share of it.
        fraction: f32,
    },
    /// Krum-style selection did not pick it (which says nothing bad about
    /// it: Krum keeps one input of many, and its `f` worst are `f` inputs
    /// whether or not anyone attacks).
    NotSelected {
        /// Its selection score (Krum: sum of squared distances to its
        /// nearest neighbours; larger is worse).
        score: f32,
    },
    /// FLTrust: cosine to the root update.
    Trust {
        /// The cosine; trust is `max(0, cosine)`.
        cosine: f32,
    },
    /// Geometric median: the input's Weiszfeld weight at the final estimate
    /// relative to the largest one (1 for the input closest to the median).
    Reweighted {
        /// Relative weight, in `(0, 1]`.
        factor: f32,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Kept => write!(f, "kept"),
            Reason::Clipped { norm, bound } => write!(f, "clipped: norm {norm:.4} > {bound:.4}"),
            Reason::Trimmed { fraction } => {
                write!(f, "trimmed in {:.1}% of coordinates", fraction * 100.0)
            }
            Reason::NotSelected { score } => write!(f, "not selected (score {score:.4})"),
            Reason::Trust { cosine } => write!(f, "cosine to root update {cosine:.4}"),
            Reason::Reweighted { factor } => write!(f, "reweighted x{factor:.3}"),
        }
    }
}

impl Aggregator {
    /// An aggregator, checking the parameters that do not depend on the
    /// number of inputs.
    pub fn new(rule: Rule, bucket_size: Option<usize>) -> Result<Self, AggregationError> {
        rules::validate(&rule)?;
        if bucket_size == Some(0) {
            return Err(AggregationError::InvalidParameter {
                rule: "bucketing",
                reason: "bucket size must be at least 1".into(),
            });
        }
        Ok(Self { rule, bucket_size })
    }

    /// The rule.
    pub fn rule(&self) -> &Rule {
        &self.rule
    }

    /// The bucket size, if bucketing.
    pub fn bucket_size(&self) -> Option<usize> {
        self.bucket_size
    }

    /// Aggregates the rows of `updates` with nominal `weights`.
    ///
    /// Fails, leaving nothing half-done, on an empty input, mismatched or
    /// invalid weights, NaN/infinite values, a context vector of the wrong
    /// length, or too few inputs for the rule's parameters.
    pub fn aggregate(
        &self,
        updates: ArrayView2<f32>,
        weights: &[f32],
        context: &RoundContext,
    ) -> Result<Aggregate, AggregationError> {
        let bucketed = self.bucket_size.is_some_and(|size| size > 1);
        // FedAvg checks values while combining them and the coordinate-wise
        // rules while copying them, which saves a whole pass over the input.
        let checks_own_values = !bucketed
            && matches!(
                self.rule,
                Rule::FedAvg | Rule::Median | Rule::TrimmedMean { .. }
            );
        rules::check_inputs(updates, weights, context, !checks_own_values)?;
        match self.bucket_size {
            Some(size) if size > 1 => {
                rules::bucketing::aggregate(&self.rule, size, updates, weights, context)
            }
            _ => rules::aggregate(&self.rule, updates, weights, context),
        }
    }
}

impl fmt::Display for Aggregator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rule {
            Rule::TrimmedMean { trim_fraction } => write!(f, "trimmed-mean({trim_fraction})")?,
            Rule::Krum { f: byz } => write!(f, "krum(f={byz})")?,
            Rule::MultiKrum { f: byz, m } => write!(f, "multi-krum(f={byz},m={m})")?,
            Rule::Bulyan { f: byz } => write!(f, "bulyan(f={byz})")?,
            Rule::CenteredClipping { radius, iterations } => {
                write!(f, "centered-clipping(tau={radius},l={iterations})")?
            }
            Rule::NormBounding { bound } => write!(f, "norm-bounding({bound})")?,
            ref rule => write!(f, "{}", rule.name())?,
        }
        match self.bucket_size {
            Some(size) if size > 1 => write!(f, "+bucketing({size})"),
            _ => Ok(()),
        }
    }
}
