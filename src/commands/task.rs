//! `fedstake task ...`.

use std::path::Path;

use anyhow::Context;
use fedstake_protocol::spec::TaskSpec;
use fedstake_round::Plan;

/// Loads a task spec and builds its round plan: the checks every party
/// that runs the task makes, so a spec accepted here is one a coordinator
/// serves.
fn load_plan(path: &Path) -> anyhow::Result<Plan> {
    let spec = TaskSpec::load(path)?;
    Plan::from_spec(&spec).with_context(|| format!("{} cannot be served", path.display()))
}

/// Validates a task spec and prints what it fixes.
pub fn validate(path: &Path) -> anyhow::Result<()> {
    let plan = load_plan(path)?;
    let spec = plan.spec();
    println!("{}: valid", path.display());
    println!("  name          {}", spec.name);
    println!("  spec hash     {}", hex::encode(spec.spec_hash()));
    let params = spec
        .model
        .parameter_count(spec.data.features, spec.data.classes)
        .map_or_else(
            || "set by the TorchScript file".to_string(),
            |n| n.to_string(),
        );
    println!(
        "  model         {} ({params} parameters)",
        spec.model.kind()
    );
    println!(
        "  data          {} features, {} classes",
        spec.data.features, spec.data.classes
    );
    println!("  rounds        {}", spec.rounds);
    println!(
        "  cohort        {} (at least {})",
        spec.cohort.size, spec.cohort.min
    );
    println!("  privacy       {}", spec.privacy.mode());
    println!(
        "  update bound  L2 <= {}, {} fractional bits",
        spec.update.clip_norm, spec.update.fractional_bits
    );
    Ok(())
}

/// `fedstake task create`: escrows the spec's reward pool in the reward
/// contract and records the spec hash, coordinator and arbiter on chain.
pub async fn create(
    path: &Path,
    chain: &super::chain::ChainArgs,
    key: &super::chain::KeyArgs,
    coordinator: Option<alloy::primitives::Address>,
    no_approve: bool,
) -> anyhow::Result<()> {
    use alloy::primitives::Address;
    use fedstake_ledger::chain::Chain;

    let plan = load_plan(path)?;
    let spec = plan.spec();
    let rewards = plan.rewards();
    let connected = chain.connect().await?;
    let ledger = &connected.ledger;
    let sponsor = key.signer()?;
    let token = match rewards.token_address()? {
        Some(token) => Address::from(token),
        None => connected.local_token.with_context(|| {
            "rewards.token is required unless the chain is the embedded chain with its own token"
        })?,
    };
    let arbiter = rewards
        .arbiter_address()?
        .map_or(sponsor.address(), Address::from);
    let now = ledger.chain().timestamp().await?;
    let params = fedstake_ledger::task_params(
        spec.spec_hash(),
        rewards,
        token,
        coordinator.unwrap_or(sponsor.address()),
        arbiter,
        now,
    );
    let end_time = params.endTime;
    if !no_approve && ledger.allowance(token, sponsor.address()).await? < params.pool {
        ledger.approve(&sponsor, token, params.pool).await?;
        println!(
            "approved {} of token {token} to the reward contract",
            params.pool
        );
    }
    let coordinator = params.coordinator;
    let (task, receipt) = ledger.create_task(&sponsor, params).await?;
    println!(
        "task {task} created on {} (contract {})",
        ledger.chain().describe(),
        ledger.address()
    );
    println!("  spec hash    0x{}", hex::encode(spec.spec_hash()));
    println!("  pool         {} of token {token}", rewards.pool);
    println!("  coordinator  {coordinator}");
    println!("  arbiter      {arbiter}");
    println!("  ends         {end_time}");
    println!(
        "  tx           {} ({} gas)",
        receipt.tx_hash, receipt.gas_used
    );
    Ok(())
}

/// `fedstake task status`: what the coordinator's store records — rounds,
/// accuracy, participants, payouts, slashes and chain transactions.
pub fn status(state: &Path) -> anyhow::Result<()> {
    use alloy::primitives::Address;
    use fedstake_coordinator::Store;
    use fedstake_coordinator::store::{AttemptOutcome, ChainTx};

    let path = state.join("coordinator.sqlite");
    let (store, task, spec) = Store::inspect(&path)?;
    let rounds = store.settled_rounds()?;
    let attempts = store.attempts()?;
    let failed = attempts
        .iter()
        .filter(|a| a.outcome != Some(AttemptOutcome::Completed))
        .count();
    println!("task {task} (spec {spec})");
    println!(
        "{} rounds settled, {} attempts ({failed} not completed)",
        rounds.len(),
        attempts.len()
    );
    println!();
    println!(
        "round  attempt  accuracy   loss    accepted  rejected  paid (base units)          slashes  posted"
    );
    let mut totals: std::collections::BTreeMap<Address, u128> = std::collections::BTreeMap::new();
    for stored in &rounds {
        let round = &stored.settled;
        for (address, amount) in &round.payouts {
            *totals.entry(*address).or_default() += amount;
        }
        let posted = store
            .chain_tx(round.round, ChainTx::Post)?
            .map_or("no", |(state, _)| state.name());
        println!(
            "{:>5}  {:>7}  {:>7.1}%  {:>6.4}  {:>8}  {:>8}  {:<26} {:>7}  {posted}",
            round.round,
            round.attempt,
            round.accuracy * 100.0,
            round.loss,
            round.accepted,
            round.rejected,
            round.total(),
            round.slashes.len()
        );
    }
    println!();
    println!("participants (cumulative payouts):");
    for (address, total) in &totals {
        println!("  {address}  {total}");
    }
    for stored in &rounds {
        for (address, amount) in &stored.settled.slashes {
            println!(
                "slash in round {}: {address} by {amount}",
                stored.settled.round
            );
        }
    }
    Ok(())
}
