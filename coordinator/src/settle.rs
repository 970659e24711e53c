//! From what an attempt collected to a settled round: the robust aggregate,
//! the new model and its validation, scores, payouts and slashes — with
//! exactly the lab's settlement code (`fedstake_rewards::settle`).
//!
//! [`Settler`] keeps the state that carries over rounds (cumulative payouts,
//! group attribution, slashing windows, reputation, the previous aggregate).
//! [`Settler::settle`] works on a copy and hands the next state back inside
//! the [`Settlement`]; the driver adopts it only once the settled round is in
//! the store. On restart [`Settler::replay`] rebuilds the state from the
//! stored rounds, so a restarted coordinator settles the next round exactly
//! as an uninterrupted one would.

use std::collections::BTreeMap;

use alloy::primitives::Address;
use fedstake_aggregation::{Aggregate, Aggregator, Model, RoundContext};
use fedstake_client::data::Dataset;
use fedstake_client::net::secagg_parameters;
use fedstake_client::trainer::{
    Architecture, CpuTrainer, Evaluation, Optimizer, TrainError, Trainer, architecture_for,
    optimizer_for,
};
use fedstake_protocol::spec::{AggregationRule, Reference, TaskSpec};
use fedstake_rewards::settle::{
    GroupRoundInputs, GroupSum, RoundInputs, RoundScores, SettleParams, score_groups, score_round,
};
use fedstake_rewards::slashing::{BasisPoints, SlashingPolicy, SlashingTracker};
use fedstake_rewards::{CumulativePayouts, PayoutTree, RoundObservation};
use fedstake_secure_agg::attribution::{GroupAttribution, GroupResult};
use fedstake_secure_agg::graph::GroupTopology;
use fedstake_secure_agg::quantize::{QuantizationParams, weighted_mean};
use ndarray::Array2;
use sha2::{Digest, Sha256};

use crate::CoordinatorError;
use crate::attempt::{AttemptContext, Collection};
use crate::store::{SettledRound, StoredGroup, StoredObservation, StoredSubmission};

/// Cosine above which two contributions are near-duplicates: the lab's default.
pub const DUPLICATE_THRESHOLD: f64 = 0.99;
/// p-value below which a member's flagged groups count against it: the
/// lab's default.
pub const ATTRIBUTION_SIGNIFICANCE: f64 = 1e-3;
/// Reputation of a client never seen in a round.
const INITIAL_REPUTATION: f64 = 0.5;

/// The state that carries over rounds.
#[derive(Debug, Clone)]
pub struct CarriedState {
    payouts: CumulativePayouts<Address>,
    attribution: GroupAttribution<Address>,
    slashing: Option<SlashingTracker<Address>>,
    reputation: BTreeMap<Address, f64>,
    previous_aggregate: Option<Vec<f32>>,
}

/// A settled attempt, not yet adopted.
#[derive(Debug)]
pub struct Settlement {
    /// The round's record.
    pub settled: SettledRound,
    /// The new global model.
    pub model: Model,
    /// Participants and whether their contribution was counted.
    pub participants: Vec<(Address, bool)>,
    /// The state after this round.
    pub next: Box<CarriedState>,
}

/// Settles rounds.
pub struct Settler {
    spec: TaskSpec,
    params: SettleParams,
    aggregator: Aggregator,
    architecture: Architecture,
    optimizer: Optimizer,
    validation: Dataset,
    secagg: Option<(QuantizationParams, GroupTopology)>,
    state: CarriedState,
}

impl std::fmt::Debug for Settler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settler")
            .field("aggregator", &self.aggregator)
            .finish()
    }
}

