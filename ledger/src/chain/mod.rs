//! Where the reward contract runs: the same compiled bytecode either in an
//! embedded, in-process EVM ([`EmbeddedChain`]: revm with its state in
//! SQLite) or on any EVM node over JSON-RPC ([`RpcChain`]: alloy).
//!
//! [`Chain`] is the narrow waist between them: read-only calls, signed
//! transactions and the block clock. Everything contract-specific (encoding,
//! custom errors, events) lives once, above it, in [`crate::ledger`], so both
//! backends run exactly the same ledger code.

mod embedded;
mod rpc;

use std::future::Future;

use alloy::primitives::{Address, B256, Bytes, Log};
use alloy::signers::local::PrivateKeySigner;

pub use embedded::EmbeddedChain;
pub use rpc::RpcChain;

/// Either backend, chosen at run time (`--chain embedded:<path>` or a URL).
#[derive(Debug)]
pub enum AnyChain {
    /// The in-process EVM.
    Embedded(Box<EmbeddedChain>),
    /// A JSON-RPC node.
    Rpc(RpcChain),
}

/// Forwards a [`Chain`] method to the backend inside an [`AnyChain`].
macro_rules! forward {
    ($self:ident, $chain:ident => $call:expr) => {
        match $self {
            AnyChain::Embedded($chain) => $call,
            AnyChain::Rpc($chain) => $call,
        }
    };
}

impl Chain for AnyChain {
    fn describe(&self) -> String {
        forward!(self, chain => chain.describe())
    }

    async fn chain_id(&self) -> Result<u64, ChainError> {
        forward!(self, chain => chain.chain_id().await)
    }

    async fn timestamp(&self) -> Result<u64, ChainError> {
        forward!(self, chain => chain.timestamp().await)
    }

    async fn code(&self, address: Address) -> Result<Bytes, ChainError> {
        forward!(self, chain => chain.code(address).await)
    }

    async fn call(&self, from: Address, to: Address, input: Bytes) -> Result<Bytes, ChainError> {
        forward!(self, chain => chain.call(from, to, input).await)
    }

    async fn send(
        &self,
        signer: &PrivateKeySigner,
        to: Option<Address>,
        input: Bytes,
    ) -> Result<Receipt, ChainError> {
        forward!(self, chain => chain.send(signer, to, input).await)
    }

    async fn advance_time(&self, seconds: u64) -> Result<(), ChainError> {
        forward!(self, chain => chain.advance_time(seconds).await)
    }
}

/// A transaction that was included and succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The transaction's hash (on the embedded chain, a hash of its block,
    /// sender, nonce and input).
    pub tx_hash: B256,
    /// Gas the transaction used, intrinsic cost included.
    pub gas_used: u64,
    /// The events it emitted, in order.
    pub logs: Vec<Log>,
    /// The address of the contract it created, for a deployment.
    pub contract_address: Option<Address>,
}

/// Why a call or transaction did not go through.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The contract reverted; `data` is the revert payload (a custom error or
    /// `Error(string)`) for the ledger to decode. Nothing was changed.
    #[error("execution reverted (0x{})", alloy::hex::encode(data))]
    Reverted {
        /// The ABI-encoded revert reason.
        data: Bytes,
    },
    /// The EVM stopped abnormally (out of gas, invalid opcode, ...).
    #[error("execution halted: {0}")]
    Halted(String),
    /// The transaction itself was invalid (nonce, gas limit, ...).
    #[error("invalid transaction: {0}")]
    InvalidTransaction(String),
    /// The embedded chain's SQLite store failed.
    #[error("embedded chain store {path}: {source}")]
    Store {
        /// The database file.
        path: String,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The embedded chain's store holds something it did not write.
    #[error("embedded chain store {path} is corrupt: {reason}")]
    CorruptStore {
        /// The database file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The JSON-RPC endpoint failed or refused.
    #[error("JSON-RPC endpoint {url}: {message}")]
    Rpc {
        /// The endpoint.
        url: String,
        /// What went wrong.
        message: String,
    },
}

/// An EVM chain the ledger can read and transact on.
///
/// Methods are `async` because a remote node is; the embedded chain answers
/// at once. Every implementation is safe to share between tasks.
pub trait Chain: Send + Sync {
    /// A human-readable name of the chain for errors (`embedded:<path>` or
    /// the RPC URL).
    fn describe(&self) -> String;

    /// The chain id (EIP-155), which also binds EIP-712 signatures.
    fn chain_id(&self) -> impl Future<Output = Result<u64, ChainError>> + Send;

    /// The timestamp of the latest block: what `block.timestamp` is for
    /// calls.
    fn timestamp(&self) -> impl Future<Output = Result<u64, ChainError>> + Send;

    /// The code deployed at `address` (empty for an account without code).
    fn code(&self, address: Address) -> impl Future<Output = Result<Bytes, ChainError>> + Send;

    /// Executes a read-only call from `from` to `to` at the latest block.
    fn call(
        &self,
        from: Address,
        to: Address,
        input: Bytes,
    ) -> impl Future<Output = Result<Bytes, ChainError>> + Send;

    /// Sends a transaction signed by `signer` to `to` (or a deployment when
    /// `to` is `None`) and waits until it is included. A transaction that
    /// would revert is refused with [`ChainError::Reverted`] before it is
    /// sent, so it costs nothing and changes nothing.
    fn send(
        &self,
        signer: &PrivateKeySigner,
        to: Option<Address>,
        input: Bytes,
    ) -> impl Future<Output = Result<Receipt, ChainError>> + Send;

    /// Moves the block clock forward by `seconds` and produces a block, on
    /// chains that allow it (the embedded chain, anvil); a production node
    /// refuses with an error.
    fn advance_time(&self, seconds: u64) -> impl Future<Output = Result<(), ChainError>> + Send;
}
