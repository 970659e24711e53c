//! From what an attempt collected to a settled round: the robust aggregate,
//! the new model and its validation, scores, payouts and slashes.
//!
//! [`settle`] is pure given the sponsor's validation data: it reads the
//! carried [`RoundState`] and returns the next one inside the
//! [`Settlement`], which the driver adopts once the round is stored. An
//! attempt that gave nothing usable (no update, every update over the
//! bound, no group sum, too few inputs for the rule) is an error: the
//! coordinator and the lab then run the round again under the next attempt.

use std::collections::BTreeMap;
use std::fmt::Debug;

use fedstake_aggregation::norm::l2_norm;
use fedstake_aggregation::{Aggregate, AggregationError, Model, ModelError, RoundContext};
use fedstake_protocol::spec::Reference;
use fedstake_rewards::PolicyError;
use fedstake_rewards::settle::{
    GroupRoundInputs, GroupSum, RoundInputs, RoundScores, SettleError as ScoreError, score_groups,
    score_round,
};
use fedstake_rewards::slashing::NORM_BOUND_TOLERANCE;
use fedstake_training::data::Dataset;
use fedstake_training::trainer::{CpuTrainer, Evaluation, TrainError, Trainer, local_update};
use ndarray::{Array2, ArrayView1};

use crate::Plan;
use crate::state::{GroupRecord, RoundState, SettledRound};

/// A plain update as the attempt accepted it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlainContribution {
    /// `local - global`, as sent.
    pub update: Vec<f32>,
    /// Its weight (capped example count).
    pub weight: u32,
}

/// What an attempt collected.
#[derive(Debug, Clone, PartialEq)]
pub enum Contributions<P> {
    /// Plain mode: every delivered update by its sender.
    Plain(BTreeMap<P, PlainContribution>),
    /// Secure aggregation: the sums of the groups that completed, and why
    /// the others failed.
    Groups {
        /// Completed groups, in group order.
        sums: Vec<GroupSum<P>>,
        /// Why each other group gave no sum.
        failures: Vec<String>,
    },
}

impl<P: Clone> Contributions<P> {
    /// Every participant whose contribution reaches the settlement.
    pub fn participants(&self) -> Vec<P> {
        match self {
            Contributions::Plain(updates) => updates.keys().cloned().collect(),
            Contributions::Groups { sums, .. } => sums
                .iter()
                .flat_map(|s| s.members.iter().cloned())
                .collect(),
        }
    }
}

