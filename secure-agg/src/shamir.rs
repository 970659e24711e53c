//! Shamir t-of-k secret sharing of 32-byte secrets over the Ristretto scalar field.
//!
//! A 32-byte secret can exceed the field order `l ~ 2^252`, so it is shared as two
//! independent 16-byte halves, each an exact field element (little-endian, below
//! `2^128 < l`). Each half gets its own random polynomial of degree `t - 1` whose
//! constant term is the half; share `x` holds both polynomials evaluated at `x`.
//! Evaluation points are `1..=k`, never 0 (the secret). Reconstruction is Lagrange
//! interpolation at 0 from any `t` distinct shares and checks that both halves came
//! back below `2^128`, which shares from another sharing or too few shares violate
//! with overwhelming probability. That check is no integrity protection against a
//! deliberately shifted share (a small additive change can give another valid
//! secret): shares travel in authenticated [`crate::share_box`]es for that.
//! Shares and reconstructed secrets are zeroized on drop.

use curve25519_dalek::Scalar;
use rand::CryptoRng;
use thiserror::Error;
use zeroize::{Zeroize, Zeroizing};

/// Length of a serialized [`Share`]: index (u32 big-endian) plus two scalars.
pub const SHARE_BYTES: usize = 4 + 2 * 32;

/// Why sharing or reconstruction was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ShamirError {
    /// The threshold is 0.
    #[error("threshold must be at least 1")]
    ZeroThreshold,
    /// The threshold is above the number of shares.
    #[error("threshold {threshold} is above the share count {share_count}")]
    ThresholdAboveShareCount {
        /// Requested threshold `t`.
        threshold: usize,
        /// Requested share count `k`.
        share_count: usize,
    },
    /// The share count does not fit the `u32` evaluation points.
    #[error("share count {0} does not fit in u32 evaluation points")]
    TooManyShares(usize),
    /// Fewer shares than the threshold were given.
    #[error("{given} shares given, the threshold is {threshold}")]
    TooFewShares {
        /// Shares given.
        given: usize,
        /// Threshold `t`.
        threshold: usize,
    },
    /// A share has evaluation point 0, where the secret lives.
    #[error("a share has evaluation point 0, which is reserved for the secret")]
    ZeroEvaluationPoint,
    /// Two shares have the same evaluation point.
    #[error("two shares have the same evaluation point {0}")]
    DuplicateEvaluationPoint(u32),
    /// A serialized share has the wrong length.
    #[error("a serialized share has {0} bytes, expected {SHARE_BYTES}")]
    WrongShareLength(usize),
    /// A serialized share holds a non-canonical scalar.
    #[error("a serialized share holds a non-canonical scalar")]
    NonCanonicalScalar,
    /// Interpolation gave a value that is no secret (wrong or too few shares).
    #[error("the reconstructed value is not a valid secret; the shares are wrong or too few")]
    InvalidReconstruction,
}

/// One share: the evaluation point `x` and both half-polynomials evaluated at `x`.
#[derive(Clone, PartialEq, Eq)]
pub struct Share {
    x: u32,
    halves: [Scalar; 2],
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Share")
            .field("x", &self.x)
            .finish_non_exhaustive()
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        self.halves.zeroize();
    }
}

impl Share {
    /// The evaluation point (`1..=k`).
    pub fn x(&self) -> u32 {
        self.x
    }

    /// Serializes as `x` (u32 big-endian) followed by the two scalars.
    pub fn to_bytes(&self) -> Zeroizing<[u8; SHARE_BYTES]> {
        let mut bytes = Zeroizing::new([0u8; SHARE_BYTES]);
        bytes[..4].copy_from_slice(&self.x.to_be_bytes());
        bytes[4..36].copy_from_slice(self.halves[0].as_bytes());
        bytes[36..].copy_from_slice(self.halves[1].as_bytes());
        bytes
    }

    /// Parses [`Share::to_bytes`] output, refusing point 0 and non-canonical scalars.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ShamirError> {
        if bytes.len() != SHARE_BYTES {
            return Err(ShamirError::WrongShareLength(bytes.len()));
        }
        let mut x = [0u8; 4];
        x.copy_from_slice(&bytes[..4]);
        let x = u32::from_be_bytes(x);
        if x == 0 {
            return Err(ShamirError::ZeroEvaluationPoint);
        }
        let scalar = |range: std::ops::Range<usize>| {
            let mut raw = Zeroizing::new([0u8; 32]);
            raw.copy_from_slice(&bytes[range]);
            Option::<Scalar>::from(Scalar::from_canonical_bytes(*raw))
                .ok_or(ShamirError::NonCanonicalScalar)
        };
        Ok(Self {
            x,
            halves: [scalar(4..36)?, scalar(36..68)?],
        })
    }
}

