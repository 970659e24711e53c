//! The `secagg` privacy mode of a lab round: grouped SecAgg+ with real keys,
//! signatures and masks, and rewards and slashing from group attribution.
//!
//! Each run gives every client an Ethereum identity and the coordinator one.
//! Each round the cohort is grouped by the keyed shuffle of
//! `fedstake_secure_agg::grouping` (clients left over sit the round out); each
//! group member quantizes its update with its weight appended, and the group
//! runs the whole protocol through memory (`MemoryGroup`), with each member
//! dropping in the phase its dropout coins chose. A group that loses more
//! than its tolerance gives no sum. The robust aggregator then sees one row
//! per group: the weighted mean of the group's updates, with the group's
//! summed weight.
//!
//! Scoring under secure aggregation (see `fedstake_secure_agg::attribution`
//! for what it can and cannot attribute): a group's quality is its trust (the
//! positive part of its mean's cosine to the aggregate, 0 for a
//! near-duplicate) times its verdict weight; a group is *flagged* when the
//! aggregator rejected it as an outlier and its mean points away from the
//! aggregate of the other groups. Each survivor is paid in proportion to its
//! group's quality this round times its attribution quality (the mean quality
//! of all its groups so far), equally within a group since single weights are
//! secret. A flagged group counts against a member, as slashing evidence, only
//! while the member's groups were flagged significantly more often than other
//! groups (`scoring.attribution_significance`).

use fedstake_aggregation::norm::l2_norm;
use fedstake_aggregation::quality::{DuplicateDetector, RoundContributions};
use fedstake_aggregation::{Aggregate, Aggregator, RoundContext};
use fedstake_rewards::{RoundObservation, Score, split_budget};
use fedstake_secure_agg::attribution::{GroupAttribution, GroupResult};
use fedstake_secure_agg::graph::GroupTopology;
use fedstake_secure_agg::grouping::{Grouping, GroupingError, RoundId, assign_groups};
use fedstake_secure_agg::identity::Identity;
use fedstake_secure_agg::memory::MemoryGroup;
use fedstake_secure_agg::quantize::{QuantizationParams, quantize, weighted_mean};
use fedstake_secure_agg::session::Phase;
use ndarray::ArrayView2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;

use crate::SimError;
use crate::experiment::Experiment;
use crate::scoring::{RoundScores, evidence_alignment};

/// Salt of the random streams of the secure-aggregation sessions.
const SECAGG_SALT: u64 = 0x5EC_A66;

/// What stays fixed over one run in `secagg` mode.
pub struct SecureSetup {
    identities: Vec<Identity>,
    server: Identity,
    task_id: [u8; 32],
    grouping_seed: [u8; 32],
    params: QuantizationParams,
    topology: GroupTopology,
    seed: u64,
}

/// Every client's contribution to a round, indexed by client.
#[derive(Debug, Clone, Copy)]
pub struct Contributions<'a> {
    /// Updates (`None`: no update, sent as zeros).
    pub updates: &'a [Option<Vec<f32>>],
    /// Weights (capped example counts).
    pub weights: &'a [f32],
    /// The phase each client drops from, if it does.
    pub drop_from: &'a [Option<Phase>],
    /// Dimension of the updates.
    pub dimension: usize,
}

/// One group's exact sum, as the aggregator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSum {
    /// Clients whose updates are in the sum (the group's survivors).
    pub members: Vec<usize>,
    /// Weighted mean of their clipped updates.
    pub mean: Vec<f32>,
    /// Their summed weight.
    pub weight: f32,
}

/// What the groups of one round gave.
#[derive(Debug, Clone, PartialEq)]
pub struct SecureRound {
    /// Sums of the groups that completed, in group order.
    pub sums: Vec<GroupSum>,
    /// Groups that lost more members than their tolerance.
    pub failed_groups: usize,
}

