//! The `secagg` privacy mode of a lab round: each group of the engine's
//! grouping runs SecAgg+ through memory with real keys, signatures and
//! masks, under the plan's topology, threshold and fixed-point encoding.
//!
//! Each run gives every client an Ethereum identity and the coordinator one.
//! Each group member quantizes its update with its weight appended, and the
//! group runs the whole protocol through memory (`MemoryGroup`), with each
//! member dropping in the phase its dropout coins chose. A group that loses
//! more than its tolerance gives no sum. What comes out is what the
//! coordinator's attempt hands to the engine's settlement: each completed
//! group's weighted mean with its survivors, and why the others failed.

use fedstake_rewards::settle::GroupSum;
use fedstake_round::SecaggPlan;
use fedstake_secure_agg::grouping::{Grouping, RoundId};
use fedstake_secure_agg::identity::Identity;
use fedstake_secure_agg::memory::MemoryGroup;
use fedstake_secure_agg::quantize::{quantize, weighted_mean};
use fedstake_secure_agg::session::Phase;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;

use crate::SimError;

/// Salt of the random streams of the secure-aggregation sessions.
const SECAGG_SALT: u64 = 0x5EC_A66;

/// The identities of one run in `secagg` mode.
pub struct SecureSetup {
    identities: Vec<Identity>,
    server: Identity,
    seed: u64,
}

/// Every client's contribution to a round, indexed by client.
#[derive(Debug, Clone, Copy)]
pub struct Contributions<'a> {
    /// Updates (`None`: no update, sent as zeros).
    pub updates: &'a [Option<Vec<f32>>],
    /// Weights (capped example counts).
    pub weights: &'a [u32],
    /// The phase each client drops from, if it does.
    pub drop_from: &'a [Option<Phase>],
    /// Dimension of the updates.
    pub dimension: usize,
}

/// What the groups of one attempt gave.
#[derive(Debug, Clone, PartialEq)]
pub struct SecureRound {
    /// Sums of the groups that completed, in group order.
    pub sums: Vec<GroupSum<usize>>,
    /// Why each other group gave no sum.
    pub failures: Vec<String>,
}

impl SecureSetup {
    /// Identities for `clients` clients and the coordinator, drawn from `seed`.
    pub fn new(clients: usize, seed: u64) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed ^ SECAGG_SALT);
        Self {
            identities: (0..clients).map(|_| Identity::generate(&mut rng)).collect(),
            server: Identity::generate(&mut rng),
            seed,
        }
    }

    /// Runs every group's protocol, in parallel.
    pub fn aggregate_groups(
        &self,
        plan: &SecaggPlan,
        grouping: &Grouping<usize>,
        round: &RoundId,
        contributions: &Contributions<'_>,
    ) -> Result<SecureRound, SimError> {
        let outcomes: Vec<Result<GroupSum<usize>, String>> = (0..grouping.groups().len())
            .into_par_iter()
            .map(|group| self.run_group(plan, grouping, group, round, contributions))
            .collect::<Result<_, SimError>>()?;
        let mut sums = Vec::new();
        let mut failures = Vec::new();
        for (group, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                Ok(sum) => sums.push(sum),
                Err(reason) => failures.push(format!("group {group}: {reason}")),
            }
        }
        Ok(SecureRound { sums, failures })
    }

    fn run_group(
        &self,
        plan: &SecaggPlan,
        grouping: &Grouping<usize>,
        group: usize,
        round: &RoundId,
        contributions: &Contributions<'_>,
    ) -> Result<Result<GroupSum<usize>, String>, SimError> {
        let Contributions {
            updates,
            weights,
            drop_from,
            dimension,
        } = *contributions;
        let mut rng = ChaCha20Rng::seed_from_u64(
            self.seed
                ^ SECAGG_SALT.rotate_left(29)
                ^ (round.round << 32)
                ^ (u64::from(round.attempt) << 48)
                ^ group as u64,
        );
        let config = grouping
            .session_config(
                group,
                round,
                &plan.topology,
                dimension + 1,
                self.server.address(),
                |&client| self.identities[client].address(),
            )
            .map_err(|e| SimError::Config(format!("grouping: {e}")))?;
        let params = &plan.quantization;
        let members = &grouping.groups()[group];
        let zeros = vec![0.0; dimension];
        let inputs = members
            .iter()
            .map(|&client| {
                let update = updates[client].as_deref().unwrap_or(&zeros);
                let weight = weights[client].clamp(1, params.max_weight);
                let quantized = quantize(update, weight, params, &mut rng)
                    .map_err(|e| SimError::Config(format!("quantizing client {client}: {e}")))?;
                Ok((self.identities[client].clone(), quantized))
            })
            .collect::<Result<Vec<_>, SimError>>()?;
        let dropouts = members.iter().map(|&client| drop_from[client]).collect();
        let mut memory =
            MemoryGroup::start(config, self.server.clone(), inputs, dropouts, &mut rng)
                .map_err(|e| SimError::Config(format!("secure aggregation: {e}")))?;
        // Too many dropouts: the group gives no sum.
        let sum = match memory.run(&mut rng) {
            Ok(sum) => sum,
            Err(error) => return Ok(Err(error.to_string())),
        };
        let mean = weighted_mean(&sum, params)
            .map_err(|e| SimError::Config(format!("group mean: {e}")))?;
        let weight = sum.last().copied().unwrap_or(0) as f32;
        let survivors = memory
            .server()
            .survivors()
            .iter()
            .map(|&index| members[index as usize])
            .collect();
        Ok(Ok(GroupSum {
            members: survivors,
            mean,
            weight,
        }))
    }
}
