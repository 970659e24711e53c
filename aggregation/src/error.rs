//! Why an aggregation could not be computed.

/// Why an aggregation could not be computed. Every variant names what was
/// wrong so the caller can report it; none leaves partial results behind.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AggregationError {
    /// No update was given.
    #[error("cannot aggregate zero updates")]
    NoInputs,
    /// Weights and updates differ in number.
    #[error("{updates} updates but {weights} weights")]
    WeightCount {
        /// Number of updates.
        updates: usize,
        /// Number of weights.
        weights: usize,
    },
    /// A weight is negative, NaN or infinite.
    #[error("weight {weight} of input {input} is not a finite non-negative number")]
    InvalidWeight {
        /// Index of the input.
        input: usize,
        /// The weight.
        weight: f32,
    },
    /// All weights are zero.
    #[error("all weights are zero")]
    ZeroTotalWeight,
    /// An update holds NaN or infinity.
    #[error("input {input} has a non-finite value at coordinate {coordinate}")]
    NonFinite {
        /// Index of the input.
        input: usize,
        /// The first offending coordinate.
        coordinate: usize,
    },
    /// A vector given beside the updates (root update, previous aggregate) has
    /// the wrong length.
    #[error("{what} has {found} coordinates, the updates have {expected}")]
    DimensionMismatch {
        /// Which vector.
        what: &'static str,
        /// The updates' dimension.
        expected: usize,
        /// Its dimension.
        found: usize,
    },
    /// A rule's parameter is out of its range, whatever the inputs.
    #[error("{rule}: {reason}")]
    InvalidParameter {
        /// The rule, as named in task specs (`krum`, `trimmed-mean`, ...).
        rule: &'static str,
        /// What is wrong, naming the parameter and its value.
        reason: String,
    },
    /// The rule cannot run on this many inputs with its parameters (for
    /// example Krum needs `n > 2f + 2`).
    #[error("{rule} needs {requirement}, got n = {n}")]
    TooFewInputs {
        /// The rule.
        rule: &'static str,
        /// Number of inputs it was given (after bucketing, if any).
        n: usize,
        /// The condition, e.g. `n > 2f + 2 = 6`.
        requirement: String,
    },
    /// FLTrust was called without the sponsor's root update.
    #[error("fltrust needs the root update computed on the sponsor's clean data")]
    MissingRootUpdate,
}
