//! Deterministic grouping of a round's cohort from a public seed.
//!
//! Secure aggregation hides single updates inside group sums, and outlier
//! rejection then works on group means (see [`crate::attribution`]). Who shares
//! a group must be unpredictable before the round, so attackers cannot arrange
//! to sit together, and checkable by everyone afterwards, so the coordinator
//! cannot hand-pick groups. Both follow from a keyed shuffle of the cohort under
//! a public per-round seed fixed after the cohort is (a beacon value or a block
//! hash, say). The rule, which any verifier can recompute:
//!
//! 1. The cohort is sorted ascending (duplicates are refused), so the result
//!    does not depend on the order in which clients checked in.
//! 2. The shuffle key is `HKDF-SHA256(seed)` with the info of
//!    [`Purpose::Grouping`] for (task, round, attempt) (see [`crate::kdf`]; group
//!    and pair are 0), so every round and attempt regroups.
//! 3. Fisher–Yates from the last position down: for `i = c - 1, ..., 1`, `j` is
//!    drawn uniformly from `0..=i` and positions `i` and `j` are swapped. Draws
//!    are little-endian `u64` words of the ChaCha20 keystream of the key (zero
//!    nonce); a word `w` is accepted when `w < 2^64 - (2^64 mod (i + 1))` and
//!    gives `j = w mod (i + 1)` (rejection sampling, so `j` is exactly uniform).
//! 4. The first `floor(c / g) * g` shuffled clients form `floor(c / g)` groups of
//!    exactly `g` consecutive clients; each group's members are then sorted, and
//!    a member's position is its client index in the group's
//!    [`SessionConfig`] (the group index is the context's `group`).
//! 5. The other `c mod g` clients are left out of the round.
//!
//! Groups have exactly `g` members, never fewer or more: a smaller group hides
//! each update among fewer others, and a larger one could overflow the
//! quantized sum, whose bound [`crate::quantize::QuantizationParams::validate`]
//! proves for `g` summands. The coordinator therefore admits a multiple of `g`
//! clients to a round (as the task spec says); clients left out only arise when
//! fewer check in, and they sit that round out with neither reward nor
//! evidence. Dropouts during the protocol do not change the groups: a group's
//! sum then covers its survivors.

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use thiserror::Error;

use crate::graph::GroupTopology;
use crate::identity::Address;
use crate::kdf::{ClientPair, Context, Purpose, derive_key};
use crate::session::SessionConfig;

/// Smallest group: with two members each would learn the other's input from
/// the sum and its own.
pub const MIN_GROUP_SIZE: u32 = 3;

/// Why a cohort could not be grouped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GroupingError {
    /// The group size is below [`MIN_GROUP_SIZE`].
    #[error("group size {0} is below the minimum {MIN_GROUP_SIZE}")]
    GroupTooSmall(u32),
    /// The cohort cannot fill a single group.
    #[error("a cohort of {cohort} cannot fill one group of {group_size}")]
    CohortTooSmall {
        /// Clients in the cohort.
        cohort: usize,
        /// Group size `g`.
        group_size: u32,
    },
    /// A client appears twice in the cohort.
    #[error("the cohort lists a client twice")]
    DuplicateClient,
    /// No group has this index.
    #[error("group {group} does not exist; there are {groups}")]
    NoSuchGroup {
        /// The index asked for.
        group: usize,
        /// Number of groups.
        groups: usize,
    },
}

/// Task, round and attempt: what the grouping and every group's context are
/// bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoundId {
    /// Task identifier.
    pub task_id: [u8; 32],
    /// Training round.
    pub round: u64,
    /// Attempt of the round.
    pub attempt: u32,
}

impl RoundId {
    /// The session context of group `group` of this round attempt.
    pub fn group_context(&self, group: u32) -> Context {
        Context {
            task_id: self.task_id,
            round: self.round,
            attempt: self.attempt,
            group,
        }
    }
}

