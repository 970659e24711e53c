//! Client and server identities: Ethereum secp256k1 keys.
//!
//! The identity that signs protocol messages is the one the chain sees. An address
//! is the last 20 bytes of `keccak256(uncompressed public key without 0x04)`. A
//! message is signed with recoverable ECDSA over a Keccak-256 digest of its
//! domain-separated encoding (see [`crate::messages`]); verification recovers the
//! signer's address and compares it to the address the verifier expects for the
//! claimed sender. Signing keys are zeroized on drop (by `k256`).

use k256::ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey};
use rand::CryptoRng;
use sha3::{Digest, Keccak256};
use thiserror::Error;
use zeroize::Zeroizing;

/// A 20-byte Ethereum address.
pub type Address = [u8; 20];

/// Length of a recoverable signature: `r || s || recovery id`.
pub const SIGNATURE_BYTES: usize = 65;

/// A recoverable ECDSA signature, `r || s || v` with `v` in `0..=3`.
pub type SignatureBytes = [u8; SIGNATURE_BYTES];

/// Why signing or verification failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdentityError {
    /// The secret key bytes are zero or not below the curve order.
    #[error("the secp256k1 secret key is zero or not below the curve order")]
    InvalidSecretKey,
    /// ECDSA signing failed.
    #[error("ECDSA signing failed")]
    SigningFailed,
    /// The signature bytes are malformed (bad `r`, `s` or recovery id).
    #[error("the signature is malformed (invalid r, s or recovery id)")]
    MalformedSignature,
    /// No public key could be recovered from the signature.
    #[error("no public key can be recovered from the signature")]
    RecoveryFailed,
    /// The signature was made by another key than the expected one.
    #[error("the signature recovers address {recovered}, expected {expected}")]
    WrongSigner {
        /// Hex of the address the signature recovers.
        recovered: String,
        /// Hex of the address that should have signed.
        expected: String,
    },
}

/// Keccak-256 of `bytes`.
pub fn keccak256(bytes: &[u8]) -> [u8; 32] {
    Keccak256::digest(bytes).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The Ethereum address of a public key.
pub fn address_of(key: &VerifyingKey) -> Address {
    let point = key.to_encoded_point(false);
    let digest = keccak256(&point.as_bytes()[1..]);
    let mut address = [0u8; 20];
    address.copy_from_slice(&digest[12..]);
    address
}

/// A secp256k1 signing key with its address; the key is zeroized on drop.
#[derive(Clone)]
pub struct Identity {
    key: SigningKey,
    address: Address,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("address", &hex(&self.address))
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// The identity with secret key `secret` (big-endian scalar).
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Result<Self, IdentityError> {
        let key = SigningKey::from_slice(secret).map_err(|_| IdentityError::InvalidSecretKey)?;
        let address = address_of(key.verifying_key());
        Ok(Self { key, address })
    }

    /// A fresh identity from `rng`.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        loop {
            let mut secret = Zeroizing::new([0u8; 32]);
            rng.fill_bytes(secret.as_mut());
            // Fails with probability about 2^-128; draw again then.
            if let Ok(identity) = Self::from_secret_bytes(&secret) {
                return identity;
            }
        }
    }

    /// The Ethereum address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// Signs a 32-byte digest with recoverable ECDSA.
    pub fn sign_digest(&self, digest: &[u8; 32]) -> Result<SignatureBytes, IdentityError> {
        let (signature, recovery_id) = self
            .key
            .sign_prehash_recoverable(digest)
            .map_err(|_| IdentityError::SigningFailed)?;
        let mut bytes = [0u8; SIGNATURE_BYTES];
        bytes[..64].copy_from_slice(&signature.to_bytes());
        bytes[64] = recovery_id.to_byte();
        Ok(bytes)
    }
}

/// The address that signed `digest`.
pub fn recover_address(
    digest: &[u8; 32],
    signature: &SignatureBytes,
) -> Result<Address, IdentityError> {
    let parsed =
        Signature::from_slice(&signature[..64]).map_err(|_| IdentityError::MalformedSignature)?;
    let recovery_id =
        RecoveryId::from_byte(signature[64]).ok_or(IdentityError::MalformedSignature)?;
    let key = VerifyingKey::recover_from_prehash(digest, &parsed, recovery_id)
        .map_err(|_| IdentityError::RecoveryFailed)?;
    Ok(address_of(&key))
}

/// Checks that `signature` over `digest` was made by `expected`.
pub fn verify_digest(
    digest: &[u8; 32],
    signature: &SignatureBytes,
    expected: &Address,
) -> Result<(), IdentityError> {
    let recovered = recover_address(digest, signature)?;
    if &recovered == expected {
        Ok(())
    } else {
        Err(IdentityError::WrongSigner {
            recovered: hex(&recovered),
            expected: hex(expected),
        })
    }
}
