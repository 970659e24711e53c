//! The `[aggregation]` section: the robust aggregation rule with its parameters, and optional
//! bucketing.
//!
//! In TOML the rule and its parameters share one flat table:
//!
//! ```toml
//! [aggregation]
//! rule = "multi-krum"
//! f = 1
//! m = 4
//! bucketing = { size = 2 }
//! ```
//!
//! Serde cannot combine a tagged enum flattened into a struct with `deny_unknown_fields`, so the
//! table goes through a private all-optional [`RawAggregation`] and a checked conversion: a
//! parameter of another rule (`trim_fraction` under `krum`) is an error like an unknown key, and
//! a missing required parameter is an error too.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Robust aggregation settings (`[aggregation]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawAggregation", into = "RawAggregation")]
pub struct AggregationSpec {
    /// The aggregation rule and its parameters.
    pub rule: AggregationRule,
    /// Optional bucketing wrapper: inputs are shuffled into buckets whose means the rule
    /// aggregates.
    pub bucketing: Option<Bucketing>,
}

/// A robust aggregation rule (DESIGN section 5), selected by `rule = "<name>"`.
///
/// `n` below is the number of inputs the rule receives: client updates in plain mode, group
/// means under secure aggregation, bucket means with bucketing. Validation uses the smallest `n`
/// a round can produce.
#[derive(Debug, Clone, PartialEq)]
pub enum AggregationRule {
    /// `fedavg`: weighted mean.
    FedAvg,
    /// `median`: coordinate-wise median.
    Median,
    /// `trimmed-mean`: coordinate-wise mean after dropping the `floor(trim_fraction * n)`
    /// smallest and largest values.
    TrimmedMean {
        /// Fraction trimmed from each end, in `[0, 0.5)`.
        trim_fraction: f64,
    },
    /// `krum`: the input closest to its `n - f - 2` nearest neighbours. Needs `n > 2f + 2`.
    Krum {
        /// Number of Byzantine inputs tolerated.
        f: u32,
    },
    /// `multi-krum`: mean of the `m` best inputs by Krum score. Needs `n > 2f + 2` and
    /// `1 <= m <= n - f`.
    MultiKrum {
        /// Number of Byzantine inputs tolerated.
        f: u32,
        /// Number of inputs averaged.
        m: u32,
    },
    /// `bulyan`: Multi-Krum selection followed by a coordinate-wise trimmed mean. Needs
    /// `n >= 4f + 3`.
    Bulyan {
        /// Number of Byzantine inputs tolerated.
        f: u32,
    },
    /// `geometric-median`: smoothed Weiszfeld iterations (RFA).
    GeometricMedian {
        /// Iteration cap, at least 1; default 100.
        max_iters: u32,
        /// Stop when the estimate moves less than this (L2), finite and positive; default 1e-6.
        tolerance: f64,
        /// Smoothing `nu` against division by zero near an input, finite and `>= 0`;
        /// default 1e-6.
        smoothing: f64,
    },
    /// `centered-clipping`: repeatedly move the estimate by the mean of the inputs' differences
    /// to it, each difference clipped to L2 norm `radius` (Karimireddy et al.).
    CenteredClipping {
        /// Clipping radius, finite and positive.
        radius: f64,
        /// Iterations, at least 1; default 1.
        iterations: u32,
    },
    /// `norm-bounding`: scale every input down to L2 norm at most `bound`, then average.
    NormBounding {
        /// L2 bound, finite and positive.
        bound: f64,
    },
    /// `fltrust`: weight inputs by their ReLU'd cosine similarity to the sponsor's root update
    /// (computed on its clean data), after scaling them to the root update's norm. The sponsor
    /// must provide a root update each round.
    FlTrust,
}

