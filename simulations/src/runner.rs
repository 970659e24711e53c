//! Running an experiment grid: one simulated task per grid point, in
//! parallel over points, each a second driver of the round engine
//! (`fedstake_round`) in memory.
//!
//! A grid point is a task spec ([`Experiment::task_spec`]) and so a
//! [`Plan`]. A round: the engine draws the cohort from the clients whose
//! stake still meets the minimum (and, under secure aggregation, its
//! groups); honest clients train from the global model and clip their
//! update to the bound; attackers craft theirs (omniscient attacks see the
//! honest updates); each cohort member may drop, phase by phase, at the
//! point's dropout rates. The members' signed updates, or under secure
//! aggregation their SecAgg+ sessions, go through the engine's attempt in
//! memory ([`crate::driver`]), and what it collected goes to the engine's
//! [`settle`]: the coordinator's aggregation, scoring, payout split and
//! slashing. An attempt that gives nothing usable is run
//! again under the next attempt number, as the coordinator does. A slashed
//! client's stake falls below the minimum, so it is not drawn again.

use std::collections::BTreeMap;
use std::path::Path;

use alloy_primitives::{Address, U256};
use alloy_signer_local::PrivateKeySigner;
use fedstake_aggregation::{Aggregator, Model};
use fedstake_protocol::spec::DEFAULT_CHAIN_ID;
use fedstake_protocol::submission_domain;
use fedstake_round::{
    AttemptInputs, Collected, Contributions, MAX_ATTEMPTS, Plan, RoundState, SpentInputs, evaluate,
    root_update, settle,
};
use fedstake_secure_agg::identity::Identity;
use fedstake_secure_agg::session::Phase;
use fedstake_training::data::{DataSource, Dataset, Schema, SyntheticSpec, synthetic};
use ndarray::Array2;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::{ChaCha8Rng, ChaCha20Rng};
use rayon::prelude::*;

use crate::SimError;
use crate::attack::Attack;
use crate::driver::{Draw, Lab, MemberInput};
use crate::experiment::{DataConfig, DropoutRates, Experiment, GridPoint};
use crate::federated::Population;
use crate::partition::partition;

/// Salts that keep the random streams of one seed independent.
const ATTACKER_SALT: u64 = 0xA77A_C4E5;
const DROPOUT_SALT: u64 = 0xD40_9047;
const KEYS_SALT: u64 = 0x4E75;

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

/// Everything fixed over one run: the engine's driver, the clients and who
/// attacks.
struct Run<'a> {
    experiment: &'a Experiment,
    point: GridPoint,
    lab: Lab,
    data: &'a SeedData,
    population: Population,
    is_attacker: Vec<bool>,
    /// Each client's address (the engine's participant id).
    addresses: Vec<Address>,
    index_of: BTreeMap<Address, usize>,
}

/// The clients' keys of a run: deterministic in the seed, so a run is
/// reproducible.
fn client_keys(clients: usize, seed: u64) -> Result<(Vec<PrivateKeySigner>, Identity), SimError> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed ^ KEYS_SALT);
    let signers = (0..clients)
        .map(|_| {
            let secret: [u8; 32] = rng.random();
            PrivateKeySigner::from_bytes(&secret.into())
                .map_err(|e| SimError::Config(format!("client key: {e}")))
        })
        .collect::<Result<_, _>>()?;
    Ok((signers, Identity::generate(&mut rng)))
}

fn run_point(
    experiment: &Experiment,
    point: GridPoint,
    data: &SeedData,
) -> Result<RunResult, SimError> {
    let seed = point.seed;
    let plan = Plan::from_spec(&experiment.task_spec(point.aggregator, point.privacy))
        .map_err(|e| SimError::Config(e.to_string()))?;
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
    let (signers, coordinator) = client_keys(clients, seed)?;
    let addresses: Vec<Address> = signers.iter().map(|s| s.address()).collect();
    let index_of = addresses.iter().enumerate().map(|(i, a)| (*a, i)).collect();
    let mut task = [0u8; 32];
    task[24..].copy_from_slice(&seed.to_be_bytes());
    let lab = Lab::new(
        plan.clone(),
        U256::from_be_bytes(task),
        submission_domain(DEFAULT_CHAIN_ID, Address::ZERO),
        coordinator,
        signers,
        seed,
    )?;
    let run = Run {
        experiment,
        point,
        population: Population::new(plan, client_data)?,
        lab,
        data,
        is_attacker,
        addresses,
        index_of,
    };
    run.rounds(attackers)
}

