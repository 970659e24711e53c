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
//! into the cipher. [`apply_masks`] and [`sum_and_mask`] work chunk by chunk, so
//! a chunk of the vector stays in cache while every input and mask is added to
//! it, and chunks run in parallel (ChaCha20 can start anywhere in its stream).

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use rayon::prelude::*;
use thiserror::Error;
use zeroize::Zeroizing;

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
    /// An input to sum has another length than the vector.
    #[error("an input has {got} coordinates, the sum has {expected}")]
    InputLengthMismatch {
        /// Length of the sum.
        expected: usize,
        /// Length of the input.
        got: usize,
    },
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

/// Applies every mask of `masks` to `values` (see [`sum_and_mask`]).
pub fn apply_masks(values: &mut [u32], masks: &[SignedMask<'_>]) -> Result<(), PrgError> {
    sum_and_mask(values, &[], masks)
}

/// `values += sum(inputs)`, then every mask of `masks` applied, all mod `2^32`:
/// the server's unmasking in one pass over memory (a client masks with no
/// inputs). The vector is cut into chunks of [`BUFFER_BYTES`] processed in
/// parallel; each chunk adds its slice of every input, then starts every
/// mask's keystream at the chunk's offset and combines it while the chunk is
/// hot in cache. Every input must have `values.len()` coordinates.
pub fn sum_and_mask(
    values: &mut [u32],
    inputs: &[&[u32]],
    masks: &[SignedMask<'_>],
) -> Result<(), PrgError> {
    check_length(values)?;
    if let Some(input) = inputs.iter().find(|input| input.len() != values.len()) {
        return Err(PrgError::InputLengthMismatch {
            expected: values.len(),
            got: input.len(),
        });
    }
    values
        .par_chunks_mut(BUFFER_WORDS)
        .enumerate()
        .try_for_each_init(
            || Zeroizing::new(vec![0u8; BUFFER_BYTES]),
            |buffer, (index, chunk)| {
                let start = index * BUFFER_WORDS;
                for input in inputs {
                    let part = &input[start..start + chunk.len()];
                    chunk
                        .iter_mut()
                        .zip(part)
                        .for_each(|(v, x)| *v = v.wrapping_add(*x));
                }
                let keystream = &mut buffer[..chunk.len() * 4];
                for mask in masks {
                    let mut cipher = cipher(mask.seed);
                    // Below 2^38 bytes by `check_length`, so the seek succeeds.
                    cipher
                        .try_seek(start as u64 * 4)
                        .map_err(|_| PrgError::VectorTooLong(start + chunk.len()))?;
                    fill_keystream(&mut cipher, keystream);
                    combine(chunk, keystream, mask.sign);
                }
                Ok(())
            },
        )
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
