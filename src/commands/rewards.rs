//! `fedstake rewards ...` and `fedstake client stake|unstake|withdraw`: what
//! a token holder does with the reward contract.

use std::path::Path;

use alloy::primitives::{Address, U256};
use anyhow::{Context, bail};
use fedstake_ledger::chain::Chain;
use fedstake_rewards::PayoutTree;

use super::chain::{ChainArgs, KeyArgs};

/// How a client's stake moves.
#[derive(Debug, Clone, Copy)]
pub enum StakeAction {
    /// Add active stake (approving the contract first unless told not to).
    Stake {
        /// Leave the allowance as it is.
        no_approve: bool,
    },
    /// Move active stake to unbonding.
    Unstake,
}

/// `fedstake client stake` / `unstake`.
pub async fn change_stake(
    chain: &ChainArgs,
    key: &KeyArgs,
    task: U256,
    amount: U256,
    action: StakeAction,
) -> anyhow::Result<()> {
    let ledger = chain.connect().await?.ledger;
    let signer = key.signer()?;
    let receipt = match action {
        StakeAction::Stake { no_approve } => {
            let token = ledger.task(task).await?.token;
            if !no_approve && ledger.allowance(token, signer.address()).await? < amount {
                ledger.approve(&signer, token, amount).await?;
                println!("approved {amount} of token {token} to the reward contract");
            }
            ledger.stake(&signer, task, amount).await?
        }
        StakeAction::Unstake => ledger.request_unstake(&signer, task, amount).await?,
    };
    let stake = ledger.stake_of(task, signer.address()).await?;
    println!("tx {} ({} gas)", receipt.tx_hash, receipt.gas_used);
    println!(
        "stake of {} in task {task}: {} active, {} unbonding until {}",
        signer.address(),
        stake.active,
        stake.unbonding,
        stake.unlockAt
    );
    Ok(())
}

/// `fedstake client withdraw`.
pub async fn withdraw(chain: &ChainArgs, key: &KeyArgs, task: U256) -> anyhow::Result<()> {
    let ledger = chain.connect().await?.ledger;
    let signer = key.signer()?;
    let before = ledger.stake_of(task, signer.address()).await?.unbonding;
    let receipt = ledger.withdraw(&signer, task).await?;
    println!(
        "withdrew {before} from task {task} (tx {})",
        receipt.tx_hash
    );
    Ok(())
}

/// Who to report on: an address, or the owner of a key.
pub fn account_of(account: Option<Address>, key: Option<&KeyArgs>) -> anyhow::Result<Address> {
    match (account, key) {
        (Some(account), _) => Ok(account),
        (None, Some(key)) => Ok(key.signer()?.address()),
        (None, None) => bail!("give --account or --key"),
    }
}

fn load_tree(path: &Path) -> anyhow::Result<PayoutTree> {
    PayoutTree::load(path).with_context(|| format!("cannot use payout tree {}", path.display()))
}

/// `fedstake rewards status`.
pub async fn status(
    chain: &ChainArgs,
    task: U256,
    account: Address,
    payouts: Option<&Path>,
) -> anyhow::Result<()> {
    let ledger = chain.connect().await?.ledger;
    let view = ledger.task(task).await?;
    let stake = ledger.stake_of(task, account).await?;
    let claimed = ledger.claimed(task, account).await?;
    let now = ledger.chain().timestamp().await?;
    println!(
        "task {task} on {} (contract {})",
        ledger.chain().describe(),
        ledger.address()
    );
    println!("  token            {}", view.token);
    println!(
        "  pool remaining   {} of {}",
        view.poolRemaining, view.initialPool
    );
    println!(
        "  posted           {} (last round {})",
        view.postedTotal, view.lastPostedRound
    );
    println!(
        "  final            {} (round {})",
        view.finalizedTotal, view.latestFinalRound
    );
    println!("  claimed          {}", view.claimedTotal);
    println!("  slashed to pool  {}", view.slashedToPool);
    let ends = if now >= view.endTime { "ended" } else { "ends" };
    println!(
        "  {ends:<16} {} (claims until {})",
        view.endTime, view.claimDeadline
    );
    println!("account {account}");
    println!(
        "  stake            {} active, {} unbonding",
        stake.active, stake.unbonding
    );
    println!("  claimed          {claimed}");
    let Some(path) = payouts else {
        return Ok(());
    };
    let tree = load_tree(path)?;
    let earned = tree.amount(account).unwrap_or_default();
    println!("  earned (tree)    {earned}");
    if tree.root() == view.latestFinalRoot {
        println!("  claimable now    {}", earned.saturating_sub(claimed));
    } else {
        println!(
            "  claimable now    unknown: the tree's root {} is not the latest final root {}",
            tree.root(),
            view.latestFinalRoot
        );
    }
    Ok(())
}

/// `fedstake rewards claim`: claims `account`'s whole balance with a proof
/// from the published payout tree.
pub async fn claim(
    chain: &ChainArgs,
    key: &KeyArgs,
    task: U256,
    account: Option<Address>,
    payouts: &Path,
) -> anyhow::Result<()> {
    let ledger = chain.connect().await?.ledger;
    let signer = key.signer()?;
    let account = account.unwrap_or(signer.address());
    let tree = load_tree(payouts)?;
    let Some(cumulative) = tree.amount(account) else {
        bail!(
            "{account} earned nothing in payout tree {}",
            payouts.display()
        );
    };
    let view = ledger.task(task).await?;
    if tree.root() != view.latestFinalRoot {
        bail!(
            "payout tree {} has root {}, but the latest final root of task {task} is {} (round {}); \
             use the tree published for that round",
            payouts.display(),
            tree.root(),
            view.latestFinalRoot,
            view.latestFinalRound
        );
    }
    let before = ledger.claimed(task, account).await?;
    let receipt = ledger
        .claim(&signer, task, account, cumulative, tree.proof(account)?)
        .await?;
    println!(
        "claimed {} for {account} (cumulative {cumulative}); tx {} ({} gas)",
        cumulative - before,
        receipt.tx_hash,
        receipt.gas_used
    );
    Ok(())
}