/// A uniformly random scalar from 64 random bytes.
fn random_scalar<R: CryptoRng + ?Sized>(rng: &mut R) -> Scalar {
    let mut wide = Zeroizing::new([0u8; 64]);
    rng.fill_bytes(wide.as_mut());
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// Splits `secret` into `share_count` shares (points `1..=share_count`) of which
/// any `threshold` reconstruct it and fewer reveal nothing.
pub fn split<R: CryptoRng + ?Sized>(
    secret: &[u8; 32],
    threshold: usize,
    share_count: usize,
    rng: &mut R,
) -> Result<Vec<Share>, ShamirError> {
    if threshold == 0 {
        return Err(ShamirError::ZeroThreshold);
    }
    if threshold > share_count {
        return Err(ShamirError::ThresholdAboveShareCount {
            threshold,
            share_count,
        });
    }
    let last_point =
        u32::try_from(share_count).map_err(|_| ShamirError::TooManyShares(share_count))?;
    // coefficients[h][0] is half h of the secret; the rest are random.
    let mut coefficients: [Zeroizing<Vec<Scalar>>; 2] = [0, 1].map(|half| {
        let mut low = Zeroizing::new([0u8; 32]);
        low[..16].copy_from_slice(&secret[16 * half..16 * (half + 1)]);
        let mut polynomial = Zeroizing::new(Vec::with_capacity(threshold));
        polynomial.push(Scalar::from_bytes_mod_order(*low));
        polynomial
    });
    for polynomial in &mut coefficients {
        for _ in 1..threshold {
            polynomial.push(random_scalar(rng));
        }
    }
    Ok((1..=last_point)
        .map(|x| {
            let point = Scalar::from(x);
            let halves = [0, 1].map(|half| {
                // Horner's rule, highest coefficient first.
                coefficients[half]
                    .iter()
                    .rev()
                    .fold(Scalar::ZERO, |acc, c| acc * point + c)
            });
            Share { x, halves }
        })
        .collect())
}

/// Reconstructs the secret from at least `threshold` shares (the first `threshold`
/// are used) by Lagrange interpolation at 0.
pub fn reconstruct(shares: &[Share], threshold: usize) -> Result<Zeroizing<[u8; 32]>, ShamirError> {
    if threshold == 0 {
        return Err(ShamirError::ZeroThreshold);
    }
    if shares.len() < threshold {
        return Err(ShamirError::TooFewShares {
            given: shares.len(),
            threshold,
        });
    }
    let used = &shares[..threshold];
    for (i, share) in used.iter().enumerate() {
        if share.x == 0 {
            return Err(ShamirError::ZeroEvaluationPoint);
        }
        if used[..i].iter().any(|other| other.x == share.x) {
            return Err(ShamirError::DuplicateEvaluationPoint(share.x));
        }
    }
    let mut halves = [Scalar::ZERO; 2];
    for share in used {
        let x_i = Scalar::from(share.x);
        let (numerator, denominator) = used.iter().filter(|other| other.x != share.x).fold(
            (Scalar::ONE, Scalar::ONE),
            |(num, den), other| {
                let x_j = Scalar::from(other.x);
                (num * x_j, den * (x_j - x_i))
            },
        );
        // Distinct non-zero points below l make the denominator non-zero.
        let lagrange = numerator * denominator.invert();
        for (half, value) in halves.iter_mut().zip(&share.halves) {
            *half += lagrange * value;
        }
    }
    let mut secret = Zeroizing::new([0u8; 32]);
    let mut valid = true;
    for (half, scalar) in halves.iter().enumerate() {
        let bytes = Zeroizing::new(scalar.to_bytes());
        valid &= bytes[16..].iter().all(|&b| b == 0);
        secret[16 * half..16 * (half + 1)].copy_from_slice(&bytes[..16]);
    }
    halves.zeroize();
    if valid {
        Ok(secret)
    } else {
        Err(ShamirError::InvalidReconstruction)
    }
}
