//! The chain side of fedstake's rewards: the `FederatedRewards` contract as
//! Rust calls ([`Ledger`]) over a narrow [`Chain`] with two backends running
//! the same compiled bytecode, an embedded in-process EVM
//! ([`EmbeddedChain`]: revm, state in SQLite) and any EVM node over JSON-RPC
//! ([`RpcChain`]: alloy).
//!
//! This is the only crate of the workspace that links an EVM; the payout and
//! slashing policy it posts is the pure `fedstake_rewards`, and the
//! submission signature it relays is `fedstake_protocol::Submission`.

pub mod chain;
mod ledger;

pub use chain::{AnyChain, Chain, ChainError, EmbeddedChain, Receipt, RpcChain};
pub use ledger::{
    Evidence, Ledger, LedgerError, RoundState, SignedSubmission, TaskParams, TaskView,
    deploy_test_token, embedded_defaults, embedded_deployer, mint_test_token, task_params,
};
