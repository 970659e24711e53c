//! The [`Plan`]: everything a task spec fixes about how its rounds run,
//! built and checked once from the spec by the code that will run it.
//!
//! `task validate`, `task create`, `coordinator serve`, `client run` and the
//! lab all build their rounds from a `Plan`, so a spec that one of them
//! accepts the others run, and a setting that the aggregator, the trainer or
//! the secure-aggregation layer refuses is refused before any money is
//! escrowed for it.

use std::time::Duration;

use fedstake_aggregation::{AggregationError, Aggregator, Rule};
use fedstake_protocol::SpecError;
use fedstake_protocol::spec::{Phase, PrivacySpec, Reference, RewardsSpec, Selection, TaskSpec};
use fedstake_rewards::settle::SettleParams;
use fedstake_rewards::{BasisPoints, PolicyError, SlashingPolicy};
use fedstake_secure_agg::graph::{GraphError, GroupTopology, NeighbourGraph};
use fedstake_secure_agg::quantize::{QuantizationParams, QuantizeError};
use fedstake_training::trainer::{
    Architecture, Optimizer, TrainError, architecture_for, optimizer_for,
};

/// Cosine of deviations from the aggregate above which two contributions
/// are near-duplicates (Sybil evidence); see `docs/simulations.md`.
pub const DUPLICATE_THRESHOLD: f64 = 0.99;
/// Under secure aggregation, the p-value below which a member's flagged
/// groups count against it (`fedstake_secure_agg::attribution`).
pub const ATTRIBUTION_SIGNIFICANCE: f64 = 1e-3;
/// Attempts of one round before the task is stopped: a round that fails
/// this often fails for a reason a new cohort does not fix.
pub const MAX_ATTEMPTS: u32 = 20;

/// Why a spec cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The spec itself is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The spec has no `[rewards]` section, so no round can be paid.
    #[error("the task spec has no [rewards] section: its rounds cannot be paid or served")]
    NoRewards,
    /// The aggregator refuses its parameters.
    #[error("aggregation: {0}")]
    Aggregation(#[from] AggregationError),
    /// The model or the optimizer cannot be built for validation.
    #[error("model: {0}")]
    Model(#[from] TrainError),
    /// The fixed-point encoding of the secure sum is unusable.
    #[error("update: {0}")]
    Quantization(#[from] QuantizeError),
    /// The secure-aggregation group topology is unusable.
    #[error("privacy: {0}")]
    Topology(#[from] GraphError),
    /// The slashing policy is unusable.
    #[error("slashing: {0}")]
    Slashing(#[from] PolicyError),
}

/// How the group of a secure-aggregation round is encoded and connected.
#[derive(Debug, Clone, PartialEq)]
pub struct SecaggPlan {
    /// The fixed-point encoding (with the weight coordinate).
    pub quantization: QuantizationParams,
    /// Neighbours and Shamir threshold within a group.
    pub topology: GroupTopology,
}

/// A task's rounds as the engine runs them.
#[derive(Debug, Clone)]
pub struct Plan {
    spec: TaskSpec,
    rewards: RewardsSpec,
    aggregator: Aggregator,
    secagg: Option<SecaggPlan>,
    settle: SettleParams,
    slashing: Option<SlashingPolicy>,
    architecture: Architecture,
    optimizer: Optimizer,
}

impl Plan {
    /// Builds and checks the plan of `spec`.
    pub fn from_spec(spec: &TaskSpec) -> Result<Plan, PlanError> {
        spec.validate()?;
        let rewards = spec.rewards.as_ref().ok_or(PlanError::NoRewards)?;
        let aggregator = Aggregator::try_from(&spec.aggregation)?;
        // The sponsor validates (and trains its root update) with the CPU
        // backend, so the model must be one it can build.
        let architecture = architecture_for(&spec.model, &spec.data)?;
        let optimizer = optimizer_for(&spec.training)?;
        let secagg = match spec.privacy {
            PrivacySpec::Plain {} => None,
            PrivacySpec::Secagg {
                group_size,
                threshold,
                corrupt_per_group,
            } => {
                let quantization = QuantizationParams {
                    clip_norm: spec.update.clip_norm as f32,
                    fractional_bits: spec.update.fractional_bits,
                    max_weight: spec.training.max_examples,
                    summands: group_size,
                };
                quantization.validate()?;
                let graph = NeighbourGraph::complete(group_size)?;
                let topology = GroupTopology::new(graph, threshold, corrupt_per_group)?;
                Some(SecaggPlan {
                    quantization,
                    topology,
                })
            }
        };
        let slashing = spec
            .slashing
            .as_ref()
            .map(|s| {
                let policy = SlashingPolicy {
                    window: s.window as usize,
                    min_flags: s.min_flags as usize,
                    fraction: BasisPoints::new((s.fraction * 10_000.0).round() as u16)?,
                };
                policy.validate()?;
                Ok::<_, PolicyError>(policy)
            })
            .transpose()?;
        Ok(Plan {
            spec: spec.clone(),
            rewards: rewards.clone(),
            aggregator,
            secagg,
            settle: SettleParams {
                clip_norm: spec.update.clip_norm,
                round_budget: rewards.round_budget,
                duplicate_threshold: DUPLICATE_THRESHOLD,
                attribution_significance: ATTRIBUTION_SIGNIFICANCE,
            },
            slashing,
            architecture,
            optimizer,
        })
    }

    /// The spec the plan was built from.
    pub fn spec(&self) -> &TaskSpec {
        &self.spec
    }

    /// The reward pool, budget and stake (every plan has them).
    pub fn rewards(&self) -> &RewardsSpec {
        &self.rewards
    }

    /// Rounds of the task.
    pub fn rounds(&self) -> u64 {
        u64::from(self.spec.rounds)
    }

    /// The robust aggregator.
    pub fn aggregator(&self) -> &Aggregator {
        &self.aggregator
    }

    /// The secure-aggregation encoding and topology; `None` in plain mode.
    pub fn secagg(&self) -> Option<&SecaggPlan> {
        self.secagg.as_ref()
    }

    /// What scoring and the payout split are given.
    pub fn settle_params(&self) -> &SettleParams {
        &self.settle
    }

    /// The slashing policy; `None` when the task slashes nobody.
    pub fn slashing(&self) -> Option<&SlashingPolicy> {
        self.slashing.as_ref()
    }

    /// The network the sponsor validates with.
    pub fn architecture(&self) -> &Architecture {
        &self.architecture
    }

    /// The optimizer of local training (and of the root update).
    pub fn optimizer(&self) -> Optimizer {
        self.optimizer
    }

    /// How the cohort is drawn.
    pub fn selection(&self) -> Selection {
        self.spec.cohort.selection
    }

    /// Most clients drawn for an attempt.
    pub fn cohort_size(&self) -> usize {
        self.spec.cohort.size as usize
    }

    /// Fewest eligible clients an attempt starts with.
    pub fn cohort_min(&self) -> usize {
        self.spec.cohort.min as usize
    }

    /// The largest weight (capped example count) of one update.
    pub fn max_weight(&self) -> u32 {
        self.spec.training.max_examples
    }

    /// Whether the sponsor's root update is needed each round (FLTrust, or
    /// scoring against the root update).
    pub fn needs_root_update(&self) -> bool {
        matches!(self.aggregator.rule(), Rule::FlTrust)
            || self.spec.scoring.reference == Reference::Root
    }

    /// How long phase `phase` may take.
    pub fn deadline(&self, phase: Phase) -> Duration {
        self.spec.deadline(phase)
    }
}
