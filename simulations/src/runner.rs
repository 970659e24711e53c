//! Running an experiment grid: one simulated task per grid point, in
//! parallel over points, every round through the production trainer,
//! aggregators, quality scores, payout policy and slashing rule.
//!
//! A round: the cohort is drawn from the clients not yet slashed; honest
//! clients train from the global model and clip their update to the bound;
//! attackers craft theirs (omniscient attacks see the honest updates); each
//! cohort member may drop, phase by phase, at the point's dropout rates. In
//! plain mode the coordinator rejects any delivered update over the bound
//! (that is slashing evidence: the update is signed), runs the aggregator on
//! the rest and applies the aggregate; contributions are scored against the
//! aggregate. In `secagg` mode the cohort is grouped, each group runs SecAgg+
//! and the aggregator runs on the group means (see [`crate::secure`]); clients
//! are scored from group attribution. Then the round budget is split by score
//! (scoring and split are the coordinator's [`fedstake_rewards::settle`]) and
//! the slashing rule looks at each client's evidence. A slashed client's
//! stake falls below the task's minimum, so it is not admitted again.

use std::path::Path;

use fedstake_aggregation::Aggregate;
use fedstake_aggregation::norm::l2_norm;
use fedstake_aggregation::{AggregationError, Aggregator, RoundContext, Rule};
use fedstake_client::data::{DataSource, Dataset, Schema, SyntheticSpec, synthetic};
use fedstake_client::trainer::{architecture_for, optimizer_for, schedule_for};
use fedstake_rewards::settle::{
    GroupRoundInputs, RoundInputs, RoundScores, SettleError, SettleParams, score_groups,
    score_round,
};
use fedstake_rewards::{BasisPoints, SlashingPolicy, SlashingTracker};
use fedstake_secure_agg::attribution::GroupAttribution;
use fedstake_secure_agg::session::Phase;
use ndarray::{Array2, ArrayView2};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::SimError;
use crate::attack::Attack;
use crate::experiment::{DataConfig, DropoutRates, Experiment, GridPoint};
use crate::federated::{LocalSettings, Population};
use crate::partition::partition;
use crate::secure::{Contributions, SecureSetup};

/// Salts that keep the random streams of one seed independent.
const ATTACKER_SALT: u64 = 0xA77A_C4E5;
const COHORT_SALT: u64 = 0xC0_4087;
const ROOT_SALT: u64 = 0x400F;
const DROPOUT_SALT: u64 = 0xD40_9047;

/// Human-readable coordinates of a grid point.
#[derive(Debug, Clone, PartialEq)]
pub struct RunLabels {
    /// Aggregator, e.g. `trimmed-mean(0.2)+bucketing(2)`.
    pub aggregator: String,
    /// Attack, e.g. `sign-flip`.
    pub attack: String,
    /// Attacker fraction.
    pub fraction: f64,
    /// Partition, e.g. `dirichlet(0.5)`.
    pub partition: String,
    /// Privacy mode, e.g. `plain` or `secagg(g=5)`.
    pub privacy: String,
    /// Dropout rates, e.g. `none` or `masked_input=0.1`.
    pub dropouts: String,
}

/// One round of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundRecord {
    /// Round number, from 1.
    pub round: u32,
    /// Validation accuracy of the new global model.
    pub accuracy: f64,
    /// Validation loss of the new global model.
    pub loss: f64,
    /// Backdoor success rate of the new global model (backdoor attacks).
    pub backdoor_success: Option<f64>,
    /// Clients whose updates the aggregator counted (with any weight; in
    /// `secagg` mode, the members of groups it counted).
    pub accepted: usize,
    /// Delivered updates rejected (over the bound, or by the aggregator).
    pub rejected: usize,
    /// Cohort members whose update reached no aggregated sum (dropped, or in
    /// a group that failed).
    pub dropped: usize,
    /// Rows the aggregator saw: updates, or group means.
    pub aggregator_inputs: usize,
    /// Groups that lost more members than their tolerance (`secagg`).
    pub failed_groups: usize,
    /// Paid to honest clients this round.
    pub rewards_honest: u128,
    /// Paid to attackers this round.
    pub rewards_attackers: u128,
    /// Budget left in the pool by rounding or zero scores.
    pub dust: u128,
    /// Honest clients slashed this round.
    pub slashed_honest: usize,
    /// Attackers slashed this round.
    pub slashed_attackers: usize,
}