impl Settler {
    /// A settler for `spec`, validating on the sponsor's `validation` data.
    pub fn new(spec: &TaskSpec, validation: Dataset) -> Result<Self, CoordinatorError> {
        let rewards = spec.rewards.as_ref().ok_or_else(|| {
            CoordinatorError::Config("the task spec has no [rewards] section".into())
        })?;
        // The sponsor's root update (FLTrust, `scoring.reference = "root"`)
        // is not computed by the coordinator yet: refuse rather than fail
        // every round.
        if spec.aggregation.rule == AggregationRule::FlTrust
            || spec.scoring.reference == Reference::Root
        {
            return Err(CoordinatorError::Config(
                "this coordinator does not compute the sponsor's root update yet: \
                 FLTrust and scoring.reference = \"root\" cannot be served"
                    .into(),
            ));
        }
        let aggregator = Aggregator::try_from(&spec.aggregation)
            .map_err(|e| CoordinatorError::Config(format!("aggregation: {e}")))?;
        // The sponsor validates on the CPU backend; a TorchScript model is
        // refused here with the trainer's explanation.
        let architecture = architecture_for(&spec.model, &spec.data)
            .map_err(|e| CoordinatorError::Config(format!("validation model: {e}")))?;
        let optimizer = optimizer_for(&spec.training)
            .map_err(|e| CoordinatorError::Config(format!("training: {e}")))?;
        let secagg = secagg_parameters(spec).map_err(CoordinatorError::Config)?;
        let slashing = spec
            .slashing
            .as_ref()
            .map(|s| {
                let fraction = BasisPoints::new((s.fraction * 10_000.0).round() as u16)?;
                SlashingTracker::new(SlashingPolicy {
                    window: s.window as usize,
                    min_flags: s.min_flags as usize,
                    fraction,
                })
            })
            .transpose()
            .map_err(|e| CoordinatorError::Config(format!("slashing: {e}")))?;
        Ok(Self {
            spec: spec.clone(),
            params: SettleParams {
                clip_norm: spec.update.clip_norm,
                round_budget: rewards.round_budget,
                duplicate_threshold: DUPLICATE_THRESHOLD,
                attribution_significance: ATTRIBUTION_SIGNIFICANCE,
            },
            aggregator,
            architecture,
            optimizer,
            validation,
            secagg,
            state: CarriedState {
                payouts: CumulativePayouts::new(),
                attribution: GroupAttribution::new(),
                slashing,
                reputation: BTreeMap::new(),
                previous_aggregate: None,
            },
        })
    }

    /// The model's initial parameters (the built-in models' seeded
    /// initialization).
    pub fn initial_model(&self, seed: u64) -> Result<Model, CoordinatorError> {
        Model::new(
            self.architecture.layout(),
            self.architecture.init_parameters(seed),
        )
        .map_err(|e| CoordinatorError::Internal(format!("initial model: {e}")))
    }

    /// `params` on the sponsor's validation data.
    pub fn evaluate(&self, params: &[f32]) -> Result<Evaluation, TrainError> {
        CpuTrainer::new(self.architecture.clone(), self.optimizer, params.to_vec())?
            .evaluate(&self.validation)
    }

    /// The SecAgg+ encoding and topology, `None` in plain mode.
    pub fn secagg(&self) -> Option<&(QuantizationParams, GroupTopology)> {
        self.secagg.as_ref()
    }

    /// A client's reputation (moving average of its score share).
    pub fn reputation(&self, address: &Address) -> f64 {
        self.state
            .reputation
            .get(address)
            .copied()
            .unwrap_or(INITIAL_REPUTATION)
    }

    /// What the task has paid `address` so far.
    pub fn cumulative(&self, address: &Address) -> u128 {
        self.state.payouts.total(address)
    }

    /// Adopts the state after a settled (and stored) round.
    pub fn adopt(&mut self, next: CarriedState) {
        self.state = next;
    }

