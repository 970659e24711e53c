//! Posting a settled round to the reward contract, exactly once.
//!
//! The store records an intent before each transaction and its completion
//! after it. A coordinator that died between the two finds the intent on
//! restart and asks the contract: a round already posted (pending, final or
//! vetoed) is marked done, never posted again (the contract would refuse it
//! anyway: round numbers must increase). Slashes are posted after their
//! round, each with the client's own signed submission as evidence; a slash
//! the contract refuses is recorded with the reason and does not stop the
//! task.

use alloy::primitives::{B256, U256, keccak256};
use alloy::signers::local::PrivateKeySigner;
use fedstake_ledger::chain::Chain;
use fedstake_ledger::{Evidence, Ledger, RoundState};
use tracing::{info, warn};

use crate::CoordinatorError;
use crate::store::{ChainTx, ChainTxState, Store, StoredRound};

/// The contract's verdict code for "rejected by the robust aggregator with
/// negative alignment" (`VERDICT_REJECTED`).
const VERDICT_REJECTED: u8 = 2;

/// Posts `stored` and its slashes unless the store says they were posted.
pub async fn post_round<C: Chain>(
    ledger: &Ledger<C>,
    signer: &PrivateKeySigner,
    store: &Store,
    task_id: U256,
    stored: &StoredRound,
) -> Result<(), CoordinatorError> {
    let settled = &stored.settled;
    let round = settled.round;
    let Some(payout_tree) = &stored.payout_tree else {
        // A skipped round changed nothing; the contract accepts the next
        // round number without it.
        return Ok(());
    };
    if store
        .chain_tx(round, ChainTx::Post)?
        .is_none_or(|(state, _)| state != ChainTxState::Done)
    {
        store.set_chain_tx(round, ChainTx::Post, ChainTxState::Intent, "")?;
        let detail = match ledger.round_state(task_id, round).await? {
            RoundState::NotPosted => {
                let receipt = ledger
                    .post_round(
                        signer,
                        task_id,
                        round,
                        B256::from(settled.model_hash),
                        payout_tree.root(),
                        U256::from(settled.total()),
                    )
                    .await?;
                info!(round, tx = %receipt.tx_hash, gas = receipt.gas_used, "round posted");
                receipt.tx_hash.to_string()
            }
            state => format!("found on chain: {state:?}"),
        };
        store.set_chain_tx(round, ChainTx::Post, ChainTxState::Done, &detail)?;
    }
    for &(address, amount) in &settled.slashes {
        let tx = ChainTx::Slash(address);
        if store
            .chain_tx(round, tx)?
            .is_some_and(|(state, _)| state != ChainTxState::Intent)
        {
            continue;
        }
        store.set_chain_tx(round, tx, ChainTxState::Intent, &amount.to_string())?;
        let Some(submission) = store.submission(round, settled.attempt, address)? else {
            warn!(round, %address, "no signed submission to slash with");
            store.set_chain_tx(round, tx, ChainTxState::Skipped, "no signed submission")?;
            continue;
        };
        let evidence = Evidence {
            attempt: submission.attempt,
            updateHash: submission.update_hash,
            verdictCode: VERDICT_REJECTED,
            reason: keccak256(format!("fedstake/1 slashing window flags at round {round}")),
            signature: submission.signature.into(),
        };
        match ledger
            .slash(
                signer,
                task_id,
                address,
                round,
                U256::from(amount),
                evidence,
            )
            .await
        {
            Ok((id, receipt)) => {
                info!(round, %address, %amount, slash = %id, "slash posted");
                store.set_chain_tx(round, tx, ChainTxState::Done, &receipt.tx_hash.to_string())?;
            }
            Err(error) => {
                warn!(round, %address, %error, "slash refused");
                store.set_chain_tx(round, tx, ChainTxState::Refused, &error.to_string())?;
            }
        }
    }
    Ok(())
}
