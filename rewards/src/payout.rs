//! Splitting a round's budget by score, and the running totals per account.
//!
//! `pay_i = floor(R * s_i / sum s)` with integer scores, so the split is
//! exact, reproducible on any machine and equal to what a contract or a proof
//! of the settlement recomputes. The dust `R - sum pay_i` (less than one base
//! unit per contributor) stays in the pool.

use std::collections::BTreeMap;
use std::num::NonZeroU128;

use crate::PolicyError;
use crate::fixed::mul_div_floor;

/// The fixed-point unit of [`Score`]: a raw value of `SCORE_ONE` means 1.0.
///
/// Nine decimals keep the relative rounding error of a score of 1.0 at 1e-9
/// while leaving scores up to ~1.8e10 representable in a `u64`.
pub const SCORE_ONE: u64 = 1_000_000_000;

/// 2^64, exactly representable in `f64` unlike `u64::MAX`.
const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;

/// A contribution's score in fixed point (`raw / SCORE_ONE`), the only form
/// in which scores enter the money path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Score(u64);

impl Score {
    /// A score of zero: the contribution is paid nothing.
    pub const ZERO: Score = Score(0);

    /// The exclusive upper bound of scores [`Score::from_f64`] accepts
    /// (`2^64 / SCORE_ONE`).
    pub const MAX_F64: f64 = TWO_POW_64 / SCORE_ONE as f64;

    /// A score from its raw fixed-point value.
    pub const fn from_raw(raw: u64) -> Self {
        Score(raw)
    }

    /// The raw fixed-point value (`score * SCORE_ONE`).
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// A score from a real number, rounded to the nearest `1 / SCORE_ONE`
    /// (ties away from zero). Scores below `0.5e-9` become zero.
    ///
    /// Fails on NaN, infinities, negatives and values of [`Score::MAX_F64`]
    /// or more.
    pub fn from_f64(value: f64) -> Result<Self, PolicyError> {
        let scaled = (value * SCORE_ONE as f64).round();
        if !(value >= 0.0 && scaled < TWO_POW_64) {
            return Err(PolicyError::InvalidScore { value });
        }
        // In [0, 2^64) after the check, so the cast is exact.
        Ok(Score(scaled as u64))
    }

    /// The score as a real number (for reports; never for money).
    pub fn to_f64(self) -> f64 {
        self.0 as f64 / SCORE_ONE as f64
    }
}

/// One round's budget split among its contributions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundPayout {
    /// Base units paid to each contribution, in the order of the scores.
    pub payouts: Vec<u128>,
    /// `sum payouts`, never more than the budget.
    pub paid: u128,
    /// `budget - paid`: what the rounding (or an all-zero round) leaves in the
    /// pool.
    pub dust: u128,
}

/// Splits `budget` base units as `floor(budget * s_i / sum s)`, exactly.
///
/// When every score is zero (or there are none) nothing is paid and the
/// whole budget is dust that stays in the pool.
pub fn split_budget(budget: u128, scores: &[Score]) -> RoundPayout {
    // Fewer than 2^63 scores of less than 2^64 each: the sum fits in u128.
    let total_score: u128 = scores.iter().map(|score| u128::from(score.raw())).sum();
    let Some(total_score) = NonZeroU128::new(total_score) else {
        return RoundPayout {
            payouts: vec![0; scores.len()],
            paid: 0,
            dust: budget,
        };
    };
    let payouts: Vec<u128> = scores
        .iter()
        .map(|score| mul_div_floor(budget, u128::from(score.raw()), total_score))
        .collect();
    // Each term is at most budget * s_i / sum s, so the sum is at most the
    // budget and neither it nor the difference can overflow.
    let paid: u128 = payouts.iter().sum();
    RoundPayout {
        payouts,
        paid,
        dust: budget - paid,
    }
}

/// Everything each account has been paid since the task began: the amounts
/// the cumulative reward Merkle tree commits to, so that an account claims
/// its whole balance with one proof.
///
/// Accounts iterate in their `Ord` order, so the same payouts always build
/// the same tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CumulativePayouts<A> {
    totals: BTreeMap<A, u128>,
    paid: u128,
}

impl<A> Default for CumulativePayouts<A> {
    fn default() -> Self {
        Self {
            totals: BTreeMap::new(),
            paid: 0,
        }
    }
}

impl<A: Ord + Clone> CumulativePayouts<A> {
    /// No payouts yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one round's credits (an account may appear more than once; its
    /// amounts add up; zero credits add no account). All or nothing: on
    /// overflow nothing is credited.
    pub fn credit_round<I>(&mut self, credits: I) -> Result<(), PolicyError>
    where
        I: IntoIterator<Item = (A, u128)>,
    {
        let mut round: BTreeMap<A, u128> = BTreeMap::new();
        let mut round_paid: u128 = 0;
        for (account, amount) in credits.into_iter().filter(|&(_, amount)| amount > 0) {
            round_paid = round_paid
                .checked_add(amount)
                .ok_or(PolicyError::PayoutOverflow)?;
            let entry = round.entry(account).or_insert(0);
            *entry = entry
                .checked_add(amount)
                .ok_or(PolicyError::PayoutOverflow)?;
        }
        let paid = self
            .paid
            .checked_add(round_paid)
            .ok_or(PolicyError::PayoutOverflow)?;
        // Every account total is at most the grand total, which fits.
        for (account, amount) in round {
            *self.totals.entry(account).or_insert(0) += amount;
        }
        self.paid = paid;
        Ok(())
    }

    /// What `account` has been paid in total (0 if never).
    pub fn total(&self, account: &A) -> u128 {
        self.totals.get(account).copied().unwrap_or(0)
    }

    /// What all accounts have been paid in total.
    pub fn paid(&self) -> u128 {
        self.paid
    }

    /// Each account that was ever credited with its total, in account order.
    pub fn iter(&self) -> impl Iterator<Item = (&A, u128)> {
        self.totals.iter().map(|(account, &total)| (account, total))
    }

    /// Number of accounts ever credited.
    pub fn len(&self) -> usize {
        self.totals.len()
    }

    /// True when no account was ever credited.
    pub fn is_empty(&self) -> bool {
        self.totals.is_empty()
    }
}
