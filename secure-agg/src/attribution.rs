//! Per-client evidence from the results of the groups a client was in.
//!
//! Under secure aggregation the coordinator sees one mean per group, so a
//! robust aggregator judges groups, not clients. The caller turns each group's
//! verdict into a [`GroupResult`]: a quality in `[0, 1]` (say the trust in the
//! group mean times its verdict weight) and a flag (rejected as an outlier and
//! pointing away from the other groups), listing as members the clients whose
//! inputs are in the group's sum. Groups are redrawn every round (see
//! [`crate::grouping`]), so across rounds a client shares its groups with
//! different clients each time and [`GroupAttribution`] can estimate, per
//! client:
//!
//! - **quality**: the mean quality of its groups. Rewards use it; every honest
//!   client is charged for the bad groups it happened to be in at the same
//!   expected rate, so the estimate ranks clients by what they bring.
//! - **flag evidence**: `f` of its `n` groups were flagged, against a
//!   background rate `p = (F - f + 1) / (G - n + 2)`, the flag rate of the
//!   groups without it (`F` of `G` groups recorded were flagged; the `+1`/`+2`
//!   keep `p` inside `(0, 1)`). The p-value is `P[Binomial(n, p) >= f]`. An honest
//!   client's group has one suspect fewer than a group without it, so `p`
//!   over-estimates the rate an honest client would see and the test errs on
//!   the side of the client. Slashing acts only on flags of clients whose
//!   p-value is below a small significance.
//!
//! # What this can and cannot attribute
//!
//! It can single out a client that makes *most groups it joins* outliers (a
//! sign flip, a boosted backdoor, strong noise, label flipping that moves a
//! group mean far enough), provided most groups are clean: a group of `g`
//! contains no other attacker with probability `(1 - a)^(g - 1)` for an
//! attacker fraction `a`, so attribution needs `g * a` well below 1, and its
//! power grows with the rounds a client takes part in.
//!
//! It cannot attribute anything from one round (a flagged group says nothing
//! about which member caused it); an attack diluted below the aggregator's
//! noise by the `1/g` weight it has in a group mean (ALIE or IPM-sized
//! perturbations, a free rider's zero update, which only shrinks its group's
//! mean); colluders numerous enough to spoil nearly every group (the background
//! rate then equals theirs); near-duplicate (Sybil) updates, which the group
//! means average away; and anything about a single update itself — its norm,
//! its weight — since the coordinator never sees one. In particular a client
//! can send any vector of `Z_{2^32}^d`, not just a clipped, quantized update;
//! bounding that needs the verified bounds of DESIGN section 4 (commitments
//! and range proofs), not group statistics.

use std::collections::BTreeMap;

use statrs::distribution::{Binomial, DiscreteCDF};
use thiserror::Error;

/// Why a round of group results was refused (nothing is recorded then).
#[derive(Debug, Clone, PartialEq, Error)]
pub enum AttributionError {
    /// A group quality is not a number in `[0, 1]`.
    #[error("group {group} has quality {value}, expected a number in [0, 1]")]
    InvalidQuality {
        /// Position of the group in the round.
        group: usize,
        /// The offending quality.
        value: f64,
    },
    /// A client is listed in two groups of one round (or twice in one).
    #[error("a client is listed twice in the groups of one round (group {group})")]
    ClientListedTwice {
        /// Position of the group where it appeared again.
        group: usize,
    },
}

/// What the aggregator made of one group's mean.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupResult<'a, C> {
    /// The clients whose inputs are in the group's sum (its survivors).
    pub members: &'a [C],
    /// Quality of the group mean, in `[0, 1]`.
    pub quality: f64,
    /// Whether the group counts against its members (rejected as an outlier
    /// and misaligned).
    pub flagged: bool,
}

/// One client's accumulated evidence (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientEvidence {
    /// Groups the client was in.
    pub groups: u64,
    /// Of those, groups flagged.
    pub flagged: u64,
    /// Mean quality of its groups.
    pub quality: f64,
    /// Smoothed flag rate of the groups without it.
    pub background_flag_rate: f64,
    /// `P[Binomial(groups, background_flag_rate) >= flagged]`.
    pub p_value: f64,
}

impl ClientEvidence {
    /// Whether its groups were flagged significantly more often than others.
    pub fn is_suspect(&self, significance: f64) -> bool {
        self.p_value < significance
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Record {
    groups: u64,
    flagged: u64,
    quality_sum: f64,
}

/// Per-client evidence accumulated from group results over rounds.
#[derive(Debug, Clone)]
pub struct GroupAttribution<C> {
    clients: BTreeMap<C, Record>,
    groups: u64,
    flagged: u64,
}

impl<C: Ord + Clone> Default for GroupAttribution<C> {
    fn default() -> Self {
        Self {
            clients: BTreeMap::new(),
            groups: 0,
            flagged: 0,
        }
    }
}

impl<C: Ord + Clone> GroupAttribution<C> {
    /// No evidence yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Group results recorded so far, over all rounds.
    pub fn groups_recorded(&self) -> u64 {
        self.groups
    }

    /// Records the results of one round's groups (failed groups, which gave no
    /// sum, are simply left out). All or nothing: invalid input records nothing.
    pub fn record_round(&mut self, groups: &[GroupResult<'_, C>]) -> Result<(), AttributionError> {
        let mut seen = std::collections::BTreeSet::new();
        for (index, group) in groups.iter().enumerate() {
            if !(0.0..=1.0).contains(&group.quality) {
                return Err(AttributionError::InvalidQuality {
                    group: index,
                    value: group.quality,
                });
            }
            if !group.members.iter().all(|member| seen.insert(member)) {
                return Err(AttributionError::ClientListedTwice { group: index });
            }
        }
        for group in groups {
            self.groups += 1;
            self.flagged += u64::from(group.flagged);
            for member in group.members {
                let record = self.clients.entry(member.clone()).or_default();
                record.groups += 1;
                record.flagged += u64::from(group.flagged);
                record.quality_sum += group.quality;
            }
        }
        Ok(())
    }

    /// The evidence on `client`, if it was ever in a recorded group.
    pub fn evidence(&self, client: &C) -> Option<ClientEvidence> {
        let record = self.clients.get(client)?;
        let others = self.groups - record.groups;
        let others_flagged = self.flagged - record.flagged;
        let background = (others_flagged as f64 + 1.0) / (others as f64 + 2.0);
        Some(ClientEvidence {
            groups: record.groups,
            flagged: record.flagged,
            quality: record.quality_sum / record.groups as f64,
            background_flag_rate: background,
            p_value: binomial_upper_tail(record.groups, background, record.flagged),
        })
    }
}

/// `P[X >= k]` for `X ~ Binomial(n, p)`, `0 < p < 1`.
fn binomial_upper_tail(n: u64, p: f64, k: u64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    // `p` is strictly inside (0, 1) by construction, so the distribution exists.
    Binomial::new(p, n).map_or(1.0, |binomial| binomial.sf(k - 1))
}
