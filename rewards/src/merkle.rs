//! The cumulative payout tree: one root per round commits to every account's
//! total earnings so far, and an account claims its whole balance with one
//! proof whenever it likes.
//!
//! The encoding is OpenZeppelin's `StandardMerkleTree` with leaf types
//! `(address, uint256)`, so the contract verifies our proofs with OZ's
//! `MerkleProof`, and the tree can be dumped to and loaded from the JSON that
//! `@openzeppelin/merkle-tree` writes (format `standard-v1`):
//!
//! - leaf = `keccak256(bytes.concat(keccak256(abi.encode(account, amount))))`
//!   (double hashing, so a leaf can never be confused with an inner node);
//! - inner node = `keccak256` of its two children in ascending order;
//! - the leaves sorted ascending by hash, then laid out as a complete binary
//!   tree in an array (`tree[0]` is the root, children of `i` at `2i+1` and
//!   `2i+2`, leaf `k` at `len - 1 - k`).

use std::collections::BTreeMap;
use std::path::Path;

use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_sol_types::SolValue;
use serde::{Deserialize, Serialize};

use crate::CumulativePayouts;

/// Why a tree could not be built, loaded or queried.
#[derive(Debug, thiserror::Error)]
pub enum MerkleError {
    /// A tree needs at least one leaf.
    #[error("a payout tree needs at least one account")]
    Empty,
    /// The same account appears twice: its leaves would conflict.
    #[error("account {0} appears twice in the payout tree")]
    DuplicateAccount(Address),
    /// A proof was asked for an account that is not in the tree.
    #[error("account {0} is not in the payout tree")]
    UnknownAccount(Address),
    /// A dump file that could not be read.
    #[error("cannot read payout tree {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A dump that is not the `standard-v1` format with `(address, uint256)`
    /// leaves, or whose hashes do not match its values.
    #[error("payout tree {path} is invalid: {reason}")]
    InvalidDump {
        /// The file (or `<memory>`).
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// The hash of one `(account, cumulative amount)` leaf, as the contract
/// recomputes it.
pub fn leaf_hash(account: Address, cumulative_amount: U256) -> B256 {
    keccak256(keccak256((account, cumulative_amount).abi_encode()))
}

/// OpenZeppelin's commutative node hash: the children sorted, then hashed.
fn node_hash(a: &B256, b: &B256) -> B256 {
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    let mut both = [0u8; 64];
    both[..32].copy_from_slice(low.as_slice());
    both[32..].copy_from_slice(high.as_slice());
    keccak256(both)
}

/// Checks a proof the way OZ `MerkleProof.verify` does.
pub fn verify_proof(root: B256, leaf: B256, proof: &[B256]) -> bool {
    proof
        .iter()
        .fold(leaf, |node, sibling| node_hash(&node, sibling))
        == root
}

/// A cumulative payout tree with every account's total and its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutTree {
    /// The complete binary tree in array form; `nodes[0]` is the root.
    nodes: Vec<B256>,
    /// Each account's total and the index of its leaf in `nodes`.
    leaves: BTreeMap<Address, (U256, usize)>,
}

impl PayoutTree {
    /// The tree over `(account, cumulative amount)` pairs, in any order.
    pub fn new(
        entries: impl IntoIterator<Item = (Address, U256)>,
    ) -> Result<PayoutTree, MerkleError> {
        let mut hashed: Vec<(B256, Address, U256)> = Vec::new();
        let mut seen = BTreeMap::new();
        for (account, amount) in entries {
            if seen.insert(account, ()).is_some() {
                return Err(MerkleError::DuplicateAccount(account));
            }
            hashed.push((leaf_hash(account, amount), account, amount));
        }
        if hashed.is_empty() {
            return Err(MerkleError::Empty);
        }
        hashed.sort_by_key(|leaf| leaf.0);

        let len = 2 * hashed.len() - 1;
        let mut nodes = vec![B256::ZERO; len];
        let mut leaves = BTreeMap::new();
        for (k, (hash, account, amount)) in hashed.into_iter().enumerate() {
            let index = len - 1 - k;
            nodes[index] = hash;
            leaves.insert(account, (amount, index));
        }
        for i in (0..len - leaves.len()).rev() {
            nodes[i] = node_hash(&nodes[2 * i + 1], &nodes[2 * i + 2]);
        }
        Ok(PayoutTree { nodes, leaves })
    }

    /// The tree over a policy's cumulative totals, accounts being addresses.
    pub fn from_payouts(payouts: &CumulativePayouts<Address>) -> Result<PayoutTree, MerkleError> {
        PayoutTree::new(
            payouts
                .iter()
                .map(|(account, total)| (*account, U256::from(total))),
        )
    }

    /// The root the coordinator posts on chain.
    pub fn root(&self) -> B256 {
        self.nodes[0]
    }

    /// The cumulative amount committed for `account`, if it is in the tree.
    pub fn amount(&self, account: Address) -> Option<U256> {
        self.leaves.get(&account).map(|(amount, _)| *amount)
    }

    /// Every account and its cumulative amount, by address.
    pub fn entries(&self) -> impl Iterator<Item = (Address, U256)> + '_ {
        self.leaves
            .iter()
            .map(|(account, (amount, _))| (*account, *amount))
    }

    /// The proof for `account`'s leaf, leaf-side sibling first.
    pub fn proof(&self, account: Address) -> Result<Vec<B256>, MerkleError> {
        let &(_, mut index) = self
            .leaves
            .get(&account)
            .ok_or(MerkleError::UnknownAccount(account))?;
        let mut proof = Vec::new();
        while index > 0 {
            let sibling = if index % 2 == 1 { index + 1 } else { index - 1 };
            proof.push(self.nodes[sibling]);
            index = (index - 1) / 2;
        }
        Ok(proof)
    }

