//! How a client proves, when it joins, that it holds the Ethereum key whose
//! stake the coordinator checks on chain.
//!
//! The coordinator sends a [`JoinChallenge`]: a fresh random nonce, the task
//! and the SHA-256 fingerprint of the coordinator's own TLS certificate. The
//! client signs the challenge's text with EIP-191 (`personal_sign`, what
//! every Ethereum wallet can do) and the coordinator recovers the address
//! from the signature. Binding the certificate fingerprint means a signature
//! made for one coordinator cannot be relayed to another, and the nonce
//! means it cannot be replayed to the same one.

use alloy_primitives::{Address, U256};

/// Why a join signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// The bytes are not a 65-byte `r || s || v` signature, or recover no key.
    #[error("join signature is malformed: {0}")]
    Malformed(String),
    /// A valid signature, by another key than the one claimed.
    #[error("join challenge is signed by {recovered}, not by the claimed {claimed}")]
    WrongSigner {
        /// The address the client claimed.
        claimed: Address,
        /// The address that signed.
        recovered: Address,
    },
}

/// What the coordinator asks a joining client to sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinChallenge {
    /// The task the client joins.
    pub task_id: U256,
    /// Fresh randomness from the coordinator, never reused.
    pub nonce: [u8; 32],
    /// SHA-256 of the coordinator's TLS certificate (DER), as pinned by the
    /// client.
    pub certificate_sha256: [u8; 32],
}

impl JoinChallenge {
    /// The text signed with EIP-191: readable in a wallet's signing prompt,
    /// and unambiguous (fixed fields, fixed-width hex).
    pub fn text(&self) -> String {
        format!(
            "fedstake/1 join\ntask: {}\nnonce: 0x{}\ncoordinator certificate: 0x{}",
            self.task_id,
            hex::encode(self.nonce),
            hex::encode(self.certificate_sha256)
        )
    }

    /// The address whose key produced `signature` over [`JoinChallenge::text`].
    pub fn signer(&self, signature: &[u8]) -> Result<Address, JoinError> {
        let signature = crate::parse_signature(signature).map_err(JoinError::Malformed)?;
        signature
            .recover_address_from_msg(self.text())
            .map_err(|e| JoinError::Malformed(e.to_string()))
    }

    /// Checks that `claimed` signed this challenge.
    pub fn verify(&self, signature: &[u8], claimed: Address) -> Result<(), JoinError> {
        let recovered = self.signer(signature)?;
        if recovered == claimed {
            Ok(())
        } else {
            Err(JoinError::WrongSigner { claimed, recovered })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_signer::SignerSync;
    use alloy_signer_local::PrivateKeySigner;

    fn challenge() -> JoinChallenge {
        JoinChallenge {
            task_id: U256::from(3),
            nonce: [7; 32],
            certificate_sha256: [9; 32],
        }
    }

    #[test]
    fn a_wallet_signature_verifies_for_its_key_only() {
        let key = PrivateKeySigner::random();
        let signature = key
            .sign_message_sync(challenge().text().as_bytes())
            .unwrap()
            .as_bytes();
        challenge().verify(&signature, key.address()).unwrap();
        let other = PrivateKeySigner::random().address();
        assert!(matches!(
            challenge().verify(&signature, other),
            Err(JoinError::WrongSigner { .. })
        ));
    }

    #[test]
    fn a_signature_does_not_carry_over_to_another_nonce_task_or_coordinator() {
        let key = PrivateKeySigner::random();
        let signature = key
            .sign_message_sync(challenge().text().as_bytes())
            .unwrap()
            .as_bytes();
        for changed in [
            JoinChallenge {
                nonce: [8; 32],
                ..challenge()
            },
            JoinChallenge {
                task_id: U256::from(4),
                ..challenge()
            },
            JoinChallenge {
                certificate_sha256: [1; 32],
                ..challenge()
            },
        ] {
            assert_ne!(changed.signer(&signature).ok(), Some(key.address()));
        }
    }

    #[test]
    fn garbage_is_malformed() {
        assert!(matches!(
            challenge().signer(&[1, 2, 3]),
            Err(JoinError::Malformed(_))
        ));
    }
}
