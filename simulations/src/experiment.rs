//! Experiment files: the grid `fedstake sim run experiment.toml` runs.
//!
//! An experiment fixes the data, the model, local training and the reward
//! policy, and lists the values to sweep: aggregators (in the task spec's
//! `[aggregation]` form), attacks, attacker fractions, data partitions,
//! privacy modes (the task spec's `[privacy]` form), per-phase dropout
//! rates and seeds. Every combination is one grid point, simulated for
//! `rounds` rounds.
//!
//! Each grid point is a task spec ([`Experiment::task_spec`]): the model,
//! training, scoring and slashing sections are the spec's own, and the
//! point's aggregator and privacy mode fill its `[aggregation]` and
//! `[privacy]`. The lab runs it through the round engine's `Plan`, so a
//! grid uses exactly the topology, threshold, fixed-point bits, cohort
//! draw, scoring and slashing a coordinator serving that spec would.

use std::path::Path;

use fedstake_protocol::spec::{
    AggregationSpec, ChainSpec, CohortSpec, DataSpec, DeadlinesSpec,
    MAX_FRACTIONAL_BITS as SPEC_MAX_FRACTIONAL_BITS, ModelSpec, PrivacySpec, RewardsSpec,
    ScoringSpec, Selection, SlashingSpec, TaskSpec, TrainingSpec, UpdateSpec, parse_token_amount,
};
use fedstake_round::Plan;
use serde::{Deserialize, Deserializer};

use fedstake_secure_agg::graph::recommended_threshold;
use fedstake_secure_agg::quantize::{MAX_FRACTIONAL_BITS, QuantizationParams};
use fedstake_secure_agg::session::Phase;

use crate::SimError;
use crate::attack::Attack;
use crate::partition::Partition;

/// The chain durations of a lab task's spec: the lab has no chain, and any
/// value the spec accepts will do.
const LAB_SECONDS: u64 = 86_400;

/// Largest accepted experiment file, in bytes.
const MAX_EXPERIMENT_BYTES: u64 = 1 << 20;

/// An experiment grid.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Name, used in the report.
    pub name: String,
    /// Seeds; each grid point runs once per seed.
    pub seeds: Vec<u64>,
    /// Rounds per run.
    pub rounds: u32,
    /// Clients in the population.
    pub clients: u32,
    /// Clients drawn for each round's cohort (the spec's `cohort.size`).
    pub clients_per_round: u32,
    /// How the cohort is drawn, as a task spec's `cohort.selection`.
    #[serde(default)]
    pub selection: Selection,
    /// Fractions of the population that attack (rounded to whole clients).
    pub attacker_fractions: Vec<f64>,
    /// Where the data comes from.
    pub data: DataConfig,
    /// The model, as in a task spec's `[model]`.
    pub model: ModelSpec,
    /// Local training, as in a task spec's `[training]`.
    pub training: TrainingSpec,
    /// L2 bound of an update; honest clients clip to it and the coordinator
    /// rejects (with slashing evidence) anything longer.
    pub clip_norm: f64,
    /// How the data is dealt to clients.
    pub partitions: Vec<Partition>,
    /// Aggregators, each as a task spec's `[aggregation]` table.
    pub aggregators: Vec<AggregationSpec>,
    /// Attacks (`{ kind = "none" }` for the attack-free baseline).
    pub attacks: Vec<Attack>,
    /// Privacy modes; plain only when absent.
    #[serde(default = "default_privacy")]
    pub privacy: Vec<PrivacyConfig>,
    /// Per-phase dropout rates; no dropouts when absent.
    #[serde(default = "default_dropouts")]
    pub dropouts: Vec<DropoutRates>,
    /// Scoring of contributions, as in a task spec's `[scoring]`.
    #[serde(default)]
    pub scoring: ScoringSpec,
    /// Reward budget and stakes.
    pub rewards: RewardsConfig,
    /// Slashing policy, as in a task spec's `[slashing]`.
    pub slashing: SlashingSpec,
    /// Label (as the report prints it) of the aggregator the experiment
    /// recommends; the report checks it against the robustness goals.
    #[serde(default)]
    pub recommended: Option<String>,
}

