//! Exact integer arithmetic beyond `u128`.

use std::num::NonZeroU128;

use ruint::aliases::U256;

/// `floor(amount * numerator / denominator)` exactly, for
/// `numerator <= denominator`.
///
/// The product can need up to 256 bits (a 1e27 wei budget times a 1e9-scaled
/// score already exceeds `u128`), so it is formed in a `U256`, where two
/// `u128` factors cannot overflow. With `numerator <= denominator` the
/// quotient is at most `amount` and fits back in `u128`; should a caller break
/// that precondition the result saturates rather than wraps.
pub(crate) fn mul_div_floor(amount: u128, numerator: u128, denominator: NonZeroU128) -> u128 {
    debug_assert!(numerator <= denominator.get());
    let product = U256::from(amount) * U256::from(numerator);
    (product / U256::from(denominator.get())).saturating_to::<u128>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nz(value: u128) -> NonZeroU128 {
        NonZeroU128::new(value).unwrap()
    }

    #[test]
    fn exact_at_the_extremes() {
        assert_eq!(
            mul_div_floor(u128::MAX, u128::MAX, nz(u128::MAX)),
            u128::MAX
        );
        assert_eq!(mul_div_floor(u128::MAX, 1, nz(2)), u128::MAX / 2);
        assert_eq!(
            mul_div_floor(u128::MAX, u128::MAX - 1, nz(u128::MAX)),
            u128::MAX - 1
        );
        assert_eq!(mul_div_floor(7, 2, nz(3)), 4);
        assert_eq!(mul_div_floor(0, 5, nz(9)), 0);
    }
}
