//! Any EVM node over JSON-RPC, through alloy: anvil locally, an L2 in
//! production. Transactions are signed locally with the caller's key.

use alloy::eips::BlockNumberOrTag;
use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, Bytes};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::http::reqwest::Url;
use alloy::transports::{RpcError, TransportErrorKind};

use super::{Chain, ChainError, Receipt};

/// A chain behind a JSON-RPC endpoint.
#[derive(Debug, Clone)]
pub struct RpcChain {
    url: Url,
    reader: DynProvider,
}

impl RpcChain {
    /// A chain at `url` (`http://` or `https://`). Nothing is sent until the
    /// first request.
    pub fn connect(url: &str) -> Result<RpcChain, ChainError> {
        let parsed: Url = url.parse().map_err(|e| ChainError::Rpc {
            url: url.into(),
            message: format!("not a URL: {e}"),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ChainError::Rpc {
                url: url.into(),
                message: "only http:// and https:// endpoints are supported".into(),
            });
        }
        let reader = ProviderBuilder::new().connect_http(parsed.clone()).erased();
        Ok(RpcChain {
            url: parsed,
            reader,
        })
    }

    fn error(&self, error: impl std::fmt::Display) -> ChainError {
        ChainError::Rpc {
            url: self.url.to_string(),
            message: error.to_string(),
        }
    }

    /// A revert is reported by the node as an error response carrying the
    /// revert data; anything else is a transport or node failure.
    fn call_error(&self, error: RpcError<TransportErrorKind>) -> ChainError {
        match error
            .as_error_resp()
            .and_then(|response| response.as_revert_data())
        {
            Some(data) => ChainError::Reverted { data },
            None => self.error(error),
        }
    }
}

impl Chain for RpcChain {
    fn describe(&self) -> String {
        self.url.to_string()
    }

    async fn chain_id(&self) -> Result<u64, ChainError> {
        self.reader.get_chain_id().await.map_err(|e| self.error(e))
    }

    async fn timestamp(&self) -> Result<u64, ChainError> {
        let block = self
            .reader
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(|e| self.error(e))?
            .ok_or_else(|| self.error("the node has no latest block"))?;
        Ok(block.header.timestamp)
    }

    async fn code(&self, address: Address) -> Result<Bytes, ChainError> {
        self.reader
            .get_code_at(address)
            .await
            .map_err(|e| self.error(e))
    }

    async fn call(&self, from: Address, to: Address, input: Bytes) -> Result<Bytes, ChainError> {
        let request = TransactionRequest::default()
            .with_from(from)
            .with_to(to)
            .with_input(input);
        self.reader
            .call(request)
            .await
            .map_err(|e| self.call_error(e))
    }

    async fn send(
        &self,
        signer: &PrivateKeySigner,
        to: Option<Address>,
        input: Bytes,
    ) -> Result<Receipt, ChainError> {
        let mut request = TransactionRequest::default()
            .with_from(signer.address())
            .with_input(input);
        match to {
            Some(to) => request.set_to(to),
            None => request.set_create(),
        }
        // Dry run first: a revert is reported with its reason and nothing is
        // spent.
        self.reader
            .call(request.clone())
            .await
            .map_err(|e| self.call_error(e))?;

        let wallet = EthereumWallet::from(signer.clone());
        let sender = ProviderBuilder::new()
            .wallet(wallet)
            .connect_http(self.url.clone());
        let pending = sender
            .send_transaction(request)
            .await
            .map_err(|e| self.call_error(e))?;
        let receipt = pending.get_receipt().await.map_err(|e| self.error(e))?;
        if !receipt.status() {
            return Err(ChainError::Reverted { data: Bytes::new() });
        }
        Ok(Receipt {
            tx_hash: receipt.transaction_hash,
            gas_used: receipt.gas_used,
            logs: receipt
                .inner
                .logs()
                .iter()
                .map(|log| log.inner.clone())
                .collect(),
            contract_address: receipt.contract_address,
        })
    }

    async fn advance_time(&self, seconds: u64) -> Result<(), ChainError> {
        let refused = |e: RpcError<TransportErrorKind>| {
            self.error(format!(
                "cannot move the block clock (only dev nodes such as anvil can): {e}"
            ))
        };
        self.reader
            .raw_request::<_, serde_json::Value>("evm_increaseTime".into(), (seconds,))
            .await
            .map_err(refused)?;
        self.reader
            .raw_request::<_, serde_json::Value>("evm_mine".into(), ())
            .await
            .map_err(refused)?;
        Ok(())
    }
}