impl AggregationRule {
    /// The rule's name as written in `rule = "..."`.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    fn kind(&self) -> RuleKind {
        match self {
            AggregationRule::FedAvg => RuleKind::Fedavg,
            AggregationRule::Median => RuleKind::Median,
            AggregationRule::TrimmedMean { .. } => RuleKind::TrimmedMean,
            AggregationRule::Krum { .. } => RuleKind::Krum,
            AggregationRule::MultiKrum { .. } => RuleKind::MultiKrum,
            AggregationRule::Bulyan { .. } => RuleKind::Bulyan,
            AggregationRule::GeometricMedian { .. } => RuleKind::GeometricMedian,
            AggregationRule::CenteredClipping { .. } => RuleKind::CenteredClipping,
            AggregationRule::NormBounding { .. } => RuleKind::NormBounding,
            AggregationRule::FlTrust => RuleKind::Fltrust,
        }
    }
}

impl fmt::Display for AggregationRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Bucketing (Karimireddy et al.): each round the rule's inputs are shuffled into buckets of
/// `size` and the rule aggregates the bucket means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bucketing {
    /// Inputs per bucket, `1 <= size <= n`.
    pub size: u32,
}

impl Bucketing {
    /// Buckets formed from `inputs` inputs: `ceil(inputs / size)` (the last may be smaller).
    pub fn bucket_count(&self, inputs: u32) -> u32 {
        inputs.div_ceil(self.size.max(1))
    }
}

/// Default `geometric-median.max_iters`.
const DEFAULT_GM_MAX_ITERS: u32 = 100;
/// Default `geometric-median.tolerance`.
const DEFAULT_GM_TOLERANCE: f64 = 1e-6;
/// Default `geometric-median.smoothing`.
const DEFAULT_GM_SMOOTHING: f64 = 1e-6;
/// Default `centered-clipping.iterations`.
const DEFAULT_CC_ITERATIONS: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum RuleKind {
    Fedavg,
    Median,
    TrimmedMean,
    Krum,
    MultiKrum,
    Bulyan,
    GeometricMedian,
    CenteredClipping,
    NormBounding,
    Fltrust,
}

impl RuleKind {
    fn name(self) -> &'static str {
        match self {
            RuleKind::Fedavg => "fedavg",
            RuleKind::Median => "median",
            RuleKind::TrimmedMean => "trimmed-mean",
            RuleKind::Krum => "krum",
            RuleKind::MultiKrum => "multi-krum",
            RuleKind::Bulyan => "bulyan",
            RuleKind::GeometricMedian => "geometric-median",
            RuleKind::CenteredClipping => "centered-clipping",
            RuleKind::NormBounding => "norm-bounding",
            RuleKind::Fltrust => "fltrust",
        }
    }

    /// The parameter keys this rule accepts.
    fn parameters(self) -> &'static [&'static str] {
        match self {
            RuleKind::Fedavg | RuleKind::Median | RuleKind::Fltrust => &[],
            RuleKind::TrimmedMean => &["trim_fraction"],
            RuleKind::Krum | RuleKind::Bulyan => &["f"],
            RuleKind::MultiKrum => &["f", "m"],
            RuleKind::GeometricMedian => &["max_iters", "tolerance", "smoothing"],
            RuleKind::CenteredClipping => &["radius", "iterations"],
            RuleKind::NormBounding => &["bound"],
        }
    }
}

/// The flat TOML form of [`AggregationSpec`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAggregation {
    rule: RuleKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trim_fraction: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    f: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    m: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_iters: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tolerance: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    smoothing: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    radius: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iterations: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bound: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bucketing: Option<Bucketing>,
}

impl TryFrom<RawAggregation> for AggregationSpec {
    type Error = String;

