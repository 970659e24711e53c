//! The sections of a task spec other than aggregation and networking.
//!
//! Variants that carry no parameters are written as empty struct variants (`Plain {}`) rather
//! than unit variants: serde ignores extra keys next to the tag of a unit variant, and an empty
//! struct variant lets `deny_unknown_fields` reject them (`mode = "plain"` with a stray
//! `group_size = 4` is an error, not a silently plain task).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::amount::u128_amount;

/// Model architecture (`[model]`, tagged by `kind`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ModelSpec {
    /// Multinomial logistic regression: one linear layer `features -> classes`, softmax.
    Logreg {},
    /// Multi-layer perceptron `features -> hidden[0] -> ... -> classes`, ReLU between layers.
    Mlp {
        /// Hidden layer widths, at least one layer, each at least 1.
        hidden: Vec<u32>,
    },
    /// A TorchScript module (needs the client's `torch` feature).
    Torchscript {
        /// Path of the TorchScript file, relative to the task file's directory.
        path: String,
        /// Optional SHA-256 of the file (64 hex digits), so that the spec hash pins the
        /// architecture too.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
    },
}

impl ModelSpec {
    /// The `kind` tag as written in TOML.
    pub fn kind(&self) -> &'static str {
        match self {
            ModelSpec::Logreg {} => "logreg",
            ModelSpec::Mlp { .. } => "mlp",
            ModelSpec::Torchscript { .. } => "torchscript",
        }
    }

    /// Number of parameters (weights and biases) for `features` inputs and `classes` outputs;
    /// `None` for TorchScript (only the file knows) or if the count overflows `u64`.
    pub fn parameter_count(&self, features: u32, classes: u32) -> Option<u64> {
        let layer = |inputs: u32, outputs: u32| {
            u64::from(inputs)
                .checked_mul(u64::from(outputs))?
                .checked_add(u64::from(outputs))
        };
        match self {
            ModelSpec::Logreg {} => layer(features, classes),
            ModelSpec::Mlp { hidden } => {
                let mut total: u64 = 0;
                let mut inputs = features;
                for &width in hidden.iter().chain(std::iter::once(&classes)) {
                    total = total.checked_add(layer(inputs, width)?)?;
                    inputs = width;
                }
                Some(total)
            }
            ModelSpec::Torchscript { .. } => None,
        }
    }
}

/// Dataset schema that every client's data must follow (`[data]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// Input dimension (features per example), at least 1.
    pub features: u32,
    /// Number of classes (labels are `0..classes`), at least 2.
    pub classes: u32,
    /// Optional factor applied to every raw feature before training (e.g. `1/255` for 8-bit
    /// pixels); finite and positive. Absent means features are used as stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_scale: Option<f64>,
}

/// How the coordinator draws a round's cohort among admitted clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Selection {
    /// Every admitted client is equally likely.
    #[default]
    Uniform,
    /// Weighted by reputation (the moving average of past scores, `scoring.reputation_decay`).
    Reputation,
}

/// Cohort size and selection (`[cohort]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CohortSpec {
    /// Clients drawn per round, at least 1.
    pub size: u32,
    /// Fewest joined clients with which a round still runs; `1 <= min <= size`.
    pub min: u32,
    /// Selection weighting; default `uniform`.
    #[serde(default)]
    pub selection: Selection,
}

/// A phase of a round, each with its own deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Clients connect, prove their address and are admitted.
    Join,
    /// Cohort members download the model and train locally.
    Train,
    /// SecAgg+ AdvertiseKeys.
    AdvertiseKeys,
    /// SecAgg+ ShareKeys.
    ShareKeys,
    /// SecAgg+ MaskedInput; in plain mode, the upload of the signed update.
    MaskedInput,
    /// SecAgg+ ConsistencyCheck (signed survivor list).
    Consistency,
    /// SecAgg+ Unmasking.
    Unmasking,
}

