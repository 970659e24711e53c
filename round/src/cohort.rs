//! Who takes part in an attempt: the cohort drawn from the eligible clients,
//! and under secure aggregation its split into groups.
//!
//! Both are deterministic functions of public data (the task, the round,
//! the attempt, the reputation every settled round implies, and the model
//! the round starts from), so anyone holding those re-derives them.

use fedstake_aggregation::Model;
use fedstake_protocol::spec::Selection;
use fedstake_secure_agg::grouping::{Grouping, GroupingError, RoundId, assign_groups};
use rand::SeedableRng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};

use crate::{Plan, RoundState};

/// Floor of a client's weight in a reputation-weighted draw, so a client
/// with no reputation yet can still be drawn.
const REPUTATION_FLOOR: f64 = 0.05;

/// Draws up to `cohort.size` of the `eligible` clients (in any order) for
/// attempt `attempt` of `round`: uniformly, or weighted by reputation, from
/// a stream seeded by `task`, the round and the attempt. The cohort comes
/// back ascending.
pub fn draw_cohort<P: Ord + Clone + std::fmt::Debug>(
    plan: &Plan,
    state: &RoundState<P>,
    eligible: &[P],
    task: &[u8; 32],
    round: u64,
    attempt: u32,
) -> Vec<P> {
    let mut eligible = eligible.to_vec();
    eligible.sort();
    eligible.dedup();
    let size = plan.cohort_size().min(eligible.len());
    let mut seed = Sha256::new();
    seed.update(b"fedstake/cohort");
    seed.update(task);
    seed.update(round.to_be_bytes());
    seed.update(attempt.to_be_bytes());
    let mut rng = ChaCha20Rng::from_seed(seed.finalize().into());
    let mut cohort: Vec<P> = match plan.selection() {
        Selection::Uniform => eligible.choose_multiple(&mut rng, size).cloned().collect(),
        Selection::Reputation => eligible
            .choose_multiple_weighted(&mut rng, size, |p| REPUTATION_FLOOR + state.reputation(p))
            .map(|chosen| chosen.cloned().collect())
            .unwrap_or_else(|_| eligible[..size].to_vec()),
    };
    cohort.sort();
    cohort
}

/// The public seed of a round's grouping: derived from the model the round
/// starts from, so anyone holding it can re-derive the groups.
pub fn grouping_seed(global: &Model) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"fedstake/grouping/v1");
    hasher.update(global.content_hash());
    hasher.finalize().into()
}

/// Splits `cohort` into the plan's groups for `round` (plain tasks have
/// one group per client and never call this).
pub fn group_cohort<P: Ord + Clone>(
    plan: &Plan,
    cohort: &[P],
    global: &Model,
    round: &RoundId,
) -> Result<Grouping<P>, GroupingError> {
    let group_size = plan
        .secagg()
        .map_or(1, |secagg| secagg.quantization.summands);
    assign_groups(cohort, group_size, &grouping_seed(global), round)
}