    /// Rebuilds the carried state from a stored round; `aggregate` is the
    /// round's model minus the previous one.
    pub fn replay(
        &mut self,
        round: &SettledRound,
        aggregate: Vec<f32>,
    ) -> Result<(), CoordinatorError> {
        let corrupt =
            |e: String| CoordinatorError::Internal(format!("stored round {}: {e}", round.round));
        let payouts: Vec<(Address, u128)> = round
            .payouts
            .iter()
            .map(|(a, v)| {
                Ok((
                    parse_address(a)?,
                    v.parse::<u128>().map_err(|e| e.to_string())?,
                ))
            })
            .collect::<Result<_, String>>()
            .map_err(corrupt)?;
        let groups: Vec<(Vec<Address>, f64, bool)> = round
            .groups
            .iter()
            .map(|g| {
                let members = g
                    .members
                    .iter()
                    .map(|a| parse_address(a))
                    .collect::<Result<_, _>>()?;
                Ok((members, g.quality, g.flagged))
            })
            .collect::<Result<_, String>>()
            .map_err(corrupt)?;
        let observations: Vec<(Address, RoundObservation)> = round
            .observations
            .iter()
            .map(|o| Ok((parse_address(&o.address)?, o.observation)))
            .collect::<Result<_, String>>()
            .map_err(corrupt)?;
        let state = &mut self.state;
        state
            .payouts
            .credit_round(payouts.iter().copied())
            .map_err(|e| corrupt(e.to_string()))?;
        let results: Vec<GroupResult<'_, Address>> = groups
            .iter()
            .map(|(members, quality, flagged)| GroupResult {
                members,
                quality: *quality,
                flagged: *flagged,
            })
            .collect();
        if !results.is_empty() {
            state
                .attribution
                .record_round(&results)
                .map_err(|e| corrupt(e.to_string()))?;
        }
        if let Some(tracker) = state.slashing.as_mut() {
            for (address, observation) in &observations {
                tracker
                    .record(*address, round.round, observation, 0)
                    .map_err(|e| corrupt(e.to_string()))?;
            }
        }
        update_reputation(
            &mut state.reputation,
            self.spec.scoring.reputation_decay,
            observations.iter().map(|(a, _)| *a),
            &payouts,
        );
        state.previous_aggregate = Some(aggregate);
        Ok(())
    }