/// The data of an experiment.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DataConfig {
    /// Gaussian class clusters.
    Synthetic {
        /// Classes.
        classes: u32,
        /// Features per example.
        features: u32,
        /// Examples in all (clients, validation and root data).
        examples: u32,
        /// Distance of class centres from the origin.
        #[serde(default = "default_separation")]
        separation: f32,
        /// Per-coordinate noise standard deviation.
        #[serde(default = "default_noise")]
        noise: f32,
        /// Held out for the sponsor's validation and root data.
        #[serde(default = "default_validation_fraction")]
        validation_fraction: f64,
        /// Of the held-out data, examples the sponsor trains its root update
        /// on (FLTrust); the rest is validation.
        #[serde(default = "default_root_examples")]
        root_examples: u32,
    },
    /// Files any loader reads (`csv:PATH`, `idx:IMAGES,LABELS`, `npy:X,Y`),
    /// relative to the experiment file.
    Files {
        /// The data source.
        source: String,
        /// Classes.
        classes: u32,
        /// Features per example.
        features: u32,
        /// Factor applied to every feature after loading.
        #[serde(default)]
        feature_scale: Option<f64>,
        /// Held out for the sponsor's validation and root data.
        #[serde(default = "default_validation_fraction")]
        validation_fraction: f64,
        /// Of the held-out data, examples for the root update.
        #[serde(default = "default_root_examples")]
        root_examples: u32,
    },
}

fn default_privacy() -> Vec<PrivacyConfig> {
    vec![PrivacyConfig::Plain {}]
}

fn default_dropouts() -> Vec<DropoutRates> {
    vec![DropoutRates::default()]
}

/// How updates reach the aggregator: a task spec's `[privacy]`, with the
/// fixed-point bits of its `[update]`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case", deny_unknown_fields)]
pub enum PrivacyConfig {
    /// Signed updates in the clear: the aggregator sees each one.
    Plain {},
    /// SecAgg+ per group (real keys, signatures and masks, through memory):
    /// the aggregator sees one mean per group, and rewards and slashing rest
    /// on the attribution of group results to clients.
    Secagg {
        /// Members per group (at least 3).
        group_size: u32,
        /// Shamir threshold among a member's `k = group_size - 1`
        /// neighbours; by default `(k + corrupt_per_group) / 2 + 1`, the
        /// smallest the spec allows.
        #[serde(default)]
        threshold: Option<u32>,
        /// Corrupt members per group the threshold holds against; by
        /// default 1, as in a task spec.
        #[serde(default = "one")]
        corrupt_per_group: u32,
        /// Fixed-point fractional bits of the quantization; by default the
        /// most (up to the task spec's limit of 24) that cannot overflow.
        #[serde(default)]
        fractional_bits: Option<u32>,
    },
}

fn one() -> u32 {
    1
}

impl PrivacyConfig {
    /// The label reports print: `plain` or `secagg(g=5)`.
    pub fn label(&self) -> String {
        match self {
            PrivacyConfig::Plain {} => "plain".into(),
            PrivacyConfig::Secagg { group_size, .. } => format!("secagg(g={group_size})"),
        }
    }

    /// The task spec's `[privacy]` of this mode.
    pub fn spec(&self) -> PrivacySpec {
        match *self {
            PrivacyConfig::Plain {} => PrivacySpec::Plain {},
            PrivacyConfig::Secagg {
                group_size,
                threshold,
                corrupt_per_group,
                ..
            } => PrivacySpec::Secagg {
                group_size,
                threshold: threshold.unwrap_or_else(|| {
                    recommended_threshold(group_size.saturating_sub(1), corrupt_per_group)
                }),
                corrupt_per_group,
            },
        }
    }