    fn try_from(raw: RawAggregation) -> Result<Self, String> {
        let kind = raw.rule;
        let given = [
            ("trim_fraction", raw.trim_fraction.is_some()),
            ("f", raw.f.is_some()),
            ("m", raw.m.is_some()),
            ("max_iters", raw.max_iters.is_some()),
            ("tolerance", raw.tolerance.is_some()),
            ("smoothing", raw.smoothing.is_some()),
            ("radius", raw.radius.is_some()),
            ("iterations", raw.iterations.is_some()),
            ("bound", raw.bound.is_some()),
        ];
        let accepted = kind.parameters();
        if let Some((key, _)) = given
            .iter()
            .find(|(key, is_given)| *is_given && !accepted.contains(key))
        {
            let takes = if accepted.is_empty() {
                "takes no parameters".to_owned()
            } else {
                format!("takes {}", accepted.join(", "))
            };
            return Err(format!(
                "aggregation.{key} is not a parameter of rule \"{}\" (it {takes})",
                kind.name()
            ));
        }
        fn required<T>(value: Option<T>, kind: RuleKind, key: &str) -> Result<T, String> {
            value.ok_or_else(|| format!("rule \"{}\" needs aggregation.{key}", kind.name()))
        }
        let rule = match kind {
            RuleKind::Fedavg => AggregationRule::FedAvg,
            RuleKind::Median => AggregationRule::Median,
            RuleKind::TrimmedMean => AggregationRule::TrimmedMean {
                trim_fraction: required(raw.trim_fraction, kind, "trim_fraction")?,
            },
            RuleKind::Krum => AggregationRule::Krum {
                f: required(raw.f, kind, "f")?,
            },
            RuleKind::MultiKrum => AggregationRule::MultiKrum {
                f: required(raw.f, kind, "f")?,
                m: required(raw.m, kind, "m")?,
            },
            RuleKind::Bulyan => AggregationRule::Bulyan {
                f: required(raw.f, kind, "f")?,
            },
            RuleKind::GeometricMedian => AggregationRule::GeometricMedian {
                max_iters: raw.max_iters.unwrap_or(DEFAULT_GM_MAX_ITERS),
                tolerance: raw.tolerance.unwrap_or(DEFAULT_GM_TOLERANCE),
                smoothing: raw.smoothing.unwrap_or(DEFAULT_GM_SMOOTHING),
            },
            RuleKind::CenteredClipping => AggregationRule::CenteredClipping {
                radius: required(raw.radius, kind, "radius")?,
                iterations: raw.iterations.unwrap_or(DEFAULT_CC_ITERATIONS),
            },
            RuleKind::NormBounding => AggregationRule::NormBounding {
                bound: required(raw.bound, kind, "bound")?,
            },
            RuleKind::Fltrust => AggregationRule::FlTrust,
        };
        Ok(AggregationSpec {
            rule,
            bucketing: raw.bucketing,
        })
    }
}

impl From<AggregationSpec> for RawAggregation {
    fn from(spec: AggregationSpec) -> Self {
        let mut raw = RawAggregation {
            rule: spec.rule.kind(),
            trim_fraction: None,
            f: None,
            m: None,
            max_iters: None,
            tolerance: None,
            smoothing: None,
            radius: None,
            iterations: None,
            bound: None,
            bucketing: spec.bucketing,
        };
        match spec.rule {
            AggregationRule::FedAvg | AggregationRule::Median | AggregationRule::FlTrust => {}
            AggregationRule::TrimmedMean { trim_fraction } => {
                raw.trim_fraction = Some(trim_fraction);
            }
            AggregationRule::Krum { f } | AggregationRule::Bulyan { f } => raw.f = Some(f),
            AggregationRule::MultiKrum { f, m } => {
                raw.f = Some(f);
                raw.m = Some(m);
            }
            AggregationRule::GeometricMedian {
                max_iters,
                tolerance,
                smoothing,
            } => {
                raw.max_iters = Some(max_iters);
                raw.tolerance = Some(tolerance);
                raw.smoothing = Some(smoothing);
            }
            AggregationRule::CenteredClipping { radius, iterations } => {
                raw.radius = Some(radius);
                raw.iterations = Some(iterations);
            }
            AggregationRule::NormBounding { bound } => raw.bound = Some(bound),
        }
        raw
    }
}