impl Phase {
    /// All phases in round order.
    pub const ALL: [Phase; 7] = [
        Phase::Join,
        Phase::Train,
        Phase::AdvertiseKeys,
        Phase::ShareKeys,
        Phase::MaskedInput,
        Phase::Consistency,
        Phase::Unmasking,
    ];

    /// The phase's key in `[deadlines]`.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Join => "join",
            Phase::Train => "train",
            Phase::AdvertiseKeys => "advertise_keys",
            Phase::ShareKeys => "share_keys",
            Phase::MaskedInput => "masked_input",
            Phase::Consistency => "consistency",
            Phase::Unmasking => "unmasking",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Phase deadlines in whole seconds (`[deadlines]`), each in `1..=MAX_DEADLINE_SECS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeadlinesSpec {
    /// Join phase; default 60.
    pub join: u32,
    /// Local training; default 600.
    pub train: u32,
    /// SecAgg+ AdvertiseKeys; default 30.
    pub advertise_keys: u32,
    /// SecAgg+ ShareKeys; default 30.
    pub share_keys: u32,
    /// Masked (or, in plain mode, signed) update upload; default 120.
    pub masked_input: u32,
    /// SecAgg+ ConsistencyCheck; default 30.
    pub consistency: u32,
    /// SecAgg+ Unmasking; default 60.
    pub unmasking: u32,
}

impl Default for DeadlinesSpec {
    fn default() -> Self {
        DeadlinesSpec {
            join: 60,
            train: 600,
            advertise_keys: 30,
            share_keys: 30,
            masked_input: 120,
            consistency: 30,
            unmasking: 60,
        }
    }
}

impl DeadlinesSpec {
    /// Deadline of `phase` in seconds, as written.
    pub fn seconds(&self, phase: Phase) -> u32 {
        match phase {
            Phase::Join => self.join,
            Phase::Train => self.train,
            Phase::AdvertiseKeys => self.advertise_keys,
            Phase::ShareKeys => self.share_keys,
            Phase::MaskedInput => self.masked_input,
            Phase::Consistency => self.consistency,
            Phase::Unmasking => self.unmasking,
        }
    }

    /// Deadline of `phase`.
    pub fn get(&self, phase: Phase) -> Duration {
        Duration::from_secs(u64::from(self.seconds(phase)))
    }
}

/// Local training hyper-parameters and the update weight cap (`[training]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSpec {
    /// Local epochs per round, at least 1.
    pub epochs: u32,
    /// Mini-batch size, at least 1.
    pub batch_size: u32,
    /// Learning rate, finite and positive.
    pub learning_rate: f64,
    /// Weight cap: a client's update weight is `min(examples, max_examples)` (DESIGN 3.4), at
    /// least 1. Enters the quantization overflow bound.
    pub max_examples: u32,
    /// Optimizer (`[training.optimizer]`); default plain SGD.
    #[serde(default)]
    pub optimizer: OptimizerSpec,
}

/// Local optimizer (`[training.optimizer]`, tagged by `kind`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum OptimizerSpec {
    /// Stochastic gradient descent with optional momentum and L2 weight decay.
    Sgd {
        /// Momentum in `[0, 1)`; default 0.
        #[serde(default)]
        momentum: f64,
        /// L2 weight decay, finite and `>= 0`; default 0.
        #[serde(default)]
        weight_decay: f64,
    },
    /// Adam (Kingma and Ba), with decoupled weight decay when `weight_decay > 0` (AdamW).
    Adam {
        /// First-moment decay in `[0, 1)`; default 0.9.
        #[serde(default = "default_beta1")]
        beta1: f64,
        /// Second-moment decay in `[0, 1)`; default 0.999.
        #[serde(default = "default_beta2")]
        beta2: f64,
        /// Denominator term, finite and positive; default 1e-8.
        #[serde(default = "default_epsilon")]
        epsilon: f64,
        /// Weight decay, finite and `>= 0`; default 0.
        #[serde(default)]
        weight_decay: f64,
    },
}