/// Why an attempt could not be settled; the round runs again.
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    /// Nobody delivered an update.
    #[error("no client sent an update")]
    NoUpdates,
    /// Every delivered update was over the norm bound.
    #[error("every update was over the norm bound")]
    AllOverBound,
    /// No group completed.
    #[error("no group completed ({})", .0.join("; "))]
    NoGroupCompleted(Vec<String>),
    /// The aggregator refused the inputs (too few for the rule, for one).
    #[error("aggregation of {inputs} inputs: {source}")]
    Aggregation {
        /// Rows given to the aggregator.
        inputs: usize,
        /// Its error.
        source: AggregationError,
    },
    /// Scoring refused its inputs.
    #[error("scoring: {0}")]
    Scoring(#[from] ScoreError),
    /// The payout policy refused an amount.
    #[error("payouts: {0}")]
    Policy(#[from] PolicyError),
    /// The sponsor's model could not be evaluated or trained.
    #[error("sponsor's model: {0}")]
    Sponsor(#[from] TrainError),
    /// The new model could not be built.
    #[error("new model: {0}")]
    Model(#[from] ModelError),
    /// A contribution does not have the model's dimension.
    #[error("contributions of the wrong dimension: {0}")]
    Shape(String),
    /// The round needs the sponsor's root update and none was given.
    #[error("the task needs the sponsor's root update and none was given")]
    NoRootUpdate,
}

/// One attempt's contributions and what they are settled against.
#[derive(Debug)]
pub struct AttemptInputs<'a, P> {
    /// Round, from 1.
    pub round: u64,
    /// The attempt.
    pub attempt: u32,
    /// The global model the round started from.
    pub global: &'a Model,
    /// What the attempt collected.
    pub contributions: &'a Contributions<P>,
    /// The sponsor's root update of this round ([`root_update`]), when the
    /// plan needs it.
    pub root_update: Option<&'a [f32]>,
    /// Stake (active and unbonding) of each participant, for slash amounts.
    pub stakes: &'a BTreeMap<P, u128>,
}

/// A settled attempt, not yet adopted.
#[derive(Debug)]
pub struct Settlement<P> {
    /// The round's record.
    pub record: SettledRound<P>,
    /// The new global model.
    pub model: Model,
    /// The state after this round.
    pub next: RoundState<P>,
}

/// The sponsor's model with `params` on its validation data.
pub fn evaluate(
    plan: &Plan,
    validation: &Dataset,
    params: &[f32],
) -> Result<Evaluation, TrainError> {
    CpuTrainer::new(
        plan.architecture().clone(),
        plan.optimizer(),
        params.to_vec(),
    )?
    .evaluate(validation)
}

/// The sponsor's root update of `round`: one round of local training on its
/// clean `root` data from the global model, as a client trains
/// ([`local_update`], clipped to the task's bound; FLTrust,
/// `scoring.reference = "root"`). Deterministic, so anyone holding the root
/// data can recompute it.
pub fn root_update(
    plan: &Plan,
    global: &[f32],
    root: &Dataset,
    round: u64,
) -> Result<Vec<f32>, TrainError> {
    const ROOT_SALT: u64 = 0x400F;
    let mut trainer = CpuTrainer::new(
        plan.architecture().clone(),
        plan.optimizer(),
        global.to_vec(),
    )?;
    let local = local_update(
        &mut trainer,
        root,
        global,
        plan.spec(),
        (ROOT_SALT, round),
        |_| {},
    )?;
    Ok(local.update)
}

/// Settles an attempt: aggregates, scores, pays and slashes (see the module
/// documentation).
pub fn settle<P: Ord + Clone + Debug + Send + Sync>(
    plan: &Plan,
    state: &RoundState<P>,
    validation: &Dataset,
    inputs: &AttemptInputs<'_, P>,
) -> Result<Settlement<P>, SettleError> {
    if plan.needs_root_update() && inputs.root_update.is_none() {
        return Err(SettleError::NoRootUpdate);
    }
    let mut next = state.clone();
    let round_context = RoundContext {
        root_update: inputs.root_update.map(ArrayView1::from),
        previous_aggregate: state.previous_aggregate().map(ArrayView1::from),
        seed: inputs.round ^ (u64::from(inputs.attempt) << 40),
    };
    let reference = match plan.spec().scoring.reference {
        Reference::Aggregate => None,
        Reference::Root => inputs.root_update.map(ArrayView1::from),
    };
    let global = inputs.global.params();
    let loss_with = |delta: &[f32]| -> Result<f64, ScoreError> {
        let moved: Vec<f32> = global.iter().zip(delta).map(|(g, d)| g + d).collect();
        evaluate(plan, validation, &moved)
            .map(|e| e.loss)
            .map_err(|e| ScoreError::ValidationLoss(Box::new(e)))
    };
    // `scoring.validation_loss`: each row's improvement of the sponsor's
    // validation loss over the global model.
    let improvements = |rows: &Array2<f32>| -> Result<Option<Vec<f64>>, SettleError> {
        if !plan.spec().scoring.validation_loss {
            return Ok(None);
        }
        let base = evaluate(plan, validation, global)?.loss;
        let gains = rows
            .rows()
            .into_iter()
            .map(|row| {
                let row: Vec<f32> = row.to_vec();
                Ok(base - loss_with(&row)?)
            })
            .collect::<Result<Vec<f64>, ScoreError>>()?;
        Ok(Some(
            gains
                .into_iter()
                .map(|g| if g.is_finite() { g } else { 0.0 })
                .collect(),
        ))
    };
    let dimension = global.len();
    let (participants, scores, aggregate, groups, inputs_count) = match inputs.contributions {
        Contributions::Plain(updates) => {
            let cohort: Vec<P> = updates.keys().cloned().collect();
            if cohort.is_empty() {
                return Err(SettleError::NoUpdates);
            }
            let bound = plan.spec().update.clip_norm * (1.0 + NORM_BOUND_TOLERANCE);
            let all: Vec<Option<Vec<f32>>> =
                updates.values().map(|u| Some(u.update.clone())).collect();
            let admitted: Vec<usize> = (0..cohort.len())
                .filter(|&i| l2_norm(&updates[&cohort[i]].update) <= bound)
                .collect();
            if admitted.is_empty() {
                return Err(SettleError::AllOverBound);
            }
            let mut rows = Vec::with_capacity(admitted.len() * dimension);
            let mut weights = Vec::with_capacity(admitted.len());
            for &i in &admitted {
                rows.extend_from_slice(&updates[&cohort[i]].update);
                weights.push(updates[&cohort[i]].weight as f32);
            }
            let matrix = Array2::from_shape_vec((admitted.len(), dimension), rows)
                .map_err(|e| SettleError::Shape(e.to_string()))?;
            let aggregate = aggregate(plan, &matrix, &weights, &round_context)?;
            let gains = improvements(&matrix)?;
            let indices: Vec<usize> = (0..cohort.len()).collect();
            let scores = score_round(
                plan.settle_params(),
                &RoundInputs {
                    cohort: &indices,
                    updates: &all,
                    admitted: &admitted,
                    admitted_updates: matrix.view(),
                    admitted_weights: &weights,
                    aggregate: Some(&aggregate),
                    aggregator: plan.aggregator(),
                    context: &round_context,
                    reference,
                    loss_improvements: gains.as_deref(),
                    validation_loss: Some(&loss_with),
                },
            )?;
            (cohort, scores, aggregate, Vec::new(), admitted.len())
        }
        Contributions::Groups { sums, failures } => {
            if sums.is_empty() {
                return Err(SettleError::NoGroupCompleted(failures.clone()));
            }
            let mut rows = Vec::with_capacity(sums.len() * dimension);
            for sum in sums {
                rows.extend_from_slice(&sum.mean);
            }
            let weights: Vec<f32> = sums.iter().map(|s| s.weight).collect();
            let means = Array2::from_shape_vec((sums.len(), dimension), rows)
                .map_err(|e| SettleError::Shape(e.to_string()))?;
            let aggregate = aggregate(plan, &means, &weights, &round_context)?;
            let gains = improvements(&means)?;
            let (clients, scores, verdicts) = score_groups(
                plan.settle_params(),
                &GroupRoundInputs {
                    sums,
                    means: means.view(),
                    weights: &weights,
                    aggregate: Some(&aggregate),
                    aggregator: plan.aggregator(),
                    context: &round_context,
                    reference,
                    loss_improvements: gains.as_deref(),
                },
                &mut next.attribution,
            )?;
            let groups = sums
                .iter()
                .zip(verdicts)
                .map(|(sum, verdict)| GroupRecord {
                    members: sum.members.clone(),
                    quality: verdict.quality,
                    flagged: verdict.flagged,
                })
                .collect();
            (clients, scores, aggregate, groups, sums.len())
        }
    };
    finish(
        plan,
        validation,
        inputs,
        next,
        participants,
        scores,
        &aggregate,
        groups,
        inputs_count,
    )
}

/// The record of a round that ran no attempt to the end because too few
/// clients were left to draw from ([`crate::SpentInputs`]): the model stays
/// (re-evaluated for the record), nothing is paid or observed, and the
/// round's budget stays in the pool. A skipped round is never posted.
pub fn skip_round<P: Ord + Clone + Debug>(
    plan: &Plan,
    state: &RoundState<P>,
    validation: &Dataset,
    round: u64,
    attempt: u32,
    global: &Model,
) -> Result<Settlement<P>, SettleError> {
    let evaluation = evaluate(plan, validation, global.params())?;
    let mut next = state.clone();
    next.rounds = round;
    Ok(Settlement {
        record: SettledRound {
            round,
            attempt,
            model_hash: global.content_hash(),
            accuracy: evaluation.accuracy,
            loss: evaluation.loss,
            accepted: 0,
            rejected: 0,
            aggregator_inputs: 0,
            payouts: Vec::new(),
            dust: plan.rewards().round_budget,
            observations: Vec::new(),
            groups: Vec::new(),
            slashes: Vec::new(),
        },
        model: global.clone(),
        next,
    })
}

fn aggregate(
    plan: &Plan,
    rows: &Array2<f32>,
    weights: &[f32],
    context: &RoundContext<'_>,
) -> Result<Aggregate, SettleError> {
    plan.aggregator()
        .aggregate(rows.view(), weights, context)
        .map_err(|source| SettleError::Aggregation {
            inputs: rows.nrows(),
            source,
        })
}

#[allow(clippy::too_many_arguments)]
fn finish<P: Ord + Clone + Debug>(
    plan: &Plan,
    validation: &Dataset,
    inputs: &AttemptInputs<'_, P>,
    mut next: RoundState<P>,
    participants: Vec<P>,
    scores: RoundScores,
    aggregate: &Aggregate,
    groups: Vec<GroupRecord<P>>,
    aggregator_inputs: usize,
) -> Result<Settlement<P>, SettleError> {
    let mut params = inputs.global.params().to_vec();
    params
        .iter_mut()
        .zip(aggregate.update.iter())
        .for_each(|(p, a)| *p += a);
    let model = Model::new(inputs.global.layout().clone(), params)?;
    let evaluation = evaluate(plan, validation, model.params())?;
    let payouts: Vec<(P, u128)> = participants
        .iter()
        .cloned()
        .zip(scores.payouts.iter().copied())
        .collect();
    next.payouts.credit_round(payouts.iter().cloned())?;
    let mut slashes = Vec::new();
    if let Some(tracker) = next.slashing.as_mut() {
        for (participant, observation) in participants.iter().zip(&scores.observations) {
            let stake = inputs.stakes.get(participant).copied().unwrap_or(0);
            if let Some(decision) =
                tracker.record(participant.clone(), inputs.round, observation, stake)?
            {
                slashes.push((participant.clone(), decision.amount));
            }
        }
    }
    next.update_reputation(plan, &payouts);
    // What was applied, exactly as a restarted coordinator recomputes it
    // from the stored models (`new - old` in f32), so replay is bit-exact.
    next.previous_aggregate = Some(
        model
            .params()
            .iter()
            .zip(inputs.global.params())
            .map(|(new, old)| new - old)
            .collect(),
    );
    next.rounds = inputs.round;
    let record = SettledRound {
        round: inputs.round,
        attempt: inputs.attempt,
        model_hash: model.content_hash(),
        accuracy: evaluation.accuracy,
        loss: evaluation.loss,
        accepted: scores.accepted,
        rejected: scores.rejected,
        aggregator_inputs,
        payouts,
        dust: scores.dust,
        observations: participants.into_iter().zip(scores.observations).collect(),
        groups,
        slashes,
    };
    Ok(Settlement {
        record,
        model,
        next,
    })
}
