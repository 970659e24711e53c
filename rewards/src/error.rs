//! Why a policy input was refused.

/// Why a payout or slashing input was refused. Nothing is changed when one of
/// these is returned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// A score that is negative, NaN, infinite or too large for the
    /// fixed-point representation.
    #[error("score {value} is not a finite number in [0, {max})", max = crate::payout::Score::MAX_F64)]
    InvalidScore {
        /// The score as given.
        value: f64,
    },
    /// A fraction above 100% (10,000 basis points).
    #[error("{basis_points} basis points is more than 10000 (100%)")]
    InvalidBasisPoints {
        /// The value as given.
        basis_points: u16,
    },
    /// A slashing policy whose window or flag count cannot work.
    #[error(
        "slashing policy needs 1 <= min_flags <= window, got min_flags {min_flags}, window {window}"
    )]
    InvalidSlashingPolicy {
        /// Rounds in the window.
        window: usize,
        /// Flags needed to slash.
        min_flags: usize,
    },
    /// Evidence for a round at or before one already recorded for the client
    /// (a replay, or rounds fed out of order).
    #[error("evidence for round {round} arrived after round {last} was recorded for this client")]
    RoundOutOfOrder {
        /// The round of the refused evidence.
        round: u64,
        /// The last round recorded.
        last: u64,
    },
    /// A measurement in the evidence that is NaN, infinite or out of range.
    #[error("evidence field {field} is {value}, expected {expected}")]
    InvalidObservation {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: f64,
        /// The valid range.
        expected: &'static str,
    },
    /// A cumulative total would exceed `u128::MAX` base units.
    #[error("cumulative payouts overflow u128")]
    PayoutOverflow,
}
