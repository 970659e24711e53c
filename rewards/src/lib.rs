//! What each contributor is paid and when a client is slashed — the pure
//! policy half of fedstake's rewards (DESIGN section 6).
//!
//! No IO and no floating point in the money path: scores enter as
//! fixed-point integers ([`Score`], `1.0 == 1e9`), amounts are `u128` token
//! base units (wei), and every product that could exceed `u128` is computed
//! in 256 bits, so simulations report exactly what the contract pays and
//! slashes.
//!
//! - [`payout`]: a round budget split as `floor(R * s_i / sum s)`, the dust
//!   left in the pool, and the cumulative per-account totals that the reward
//!   Merkle tree commits to;
//! - [`slashing`]: the flags a round's evidence raises against a client and
//!   the `m` of the last `w` rounds rule that slashes a fraction of its stake;
//! - [`settle`]: the pure settlement of one round — quality scores against
//!   the robust aggregate, near-duplicates, the exact integer payout split and
//!   the slashing observations, plain or from group attribution under secure
//!   aggregation — shared by the coordinator and the simulation lab.

mod error;
mod fixed;
pub mod merkle;
pub mod payout;
pub mod settle;
pub mod slashing;

pub use error::PolicyError;
pub use merkle::{MerkleError, PayoutTree};
pub use payout::{CumulativePayouts, RoundPayout, SCORE_ONE, Score, split_budget};
pub use slashing::{
    BasisPoints, FlagReason, FlaggedRound, RoundObservation, SlashDecision, SlashingPolicy,
    SlashingTracker,
};
