//! What carries over from one round to the next, and the typed record of a
//! settled round.
//!
//! [`RoundState`] holds the cumulative payouts, the group attribution, the
//! slashing windows, the reputation and the previous aggregate. Settling an
//! attempt never changes it: [`crate::settle`] returns the next state inside
//! the settlement, and the driver adopts it only once the round is stored, so
//! a crash between the two loses nothing. [`RoundState::replay`] rebuilds the
//! state from stored [`SettledRound`]s, so a restarted coordinator settles
//! the next round exactly as an uninterrupted one would.

use std::collections::BTreeMap;
use std::fmt::Debug;

use fedstake_rewards::settle::GroupVerdict;
use fedstake_rewards::{CumulativePayouts, PolicyError, RoundObservation, SlashingTracker};
use fedstake_secure_agg::attribution::{AttributionError, GroupAttribution, GroupResult};
use serde::{Deserialize, Serialize};

use crate::Plan;

/// Reputation of a client never seen in a round.
pub const INITIAL_REPUTATION: f64 = 0.5;

/// One group's result in a settled round (secure aggregation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRecord<P> {
    /// The survivors whose inputs are in the group's sum.
    pub members: Vec<P>,
    /// What the round recorded about the group.
    pub quality: f64,
    /// Whether the group was flagged.
    pub flagged: bool,
}

/// A settled round: what was paid, shown and slashed, in types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettledRound<P> {
    /// Round, from 1.
    pub round: u64,
    /// The attempt that completed.
    pub attempt: u32,
    /// Content hash of the new global model.
    pub model_hash: [u8; 32],
    /// Validation accuracy of the new model.
    pub accuracy: f64,
    /// Validation loss of the new model.
    pub loss: f64,
    /// Participants whose contribution the aggregator counted.
    pub accepted: usize,
    /// Participants refused (over the bound) or rejected.
    pub rejected: usize,
    /// Rows the aggregator saw: updates, or group means.
    pub aggregator_inputs: usize,
    /// This round's payout of every participant, in scoring order.
    #[serde(with = "amounts")]
    pub payouts: Vec<(P, u128)>,
    /// Budget left in the pool by rounding or zero scores.
    #[serde(with = "amount")]
    pub dust: u128,
    /// The slashing evidence of every participant, in scoring order.
    pub observations: Vec<(P, RoundObservation)>,
    /// Group results (secure aggregation only).
    pub groups: Vec<GroupRecord<P>>,
    /// Slashes decided this round and their amounts.
    #[serde(with = "amounts")]
    pub slashes: Vec<(P, u128)>,
}

impl<P: PartialEq> SettledRound<P> {
    /// Whether the round was skipped ([`crate::skip_round`]): no attempt
    /// gave the aggregator anything.
    pub fn is_skipped(&self) -> bool {
        self.aggregator_inputs == 0
    }

    /// What the round paid in all.
    pub fn total(&self) -> u128 {
        self.payouts.iter().map(|(_, amount)| amount).sum()
    }

    /// What `participant` was paid this round.
    pub fn payout_of(&self, participant: &P) -> u128 {
        self.payouts
            .iter()
            .find(|(p, _)| p == participant)
            .map_or(0, |(_, amount)| *amount)
    }

    /// Participants and whether their contribution counted (paid, or not
    /// rejected).
    pub fn participants(&self) -> impl Iterator<Item = (&P, bool)> {
        self.payouts
            .iter()
            .zip(&self.observations)
            .map(|((p, paid), (_, observation))| (p, *paid > 0 || !observation.rejected))
    }
}

/// Why a stored round cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The payouts break the cumulative accounting.
    #[error("round {round}: payouts: {source}")]
    Payouts {
        /// The round.
        round: u64,
        /// The error.
        source: PolicyError,
    },
    /// The group results cannot be recorded.
    #[error("round {round}: groups: {source}")]
    Groups {
        /// The round.
        round: u64,
        /// The error.
        source: AttributionError,
    },
    /// An observation is invalid.
    #[error("round {round}: observation: {source}")]
    Observation {
        /// The round.
        round: u64,
        /// The error.
        source: PolicyError,
    },
}

/// The state that carries over rounds.
#[derive(Debug, Clone)]
pub struct RoundState<P> {
    pub(crate) payouts: CumulativePayouts<P>,
    pub(crate) attribution: GroupAttribution<P>,
    pub(crate) slashing: Option<SlashingTracker<P>>,
    pub(crate) reputation: BTreeMap<P, f64>,
    pub(crate) previous_aggregate: Option<Vec<f32>>,
    pub(crate) rounds: u64,
}

