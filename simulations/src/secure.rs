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
//! The survivors are then scored from group attribution by
//! [`fedstake_rewards::settle::score_groups`], the coordinator's code.

use fedstake_rewards::settle::GroupSum;
use fedstake_secure_agg::graph::GroupTopology;
use fedstake_secure_agg::grouping::{Grouping, GroupingError, RoundId, assign_groups};
use fedstake_secure_agg::identity::Identity;
use fedstake_secure_agg::memory::MemoryGroup;
use fedstake_secure_agg::quantize::{QuantizationParams, quantize, weighted_mean};
use fedstake_secure_agg::session::Phase;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;

use crate::SimError;

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

/// What the groups of one round gave.
#[derive(Debug, Clone, PartialEq)]
pub struct SecureRound {
    /// Sums of the groups that completed, in group order.
    pub sums: Vec<GroupSum<usize>>,
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
        let outcomes: Vec<Option<GroupSum<usize>>> = (0..grouping.groups().len())
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
    ) -> Result<Option<GroupSum<usize>>, SimError> {
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
