//! Posting a settled round to the reward contract, exactly once.
//!
//! The store records an `intent` before each transaction and `done` after
//! it. A coordinator that died between the two finds the intent on restart
//! and asks the contract: a round already posted (pending, final or vetoed)
//! is marked done, never posted again (the contract would refuse it anyway:
//! round numbers must increase). Slashes are posted after their round, each
//! with the client's own signed submission as evidence; a slash the
//! contract refuses is recorded with the reason and does not stop the task.

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::signers::local::PrivateKeySigner;
use fedstake_contracts::FederatedRewards::Evidence;
use fedstake_rewards::chain::Chain;
use fedstake_rewards::ledger::{Ledger, RoundState};
use tracing::{info, warn};

use crate::CoordinatorError;
use crate::store::{SettledRound, Store};

/// The contract's verdict code for "rejected by the robust aggregator with
/// negative alignment" (`VERDICT_REJECTED`).
const VERDICT_REJECTED: u8 = 2;

/// Posts `settled` and its slashes unless the store says they were posted.
pub async fn post_round<C: Chain>(
    ledger: &Ledger<C>,
    signer: &PrivateKeySigner,
    store: &Store,
    task_id: U256,
    settled: &SettledRound,
) -> Result<(), CoordinatorError> {
    let round = settled.round;
    if store
        .chain_tx(round, "post")?
        .is_none_or(|(state, _)| state != "done")
    {
        store.set_chain_tx(round, "post", "intent", "")?;
        let detail = match ledger.round_state(task_id, round).await? {
            RoundState::NotPosted => {
                let root =
                    fedstake_rewards::PayoutTree::from_json(&settled.payout_tree, "stored round")
                        .map_err(|e| {
                            CoordinatorError::Internal(format!("stored payout tree: {e}"))
                        })?
                        .root();
                let model_hash = parse_b256(&settled.model_hash)?;
                let total: U256 = settled
                    .total
                    .parse()
                    .map_err(|e| CoordinatorError::Internal(format!("stored round total: {e}")))?;
                let receipt = ledger
                    .post_round(signer, task_id, round, model_hash, root, total)
                    .await?;
                info!(round, tx = %receipt.tx_hash, gas = receipt.gas_used, "round posted");
                receipt.tx_hash.to_string()
            }
            state => format!("found on chain: {state:?}"),
        };
        store.set_chain_tx(round, "post", "done", &detail)?;
    }
    for (address, amount) in &settled.slashes {
        let kind = format!("slash:{address}");
        if store
            .chain_tx(round, &kind)?
            .is_some_and(|(state, _)| state != "intent")
        {
            continue;
        }
        store.set_chain_tx(round, &kind, "intent", amount)?;
        let account: Address = address
            .parse()
            .map_err(|e| CoordinatorError::Internal(format!("stored slash address: {e}")))?;
        let Some(submission) = store.submission(round, settled.attempt, address)? else {
            warn!(round, %address, "no signed submission to slash with");
            store.set_chain_tx(round, &kind, "skipped", "no signed submission")?;
            continue;
        };
        let evidence = Evidence {
            attempt: submission.attempt,
            updateHash: B256::from(submission.update_hash),
            verdictCode: VERDICT_REJECTED,
            reason: keccak256(format!("fedstake/1 slashing window flags at round {round}")),
            signature: submission.signature.into(),
        };
        let amount: U256 = amount
            .parse()
            .map_err(|e| CoordinatorError::Internal(format!("stored slash amount: {e}")))?;
        match ledger
            .slash(signer, task_id, account, round, amount, evidence)
            .await
        {
            Ok((id, receipt)) => {
                info!(round, %address, %amount, slash = %id, "slash posted");
                store.set_chain_tx(round, &kind, "done", &receipt.tx_hash.to_string())?;
            }
            Err(error) => {
                warn!(round, %address, %error, "slash refused");
                store.set_chain_tx(round, &kind, "refused", &error.to_string())?;
            }
        }
    }
    Ok(())
}

fn parse_b256(hex_text: &str) -> Result<B256, CoordinatorError> {
    let bytes = hex::decode(hex_text.trim_start_matches("0x"))
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| {
            CoordinatorError::Internal(format!("stored hash {hex_text:?} is not 32 bytes"))
        })?;
    Ok(B256::from(bytes))
}
