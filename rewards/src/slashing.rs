//! The slashing rule of DESIGN section 6: `m` flags in a client's last `w`
//! rounds cost it a fixed fraction of its stake.
//!
//! A round *flags* a client when its evidence shows one of
//! - its signed update's L2 norm exceeded the task's bound `B` (provable from
//!   the update alone);
//! - the robust aggregator rejected it **and** it pointed away from the
//!   round's reference (negative cosine): rejection alone also hits honest
//!   outliers of non-IID data, negative alignment alone is noise;
//! - it was a near-duplicate of another client's update (Sybil or colluding
//!   clients: honest clients with their own data never send near-identical
//!   updates);
//! - it pointed away from the reference **and** mixing it into the aggregate
//!   of the others, at the weight it claimed, raised the sponsor's validation
//!   loss by more than [`VALIDATION_HARM_THRESHOLD`] (a departure from DESIGN
//!   section 6, see docs/simulations.md).
//!
//! The window counts the rounds the client took part in, not the task's
//! rounds, so a client sampled rarely is judged on as much evidence as one
//! sampled every round. After a slash the client's window starts empty: the
//! same flags never slash twice.

use std::collections::{BTreeMap, VecDeque};
use std::num::NonZeroU128;

use crate::PolicyError;
use crate::fixed::mul_div_floor;

/// A fraction in basis points: 10,000 = 100%, as contracts usually write
/// fractions, so the on-chain and off-chain amounts agree to the wei.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BasisPoints(u16);

impl BasisPoints {
    /// 100%.
    pub const FULL: BasisPoints = BasisPoints(10_000);

    /// A fraction of `basis_points / 10_000`; fails above 10,000.
    pub fn new(basis_points: u16) -> Result<Self, PolicyError> {
        if basis_points > Self::FULL.0 {
            return Err(PolicyError::InvalidBasisPoints { basis_points });
        }
        Ok(BasisPoints(basis_points))
    }

    /// The value in basis points.
    pub fn get(self) -> u16 {
        self.0
    }

    /// `floor(amount * self / 10_000)`, exact for every `u128` amount.
    pub fn of(self, amount: u128) -> u128 {
        const DENOMINATOR: NonZeroU128 = NonZeroU128::new(10_000).expect("10_000 is not zero");
        mul_div_floor(amount, u128::from(self.0), DENOMINATOR)
    }
}

/// When to slash and how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlashingPolicy {
    /// `w`: how many of the client's most recent rounds are looked at.
    pub window: usize,
    /// `m`: flags within the window that trigger a slash, `1 <= m <= w`.
    pub min_flags: usize,
    /// Share of the stake taken by one slash.
    pub fraction: BasisPoints,
}

impl SlashingPolicy {
    /// Checks `1 <= min_flags <= window`.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.min_flags == 0 || self.min_flags > self.window {
            return Err(PolicyError::InvalidSlashingPolicy {
                window: self.window,
                min_flags: self.min_flags,
            });
        }
        Ok(())
    }

    /// What one slash takes from `stake`: `floor(stake * fraction)`.
    pub fn slash_amount(&self, stake: u128) -> u128 {
        self.fraction.of(stake)
    }
}

/// Relative slack on the norm bound before a norm counts as over it: a
/// client that clips to `B` in `f32` can land a few ulps above `B`, and an
/// honest client must never be flagged for rounding.
pub const NORM_BOUND_TOLERANCE: f64 = 1e-5;

/// Increase of the sponsor's mean validation cross-entropy (nats) above which
/// a misaligned update counts as harmful. Chosen on
/// `examples/robustness.toml` (docs/simulations.md): there it flagged no
/// honest client three times in five rounds under any aggregator, while
/// label flippers raised the loss by 0.006 to 0.07 every round.
pub const VALIDATION_HARM_THRESHOLD: f64 = 0.01;

/// What one round showed about one client's contribution.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RoundObservation {
    /// L2 norm of the client's signed update, before any clipping by the
    /// aggregator, when the coordinator saw the update (plain mode). `None`
    /// under secure aggregation: a group mean's norm says nothing about one
    /// member's update, so it is never charged to the members (a group sum
    /// out of bounds fails its group instead).
    pub update_norm: Option<f64>,
    /// The task's L2 bound `B`.
    pub norm_bound: f64,
    /// True when the aggregator rejected the update as an outlier (see
    /// `fedstake_aggregation::Verdict::is_outlier`), or the coordinator
    /// refused it before aggregating.
    pub rejected: bool,
    /// Cosine between the update and the round's reference (robust aggregate
    /// or root update), in `[-1, 1]`.
    pub alignment: f64,
    /// When the near-duplicate detector flagged the update: its highest
    /// cosine to another client's update.
    pub near_duplicate_cosine: Option<f64>,
    /// When measured: how much the sponsor's validation loss rose when the
    /// update was mixed, at its claimed weight's share, into the aggregate of
    /// the others (`loss(g + a + s (u - a)) - loss(g + a)`, `a` the
    /// leave-one-out aggregate, `s` the update's share of the round's weight).
    pub validation_harm: Option<f64>,
}

/// Why a round counts against a client.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FlagReason {
    /// The update's norm exceeded the bound.
    NormOverBound {
        /// The update's L2 norm.
        norm: f64,
        /// The bound `B`.
        bound: f64,
    },
    /// The aggregator rejected the update and it pointed away from the
    /// reference.
    RejectedMisaligned {
        /// Its (negative) cosine to the reference.
        alignment: f64,
    },
    /// The update nearly duplicated another client's.
    NearDuplicate {
        /// Its highest cosine to another update.
        cosine: f64,
    },
    /// The update pointed away from the reference and raised the sponsor's
    /// validation loss by more than [`VALIDATION_HARM_THRESHOLD`].
    HarmfulMisaligned {
        /// Its (negative) cosine to the reference.
        alignment: f64,
        /// The validation-loss increase.
        harm: f64,
    },
}