fn default_beta1() -> f64 {
    0.9
}

fn default_beta2() -> f64 {
    0.999
}

fn default_epsilon() -> f64 {
    1e-8
}

impl Default for OptimizerSpec {
    fn default() -> Self {
        OptimizerSpec::Sgd {
            momentum: 0.0,
            weight_decay: 0.0,
        }
    }
}

/// Update bound and fixed-point encoding (`[update]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSpec {
    /// L2 clip bound `B`: every update is scaled down to `||u||_2 <= B`. Finite and positive.
    pub clip_norm: f64,
    /// Fixed-point fractional bits `f`: values are scaled by `2^f` before rounding; `1..=24`.
    pub fractional_bits: u32,
}

impl UpdateSpec {
    /// The scale `2^f`.
    pub fn fixed_point_scale(&self) -> f64 {
        // `powi` is exact for powers of two in f64's exponent range.
        2f64.powi(self.fractional_bits.min(1023) as i32)
    }
}

/// One corrupt member per group unless the spec says otherwise.
fn default_corrupt_per_group() -> u32 {
    1
}

/// Privacy mode (`[privacy]`, tagged by `mode`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case", deny_unknown_fields)]
pub enum PrivacySpec {
    /// Clients send their updates in the clear, signed; the aggregator sees each update.
    Plain {},
    /// SecAgg+ per group: the coordinator learns only each group's sum.
    Secagg {
        /// Members per group. A round of `c` participants forms `floor(c / group_size)` groups
        /// of exactly `group_size` (the coordinator draws a multiple of `group_size` clients),
        /// so a sum never has more than `group_size` summands. `3 <= group_size <= cohort.min`,
        /// so that every round that runs fills at least one group.
        group_size: u32,
        /// Shamir threshold `t` among a client's `k = group_size - 1` neighbours (complete
        /// graph): `(k + corrupt_per_group) / 2 < t <= k`, the bound against a coordinator
        /// that shows different survivor lists to different members while colluding with
        /// `corrupt_per_group` of them. A group's sum is recovered while at least `t`
        /// neighbours of each client survive.
        threshold: u32,
        /// Members of a group that may be corrupt and collude with the coordinator while
        /// every honest member's input stays hidden in a sum of at least two honest inputs.
        #[serde(default = "default_corrupt_per_group")]
        corrupt_per_group: u32,
    },
}

impl PrivacySpec {
    /// The `mode` tag as written in TOML.
    pub fn mode(&self) -> &'static str {
        match self {
            PrivacySpec::Plain {} => "plain",
            PrivacySpec::Secagg { .. } => "secagg",
        }
    }

    /// Whether updates are aggregated securely.
    pub fn is_secagg(&self) -> bool {
        matches!(self, PrivacySpec::Secagg { .. })
    }

    /// Number of aggregator inputs for a round of `clients` participants: `clients` in plain
    /// mode, `floor(clients / group_size)` groups under secure aggregation.
    pub fn group_count(&self, clients: u32) -> u32 {
        match *self {
            PrivacySpec::Plain {} => clients,
            PrivacySpec::Secagg { group_size, .. } => clients / group_size.max(1),
        }
    }
}

/// Reference direction against which contributions are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reference {
    /// The round's robust aggregate.
    #[default]
    Aggregate,
    /// The sponsor's root update, trained on its clean data.
    Root,
}

/// Contribution scoring (`[scoring]`, DESIGN section 6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScoringSpec {
    /// Reference direction for the trust term `max(0, cos(update, reference))`; default
    /// `aggregate`.
    pub reference: Reference,
    /// Also multiply by the validation-loss improvement a contribution brings; default false.
    pub validation_loss: bool,
    /// Reputation moving-average factor `d` in `(0, 1)`:
    /// `reputation <- d * reputation + (1 - d) * score`; default 0.9.
    pub reputation_decay: f64,
}