    /// The tree as `@openzeppelin/merkle-tree`'s `StandardMerkleTree.dump()`
    /// JSON, so any tool of that ecosystem can produce claims from it.
    pub fn to_json(&self) -> String {
        let dump = Dump {
            format: "standard-v1".into(),
            leaf_encoding: vec!["address".into(), "uint256".into()],
            tree: self.nodes.clone(),
            values: self
                .leaves
                .iter()
                .map(|(account, (amount, index))| DumpValue {
                    value: (account.to_checksum(None), amount.to_string()),
                    tree_index: *index,
                })
                .collect(),
        };
        // Serialising plain strings and numbers cannot fail.
        serde_json::to_string_pretty(&dump).unwrap_or_default()
    }

    /// Parses a `standard-v1` dump and checks that every hash in it follows
    /// from its values (a tampered dump is refused, not trusted).
    pub fn from_json(json: &str, origin: &str) -> Result<PayoutTree, MerkleError> {
        let invalid = |reason: String| MerkleError::InvalidDump {
            path: origin.into(),
            reason,
        };
        let dump: Dump = serde_json::from_str(json).map_err(|e| invalid(e.to_string()))?;
        if dump.format != "standard-v1" || dump.leaf_encoding != ["address", "uint256"] {
            return Err(invalid(format!(
                "format {} with leaves {:?}, expected standard-v1 with [address, uint256]",
                dump.format, dump.leaf_encoding
            )));
        }
        let mut entries = Vec::with_capacity(dump.values.len());
        for value in &dump.values {
            let account: Address = value
                .value
                .0
                .parse()
                .map_err(|_| invalid(format!("bad address {}", value.value.0)))?;
            let amount: U256 = value
                .value
                .1
                .parse()
                .map_err(|_| invalid(format!("bad amount {}", value.value.1)))?;
            entries.push((account, amount));
        }
        let tree = PayoutTree::new(entries).map_err(|e| invalid(e.to_string()))?;
        if tree.nodes != dump.tree {
            return Err(invalid("its hashes do not follow from its values".into()));
        }
        Ok(tree)
    }

    /// Writes the dump atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<(), MerkleError> {
        let io = |source| MerkleError::Io {
            path: path.display().to_string(),
            source,
        };
        let temporary = path.with_extension("json.tmp");
        std::fs::write(&temporary, self.to_json()).map_err(io)?;
        std::fs::rename(&temporary, path).map_err(io)
    }

    /// Reads a dump written by [`PayoutTree::save`] or by OZ's tooling.
    pub fn load(path: &Path) -> Result<PayoutTree, MerkleError> {
        let json = std::fs::read_to_string(path).map_err(|source| MerkleError::Io {
            path: path.display().to_string(),
            source,
        })?;
        PayoutTree::from_json(&json, &path.display().to_string())
    }
}

/// `StandardMerkleTree.dump()`'s JSON shape.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Dump {
    format: String,
    leaf_encoding: Vec<String>,
    tree: Vec<B256>,
    values: Vec<DumpValue>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DumpValue {
    value: (String, String),
    tree_index: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(n: u8) -> Address {
        Address::repeat_byte(n)
    }

    #[test]
    fn single_leaf_tree_has_the_leaf_as_root_and_an_empty_proof() {
        let tree = PayoutTree::new([(account(1), U256::from(5))]).unwrap();
        assert_eq!(tree.root(), leaf_hash(account(1), U256::from(5)));
        assert!(tree.proof(account(1)).unwrap().is_empty());
    }

    #[test]
    fn every_proof_verifies_and_no_proof_verifies_another_amount() {
        for n in 1..=17u8 {
            let entries: Vec<_> = (1..=n)
                .map(|i| (account(i), U256::from(i as u64 * 1000)))
                .collect();
            let tree = PayoutTree::new(entries.clone()).unwrap();
            for (who, amount) in &entries {
                let proof = tree.proof(*who).unwrap();
                assert!(verify_proof(tree.root(), leaf_hash(*who, *amount), &proof));
                assert!(!verify_proof(
                    tree.root(),
                    leaf_hash(*who, amount + U256::from(1)),
                    &proof
                ));
            }
        }
    }

    #[test]
    fn order_of_entries_does_not_change_the_root() {
        let entries: Vec<_> = (1..=9u8).map(|i| (account(i), U256::from(i))).collect();
        let mut reversed = entries.clone();
        reversed.reverse();
        assert_eq!(
            PayoutTree::new(entries).unwrap().root(),
            PayoutTree::new(reversed).unwrap().root()
        );
    }

    #[test]
    fn duplicates_and_empty_trees_are_refused() {
        assert!(matches!(PayoutTree::new([]), Err(MerkleError::Empty)));
        let twice = [(account(1), U256::from(1)), (account(1), U256::from(2))];
        assert!(matches!(
            PayoutTree::new(twice),
            Err(MerkleError::DuplicateAccount(_))
        ));
        let tree = PayoutTree::new([(account(1), U256::from(1))]).unwrap();
        assert!(matches!(
            tree.proof(account(2)),
            Err(MerkleError::UnknownAccount(_))
        ));
    }

    #[test]
    fn dump_round_trips_and_tampering_is_detected() {
        let tree =
            PayoutTree::new((1..=5u8).map(|i| (account(i), U256::from(i as u64) << 100usize)))
                .unwrap();
        let json = tree.to_json();
        assert_eq!(PayoutTree::from_json(&json, "t").unwrap(), tree);
        let tampered = json.replacen(&(U256::from(1u64) << 100usize).to_string(), "7", 1);
        assert!(matches!(
            PayoutTree::from_json(&tampered, "t"),
            Err(MerkleError::InvalidDump { .. })
        ));
    }
}
