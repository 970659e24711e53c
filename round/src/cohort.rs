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

/// The public seed of a round's grouping: derived from the content hash of
/// the model the round starts from, so anyone holding it can re-derive the
/// groups.
pub fn grouping_seed(model_hash: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"fedstake/grouping/v1");
    hasher.update(model_hash);
    hasher.finalize().into()
}

/// Splits `cohort` into the plan's groups for `round`, from the model of
/// content hash `model_hash` (plain tasks have one group per client and
/// never call this).
pub fn group_cohort<P: Ord + Clone>(
    plan: &Plan,
    cohort: &[P],
    model_hash: &[u8; 32],
    round: &RoundId,
) -> Result<Grouping<P>, GroupingError> {
    let group_size = plan
        .secagg()
        .map_or(1, |secagg| secagg.quantization.summands);
    assign_groups(cohort, group_size, &grouping_seed(model_hash), round)
}

/// Why a member refuses the group an announcement gives it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeatError {
    /// The announced cohort cannot be grouped by the rule (duplicates, or
    /// too few for one group).
    #[error("the announced cohort: {0}")]
    Grouping(#[from] GroupingError),
    /// The announced cohort is smaller than the task's `cohort.min`: a
    /// coordinator could fill it with its own keys around one victim.
    #[error("the announced cohort has {cohort} members; the task needs at least {needed}")]
    CohortTooSmall {
        /// Members announced.
        cohort: usize,
        /// `cohort.min`.
        needed: usize,
    },
    /// The announced cohort is larger than the task's `cohort.size`.
    #[error("the announced cohort has {cohort} members; the task allows {allowed}")]
    CohortTooLarge {
        /// Members announced.
        cohort: usize,
        /// `cohort.size`.
        allowed: usize,
    },
    /// The member is not in the announced cohort, or the rule leaves it out
    /// of every group.
    #[error("the grouping rule places this client in no group of the announced cohort")]
    NotGrouped,
}

/// A member's seat in an attempt: its group number, its index in the group,
/// and the group's members in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat<P> {
    /// Group number.
    pub group: usize,
    /// The member's index in its group.
    pub index: u32,
    /// The group's members, by index.
    pub members: Vec<P>,
}

/// Where the public grouping rule seats `member` in the attempt whose cohort
/// is `cohort`: what a client computes for itself from an announcement, so
/// that no coordinator can hand it a group of its own choosing (every group
/// is the rule's output over an announced cohort of `cohort.min` to
/// `cohort.size` distinct members, and has exactly `group_size` of them).
/// The seed is public and fixed by the model, so a coordinator choosing
/// among cohorts (or abandoning attempts) can still search for one that
/// seats a victim with members it controls; see `docs/security.md`.
pub fn seat_of<P: Ord + Clone>(
    plan: &Plan,
    cohort: &[P],
    model_hash: &[u8; 32],
    round: &RoundId,
    member: &P,
) -> Result<Seat<P>, SeatError> {
    if cohort.len() < plan.cohort_min() {
        return Err(SeatError::CohortTooSmall {
            cohort: cohort.len(),
            needed: plan.cohort_min(),
        });
    }
    if cohort.len() > plan.cohort_size() {
        return Err(SeatError::CohortTooLarge {
            cohort: cohort.len(),
            allowed: plan.cohort_size(),
        });
    }
    let grouping = group_cohort(plan, cohort, model_hash, round)?;
    grouping
        .groups()
        .iter()
        .enumerate()
        .find_map(|(group, members)| {
            let index = members.iter().position(|m| m == member)?;
            Some(Seat {
                group,
                index: index as u32,
                members: members.clone(),
            })
        })
        .ok_or(SeatError::NotGrouped)
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