impl<P: Ord + Clone + Debug> RoundState<P> {
    /// The state before the first round of `plan`.
    pub fn new(plan: &Plan) -> Self {
        RoundState {
            payouts: CumulativePayouts::new(),
            attribution: GroupAttribution::new(),
            slashing: plan.slashing().map(|policy| {
                SlashingTracker::new(*policy).expect("the plan validated the policy")
            }),
            reputation: BTreeMap::new(),
            previous_aggregate: None,
            rounds: 0,
        }
    }

    /// Rounds settled so far.
    pub fn settled_rounds(&self) -> u64 {
        self.rounds
    }

    /// A client's reputation: the moving average of its share of each
    /// round's largest payout.
    pub fn reputation(&self, participant: &P) -> f64 {
        self.reputation
            .get(participant)
            .copied()
            .unwrap_or(INITIAL_REPUTATION)
    }

    /// What the task has paid `participant` so far.
    pub fn cumulative(&self, participant: &P) -> u128 {
        self.payouts.total(participant)
    }

    /// Every participant's cumulative payout.
    pub fn cumulative_payouts(&self) -> &CumulativePayouts<P> {
        &self.payouts
    }

    /// The aggregate of the last settled round.
    pub fn previous_aggregate(&self) -> Option<&[f32]> {
        self.previous_aggregate.as_deref()
    }

    /// Rebuilds the state after `settled`, a stored round; `aggregate` is
    /// its model minus the previous one. Slash amounts are not recomputed:
    /// the stored round holds them.
    pub fn replay(
        &mut self,
        plan: &Plan,
        settled: &SettledRound<P>,
        aggregate: Vec<f32>,
    ) -> Result<(), ReplayError> {
        let round = settled.round;
        self.payouts
            .credit_round(settled.payouts.iter().cloned())
            .map_err(|source| ReplayError::Payouts { round, source })?;
        let verdicts: Vec<GroupVerdict> = settled
            .groups
            .iter()
            .map(|g| GroupVerdict {
                quality: g.quality,
                flagged: g.flagged,
            })
            .collect();
        record_groups(&mut self.attribution, &settled.groups, &verdicts)
            .map_err(|source| ReplayError::Groups { round, source })?;
        if let Some(tracker) = self.slashing.as_mut() {
            for (participant, observation) in &settled.observations {
                tracker
                    .record(participant.clone(), round, observation, 0)
                    .map_err(|source| ReplayError::Observation { round, source })?;
            }
        }
        self.update_reputation(plan, &settled.payouts);
        // A skipped round applied nothing; the last aggregate stays.
        if !settled.is_skipped() {
            self.previous_aggregate = Some(aggregate);
        }
        self.rounds = round;
        Ok(())
    }

    /// Reputation: moving average of each participant's share of the
    /// round's largest payout.
    pub(crate) fn update_reputation(&mut self, plan: &Plan, payouts: &[(P, u128)]) {
        let decay = plan.spec().scoring.reputation_decay;
        let best = payouts.iter().map(|(_, v)| *v).max().unwrap_or(0);
        for (participant, paid) in payouts {
            let share = if best == 0 {
                0.0
            } else {
                *paid as f64 / best as f64
            };
            let entry = self
                .reputation
                .entry(participant.clone())
                .or_insert(INITIAL_REPUTATION);
            *entry = decay * *entry + (1.0 - decay) * share;
        }
    }
}

/// Records groups and their verdicts in the attribution (nothing when
/// there are none, as in a plain round).
pub(crate) fn record_groups<P: Ord + Clone>(
    attribution: &mut GroupAttribution<P>,
    groups: &[GroupRecord<P>],
    verdicts: &[GroupVerdict],
) -> Result<(), AttributionError> {
    if groups.is_empty() {
        return Ok(());
    }
    let results: Vec<GroupResult<'_, P>> = groups
        .iter()
        .zip(verdicts)
        .map(|(group, verdict)| GroupResult {
            members: &group.members,
            quality: verdict.quality,
            flagged: verdict.flagged,
        })
        .collect();
    attribution.record_round(&results)
}

/// Token amounts as decimal strings in JSON: exact in every JSON reader.
mod amount {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &u128, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&value.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u128, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// `(participant, amount)` lists with amounts as decimal strings.
mod amounts {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<P: Serialize, S: Serializer>(
        values: &[(P, u128)],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let text: Vec<(&P, String)> = values.iter().map(|(p, v)| (p, v.to_string())).collect();
        text.serialize(serializer)
    }

    pub fn deserialize<'de, P: Deserialize<'de>, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<(P, u128)>, D::Error> {
        let text: Vec<(P, String)> = Vec::deserialize(deserializer)?;
        text.into_iter()
            .map(|(p, v)| Ok((p, v.parse().map_err(serde::de::Error::custom)?)))
            .collect()
    }
}