impl SecureSetup {
    /// Identities for `clients` clients and the coordinator, drawn from `seed`.
    pub fn new(clients: usize, params: QuantizationParams, seed: u64) -> Result<Self, SimError> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed ^ SECAGG_SALT);
        let topology = GroupTopology::for_group(params.summands)
            .map_err(|e| SimError::Config(format!("secure aggregation: {e}")))?;
        Ok(Self {
            identities: (0..clients).map(|_| Identity::generate(&mut rng)).collect(),
            server: Identity::generate(&mut rng),
            task_id: rng.random(),
            grouping_seed: rng.random(),
            params,
            topology,
            seed,
        })
    }

    fn round_id(&self, round: u32) -> RoundId {
        RoundId {
            task_id: self.task_id,
            round: u64::from(round),
            attempt: 0,
        }
    }

    /// Groups the cohort of `round`; `None` when it cannot fill one group.
    pub fn group(&self, cohort: &[usize], round: u32) -> Result<Option<Grouping<usize>>, SimError> {
        match assign_groups(
            cohort,
            self.params.summands,
            &self.grouping_seed,
            &self.round_id(round),
        ) {
            Ok(grouping) => Ok(Some(grouping)),
            Err(GroupingError::CohortTooSmall { .. }) => Ok(None),
            Err(e) => Err(SimError::Config(format!("grouping: {e}"))),
        }
    }

    /// Runs every group's protocol, in parallel.
    pub fn aggregate_groups(
        &self,
        grouping: &Grouping<usize>,
        round: u32,
        contributions: &Contributions<'_>,
    ) -> Result<SecureRound, SimError> {
        let round_id = self.round_id(round);
        let outcomes: Vec<Option<GroupSum>> = (0..grouping.groups().len())
            .into_par_iter()
            .map(|group| self.run_group(grouping, group, &round_id, contributions))
            .collect::<Result<_, SimError>>()?;
        let failed_groups = outcomes.iter().filter(|o| o.is_none()).count();
        Ok(SecureRound {
            sums: outcomes.into_iter().flatten().collect(),
            failed_groups,
        })
    }

    fn run_group(
        &self,
        grouping: &Grouping<usize>,
        group: usize,
        round_id: &RoundId,
        contributions: &Contributions<'_>,
    ) -> Result<Option<GroupSum>, SimError> {
        let Contributions {
            updates,
            weights,
            drop_from,
            dimension,
        } = *contributions;
        let mut rng = ChaCha20Rng::seed_from_u64(
            self.seed ^ SECAGG_SALT.rotate_left(29) ^ (round_id.round << 32) ^ group as u64,
        );
        let config = grouping
            .session_config(
                group,
                round_id,
                &self.topology,
                dimension + 1,
                self.server.address(),
                |&client| self.identities[client].address(),
            )
            .map_err(|e| SimError::Config(format!("grouping: {e}")))?;
        let members = &grouping.groups()[group];
        let zeros = vec![0.0; dimension];
        let inputs = members
            .iter()
            .map(|&client| {
                let update = updates[client].as_deref().unwrap_or(&zeros);
                // Weights are example counts capped at max_weight; at least 1.
                let weight = (weights[client].round() as u32).clamp(1, self.params.max_weight);
                let quantized = quantize(update, weight, &self.params, &mut rng)
                    .map_err(|e| SimError::Config(format!("quantizing client {client}: {e}")))?;
                Ok((self.identities[client].clone(), quantized))
            })
            .collect::<Result<Vec<_>, SimError>>()?;
        let plan = members.iter().map(|&client| drop_from[client]).collect();
        let mut memory = MemoryGroup::start(config, self.server.clone(), inputs, plan, &mut rng)
            .map_err(|e| SimError::Config(format!("secure aggregation: {e}")))?;
        // Too many dropouts: the group gives no sum (the coordinator would
        // retry it with a new attempt; the lab counts it as failed).
        let Ok(sum) = memory.run(&mut rng) else {
            return Ok(None);
        };
        let mean = weighted_mean(&sum, &self.params)
            .map_err(|e| SimError::Config(format!("group mean: {e}")))?;
        let weight = sum.last().copied().unwrap_or(0) as f32;
        let survivors = memory
            .server()
            .survivors()
            .iter()
            .map(|&index| members[index as usize])
            .collect();
        Ok(Some(GroupSum {
            members: survivors,
            mean,
            weight,
        }))
    }
}

/// The aggregated groups of one round, for scoring.
pub struct GroupRoundInputs<'a> {
    /// The groups, in the rows' order.
    pub sums: &'a [GroupSum],
    /// Their means, one per row.
    pub means: ArrayView2<'a, f32>,
    /// Their summed weights.
    pub weights: &'a [f32],
    /// The aggregate of the means, if the round did not fail.
    pub aggregate: Option<&'a Aggregate>,
    /// The aggregator.
    pub aggregator: &'a Aggregator,
    /// The round's context.
    pub context: &'a RoundContext<'a>,
}

