//! The embedded chain keeps its state across restarts, and the ledger refuses
//! chains and addresses it must not use.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use fedstake_contracts::NotRewards;
use fedstake_ledger::chain::{Chain, ChainError, EmbeddedChain, RpcChain};
use fedstake_ledger::{Ledger, LedgerError, deploy_test_token, mint_test_token};

#[tokio::test]
async fn embedded_chain_keeps_every_balance_and_its_clock_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.db");
    let owner = PrivateKeySigner::random();
    let holder = Address::repeat_byte(7);

    let (token, contract, clock) = {
        let chain = EmbeddedChain::open(&path, 31337).unwrap();
        let ledger = Ledger::deploy(chain, &owner).await.unwrap();
        let token = deploy_test_token(ledger.chain(), &owner).await.unwrap();
        mint_test_token(ledger.chain(), &owner, token, holder, U256::from(12345))
            .await
            .unwrap();
        ledger.chain().advance_time(1_000_000).await.unwrap();
        (
            token,
            ledger.address(),
            ledger.chain().timestamp().await.unwrap(),
        )
    };

    let chain = EmbeddedChain::open(&path, 31337).unwrap();
    assert!(
        chain.timestamp().await.unwrap() >= clock,
        "the clock never goes back"
    );
    let ledger = Ledger::attach(chain, contract, Some(31337)).await.unwrap();
    assert_eq!(
        ledger.balance_of(token, holder).await.unwrap(),
        U256::from(12345)
    );
    // The deployer's nonce survived too: a new deployment gets a new address.
    let second = deploy_test_token(ledger.chain(), &owner).await.unwrap();
    assert_ne!(second, token);
}

#[tokio::test]
async fn embedded_chain_refuses_a_store_of_another_chain_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.db");
    drop(EmbeddedChain::open(&path, 31337).unwrap());
    let error = EmbeddedChain::open(&path, 1).unwrap_err();
    assert!(matches!(error, ChainError::CorruptStore { .. }), "{error}");
    assert!(error.to_string().contains("chain id 31337"), "{error}");
}

#[tokio::test]
async fn ledger_refuses_an_address_that_is_not_federated_rewards() {
    let dir = tempfile::tempdir().unwrap();
    let chain = EmbeddedChain::open(&dir.path().join("chain.db"), 31337).unwrap();
    let owner = PrivateKeySigner::random();
    let other = chain
        .send(&owner, None, NotRewards::BYTECODE.clone())
        .await
        .unwrap();
    let other = other.contract_address.unwrap();
    let token = deploy_test_token(&chain, &owner).await.unwrap();
    let ledger = Ledger::deploy(chain, &owner).await.unwrap();
    let contract = ledger.address();
    drop(ledger);

    let reopen = || EmbeddedChain::open(&dir.path().join("chain.db"), 31337).unwrap();
    for (address, expected) in [
        (other, "eip712Domain"),
        (token, "eip712Domain"),
        (Address::repeat_byte(9), "no contract"),
    ] {
        let error = Ledger::attach(reopen(), address, None).await.unwrap_err();
        assert!(
            matches!(error, LedgerError::NotOurContract { .. }),
            "{error}"
        );
        assert!(error.to_string().contains(expected), "{error}");
    }
    let error = Ledger::attach(reopen(), contract, Some(10))
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        LedgerError::WrongChainId {
            expected: 10,
            found: 31337,
            ..
        }
    ));
}

#[tokio::test]
async fn rpc_chain_reports_an_unreachable_endpoint_by_url() {
    let chain = RpcChain::connect("http://127.0.0.1:9").unwrap();
    let error = chain.chain_id().await.unwrap_err();
    assert!(error.to_string().contains("127.0.0.1:9"), "{error}");
    assert!(RpcChain::connect("ws://localhost:8545").is_err());
}