    /// The fixed-point fractional bits of the spec's `[update]`: the given
    /// bits, or the most (at least 1) whose sum of `group_size` (in plain
    /// mode `cohort_size`) updates cannot overflow at `clip_norm` and
    /// `max_weight`, as the spec's own check computes it.
    pub fn fractional_bits(&self, clip_norm: f64, max_weight: u32, cohort_size: u32) -> u32 {
        let (summands, given) = match *self {
            PrivacyConfig::Plain {} => (cohort_size, None),
            PrivacyConfig::Secagg {
                group_size,
                fractional_bits,
                ..
            } => (group_size, fractional_bits),
        };
        given.unwrap_or_else(|| {
            (1..=SPEC_MAX_FRACTIONAL_BITS.min(MAX_FRACTIONAL_BITS))
                .rev()
                .find(|&bits| {
                    QuantizationParams {
                        clip_norm: clip_norm as f32,
                        fractional_bits: bits,
                        max_weight: max_weight.max(1),
                        summands,
                    }
                    .validate()
                    .is_ok()
                })
                .unwrap_or(1)
        })
    }
}

/// Probability that a client drops in each phase of a secure-aggregation
/// round, given it got there. A client's coin is thrown phase by phase; it
/// drops from the first phase whose coin comes up. In plain mode only
/// `masked_input` (the upload of the update) applies.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DropoutRates {
    /// Before sending its keys.
    pub advertise_keys: f64,
    /// Before sending its share boxes.
    pub share_keys: f64,
    /// Before sending its (masked) update.
    pub masked_input: f64,
    /// Before signing the survivor list.
    pub consistency: f64,
    /// Before revealing its shares.
    pub unmasking: f64,
}

impl DropoutRates {
    /// The rate of `phase`.
    pub fn rate(&self, phase: Phase) -> f64 {
        match phase {
            Phase::AdvertiseKeys => self.advertise_keys,
            Phase::ShareKeys => self.share_keys,
            Phase::MaskedInput => self.masked_input,
            Phase::Consistency => self.consistency,
            Phase::Unmasking => self.unmasking,
        }
    }

    /// `none`, or the non-zero rates, e.g. `share_keys=0.05 masked_input=0.1`.
    pub fn label(&self) -> String {
        let rates: Vec<String> = Phase::ALL
            .iter()
            .filter(|&&phase| self.rate(phase) > 0.0)
            .map(|&phase| format!("{}={}", phase.name(), self.rate(phase)))
            .collect();
        if rates.is_empty() {
            "none".into()
        } else {
            rates.join(" ")
        }
    }
}

fn default_separation() -> f32 {
    3.0
}

fn default_noise() -> f32 {
    1.0
}

fn default_validation_fraction() -> f64 {
    0.2
}

fn default_root_examples() -> u32 {
    200
}

impl DataConfig {
    /// The schema of the data, as a task spec's `[data]`.
    pub fn schema(&self) -> DataSpec {
        match *self {
            DataConfig::Synthetic {
                classes, features, ..
            } => DataSpec {
                features,
                classes,
                feature_scale: None,
            },
            DataConfig::Files {
                classes,
                features,
                feature_scale,
                ..
            } => DataSpec {
                features,
                classes,
                feature_scale,
            },
        }
    }

    /// Fraction held out for the sponsor.
    pub fn validation_fraction(&self) -> f64 {
        match *self {
            DataConfig::Synthetic {
                validation_fraction,
                ..
            }
            | DataConfig::Files {
                validation_fraction,
                ..
            } => validation_fraction,
        }
    }

    /// Examples of the held-out data used for the root update.
    pub fn root_examples(&self) -> usize {
        match *self {
            DataConfig::Synthetic { root_examples, .. }
            | DataConfig::Files { root_examples, .. } => root_examples as usize,
        }
    }
}

