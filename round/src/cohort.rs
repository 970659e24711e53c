//! Who takes part in an attempt: the cohort drawn from the eligible clients,
//! and under secure aggregation its split into groups.
//!
//! Both are deterministic functions of public data (the task, the round,
//! the attempt, the reputation every settled round implies, and the model
//! the round starts from), so anyone holding those re-derives them.
//!
//! Under secure aggregation a client's input of a round may reach at most
//! one sum ([`SpentInputs`]): a later attempt of the round is drawn only
//! from clients whose masked input reached no earlier attempt.

use std::collections::BTreeSet;

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

/// The clients whose masked input of the current round reached an attempt
/// ([`crate::Attempt::finish`] lists them).
///
/// A client retrains the same update when a round runs again, and every
/// attempt regroups; two sums over different member sets that share a
/// client's input give its input by difference (a few attempts give every
/// client's, by least squares). So the rule is *one input per client per
/// round*: the client refuses every further attempt of a round once it has
/// sent a masked input for it (its history records that before sending),
/// and the coordinator and the lab draw later attempts of the round only
/// from the other clients. When too few are left for a cohort, the round
/// is skipped ([`crate::skip_round`]): nothing is applied or paid.
///
/// Why it is sound: every sum the coordinator can obtain for a round is over
/// the survivors of one group of one attempt, and a client's input of the
/// round sits in at most one such group; within a group the consistency
/// check and the threshold ([`fedstake_secure_agg::graph`]) keep the
/// coordinator from opening more than one sum. A coordinator that ignores
/// this set gains nothing: the clients refuse on their own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpentInputs<P> {
    spent: BTreeSet<P>,
}

impl<P: Ord + Clone> SpentInputs<P> {
    /// Nobody has spent an input yet (a new round).
    pub fn new() -> Self {
        SpentInputs {
            spent: BTreeSet::new(),
        }
    }

    /// Adds the members whose masked input reached an attempt.
    pub fn record(&mut self, members: impl IntoIterator<Item = P>) {
        self.spent.extend(members);
    }

    /// Whether `client` has spent its input of the round.
    pub fn contains(&self, client: &P) -> bool {
        self.spent.contains(client)
    }

    /// The `eligible` clients a further attempt of the round may draw
    /// from, or `None` when the round must be skipped: some inputs of the
    /// round are spent and fewer than `cohort.min` clients are left.
    pub fn remaining(&self, plan: &Plan, eligible: &[P]) -> Option<Vec<P>> {
        let unspent: Vec<P> = eligible
            .iter()
            .filter(|client| !self.spent.contains(client))
            .cloned()
            .collect();
        (self.spent.is_empty() || unspent.len() >= plan.cohort_min()).then_some(unspent)
    }
}
