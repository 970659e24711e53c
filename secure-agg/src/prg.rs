//! ChaCha20 keystream masks over `Z_{2^32}`.
//!
//! A 32-byte seed is expanded with the ChaCha20 (IETF, 96-bit nonce) keystream;
//! consecutive little-endian 4-byte words are the mask coordinates, added to or
//! subtracted from a `u32` vector with wrapping arithmetic.
//!
//! The nonce is all zeros. That is safe because each seed is used for exactly one
//! keystream: seeds are HKDF outputs bound to (task, round, attempt, group, pair,
//! purpose) by [`crate::kdf`], so no two masks share a key, and a key/nonce pair is
//! never reused. The 32-bit block counter limits one mask to `2^32` blocks of 64
//! bytes, i.e. `2^36` coordinates; longer vectors are refused.
//!
//! The keystream is produced in blocks into a reusable buffer of [`BUFFER_BYTES`]
//! and then added word by word, so there is no per-coordinate allocation or call
//! into the cipher. [`apply_masks`] applies many masks chunk by chunk, so a chunk
//! of the vector stays in cache while every mask is added to it.

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use thiserror::Error;
use zeroize::Zeroize;

/// Size of the keystream buffer, in bytes.
pub const BUFFER_BYTES: usize = 64 * 1024;

/// Coordinates per buffer.
const BUFFER_WORDS: usize = BUFFER_BYTES / 4;

/// Most coordinates one mask can cover (the ChaCha20 IETF counter limit).
pub const MAX_MASK_COORDINATES: u64 = 1 << 36;

/// Why a mask was not applied.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PrgError {
    /// The vector is longer than one ChaCha20 keystream can mask.
    #[error("a vector of {0} coordinates is longer than the 2^36 one mask can cover")]
    VectorTooLong(usize),
}

/// Whether a mask is added or subtracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaskSign {
    /// `values += PRG(seed)`.
    Add,
    /// `values -= PRG(seed)`.
    Subtract,
}

/// One mask to apply: its seed and sign.
#[derive(Debug, Clone, Copy)]
pub struct SignedMask<'a> {
    /// The PRG seed.
    pub seed: &'a [u8; 32],
    /// Added or subtracted.
    pub sign: MaskSign,
}

fn check_length(values: &[u32]) -> Result<(), PrgError> {
    if values.len() as u64 > MAX_MASK_COORDINATES {
        Err(PrgError::VectorTooLong(values.len()))
    } else {
        Ok(())
    }
}

fn cipher(seed: &[u8; 32]) -> ChaCha20 {
    ChaCha20::new(seed.into(), &[0u8; 12].into())
}

/// Writes the next `buffer.len()` keystream bytes of `cipher` into `buffer`.
fn fill_keystream(cipher: &mut ChaCha20, buffer: &mut [u8]) {
    buffer.fill(0);
    cipher.apply_keystream(buffer);
}

fn combine(values: &mut [u32], keystream: &[u8], sign: MaskSign) {
    let words = keystream
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
    match sign {
        MaskSign::Add => values
            .iter_mut()
            .zip(words)
            .for_each(|(v, m)| *v = v.wrapping_add(m)),
        MaskSign::Subtract => {
            values
                .iter_mut()
                .zip(words)
                .for_each(|(v, m)| *v = v.wrapping_sub(m));
        }
    }
}

/// Applies every mask of `masks` to `values`, processing the vector in chunks of
/// [`BUFFER_BYTES`] so each chunk is read and written once per mask while hot in
/// cache.
pub fn apply_masks(values: &mut [u32], masks: &[SignedMask<'_>]) -> Result<(), PrgError> {
    check_length(values)?;
    let mut ciphers: Vec<(ChaCha20, MaskSign)> = masks
        .iter()
        .map(|mask| (cipher(mask.seed), mask.sign))
        .collect();
    let mut buffer = vec![0u8; BUFFER_BYTES.min(values.len() * 4)];
    for chunk in values.chunks_mut(BUFFER_WORDS) {
        let keystream = &mut buffer[..chunk.len() * 4];
        for (cipher, sign) in &mut ciphers {
            fill_keystream(cipher, keystream);
            combine(chunk, keystream, *sign);
        }
    }
    buffer.zeroize();
    Ok(())
}

/// `values += PRG(seed)` coordinate-wise, mod `2^32`.
pub fn add_mask(values: &mut [u32], seed: &[u8; 32]) -> Result<(), PrgError> {
    apply_masks(
        values,
        &[SignedMask {
            seed,
            sign: MaskSign::Add,
        }],
    )
}

/// `values -= PRG(seed)` coordinate-wise, mod `2^32`.
pub fn sub_mask(values: &mut [u32], seed: &[u8; 32]) -> Result<(), PrgError> {
    apply_masks(
        values,
        &[SignedMask {
            seed,
            sign: MaskSign::Subtract,
        }],
    )
}

/// The first `length` mask coordinates of `seed` (for tests and tools; masking
/// should use [`add_mask`] or [`apply_masks`] to avoid the extra vector).
pub fn mask_vector(seed: &[u8; 32], length: usize) -> Result<Vec<u32>, PrgError> {
    let mut values = vec![0u32; length];
    add_mask(&mut values, seed)?;
    Ok(values)
}
