//! What a client signs when it submits an update: the EIP-712 typed message
//! `Submission(uint256 taskId,uint64 round,uint32 attempt,bytes32 updateHash)`
//! in the domain of the reward contract.
//!
//! The signature is the slashing evidence: the contract recovers the signer
//! with `ecrecover`, so a coordinator can only slash a client for an update
//! the client provably sent, and two valid signatures over different updates
//! for one round prove equivocation.

use alloy_primitives::{Address, B256, Signature, U256};
use alloy_signer::SignerSync;
use alloy_sol_types::{Eip712Domain, SolStruct, eip712_domain};

alloy_sol_types::sol! {
    /// The EIP-712 struct a client signs for each update it submits.
    #[derive(Debug, PartialEq, Eq)]
    struct Submission {
        uint256 taskId;
        uint64 round;
        uint32 attempt;
        bytes32 updateHash;
    }
}

/// Why a submission signature was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubmissionError {
    /// Signing failed (the key could not produce a signature).
    #[error("cannot sign submission: {0}")]
    Sign(#[from] alloy_signer::Error),
    /// The signature bytes are not a 65-byte `r || s || v` signature.
    #[error("submission signature is malformed: {0}")]
    Malformed(String),
    /// The signature is valid but by someone else.
    #[error("submission is signed by {recovered}, expected {expected}")]
    WrongSigner {
        /// Who should have signed.
        expected: Address,
        /// Who did.
        recovered: Address,
    },
}

/// The contract's EIP-712 domain: name `FederatedRewards`, version `1`, the
/// chain and the contract's address, so a signature is valid for exactly one
/// deployment.
pub fn domain(chain_id: u64, contract: Address) -> Eip712Domain {
    eip712_domain! {
        name: "FederatedRewards",
        version: "1",
        chain_id: chain_id,
        verifying_contract: contract,
    }
}

impl Submission {
    /// The submission of `update_hash` by a client for `(task, round, attempt)`.
    pub fn new(task_id: U256, round: u64, attempt: u32, update_hash: B256) -> Submission {
        Submission {
            taskId: task_id,
            round,
            attempt,
            updateHash: update_hash,
        }
    }

    /// Signs the EIP-712 digest; the 65-byte result is what `slash` takes.
    pub fn sign(
        &self,
        signer: &(impl SignerSync + ?Sized),
        domain: &Eip712Domain,
    ) -> Result<Signature, SubmissionError> {
        Ok(signer.sign_hash_sync(&self.eip712_signing_hash(domain))?)
    }

    /// Recovers the signer of `signature` over this submission.
    pub fn recover(
        &self,
        signature: &[u8],
        domain: &Eip712Domain,
    ) -> Result<Address, SubmissionError> {
        let signature = crate::parse_signature(signature).map_err(SubmissionError::Malformed)?;
        signature
            .recover_address_from_prehash(&self.eip712_signing_hash(domain))
            .map_err(|e| SubmissionError::Malformed(e.to_string()))
    }

    /// Checks that `expected` signed this submission.
    pub fn verify(
        &self,
        signature: &[u8],
        domain: &Eip712Domain,
        expected: Address,
    ) -> Result<(), SubmissionError> {
        let recovered = self.recover(signature, domain)?;
        if recovered == expected {
            Ok(())
        } else {
            Err(SubmissionError::WrongSigner {
                expected,
                recovered,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_signer_local::PrivateKeySigner;

    fn example() -> (Submission, Eip712Domain) {
        let submission = Submission::new(U256::from(1), 7, 0, B256::repeat_byte(0xab));
        (submission, domain(31337, Address::repeat_byte(0x11)))
    }

    #[test]
    fn a_signature_verifies_for_its_signer_only() {
        let (submission, domain) = example();
        let signer = PrivateKeySigner::random();
        let signature = submission.sign(&signer, &domain).unwrap().as_bytes();
        submission
            .verify(&signature, &domain, signer.address())
            .unwrap();
        let other = PrivateKeySigner::random().address();
        assert!(matches!(
            submission.verify(&signature, &domain, other),
            Err(SubmissionError::WrongSigner { .. })
        ));
    }

    #[test]
    fn a_signature_is_bound_to_round_attempt_update_chain_and_contract() {
        let (submission, domain) = example();
        let signer = PrivateKeySigner::random();
        let signature = submission.sign(&signer, &domain).unwrap().as_bytes();
        let changed = [
            (
                Submission {
                    round: 8,
                    ..submission.clone()
                },
                domain.clone(),
            ),
            (
                Submission {
                    attempt: 1,
                    ..submission.clone()
                },
                domain.clone(),
            ),
            (
                Submission {
                    updateHash: B256::ZERO,
                    ..submission.clone()
                },
                domain.clone(),
            ),
            (
                submission.clone(),
                super::domain(1, Address::repeat_byte(0x11)),
            ),
            (
                submission.clone(),
                super::domain(31337, Address::repeat_byte(0x12)),
            ),
        ];
        for (other, other_domain) in changed {
            assert_ne!(
                other.recover(&signature, &other_domain).ok(),
                Some(signer.address())
            );
        }
    }

    #[test]
    fn malformed_signatures_are_refused() {
        let (submission, domain) = example();
        assert!(matches!(
            submission.recover(&[0u8; 10], &domain),
            Err(SubmissionError::Malformed(_))
        ));
    }
}