/// Everything one grid point produced.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    /// The point.
    pub point: GridPoint,
    /// Its labels.
    pub labels: RunLabels,
    /// Number of attackers.
    pub attackers: usize,
    /// Whether the attack poisons the model (free riders do not).
    pub poisoning: bool,
    /// One record per round.
    pub rounds: Vec<RoundRecord>,
    /// Distinct honest clients slashed.
    pub honest_slashed: usize,
    /// Distinct attackers slashed.
    pub attackers_slashed: usize,
}

/// The data of one seed: the clients' pool, the sponsor's validation set and
/// its root data.
struct SeedData {
    pool: Dataset,
    validation: Dataset,
    root: Dataset,
}

fn prepare_data(
    experiment: &Experiment,
    loaded: Option<&Dataset>,
    seed: u64,
) -> Result<SeedData, SimError> {
    let data = match (&experiment.data, loaded) {
        (
            DataConfig::Synthetic {
                classes,
                features,
                examples,
                separation,
                noise,
                ..
            },
            _,
        ) => synthetic(&SyntheticSpec {
            classes: *classes as usize,
            dim: *features as usize,
            examples: *examples as usize,
            separation: *separation,
            noise: *noise,
            seed,
        })?,
        (DataConfig::Files { .. }, Some(data)) => data.clone(),
        (DataConfig::Files { source, .. }, None) => {
            return Err(SimError::Config(format!("data {source} was not loaded")));
        }
    };
    let (pool, held_out) = data.split(experiment.data.validation_fraction(), seed)?;
    let root_examples = experiment.data.root_examples().min(held_out.len() / 2);
    let order: Vec<usize> = (0..held_out.len()).collect();
    let (root, validation) = order.split_at(root_examples);
    Ok(SeedData {
        pool,
        validation: held_out.select(validation),
        root: held_out.select(root),
    })
}

fn load_files(experiment: &Experiment, base_dir: &Path) -> Result<Option<Dataset>, SimError> {
    let DataConfig::Files { source, .. } = &experiment.data else {
        return Ok(None);
    };
    let source: DataSource = source
        .parse()
        .map_err(|e| SimError::Config(format!("data.source: {e}")))?;
    let source = source.relative_to(base_dir);
    let schema = Schema::from(&experiment.data.schema());
    Ok(Some(source.load(&schema)?))
}

/// Runs every grid point with at most `jobs` threads; `on_done` is called as
/// each point finishes (for a progress bar). Results come back in grid order.
pub fn run_experiment(
    experiment: &Experiment,
    base_dir: &Path,
    jobs: usize,
    on_done: &(dyn Fn(&RunResult) + Sync),
) -> Result<Vec<RunResult>, SimError> {
    experiment.validate()?;
    let loaded = load_files(experiment, base_dir)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .build()
        .map_err(|e| SimError::Config(format!("thread pool: {e}")))?;
    pool.install(|| {
        let seeds: Vec<(u64, SeedData)> = experiment
            .seeds
            .par_iter()
            .map(|&seed| Ok((seed, prepare_data(experiment, loaded.as_ref(), seed)?)))
            .collect::<Result<_, SimError>>()?;
        experiment
            .points()
            .into_par_iter()
            .map(|point| {
                let data = seeds
                    .iter()
                    .find(|(seed, _)| *seed == point.seed)
                    .map(|(_, data)| data)
                    .ok_or_else(|| SimError::Config(format!("seed {} not prepared", point.seed)))?;
                let result = run_point(experiment, point, data).map_err(|e| {
                    let at = labels(experiment, &point).map_or_else(
                        |_| format!("{point:?}"),
                        |l| format!("{} / {} / seed {}", l.aggregator, l.attack, point.seed),
                    );
                    SimError::Config(format!("grid point {at}: {e}"))
                })?;
                on_done(&result);
                Ok(result)
            })
            .collect()
    })
}

/// Labels of a grid point.
pub fn labels(experiment: &Experiment, point: &GridPoint) -> Result<RunLabels, SimError> {
    let aggregator = Aggregator::try_from(&experiment.aggregators[point.aggregator])
        .map_err(|e| SimError::Config(format!("aggregators[{}]: {e}", point.aggregator)))?;
    Ok(RunLabels {
        aggregator: aggregator.to_string(),
        attack: experiment.attacks[point.attack].name().to_string(),
        fraction: experiment.attacker_fractions[point.fraction],
        partition: experiment.partitions[point.partition].to_string(),
        privacy: experiment.privacy[point.privacy].label(),
        dropouts: experiment.dropouts[point.dropouts].label(),
    })
}