/// Scores the survivors of the aggregated groups from group attribution (see
/// the module documentation), records the groups in `attribution`, splits the
/// budget and returns the survivors in group order with their scores.
pub fn score_groups(
    experiment: &Experiment,
    inputs: &GroupRoundInputs,
    attribution: &mut GroupAttribution<usize>,
) -> Result<(Vec<usize>, RoundScores), SimError> {
    let clients: Vec<usize> = inputs
        .sums
        .iter()
        .flat_map(|sum| sum.members.iter().copied())
        .collect();
    let Some(aggregate) = inputs.aggregate else {
        // The round failed: nothing counted, nothing shown about anyone.
        let observations = clients
            .iter()
            .map(|_| RoundObservation {
                update_norm: 0.0,
                norm_bound: experiment.clip_norm,
                rejected: false,
                alignment: 0.0,
                near_duplicate_cosine: None,
                validation_harm: None,
            })
            .collect();
        let split = split_budget(
            experiment.rewards.round_budget,
            &vec![Score::ZERO; clients.len()],
        );
        let rejected = clients.len();
        return Ok((
            clients,
            RoundScores {
                payouts: split.payouts,
                dust: split.dust,
                observations,
                accepted: 0,
                rejected,
            },
        ));
    };
    let detector = DuplicateDetector::new(experiment.scoring.duplicate_threshold)?;
    let qualities = RoundContributions {
        updates: inputs.means,
        reference: aggregate.update.view(),
        weights: inputs.weights,
        verdicts: &aggregate.verdicts,
        loss_improvements: None,
    }
    .score(&detector)?;
    let individual = inputs.aggregator.bucket_size().is_none_or(|size| size <= 1);
    let mut groups = Vec::with_capacity(inputs.sums.len());
    for (row, quality) in qualities.iter().enumerate() {
        let verdict = aggregate.verdicts[row];
        let outlier = individual && verdict.is_outlier();
        let alignment = evidence_alignment(
            inputs.aggregator,
            inputs.means,
            inputs.weights,
            inputs.context,
            (row, outlier),
            quality.alignment,
        );
        let alignment = if alignment.is_finite() {
            alignment
        } else {
            0.0
        };
        groups.push((
            quality.trust * f64::from(verdict.weight),
            outlier && alignment < 0.0,
            alignment,
            verdict.is_rejected(),
        ));
    }
    let results: Vec<GroupResult<'_, usize>> = inputs
        .sums
        .iter()
        .zip(&groups)
        .map(|(sum, &(quality, flagged, _, _))| GroupResult {
            members: &sum.members,
            quality: quality.clamp(0.0, 1.0),
            flagged,
        })
        .collect();
    attribution
        .record_round(&results)
        .map_err(|e| SimError::Config(format!("attribution: {e}")))?;
    let significance = experiment.scoring.attribution_significance;
    let mut scores = Vec::with_capacity(clients.len());
    let mut observations = Vec::with_capacity(clients.len());
    let mut accepted = 0;
    for (sum, &(quality, flagged, alignment, rejected)) in inputs.sums.iter().zip(&groups) {
        let norm = l2_norm(&sum.mean);
        for member in &sum.members {
            let evidence = attribution.evidence(member).ok_or_else(|| {
                SimError::Config(format!("client {member} missing from the attribution"))
            })?;
            if !rejected {
                accepted += 1;
            }
            scores.push(Score::from_f64(quality.clamp(0.0, 1.0) * evidence.quality)?);
            observations.push(RoundObservation {
                // All the coordinator sees of the member's update.
                update_norm: norm,
                norm_bound: experiment.clip_norm,
                rejected: flagged && evidence.is_suspect(significance),
                alignment: alignment.clamp(-1.0, 1.0),
                near_duplicate_cosine: None,
                validation_harm: None,
            });
        }
    }
    let split = split_budget(experiment.rewards.round_budget, &scores);
    let rejected = clients.len() - accepted;
    Ok((
        clients,
        RoundScores {
            payouts: split.payouts,
            dust: split.dust,
            observations,
            accepted,
            rejected,
        },
    ))
}