    /// Aggregates and settles what `collection` holds; `Err` with a reason
    /// when the attempt gave nothing usable (the round then runs again).
    pub fn settle(
        &self,
        global: &Model,
        collection: &Collection,
        context: &AttemptContext,
        stakes: &BTreeMap<Address, u128>,
    ) -> Result<Settlement, String> {
        let mut next = Box::new(self.state.clone());
        let previous = next.previous_aggregate.clone();
        let round_context = RoundContext {
            root_update: None,
            previous_aggregate: previous.as_deref().map(ndarray::ArrayView1::from),
            seed: context.round ^ (u64::from(context.attempt) << 40),
        };
        let global_params = global.params();
        let loss_with = |delta: &[f32]| -> Result<f64, fedstake_rewards::settle::SettleError> {
            let moved: Vec<f32> = global_params
                .iter()
                .zip(delta)
                .map(|(g, d)| g + d)
                .collect();
            self.evaluate(&moved)
                .map(|e| e.loss)
                .map_err(|e| fedstake_rewards::settle::SettleError::ValidationLoss(Box::new(e)))
        };
        let (clients, scores, aggregate, groups) = match collection {
            Collection::Plain { updates, .. } => {
                let cohort: Vec<Address> = updates.keys().copied().collect();
                if cohort.is_empty() {
                    return Err("no client sent an update".into());
                }
                let dimension = global_params.len();
                let bound = self.spec.update.clip_norm
                    * (1.0 + fedstake_rewards::slashing::NORM_BOUND_TOLERANCE);
                let all: Vec<Option<Vec<f32>>> =
                    updates.values().map(|u| Some(u.update.clone())).collect();
                let admitted: Vec<usize> = (0..cohort.len())
                    .filter(|&i| {
                        fedstake_aggregation::norm::l2_norm(&updates[&cohort[i]].update) <= bound
                    })
                    .collect();
                if admitted.is_empty() {
                    return Err("every update was over the norm bound".into());
                }
                let mut rows = Vec::with_capacity(admitted.len() * dimension);
                let mut weights = Vec::with_capacity(admitted.len());
                for &i in &admitted {
                    rows.extend_from_slice(&updates[&cohort[i]].update);
                    weights.push(updates[&cohort[i]].weight as f32);
                }
                let matrix = Array2::from_shape_vec((admitted.len(), dimension), rows)
                    .map_err(|e| e.to_string())?;
                let aggregate = self
                    .aggregator
                    .aggregate(matrix.view(), &weights, &round_context)
                    .map_err(|e| format!("aggregation: {e}"))?;
                let indices: Vec<usize> = (0..cohort.len()).collect();
                let scores = score_round(
                    &self.params,
                    &RoundInputs {
                        cohort: &indices,
                        updates: &all,
                        admitted: &admitted,
                        admitted_updates: matrix.view(),
                        admitted_weights: &weights,
                        aggregate: Some(&aggregate),
                        aggregator: &self.aggregator,
                        context: &round_context,
                        validation_loss: Some(&loss_with),
                    },
                )
                .map_err(|e| format!("scoring: {e}"))?;
                (cohort, scores, aggregate, Vec::new())
            }
            Collection::Secagg { groups, .. } => {
                let (params, _) = self
                    .secagg
                    .as_ref()
                    .ok_or("a secagg attempt in a plain task")?;
                let mut sums = Vec::new();
                for run in groups {
                    let Some(Ok(sum)) = &run.outcome else {
                        continue;
                    };
                    let mean =
                        weighted_mean(sum, params).map_err(|e| format!("group mean: {e}"))?;
                    let weight = sum.last().copied().unwrap_or(0) as f32;
                    let members = run
                        .session
                        .survivors()
                        .iter()
                        .map(|&index| run.members[index as usize])
                        .collect();
                    sums.push(GroupSum {
                        members,
                        mean,
                        weight,
                    });
                }
                if sums.is_empty() {
                    let reasons: Vec<String> = groups
                        .iter()
                        .filter_map(|g| match &g.outcome {
                            Some(Err(e)) => Some(e.clone()),
                            _ => None,
                        })
                        .collect();
                    return Err(format!("no group completed ({})", reasons.join("; ")));
                }
                let dimension = global_params.len();
                let mut rows = Vec::with_capacity(sums.len() * dimension);
                for sum in &sums {
                    rows.extend_from_slice(&sum.mean);
                }
                let weights: Vec<f32> = sums.iter().map(|s| s.weight).collect();
                let means = Array2::from_shape_vec((sums.len(), dimension), rows)
                    .map_err(|e| e.to_string())?;
                let aggregate = self
                    .aggregator
                    .aggregate(means.view(), &weights, &round_context)
                    .map_err(|e| format!("aggregation of {} group means: {e}", sums.len()))?;
                let (clients, scores, verdicts) = score_groups(
                    &self.params,
                    &GroupRoundInputs {
                        sums: &sums,
                        means: means.view(),
                        weights: &weights,
                        aggregate: Some(&aggregate),
                        aggregator: &self.aggregator,
                        context: &round_context,
                    },
                    &mut next.attribution,
                )
                .map_err(|e| format!("scoring: {e}"))?;
                let stored = sums
                    .iter()
                    .zip(verdicts)
                    .map(|(sum, verdict)| StoredGroup {
                        members: sum.members.iter().map(|a| a.to_string()).collect(),
                        quality: verdict.quality,
                        flagged: verdict.flagged,
                    })
                    .collect();
                (clients, scores, aggregate, stored)
            }
        };
        self.finish(
            global, context, stakes, next, clients, scores, &aggregate, groups,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        global: &Model,
        context: &AttemptContext,
        stakes: &BTreeMap<Address, u128>,
        mut next: Box<CarriedState>,
        clients: Vec<Address>,
        scores: RoundScores,
        aggregate: &Aggregate,
        groups: Vec<StoredGroup>,
    ) -> Result<Settlement, String> {
        let mut params = global.params().to_vec();
        params
            .iter_mut()
            .zip(aggregate.update.iter())
            .for_each(|(p, a)| *p += a);
        let model = Model::new(global.layout().clone(), params).map_err(|e| e.to_string())?;
        let evaluation = self.evaluate(model.params()).map_err(|e| e.to_string())?;

        let credits: Vec<(Address, u128)> = clients
            .iter()
            .copied()
            .zip(scores.payouts.iter().copied())
            .collect();
        next.payouts
            .credit_round(credits.iter().copied())
            .map_err(|e| e.to_string())?;
        let tree = PayoutTree::from_payouts(&next.payouts).map_err(|e| e.to_string())?;
        let mut slashes = Vec::new();
        if let Some(tracker) = next.slashing.as_mut() {
            for (address, observation) in clients.iter().zip(&scores.observations) {
                let stake = stakes.get(address).copied().unwrap_or(0);
                if let Some(decision) = tracker
                    .record(*address, context.round, observation, stake)
                    .map_err(|e| e.to_string())?
                {
                    slashes.push((address.to_string(), decision.amount.to_string()));
                }
            }
        }
        update_reputation(
            &mut next.reputation,
            self.spec.scoring.reputation_decay,
            clients.iter().copied(),
            &credits,
        );
        next.previous_aggregate = Some(aggregate.update.to_vec());
        let total: u128 = scores.payouts.iter().sum();
        let participants = clients
            .iter()
            .zip(&scores.observations)
            .zip(&scores.payouts)
            .map(|((address, observation), &payout)| {
                (*address, payout > 0 || !observation.rejected)
            })
            .collect();
        let settled = SettledRound {
            round: context.round,
            attempt: context.attempt,
            model_hash: model.content_hash_hex(),
            accuracy: evaluation.accuracy,
            loss: evaluation.loss,
            accepted: scores.accepted,
            rejected: scores.rejected,
            payouts: credits
                .iter()
                .map(|(a, v)| (a.to_string(), v.to_string()))
                .collect(),
            total: total.to_string(),
            observations: clients
                .iter()
                .zip(&scores.observations)
                .map(|(address, observation)| StoredObservation {
                    address: address.to_string(),
                    observation: *observation,
                })
                .collect(),
            groups,
            slashes,
            payout_tree: tree.to_json(),
        };
        Ok(Settlement {
            settled,
            model,
            participants,
            next,
        })
    }
}

/// Reputation: moving average of each participant's share of the round's
/// largest payout.
fn update_reputation(
    reputation: &mut BTreeMap<Address, f64>,
    decay: f64,
    participants: impl Iterator<Item = Address>,
    payouts: &[(Address, u128)],
) {
    let best = payouts.iter().map(|(_, v)| *v).max().unwrap_or(0);
    for address in participants {
        let paid = payouts
            .iter()
            .find(|(a, _)| *a == address)
            .map_or(0, |(_, v)| *v);
        let share = if best == 0 {
            0.0
        } else {
            paid as f64 / best as f64
        };
        let entry = reputation.entry(address).or_insert(INITIAL_REPUTATION);
        *entry = decay * *entry + (1.0 - decay) * share;
    }
}

fn parse_address(text: &str) -> Result<Address, String> {
    text.parse().map_err(|e| format!("address {text:?}: {e}"))
}

/// The public seed of a round's grouping: derived from the model the round
/// starts from, so anyone holding it can re-derive the groups.
pub fn grouping_seed(global: &Model) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"fedstake/grouping/v1");
    hasher.update(global.content_hash());
    hasher.finalize().into()
}

/// Every client whose contribution reached the settlement.
pub fn participants(collection: &Collection) -> Vec<Address> {
    match collection {
        Collection::Plain { updates, .. } => updates.keys().copied().collect(),
        Collection::Secagg { groups, .. } => groups
            .iter()
            .filter(|g| matches!(g.outcome, Some(Ok(_))))
            .flat_map(|g| g.session.survivors().iter().map(|&i| g.members[i as usize]))
            .collect(),
    }
}

/// The signed submissions an attempt received.
pub fn submissions(collection: &Collection) -> Vec<(Address, &StoredSubmission)> {
    match collection {
        Collection::Plain { updates, .. } => {
            updates.iter().map(|(a, u)| (*a, &u.submission)).collect()
        }
        Collection::Secagg { submissions, .. } => {
            submissions.iter().map(|(a, s)| (*a, s)).collect()
        }
    }
}