impl Run<'_> {
    fn plan(&self) -> &Plan {
        self.lab.plan()
    }

    fn index(&self, address: &Address) -> usize {
        self.index_of[address]
    }

    fn rounds(&self, attackers: usize) -> Result<RunResult, SimError> {
        let experiment = self.experiment;
        let seed = self.point.seed;
        let clients = experiment.clients as usize;
        let attack = &experiment.attacks[self.point.attack];
        let architecture = self.plan().architecture();
        let mut global = Model::new(architecture.layout(), architecture.init_parameters(seed))
            .map_err(|e| SimError::Config(format!("initial model: {e}")))?;
        let mut state = RoundState::new(self.plan());
        let mut stakes: BTreeMap<Address, u128> = self
            .addresses
            .iter()
            .map(|&a| (a, experiment.rewards.stake))
            .collect();
        let mut slashed = vec![false; clients];
        let mut dropout_rng = ChaCha8Rng::seed_from_u64(seed ^ DROPOUT_SALT);
        let mut attack_rng = ChaCha8Rng::seed_from_u64(seed ^ ATTACKER_SALT.rotate_left(17));
        let mut rounds = Vec::with_capacity(experiment.rounds as usize);
        for round in 1..=u64::from(experiment.rounds) {
            // A slashed client's stake is below the minimum: not eligible.
            let min_stake = self.plan().rewards().min_stake;
            let eligible: Vec<Address> = stakes
                .iter()
                .filter(|(_, stake)| **stake >= min_stake)
                .map(|(a, _)| *a)
                .collect();
            if eligible.is_empty() {
                break;
            }
            let root = if self.plan().needs_root_update() {
                Some(root_update(
                    self.plan(),
                    global.params(),
                    &self.data.root,
                    round,
                )?)
            } else {
                None
            };
            // Like the coordinator, an attempt that gives nothing usable is
            // run again under the next attempt number (a new cohort, new
            // groups and new dropouts), up to the engine's limit.
            // Later attempts draw only from clients whose input of the round
            // reached no earlier one; the round fails when too few are left.
            let mut outcome = None;
            let mut last_cohort = 0;
            let mut failures = 0;
            let mut spent = SpentInputs::new();
            for attempt in 0..MAX_ATTEMPTS {
                let Some(remaining) = spent.remaining(self.plan(), &eligible) else {
                    break;
                };
                let draw = self.lab.draw(&state, &global, &remaining, round, attempt)?;
                let inputs = self.inputs(&draw, &global, &mut dropout_rng, &mut attack_rng)?;
                let Collected {
                    contributions,
                    spent: spent_now,
                    ..
                } = self.lab.collect(&draw, &global, &inputs)?;
                spent.record(spent_now);
                let participant_stakes: BTreeMap<Address, u128> = contributions
                    .participants()
                    .into_iter()
                    .map(|a| (a, stakes[&a]))
                    .collect();
                let settled = settle(
                    self.plan(),
                    &state,
                    &self.data.validation,
                    &AttemptInputs {
                        round,
                        attempt,
                        global: &global,
                        contributions: &contributions,
                        root_update: root.as_deref(),
                        stakes: &participant_stakes,
                    },
                );
                last_cohort = draw.cohort.len();
                if let Contributions::Groups { failures: f, .. } = &contributions {
                    failures += f.len();
                }
                match settled {
                    Ok(settlement) => {
                        outcome = Some(settlement);
                        break;
                    }
                    // An attempt whose cohort, groups and dropouts could not
                    // differ would fail the same way again.
                    Err(_) if !self.retry_can_differ(remaining.len()) => break,
                    Err(_) => {}
                }
            }
            let Some(settlement) = outcome else {
                // The coordinator would stop the task here; the lab records
                // the round as failed (nothing applied or paid) and goes on.
                let evaluation = evaluate(self.plan(), &self.data.validation, global.params())?;
                rounds.push(RoundRecord {
                    round: round as u32,
                    accuracy: evaluation.accuracy,
                    loss: evaluation.loss,
                    backdoor_success: self.backdoor_success(attack, &global)?,
                    accepted: 0,
                    rejected: 0,
                    dropped: last_cohort,
                    aggregator_inputs: 0,
                    failed_groups: failures,
                    rewards_honest: 0,
                    rewards_attackers: 0,
                    dust: self.plan().rewards().round_budget,
                    slashed_honest: 0,
                    slashed_attackers: 0,
                });
                continue;
            };
            let record = settlement.record;
            state = settlement.next;
            global = settlement.model;
            let (mut rewards_honest, mut rewards_attackers) = (0u128, 0u128);
            for (address, paid) in &record.payouts {
                if self.is_attacker[self.index(address)] {
                    rewards_attackers += paid
                } else {
                    rewards_honest += paid
                }
            }
            let (mut slashed_honest, mut slashed_attackers) = (0, 0);
            for (address, amount) in &record.slashes {
                let i = self.index(address);
                if let Some(stake) = stakes.get_mut(address) {
                    *stake = stake.saturating_sub(*amount);
                }
                slashed[i] = true;
                if self.is_attacker[i] {
                    slashed_attackers += 1
                } else {
                    slashed_honest += 1
                }
            }
            rounds.push(RoundRecord {
                round: round as u32,
                accuracy: record.accuracy,
                loss: record.loss,
                backdoor_success: self.backdoor_success(attack, &global)?,
                accepted: record.accepted,
                rejected: record.rejected,
                dropped: last_cohort - record.payouts.len(),
                aggregator_inputs: record.aggregator_inputs,
                failed_groups: failures,
                rewards_honest,
                rewards_attackers,
                dust: record.dust,
                slashed_honest,
                slashed_attackers,
            });
        }
        let count = |want_attacker: bool| {
            (0..clients)
                .filter(|&i| slashed[i] && self.is_attacker[i] == want_attacker)
                .count()
        };
        Ok(RunResult {
            point: self.point,
            labels: labels(experiment, &self.point)?,
            attackers,
            poisoning: attackers > 0 && attack.poisons(),
            rounds,
            honest_slashed: count(false),
            attackers_slashed: count(true),
        })
    }

    /// Whether running a failed attempt again can give another result:
    /// only when the cohort draw has a choice, groups are re-drawn, or
    /// members may drop.
    fn retry_can_differ(&self, eligible: usize) -> bool {
        let rates = self.experiment.dropouts[self.point.dropouts];
        eligible > self.plan().cohort_size()
            || self.plan().secagg().is_some()
            || Phase::ALL.iter().any(|&phase| rates.rate(phase) > 0.0)
    }

    fn backdoor_success(&self, attack: &Attack, global: &Model) -> Result<Option<f64>, SimError> {
        match attack {
            Attack::Backdoor(backdoor) => Ok(Some(backdoor.success_rate_of_model(
                self.plan().architecture(),
                global.params(),
                &self.data.validation,
            )?)),
            _ => Ok(None),
        }
    }

    /// What each member of `draw` brings: honest members train from the
    /// global model, attackers craft their updates (omniscient attacks see
    /// the honest ones), and each throws its dropout coins.
    fn inputs(
        &self,
        draw: &Draw,
        global: &Model,
        dropout_rng: &mut ChaCha8Rng,
        attack_rng: &mut ChaCha8Rng,
    ) -> Result<BTreeMap<Address, MemberInput>, SimError> {
        let experiment = self.experiment;
        let attack = &experiment.attacks[self.point.attack];
        let cohort: Vec<usize> = draw.cohort.iter().map(|a| self.index(a)).collect();
        let (honest, adversarial): (Vec<usize>, Vec<usize>) =
            cohort.iter().partition(|&&i| !self.is_attacker[i]);
        let trained: BTreeMap<usize, (Vec<f32>, u32)> = cohort
            .par_iter()
            .filter(|&&i| !self.is_attacker[i] || attack.trains())
            .map(|&i| {
                let local = self.population.local_update(
                    i,
                    global.params(),
                    draw.round,
                    self.point.seed,
                )?;
                Ok((i, (local.update, local.weight)))
            })
            .collect::<Result<_, SimError>>()?;
        let mut updates = trained;
        let dim = global.params().len();
        if !adversarial.is_empty() {
            let honest_matrix = stack(
                honest
                    .iter()
                    .filter_map(|i| updates.get(i).map(|(u, _)| u.as_slice())),
                dim,
            )?;
            let own: Vec<Vec<f32>> = adversarial
                .iter()
                .map(|i| {
                    updates
                        .remove(i)
                        .map_or_else(|| vec![0.0; dim], |(update, _)| update)
                })
                .collect();
            let crafted = attack.craft(
                own,
                honest_matrix.view(),
                experiment.clip_norm as f32,
                attack_rng,
            )?;
            for (&i, update) in adversarial.iter().zip(crafted) {
                // Attackers claim as many examples as the cap allows.
                updates.insert(i, (update, self.plan().max_weight()));
            }
        }
        let rates = experiment.dropouts[self.point.dropouts];
        let secure = draw.grouping.is_some();
        cohort
            .iter()
            .map(|&i| {
                let (update, weight) = updates
                    .remove(&i)
                    .ok_or_else(|| SimError::Config(format!("client {i} has no update")))?;
                let input = MemberInput {
                    update,
                    weight,
                    drop_from: draw_dropout(&rates, secure, dropout_rng),
                };
                Ok((self.addresses[i], input))
            })
            .collect()
    }
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

/// Stacks vectors of dimension `dim` as the rows of a matrix.
fn stack<'a>(rows: impl Iterator<Item = &'a [f32]>, dim: usize) -> Result<Array2<f32>, SimError> {
    let flat: Vec<f32> = rows.flat_map(|r| r.iter().copied()).collect();
    let n = flat.len() / dim.max(1);
    Array2::from_shape_vec((n, dim), flat)
        .map_err(|e| SimError::Config(format!("update matrix: {e}")))
}
