//! The task spec's `[aggregation]` section, owned by the crate that runs it:
//! the rule with its parameters and optional bucketing, their checks against
//! the number of inputs a round can give the rule ([`AggregationSpec::check`],
//! which the task spec's validation calls), and the [`Aggregator`] built from
//! it. Adding a rule touches this crate only.
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

use crate::{AggregationError, Aggregator, Rule};

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

/// A parameter of `[aggregation]` that no round of the task could run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidParameter {
    /// The dotted field, e.g. `aggregation.f`.
    pub field: &'static str,
    /// Why, in words that name the limit.
    pub reason: String,
}

impl AggregationSpec {
    /// Checks the parameters against the fewest inputs a round can give the
    /// rule: `n`, described by `inputs` (e.g. "5 client updates
    /// (cohort.min)") for the message.
    pub fn check(&self, n: u32, inputs: &str) -> Result<(), InvalidParameter> {
        let invalid = |field: &'static str, reason: String| Err(InvalidParameter { field, reason });
        let (mut n, mut inputs) = (n, inputs.to_owned());
        if let Some(bucketing) = self.bucketing {
            let size = bucketing.size;
            if size < 1 || size > n {
                return invalid(
                    "aggregation.bucketing.size",
                    format!("{size} is outside 1..={n}: the aggregator may receive only {inputs}"),
                );
            }
            n = bucketing.bucket_count(n);
            inputs = format!("{n} bucket means of {inputs}");
        }
        let n64 = u64::from(n);
        let krum = |f: u32, rule: &str| {
            let needed = 2 * u64::from(f) + 2;
            if n64 > needed {
                Ok(())
            } else {
                invalid(
                    "aggregation.f",
                    format!(
                        "{rule} with f = {f} needs n > 2f + 2 = {needed} inputs, but the \
                         aggregator may receive only {inputs}"
                    ),
                )
            }
        };
        let positive = |field: &'static str, value: f64| {
            if value.is_finite() && value > 0.0 {
                Ok(())
            } else {
                invalid(field, format!("{value} must be a finite number above 0"))
            }
        };
        match self.rule {
            AggregationRule::FedAvg | AggregationRule::Median | AggregationRule::FlTrust => Ok(()),
            AggregationRule::TrimmedMean { trim_fraction } => {
                if (0.0..0.5).contains(&trim_fraction) {
                    Ok(())
                } else {
                    invalid(
                        "aggregation.trim_fraction",
                        format!("{trim_fraction} must be at least 0 and below 0.5"),
                    )
                }
            }
            AggregationRule::Krum { f } => krum(f, "krum"),
            AggregationRule::MultiKrum { f, m } => {
                krum(f, "multi-krum")?;
                let most = n64 - u64::from(f);
                if m >= 1 && u64::from(m) <= most {
                    Ok(())
                } else {
                    invalid(
                        "aggregation.m",
                        format!(
                            "{m} is outside 1..=n - f = {most}: the aggregator may receive only \
                             {inputs}"
                        ),
                    )
                }
            }
            AggregationRule::Bulyan { f } => {
                let needed = 4 * u64::from(f) + 3;
                if n64 >= needed {
                    Ok(())
                } else {
                    invalid(
                        "aggregation.f",
                        format!(
                            "bulyan with f = {f} needs n >= 4f + 3 = {needed} inputs, but the \
                             aggregator may receive only {inputs}"
                        ),
                    )
                }
            }
            AggregationRule::GeometricMedian {
                max_iters,
                tolerance,
                smoothing,
            } => {
                if max_iters < 1 {
                    return invalid("aggregation.max_iters", "must be at least 1".into());
                }
                positive("aggregation.tolerance", tolerance)?;
                // Weiszfeld's weights are 1 / max(distance, smoothing): 0
                // would divide by zero at an input.
                positive("aggregation.smoothing", smoothing)
            }
            AggregationRule::CenteredClipping { radius, iterations } => {
                positive("aggregation.radius", radius)?;
                if iterations >= 1 {
                    Ok(())
                } else {
                    invalid("aggregation.iterations", "must be at least 1".into())
                }
            }
            AggregationRule::NormBounding { bound } => positive("aggregation.bound", bound),
        }
    }
}

/// The spec's rule and bucketing, with its f64 parameters narrowed to the
/// rules' f32 and its counts widened to `usize`. Parameters are checked as by
/// [`Aggregator::new`]; a value that only becomes invalid in f32 (a trim
/// fraction that rounds to 0.5, say) is reported like any invalid parameter.
impl TryFrom<&AggregationSpec> for Aggregator {
    type Error = AggregationError;

    fn try_from(spec: &AggregationSpec) -> Result<Self, AggregationError> {
        let rule = match spec.rule {
            AggregationRule::FedAvg => Rule::FedAvg,
            AggregationRule::Median => Rule::Median,
            AggregationRule::TrimmedMean { trim_fraction } => Rule::TrimmedMean {
                trim_fraction: trim_fraction as f32,
            },
            AggregationRule::Krum { f } => Rule::Krum { f: f as usize },
            AggregationRule::MultiKrum { f, m } => Rule::MultiKrum {
                f: f as usize,
                m: m as usize,
            },
            AggregationRule::Bulyan { f } => Rule::Bulyan { f: f as usize },
            AggregationRule::GeometricMedian {
                max_iters,
                tolerance,
                smoothing,
            } => Rule::GeometricMedian {
                max_iters: max_iters as usize,
                tolerance: tolerance as f32,
                smoothing: smoothing as f32,
            },
            AggregationRule::CenteredClipping { radius, iterations } => Rule::CenteredClipping {
                radius: radius as f32,
                iterations: iterations as usize,
            },
            AggregationRule::NormBounding { bound } => Rule::NormBounding {
                bound: bound as f32,
            },
            AggregationRule::FlTrust => Rule::FlTrust,
        };
        Aggregator::new(rule, spec.bucketing.map(|b| b.size as usize))
    }
}
