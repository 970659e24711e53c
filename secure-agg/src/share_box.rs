//! Authenticated encryption of share payloads between two clients.
//!
//! The key is HKDF-derived from the X25519 agreement of the two clients' share
//! encryption keys with purpose `share-encryption` (see [`crate::kdf`]); it is the
//! same key for both directions of a pair. Each direction is encrypted exactly once
//! per context, and the nonce is `sender (u32 BE) || receiver (u32 BE) || 0u32`, so
//! the two directions never reuse a key/nonce pair. The associated data binds the
//! context, the sender and the receiver, so a box cannot be replayed in another
//! round, attempt, group or between other clients. Every decryption failure is
//! [`ShareBoxError::DecryptionFailed`]; nothing here panics on bad input.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::kdf::{ClientPair, Context, Purpose};
use crate::keys::SharedKey;

/// Domain label at the start of the associated data.
pub const AD_PREFIX: &[u8] = b"fedstake/secagg/v1/share-box";

/// Bytes the ciphertext adds to the plaintext (the Poly1305 tag).
pub const TAG_BYTES: usize = 16;

/// Why a share box could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ShareBoxError {
    /// Sender and receiver are the same client.
    #[error("client {0} cannot send a share box to itself")]
    SenderIsReceiver(u32),
    /// The plaintext is too long for ChaCha20-Poly1305.
    #[error("the plaintext of {0} bytes is too long to encrypt")]
    PlaintextTooLong(usize),
    /// The box failed authentication: tampered, truncated, or for another context,
    /// sender or receiver.
    #[error(
        "the share box from client {sender} to client {receiver} failed authentication \
         (tampered, truncated, or made for another context or pair)"
    )]
    DecryptionFailed {
        /// Claimed sender.
        sender: u32,
        /// Claimed receiver.
        receiver: u32,
    },
}

fn nonce(sender: u32, receiver: u32) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(&sender.to_be_bytes());
    nonce[4..8].copy_from_slice(&receiver.to_be_bytes());
    nonce.into()
}

fn associated_data(context: &Context, sender: u32, receiver: u32) -> Vec<u8> {
    let mut ad = Vec::with_capacity(AD_PREFIX.len() + Context::ENCODED_LEN + 8);
    ad.extend_from_slice(AD_PREFIX);
    ad.extend_from_slice(&context.to_bytes());
    ad.extend_from_slice(&sender.to_be_bytes());
    ad.extend_from_slice(&receiver.to_be_bytes());
    ad
}

fn aead(shared: &SharedKey, context: &Context, sender: u32, receiver: u32) -> ChaCha20Poly1305 {
    let key = shared.derive(
        context,
        Purpose::ShareEncryption,
        ClientPair::new(sender, receiver),
    );
    ChaCha20Poly1305::new(Key::from_slice(key.as_bytes()))
}

/// Encrypts `plaintext` from `sender` to `receiver`; the result is
/// `plaintext.len() + TAG_BYTES` bytes.
pub fn seal(
    shared: &SharedKey,
    context: &Context,
    sender: u32,
    receiver: u32,
    plaintext: &[u8],
) -> Result<Vec<u8>, ShareBoxError> {
    if sender == receiver {
        return Err(ShareBoxError::SenderIsReceiver(sender));
    }
    let ad = associated_data(context, sender, receiver);
    aead(shared, context, sender, receiver)
        .encrypt(
            &nonce(sender, receiver),
            Payload {
                msg: plaintext,
                aad: &ad,
            },
        )
        .map_err(|_| ShareBoxError::PlaintextTooLong(plaintext.len()))
}

/// Decrypts a box `sender` sealed for `receiver`.
pub fn open(
    shared: &SharedKey,
    context: &Context,
    sender: u32,
    receiver: u32,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, ShareBoxError> {
    if sender == receiver {
        return Err(ShareBoxError::SenderIsReceiver(sender));
    }
    let ad = associated_data(context, sender, receiver);
    aead(shared, context, sender, receiver)
        .decrypt(
            &nonce(sender, receiver),
            Payload {
                msg: ciphertext,
                aad: &ad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| ShareBoxError::DecryptionFailed { sender, receiver })
}