fn run_point(
    experiment: &Experiment,
    point: GridPoint,
    data: &SeedData,
) -> Result<RunResult, SimError> {
    let seed = point.seed;
    let schema = experiment.data.schema();
    let architecture = architecture_for(&experiment.model, &schema)?;
    let clip_norm = experiment.clip_norm as f32;
    let settings = LocalSettings {
        architecture: architecture.clone(),
        optimizer: optimizer_for(&experiment.training)?,
        schedule: schedule_for(&experiment.training, seed),
        clip_norm,
        max_examples: experiment.training.max_examples as usize,
    };
    let clients = experiment.clients as usize;
    let shards = partition(
        data.pool
            .labels()
            .as_slice()
            .ok_or_else(|| SimError::Config("labels not contiguous".into()))?,
        data.pool.classes(),
        clients,
        experiment.partitions[point.partition],
        1,
        seed,
    )?;
    let attack = &experiment.attacks[point.attack];
    let attackers = if attack.is_none() {
        0
    } else {
        (experiment.attacker_fractions[point.fraction] * clients as f64).round() as usize
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ATTACKER_SALT);
    let mut order: Vec<usize> = (0..clients).collect();
    order.shuffle(&mut rng);
    let mut is_attacker = vec![false; clients];
    order[..attackers]
        .iter()
        .for_each(|&i| is_attacker[i] = true);
    let client_data = shards
        .iter()
        .zip(&is_attacker)
        .map(|(shard, &attacker)| {
            let data = data.pool.select(shard);
            if attacker {
                attack.poison_data(&data, &mut rng)
            } else {
                Ok(data)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;

    let aggregator = Aggregator::try_from(&experiment.aggregators[point.aggregator])
        .map_err(|e| SimError::Config(format!("aggregators[{}]: {e}", point.aggregator)))?;
    let needs_root = matches!(aggregator.rule(), Rule::FlTrust);
    let policy = SlashingPolicy {
        window: experiment.slashing.window as usize,
        min_flags: experiment.slashing.min_flags as usize,
        fraction: BasisPoints::new((experiment.slashing.fraction * 10_000.0).round() as u16)?,
    };
    let mut tracker = SlashingTracker::new(policy)?;
    let settle = SettleParams {
        clip_norm: experiment.clip_norm,
        round_budget: experiment.rewards.round_budget,
        duplicate_threshold: experiment.scoring.duplicate_threshold,
        attribution_significance: experiment.scoring.attribution_significance,
    };
    let secure = experiment.privacy[point.privacy]
        .quantization(experiment.clip_norm, experiment.training.max_examples)?
        .map(|params| SecureSetup::new(clients, params, seed))
        .transpose()?;
    let rates = experiment.dropouts[point.dropouts];
    let mut attribution = GroupAttribution::new();
    let mut dropout_rng = ChaCha8Rng::seed_from_u64(seed ^ DROPOUT_SALT);
    let mut stakes = vec![experiment.rewards.stake; clients];
    let mut slashed = vec![false; clients];
    let mut population = Population::new(settings, client_data, data.validation.clone(), seed)?;
    let mut previous: Option<Vec<f32>> = None;
    let mut cohort_rng = ChaCha8Rng::seed_from_u64(seed ^ COHORT_SALT);
    let mut attack_rng = ChaCha8Rng::seed_from_u64(seed ^ ATTACKER_SALT.rotate_left(17));
    let mut rounds = Vec::with_capacity(experiment.rounds as usize);

    for round in 1..=experiment.rounds {
        let mut active: Vec<usize> = (0..clients).filter(|&i| !slashed[i]).collect();
        active.shuffle(&mut cohort_rng);
        active.truncate(experiment.clients_per_round as usize);
        active.sort_unstable();
        // Under secure aggregation only clients placed in a group take part.
        let grouping = match &secure {
            Some(setup) => setup.group(&active, round)?,
            None => None,
        };
        let cohort = match (&secure, &grouping) {
            (None, _) => active,
            (Some(_), None) => Vec::new(),
            (Some(_), Some(grouping)) => {
                let mut members = grouping.groups().concat();
                members.sort_unstable();
                members
            }
        };
        if cohort.is_empty() {
            break;
        }
        let (honest, adversarial): (Vec<usize>, Vec<usize>) =
            cohort.iter().partition(|&&i| !is_attacker[i]);

        let mut updates: Vec<Option<Vec<f32>>> = vec![None; clients];
        let mut weights = vec![0.0f32; clients];
        let trained: Vec<(usize, crate::federated::ClientUpdate)> = cohort
            .par_iter()
            .filter(|&&i| !is_attacker[i] || attack.trains())
            .map(|&i| Ok((i, population.local_update(i, seed)?)))
            .collect::<Result<_, SimError>>()?;
        for (i, update) in trained {
            weights[i] = update.weight;
            updates[i] = Some(update.update);
        }
        if !adversarial.is_empty() {
            let dim = architecture.num_params();
            let honest_matrix = stack(honest.iter().filter_map(|&i| updates[i].as_deref()), dim)?;
            let own: Vec<Vec<f32>> = adversarial
                .iter()
                .map(|&i| updates[i].take().unwrap_or_else(|| vec![0.0; dim]))
                .collect();
            let crafted = attack.craft(own, honest_matrix.view(), clip_norm, &mut attack_rng)?;
            for (&i, update) in adversarial.iter().zip(crafted) {
                // Attackers claim as many examples as the cap allows.
                weights[i] = experiment.training.max_examples as f32;
                updates[i] = Some(update);
            }
        }

        let mut drop_from: Vec<Option<Phase>> = vec![None; clients];
        for &i in &cohort {
            drop_from[i] = draw_dropout(&rates, secure.is_some(), &mut dropout_rng);
        }
        let dim = architecture.num_params();
        let root = if needs_root {
            Some(
                population
                    .train_update(&data.root, seed ^ ROOT_SALT)?
                    .update,
            )
        } else {
            None
        };
        let context = RoundContext {
            root_update: root.as_deref().map(ndarray::ArrayView1::from),
            previous_aggregate: previous.as_deref().map(ndarray::ArrayView1::from),
            seed: seed ^ u64::from(round),
        };
        let (scored, aggregate, scores, aggregator_inputs, failed_groups) =
            match (&secure, &grouping) {
                (Some(setup), Some(grouping)) => {
                    let outcome = setup.aggregate_groups(
                        grouping,
                        round,
                        &Contributions {
                            updates: &updates,
                            weights: &weights,
                            drop_from: &drop_from,
                            dimension: dim,
                        },
                    )?;
                    let means = stack(outcome.sums.iter().map(|sum| sum.mean.as_slice()), dim)?;
                    let group_weights: Vec<f32> =
                        outcome.sums.iter().map(|sum| sum.weight).collect();
                    let aggregate =
                        aggregate_rows(&aggregator, means.view(), &group_weights, &context)?;
                    let (scored, scores, _) = score_groups(
                        &settle,
                        &GroupRoundInputs {
                            sums: &outcome.sums,
                            means: means.view(),
                            weights: &group_weights,
                            aggregate: aggregate.as_ref(),
                            aggregator: &aggregator,
                            context: &context,
                        },
                        &mut attribution,
                    )?;
                    (
                        scored,
                        aggregate,
                        scores,
                        outcome.sums.len(),
                        outcome.failed_groups,
                    )
                }
                _ => {
                    // Clients that dropped before the upload deliver nothing.
                    let delivered: Vec<usize> = cohort
                        .iter()
                        .copied()
                        .filter(|&i| drop_from[i].is_none())
                        .collect();
                    // The coordinator refuses updates over the bound before aggregating.
                    let bound = f64::from(clip_norm)
                        * (1.0 + fedstake_rewards::slashing::NORM_BOUND_TOLERANCE);
                    let admitted: Vec<usize> = delivered
                        .iter()
                        .copied()
                        .filter(|&i| updates[i].as_deref().map_or(0.0, l2_norm) <= bound)
                        .collect();
                    let matrix =
                        stack(admitted.iter().filter_map(|&i| updates[i].as_deref()), dim)?;
                    let admitted_weights: Vec<f32> = admitted.iter().map(|&i| weights[i]).collect();
                    let aggregate =
                        aggregate_rows(&aggregator, matrix.view(), &admitted_weights, &context)?;
                    // The sponsor measures harm on its own validation data.
                    let validation_loss = |delta: &[f32]| {
                        population
                            .validation_loss_with(delta)
                            .map_err(|e| SettleError::ValidationLoss(Box::new(e)))
                    };
                    let scores = score_round(
                        &settle,
                        &RoundInputs {
                            cohort: &delivered,
                            updates: &updates,
                            admitted: &admitted,
                            admitted_updates: matrix.view(),
                            admitted_weights: &admitted_weights,
                            aggregate: aggregate.as_ref(),
                            aggregator: &aggregator,
                            context: &context,
                            validation_loss: Some(&validation_loss),
                        },
                    )?;
                    (delivered, aggregate, scores, admitted.len(), 0)
                }
            };
        if let Some(aggregate) = &aggregate {
            let update = aggregate
                .update
                .as_slice()
                .ok_or_else(|| SimError::Config("aggregate not contiguous".into()))?;
            population.apply(update);
        }
        let evaluation = population.evaluate()?;
        let backdoor_success = match attack {
            Attack::Backdoor(backdoor) => Some(backdoor.success_rate_of_model(
                &architecture,
                population.global(),
                population.validation(),
            )?),
            _ => None,
        };

        let RoundScores {
            payouts,
            dust,
            observations,
            accepted,
            rejected,
        } = scores;
        if let Some(aggregate) = &aggregate {
            previous = Some(aggregate.update.to_vec());
        }
        let (mut rewards_honest, mut rewards_attackers) = (0u128, 0u128);
        for (&i, &paid) in scored.iter().zip(&payouts) {
            if is_attacker[i] {
                rewards_attackers += paid
            } else {
                rewards_honest += paid
            }
        }
        let (mut slashed_honest, mut slashed_attackers) = (0, 0);
        for (&i, observation) in scored.iter().zip(&observations) {
            if let Some(decision) = tracker.record(i, u64::from(round), observation, stakes[i])? {
                stakes[i] -= decision.amount;
                slashed[i] = true;
                if is_attacker[i] {
                    slashed_attackers += 1
                } else {
                    slashed_honest += 1
                }
            }
        }
        rounds.push(RoundRecord {
            round,
            accuracy: evaluation.accuracy,
            loss: evaluation.loss,
            backdoor_success,
            accepted,
            rejected,
            dropped: cohort.len() - scored.len(),
            aggregator_inputs,
            failed_groups,
            rewards_honest,
            rewards_attackers,
            dust,
            slashed_honest,
            slashed_attackers,
        });
    }
    let count = |want_attacker: bool| {
        (0..clients)
            .filter(|&i| slashed[i] && is_attacker[i] == want_attacker)
            .count()
    };
    Ok(RunResult {
        point,
        labels: labels(experiment, &point)?,
        attackers,
        poisoning: attackers > 0 && attack.poisons(),
        rounds,
        honest_slashed: count(false),
        attackers_slashed: count(true),
    })
}

/// The phase a cohort member drops from: a coin per phase at the phase's
/// rate, in protocol order; in plain mode only the upload (`masked_input`).
fn draw_dropout(rates: &DropoutRates, secure: bool, rng: &mut ChaCha8Rng) -> Option<Phase> {
    let phases: &[Phase] = if secure {
        &Phase::ALL
    } else {
        &[Phase::MaskedInput]
    };
    phases
        .iter()
        .copied()
        .find(|&phase| rng.random::<f64>() < rates.rate(phase))
}

/// Runs the aggregator on the rows; `None` when there are none or too few
/// for the rule's parameters (the round fails, as the coordinator's would:
/// nothing is applied or paid).
fn aggregate_rows(
    aggregator: &Aggregator,
    rows: ArrayView2<f32>,
    weights: &[f32],
    context: &RoundContext,
) -> Result<Option<Aggregate>, SimError> {
    if rows.nrows() == 0 {
        return Ok(None);
    }
    match aggregator.aggregate(rows, weights, context) {
        Ok(aggregate) => Ok(Some(aggregate)),
        Err(AggregationError::TooFewInputs { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Stacks vectors of dimension `dim` as the rows of a matrix.
fn stack<'a>(rows: impl Iterator<Item = &'a [f32]>, dim: usize) -> Result<Array2<f32>, SimError> {
    let flat: Vec<f32> = rows.flat_map(|r| r.iter().copied()).collect();
    let n = flat.len() / dim.max(1);
    Array2::from_shape_vec((n, dim), flat)
        .map_err(|e| SimError::Config(format!("update matrix: {e}")))
}