/// Reward budget and stakes, in token base units.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardsConfig {
    /// Paid out each round.
    #[serde(deserialize_with = "token_amount")]
    pub round_budget: u128,
    /// Every client's stake at the start.
    #[serde(deserialize_with = "token_amount")]
    pub stake: u128,
}

/// Reads a token amount written as a TOML integer or a decimal string.
fn token_amount<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u128, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(i64),
        Text(String),
    }
    match Raw::deserialize(deserializer)? {
        Raw::Int(v) => {
            u128::try_from(v).map_err(|_| serde::de::Error::custom("amount is negative"))
        }
        Raw::Text(text) => parse_token_amount(&text).map_err(serde::de::Error::custom),
    }
}

impl Experiment {
    /// Parses and validates an experiment.
    pub fn from_toml_str(text: &str) -> Result<Self, SimError> {
        let experiment: Experiment =
            toml::from_str(text).map_err(|e| SimError::Config(format!("experiment: {e}")))?;
        experiment.validate()?;
        Ok(experiment)
    }

    /// Reads, parses and validates an experiment file; errors name the file.
    pub fn load(path: &Path) -> Result<Self, SimError> {
        let in_file = |e: SimError| SimError::Config(format!("{}: {e}", path.display()));
        let size = std::fs::metadata(path)
            .map_err(|e| in_file(SimError::Config(e.to_string())))?
            .len();
        if size > MAX_EXPERIMENT_BYTES {
            return Err(in_file(SimError::Config(format!(
                "{size} bytes, larger than the {MAX_EXPERIMENT_BYTES}-byte limit"
            ))));
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| in_file(SimError::Config(e.to_string())))?;
        Self::from_toml_str(&text).map_err(in_file)
    }

    /// Checks the settings, naming the first invalid field.
    pub fn validate(&self) -> Result<(), SimError> {
        let invalid =
            |field: &str, reason: String| Err(SimError::Config(format!("{field}: {reason}")));
        if self.seeds.is_empty() {
            return invalid("seeds", "list at least one seed".into());
        }
        if self.rounds == 0 {
            return invalid("rounds", "must be at least 1".into());
        }
        if self.clients < 2 {
            return invalid(
                "clients",
                format!("must be at least 2, got {}", self.clients),
            );
        }
        if self.clients_per_round == 0 || self.clients_per_round > self.clients {
            return invalid(
                "clients_per_round",
                format!(
                    "must be in 1..={}, got {}",
                    self.clients, self.clients_per_round
                ),
            );
        }
        if let Some(f) = self
            .attacker_fractions
            .iter()
            .find(|f| !(0.0..0.5).contains(*f))
        {
            return invalid("attacker_fractions", format!("{f} is not in [0, 0.5)"));
        }
        for (field, empty) in [
            ("attacker_fractions", self.attacker_fractions.is_empty()),
            ("partitions", self.partitions.is_empty()),
            ("aggregators", self.aggregators.is_empty()),
            ("attacks", self.attacks.is_empty()),
            ("privacy", self.privacy.is_empty()),
            ("dropouts", self.dropouts.is_empty()),
        ] {
            if empty {
                return invalid(field, "list at least one value".into());
            }
        }
        let fraction = self.data.validation_fraction();
        if !(fraction > 0.0 && fraction < 1.0) {
            return invalid(
                "data.validation_fraction",
                format!("must be in (0, 1), got {fraction}"),
            );
        }
        // Every aggregator and privacy mode must make a task a coordinator
        // would serve: the round engine's plan checks it, as `task validate`
        // does.
        for aggregator in 0..self.aggregators.len() {
            for privacy in 0..self.privacy.len() {
                let spec = self.task_spec(aggregator, privacy);
                Plan::from_spec(&spec).map_err(|e| {
                    SimError::Config(format!(
                        "aggregators[{aggregator}] with privacy[{privacy}]: {e}"
                    ))
                })?;
            }
        }
        for (i, rates) in self.dropouts.iter().enumerate() {
            if let Some(phase) = Phase::ALL
                .into_iter()
                .find(|&phase| !(0.0..1.0).contains(&rates.rate(phase)))
            {
                return invalid(
                    &format!("dropouts[{i}].{}", phase.name()),
                    format!("must be in [0, 1), got {}", rates.rate(phase)),
                );
            }
        }
        for (i, attack) in self.attacks.iter().enumerate() {
            attack
                .validate()
                .map_err(|e| SimError::Config(format!("attacks[{i}]: {e}")))?;
        }
        Ok(())
    }