impl RoundObservation {
    /// Checks every measurement is finite and in range.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let invalid = |field, value, expected| {
            Err(PolicyError::InvalidObservation {
                field,
                value,
                expected,
            })
        };
        if let Some(norm) = self.update_norm.filter(|n| !(n.is_finite() && *n >= 0.0)) {
            return invalid("update_norm", norm, "finite and >= 0");
        }
        if !(self.norm_bound.is_finite() && self.norm_bound > 0.0) {
            return invalid("norm_bound", self.norm_bound, "finite and > 0");
        }
        // NaN fails the range check too.
        if !(-1.0..=1.0).contains(&self.alignment) {
            return invalid("alignment", self.alignment, "in [-1, 1]");
        }
        if let Some(harm) = self.validation_harm.filter(|h| !h.is_finite()) {
            return invalid("validation_harm", harm, "finite");
        }
        match self.near_duplicate_cosine {
            Some(cosine) if !(-1.0..=1.0).contains(&cosine) => {
                invalid("near_duplicate_cosine", cosine, "in [-1, 1]")
            }
            _ => Ok(()),
        }
    }

    /// Every reason this round counts against the client; empty when it
    /// does not.
    pub fn flags(&self) -> Vec<FlagReason> {
        let mut reasons = Vec::new();
        if let Some(norm) = self
            .update_norm
            .filter(|&norm| norm > self.norm_bound * (1.0 + NORM_BOUND_TOLERANCE))
        {
            reasons.push(FlagReason::NormOverBound {
                norm,
                bound: self.norm_bound,
            });
        }
        if self.rejected && self.alignment < 0.0 {
            reasons.push(FlagReason::RejectedMisaligned {
                alignment: self.alignment,
            });
        }
        if let Some(cosine) = self.near_duplicate_cosine {
            reasons.push(FlagReason::NearDuplicate { cosine });
        }
        if let Some(harm) = self.validation_harm
            && self.alignment < 0.0
            && harm > VALIDATION_HARM_THRESHOLD
        {
            reasons.push(FlagReason::HarmfulMisaligned {
                alignment: self.alignment,
                harm,
            });
        }
        reasons
    }
}

/// A round of a client's window with what (if anything) it showed.
#[derive(Debug, Clone, PartialEq)]
pub struct FlaggedRound {
    /// The round.
    pub round: u64,
    /// Why it counts against the client (empty for a clean round).
    pub reasons: Vec<FlagReason>,
}

impl FlaggedRound {
    /// True when the round counts against the client.
    pub fn is_flagged(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// A decision to slash one client, with the evidence behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct SlashDecision<A> {
    /// Whose stake.
    pub account: A,
    /// The round whose evidence completed the `m` flags.
    pub round: u64,
    /// Base units taken: `floor(stake * fraction)` (0 for an empty stake; the
    /// decision and its evidence still stand).
    pub amount: u128,
    /// The flagged rounds of the window, oldest first.
    pub evidence: Vec<FlaggedRound>,
}

/// The recent rounds of one client.
#[derive(Debug, Clone, Default)]
struct ClientHistory {
    last_round: Option<u64>,
    /// At most `window` rounds, oldest first.
    recent: VecDeque<FlaggedRound>,
}

/// Applies a [`SlashingPolicy`] to the evidence of each round, per client.
#[derive(Debug, Clone)]
pub struct SlashingTracker<A> {
    policy: SlashingPolicy,
    clients: BTreeMap<A, ClientHistory>,
}

impl<A: Ord + Clone> SlashingTracker<A> {
    /// A tracker with no history; fails on an invalid policy.
    pub fn new(policy: SlashingPolicy) -> Result<Self, PolicyError> {
        policy.validate()?;
        Ok(Self {
            policy,
            clients: BTreeMap::new(),
        })
    }

    /// The policy applied.
    pub fn policy(&self) -> &SlashingPolicy {
        &self.policy
    }

    /// Records `account`'s evidence of `round` and decides whether to slash
    /// its `stake`.
    ///
    /// Rounds of one client must strictly increase, so a replayed round is
    /// refused rather than counted twice. Nothing is recorded on error.
    pub fn record(
        &mut self,
        account: A,
        round: u64,
        observation: &RoundObservation,
        stake: u128,
    ) -> Result<Option<SlashDecision<A>>, PolicyError> {
        observation.validate()?;
        let history = self.clients.entry(account.clone()).or_default();
        if let Some(last) = history.last_round.filter(|&last| round <= last) {
            return Err(PolicyError::RoundOutOfOrder { round, last });
        }
        history.last_round = Some(round);
        history.recent.push_back(FlaggedRound {
            round,
            reasons: observation.flags(),
        });
        if history.recent.len() > self.policy.window {
            history.recent.pop_front();
        }
        let flags = history.recent.iter().filter(|r| r.is_flagged()).count();
        if flags < self.policy.min_flags {
            return Ok(None);
        }
        // The window restarts so these flags cannot slash again.
        let evidence = history
            .recent
            .drain(..)
            .filter(FlaggedRound::is_flagged)
            .collect();
        Ok(Some(SlashDecision {
            account,
            round,
            amount: self.policy.slash_amount(stake),
            evidence,
        }))
    }

    /// Flagged rounds currently in `account`'s window.
    pub fn flags_in_window(&self, account: &A) -> usize {
        self.clients.get(account).map_or(0, |history| {
            history.recent.iter().filter(|r| r.is_flagged()).count()
        })
    }
}