/// A cohort split into groups, as described in the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouping<C> {
    group_size: u32,
    groups: Vec<Vec<C>>,
    left_out: Vec<C>,
}

/// Uniform draws from a ChaCha20 keystream.
struct Draws {
    cipher: ChaCha20,
}

impl Draws {
    fn next_word(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        self.cipher.apply_keystream(&mut bytes);
        u64::from_le_bytes(bytes)
    }

    /// Uniform in `0..bound` (`bound >= 1`) by rejection sampling.
    fn below(&mut self, bound: u64) -> u64 {
        // 2^64 mod bound, computed without 128-bit arithmetic.
        let excess = (u64::MAX - bound + 1) % bound;
        loop {
            let word = self.next_word();
            // The accepted words `0..2^64 - excess` are a multiple of `bound` many.
            if word <= u64::MAX - excess {
                return word % bound;
            }
        }
    }
}

/// Splits `cohort` into groups of exactly `group_size` by the keyed shuffle of
/// the module documentation under the public `seed` of round `round`.
pub fn assign_groups<C: Ord + Clone>(
    cohort: &[C],
    group_size: u32,
    seed: &[u8; 32],
    round: &RoundId,
) -> Result<Grouping<C>, GroupingError> {
    if group_size < MIN_GROUP_SIZE {
        return Err(GroupingError::GroupTooSmall(group_size));
    }
    let size = group_size as usize;
    if cohort.len() < size {
        return Err(GroupingError::CohortTooSmall {
            cohort: cohort.len(),
            group_size,
        });
    }
    let mut order = cohort.to_vec();
    order.sort();
    if order.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err(GroupingError::DuplicateClient);
    }
    let key = derive_key(
        seed,
        &round.group_context(0),
        Purpose::Grouping,
        ClientPair::single(0),
    );
    let mut draws = Draws {
        cipher: ChaCha20::new(key.as_bytes().into(), &[0u8; 12].into()),
    };
    for i in (1..order.len()).rev() {
        let j = draws.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    let grouped = order.len() / size * size;
    let mut left_out = order.split_off(grouped);
    left_out.sort();
    let groups = order
        .chunks(size)
        .map(|chunk| {
            let mut members = chunk.to_vec();
            members.sort();
            members
        })
        .collect();
    Ok(Grouping {
        group_size,
        groups,
        left_out,
    })
}

impl<C: Ord> Grouping<C> {
    /// Members per group.
    pub fn group_size(&self) -> u32 {
        self.group_size
    }

    /// The groups; each lists its members ascending, member `i` being client
    /// index `i` of the group's session.
    pub fn groups(&self) -> &[Vec<C>] {
        &self.groups
    }

    /// Clients left out of this round (fewer than a group), ascending.
    pub fn left_out(&self) -> &[C] {
        &self.left_out
    }

    /// The group of `client` and its index there, if it was grouped.
    pub fn locate(&self, client: &C) -> Option<(usize, u32)> {
        self.groups.iter().enumerate().find_map(|(group, members)| {
            members
                .binary_search(client)
                .ok()
                .map(|index| (group, index as u32))
        })
    }

    /// The session configuration of group `group`: its context in `round`,
    /// `topology` (built for the group size), `dimension` and the members'
    /// addresses by client index.
    pub fn session_config(
        &self,
        group: usize,
        round: &RoundId,
        topology: &GroupTopology,
        dimension: usize,
        server_address: Address,
        address_of: impl Fn(&C) -> Address,
    ) -> Result<SessionConfig, GroupingError> {
        let members = self.groups.get(group).ok_or(GroupingError::NoSuchGroup {
            group,
            groups: self.groups.len(),
        })?;
        Ok(SessionConfig {
            context: round.group_context(group as u32),
            topology: topology.clone(),
            dimension,
            member_addresses: members.iter().map(address_of).collect(),
            server_address,
        })
    }
}
