//! Our payout tree is OpenZeppelin's: the same root and proofs as
//! `@openzeppelin/merkle-tree` (run through `contracts/scripts/merkle.mjs`)
//! for the same leaves.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[path = "../../ledger/tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use alloy_primitives::{Address, B256, U256};
use fedstake_rewards::PayoutTree;
use proptest::prelude::*;

fn openzeppelin(entries: &[(Address, U256)]) -> (B256, BTreeMap<Address, Vec<B256>>) {
    let values: Vec<[String; 2]> = entries
        .iter()
        .map(|(a, v)| [a.to_checksum(None), v.to_string()])
        .collect();
    let mut child = Command::new("node")
        .arg(common::contracts_dir().join("scripts/merkle.mjs"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&values).unwrap().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "merkle.mjs failed; run scripts/install-contract-deps.sh"
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let root = json["root"].as_str().unwrap().parse().unwrap();
    let proofs = json["proofs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(address, proof)| {
            let proof = proof
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().parse().unwrap());
            (address.parse().unwrap(), proof.collect())
        })
        .collect();
    (root, proofs)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn root_and_proofs_match_openzeppelin(
        amounts in proptest::collection::btree_map(any::<[u8; 20]>(), any::<u128>(), 1..40)
    ) {
        let entries: Vec<(Address, U256)> =
            amounts.iter().map(|(a, v)| (Address::from(*a), U256::from(*v) << 64usize)).collect();
        let tree = PayoutTree::new(entries.clone()).unwrap();
        let (root, proofs) = openzeppelin(&entries);
        prop_assert_eq!(tree.root(), root);
        for (account, _) in &entries {
            prop_assert_eq!(&tree.proof(*account).unwrap(), &proofs[account]);
        }
    }
}
