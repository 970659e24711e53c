//! X25519 key pairs and key agreement.
//!
//! Secrets are built from bytes drawn from a caller-supplied CSPRNG (so the crate
//! does not depend on a particular `rand_core` version of the dalek crates) and
//! are zeroized on drop, as are agreed shared secrets. Agreement refuses
//! non-contributory results (a peer key of small order), which would otherwise
//! give a shared secret an attacker knows.

use rand::CryptoRng;
use thiserror::Error;
use x25519_dalek::{PublicKey, SharedSecret, StaticSecret};
use zeroize::Zeroizing;

use crate::kdf::{ClientPair, Context, DerivedKey, Purpose, derive_key};

/// Why a key agreement was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    /// The peer's public key has small order, so the shared secret is not secret.
    #[error("the peer public key has small order; the agreement is not contributory")]
    NonContributoryAgreement,
}

/// An X25519 public key as 32 bytes.
pub type PublicKeyBytes = [u8; 32];

/// An X25519 key pair; the secret half is zeroized on drop.
pub struct KeyPair {
    secret: StaticSecret,
    public: PublicKey,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// A fresh key pair from 32 bytes of `rng`.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(bytes.as_mut());
        Self::from_secret_bytes(*bytes)
    }

    /// The key pair whose (clamped on use) secret scalar is `secret`.
    pub fn from_secret_bytes(secret: [u8; 32]) -> Self {
        let secret = StaticSecret::from(secret);
        let public = PublicKey::from(&secret);
        Self { secret, public }
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKeyBytes {
        self.public.to_bytes()
    }

    /// X25519 agreement with `peer`; both sides obtain the same [`SharedKey`].
    pub fn agree(&self, peer: &PublicKeyBytes) -> Result<SharedKey, KeyError> {
        let shared = self.secret.diffie_hellman(&PublicKey::from(*peer));
        if shared.was_contributory() {
            Ok(SharedKey(shared))
        } else {
            Err(KeyError::NonContributoryAgreement)
        }
    }
}

/// The raw result of an X25519 agreement; zeroized on drop. Use it only as HKDF
/// input keying material, through [`SharedKey::derive`].
pub struct SharedKey(SharedSecret);

impl std::fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedKey(..)")
    }
}

impl SharedKey {
    /// Derives the key for `purpose` between the clients of `pair` in `context`.
    pub fn derive(&self, context: &Context, purpose: Purpose, pair: ClientPair) -> DerivedKey {
        derive_key(self.0.as_bytes(), context, purpose, pair)
    }

    /// The raw agreed bytes, for equality checks in tests and key derivation.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }
}