impl Default for ScoringSpec {
    fn default() -> Self {
        ScoringSpec {
            reference: Reference::Aggregate,
            validation_loss: false,
            reputation_decay: 0.9,
        }
    }
}

/// Reward pool and stake (`[rewards]`). Amounts are in the token's base units (wei for an
/// 18-decimal token), written as TOML integers or, above 2^63 - 1, decimal strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardsSpec {
    /// Total reward escrowed by `task create`; at least 1.
    #[serde(with = "u128_amount")]
    pub pool: u128,
    /// Paid out per round (`R` in DESIGN 6); `1 <= round_budget <= pool`.
    #[serde(with = "u128_amount")]
    pub round_budget: u128,
    /// Stake an address needs to be admitted; at least 1.
    #[serde(with = "u128_amount")]
    pub min_stake: u128,
    /// ERC-20 token contract: `0x` and 40 hex digits. Required with a JSON-RPC chain endpoint;
    /// optional on the embedded chain, which deploys its own token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Address that may veto rounds and slashes during their challenge window: `0x` and 40
    /// hex digits. Default: the sponsor who creates the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arbiter: Option<String>,
    /// Seconds after a round or a slash is posted during which the arbiter can veto it;
    /// 1 to [`MAX_CHAIN_DURATION`]. Default one day.
    #[serde(default = "default_challenge_window")]
    pub challenge_window: u64,
    /// Seconds between asking to unstake and withdrawing (the stake stays slashable);
    /// at most [`MAX_CHAIN_DURATION`]. Default one week.
    #[serde(default = "default_unbonding_period")]
    pub unbonding_period: u64,
    /// Seconds from `task create` until no more rounds are posted or stake added; 1 to
    /// [`MAX_CHAIN_DURATION`]. Default 30 days.
    #[serde(default = "default_duration")]
    pub duration: u64,
    /// Seconds after the task ends during which payouts can still be claimed; from
    /// `challenge_window` to [`MAX_CHAIN_DURATION`]. Default 90 days.
    #[serde(default = "default_claim_period")]
    pub claim_period: u64,
}

/// The longest duration the reward contract accepts (3650 days), in seconds.
pub const MAX_CHAIN_DURATION: u64 = 3650 * 86_400;

/// The largest amount the reward contract accepts (`2^112 - 1` base units).
pub const MAX_CHAIN_AMOUNT: u128 = (1 << 112) - 1;

fn default_challenge_window() -> u64 {
    86_400
}

fn default_unbonding_period() -> u64 {
    7 * 86_400
}

fn default_duration() -> u64 {
    30 * 86_400
}

fn default_claim_period() -> u64 {
    90 * 86_400
}

impl RewardsSpec {
    /// The arbiter address as bytes, if given; an error for a malformed address.
    pub fn arbiter_address(&self) -> Result<Option<[u8; 20]>, super::SpecError> {
        self.arbiter
            .as_deref()
            .map(super::parse_eth_address)
            .transpose()
            .map_err(|reason| super::SpecError::invalid("rewards.arbiter", reason))
    }

    /// The token contract address as bytes, if given; an error for a malformed address.
    pub fn token_address(&self) -> Result<Option<[u8; 20]>, super::SpecError> {
        self.token
            .as_deref()
            .map(super::parse_eth_address)
            .transpose()
            .map_err(|reason| super::SpecError::invalid("rewards.token", reason))
    }
}

/// Slashing policy (`[slashing]`): slash `fraction` of a client's stake when it was flagged
/// (rejected by the robust aggregator with negative alignment) in at least `min_flags` of its
/// last `window` rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlashingSpec {
    /// Rounds looked back over (`w`), at least 1.
    pub window: u32,
    /// Flags needed within the window (`m`); `1 <= min_flags <= window`.
    pub min_flags: u32,
    /// Fraction of the stake slashed, in `(0, 1]`.
    pub fraction: f64,
}