    /// The task spec of aggregator `aggregator` under privacy mode
    /// `privacy`: what a coordinator would be given to run the same task.
    /// Every client stakes `rewards.stake`, which is also the minimum, so a
    /// slashed client is no longer eligible.
    pub fn task_spec(&self, aggregator: usize, privacy: usize) -> TaskSpec {
        let privacy = self.privacy[privacy];
        TaskSpec {
            name: self.name.clone(),
            rounds: self.rounds,
            model: self.model.clone(),
            data: self.data.schema(),
            cohort: CohortSpec {
                size: self.clients_per_round,
                min: self.clients_per_round,
                selection: self.selection,
            },
            deadlines: DeadlinesSpec::default(),
            training: self.training.clone(),
            update: UpdateSpec {
                clip_norm: self.clip_norm,
                fractional_bits: privacy.fractional_bits(
                    self.clip_norm,
                    self.training.max_examples,
                    self.clients_per_round,
                ),
            },
            privacy: privacy.spec(),
            aggregation: self.aggregators[aggregator].clone(),
            scoring: self.scoring.clone(),
            rewards: Some(RewardsSpec {
                pool: self
                    .rewards
                    .round_budget
                    .saturating_mul(u128::from(self.rounds)),
                round_budget: self.rewards.round_budget,
                min_stake: self.rewards.stake,
                token: None,
                arbiter: None,
                challenge_window: LAB_SECONDS,
                unbonding_period: LAB_SECONDS,
                duration: LAB_SECONDS,
                claim_period: LAB_SECONDS,
            }),
            slashing: Some(self.slashing.clone()),
            chain: ChainSpec::default(),
            coordinator: None,
        }
    }

    /// Number of grid points (runs), counting seeds.
    pub fn grid_size(&self) -> usize {
        self.aggregators.len()
            * self.attacks.len()
            * self.attacker_fractions.len()
            * self.partitions.len()
            * self.privacy.len()
            * self.dropouts.len()
            * self.seeds.len()
    }

    /// Every grid point, in a fixed order (aggregator, attack, fraction,
    /// partition, privacy, dropouts, seed) that outputs follow.
    pub fn points(&self) -> Vec<GridPoint> {
        let mut points = Vec::with_capacity(self.grid_size());
        for aggregator in 0..self.aggregators.len() {
            for attack in 0..self.attacks.len() {
                for fraction in 0..self.attacker_fractions.len() {
                    for partition in 0..self.partitions.len() {
                        for privacy in 0..self.privacy.len() {
                            for dropouts in 0..self.dropouts.len() {
                                for &seed in &self.seeds {
                                    points.push(GridPoint {
                                        aggregator,
                                        attack,
                                        fraction,
                                        partition,
                                        privacy,
                                        dropouts,
                                        seed,
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        points
    }
}

/// One run of the grid: indices into the experiment's lists, and a seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GridPoint {
    /// Index into `aggregators`.
    pub aggregator: usize,
    /// Index into `attacks`.
    pub attack: usize,
    /// Index into `attacker_fractions`.
    pub fraction: usize,
    /// Index into `partitions`.
    pub partition: usize,
    /// Index into `privacy`.
    pub privacy: usize,
    /// Index into `dropouts`.
    pub dropouts: usize,
    /// The seed.
    pub seed: u64,
}
