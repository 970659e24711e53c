//! `fedstake demo`: the whole product in one process.
//!
//! An embedded chain (revm over SQLite in a temporary directory) with the
//! reward contract and a test token; a sponsor who escrows the pool; eight
//! organizations that stake; a coordinator and eight clients talking over
//! loopback QUIC with SecAgg+, exactly as separate machines would. Client 0
//! poisons (it submits its update flipped and scaled), client 1 crashes in
//! the middle of round 2 and restarts. After the last round the challenge
//! window is skipped on the embedded clock and every client claims.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, bail};
use fedstake_client::{
    Behaviour, ClientOptions, ClientRunError, CrashPoint, Reconnect, TrainerFactory, run_client,
};
use fedstake_coordinator::{Coordinator, CoordinatorConfig, RoundReport, StoredRound};
use fedstake_ledger::chain::{AnyChain, Chain, EmbeddedChain};
use fedstake_ledger::{embedded_defaults, mint_test_token, task_params};
use fedstake_protocol::spec::{DEFAULT_CHAIN_ID, TaskSpec};
use fedstake_round::{Plan, SettledRound};
use fedstake_secure_agg::session::Phase;
use fedstake_simulations::partition::{Partition, partition};
use fedstake_training::data::{Dataset, SyntheticSpec, synthetic};
use fedstake_training::trainer::{BackendOptions, build_trainer};

/// The demo's task spec, compiled into the binary.
pub const DEMO_TASK: &str = include_str!("../../examples/task-demo.toml");

/// Clients of the demo.
const CLIENTS: usize = 8;
/// The poisoning client.
const POISONER: usize = 0;
/// The client that crashes in round 2 and restarts.
const DROPOUT: usize = 1;

/// Options of `fedstake demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Task spec to run instead of the embedded demo task (it needs
    /// `[rewards]` and room for 8 clients).
    #[arg(long)]
    task: Option<PathBuf>,
    /// Rounds to run (default: the task's `rounds`).
    #[arg(long)]
    rounds: Option<u32>,
    /// Seed of data, partition and initialization.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Dirichlet concentration of the clients' label skew (smaller = more non-IID).
    #[arg(long, default_value_t = 0.5)]
    alpha: f64,
    /// Folder for the report (report.md, rounds.csv, payouts.json).
    #[arg(long, default_value = "fedstake-demo")]
    out: PathBuf,
}

/// Runs the demo and prints its tables.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let mut spec = match &args.task {
        Some(path) => TaskSpec::load(path)?,
        None => TaskSpec::from_toml_str(DEMO_TASK).context("the embedded demo task")?,
    };
    if let Some(rounds) = args.rounds {
        spec.rounds = rounds;
        spec.validate()?;
    }
    super::chain::block_on(demo(spec, args))
}

/// One organization of the demo.
struct Organization {
    signer: PrivateKeySigner,
    role: &'static str,
    data: Dataset,
}

async fn demo(spec: TaskSpec, args: &DemoArgs) -> anyhow::Result<()> {
    let plan = Plan::from_spec(&spec).context("the demo task")?;
    let rewards = plan.rewards().clone();
    let work = tempfile::tempdir().context("cannot create a working directory")?;
    let chain = EmbeddedChain::open(&work.path().join("chain.sqlite"), DEFAULT_CHAIN_ID)?;
    let (ledger, token) = embedded_defaults(AnyChain::Embedded(Box::new(chain))).await?;
    let ledger = Arc::new(ledger);
    let sponsor = PrivateKeySigner::random();
    let coordinator_key = PrivateKeySigner::random();

    // The sponsor escrows the pool.
    mint_test_token(
        ledger.chain(),
        &sponsor,
        token,
        sponsor.address(),
        U256::from(rewards.pool),
    )
    .await?;
    ledger
        .approve(&sponsor, token, U256::from(rewards.pool))
        .await?;
    let now = ledger.chain().timestamp().await?;
    let (task_id, _) = ledger
        .create_task(
            &sponsor,
            task_params(
                spec.spec_hash(),
                &rewards,
                token,
                coordinator_key.address(),
                sponsor.address(),
                now,
            ),
        )
        .await?;
    println!(
        "task {task_id} \"{}\" (spec {}), pool {} escrowed on the embedded chain",
        spec.name,
        &spec.spec_hash_hex()[..16],
        rewards.pool
    );

    // Eight organizations stake twice the minimum and get private data.
    let (organizations, validation) = organizations(&spec, args)?;
    let stake = U256::from(rewards.min_stake) * U256::from(2);
    for organization in &organizations {
        let address = organization.signer.address();
        mint_test_token(ledger.chain(), &organization.signer, token, address, stake).await?;
        ledger.approve(&organization.signer, token, stake).await?;
        ledger.stake(&organization.signer, task_id, stake).await?;
    }

    let mut coordinator = Coordinator::start(
        CoordinatorConfig {
            spec: spec.clone(),
            task_id,
            listen: "127.0.0.1:0".parse()?,
            metrics: None,
            state_dir: work.path().join("coordinator"),
            signer: coordinator_key,
            validation,
            root: None,
            init_seed: args.seed,
            max_clients: CLIENTS,
            max_unadmitted: fedstake_coordinator::server::DEFAULT_MAX_UNADMITTED,
            names: Vec::new(),
        },
        Arc::clone(&ledger),
    )
    .await?;
    let address = coordinator.local_addr()?;
    let fingerprint = coordinator.fingerprint();
    println!(
        "coordinator on quic://{address}, certificate sha256 {}…",
        &hex::encode(fingerprint)[..16]
    );
    let mut reports = coordinator.subscribe();
    let serving = tokio::spawn(coordinator.run());

    let mut clients = Vec::new();
    for (index, organization) in organizations.iter().enumerate() {
        let options = client_options(
            &spec,
            args,
            work.path(),
            address,
            fingerprint,
            task_id,
            index,
            organization,
        );
        clients.push(tokio::spawn(run_demo_client(options)));
    }

    println!();
    println!(
        "round  attempts  accuracy  groups ok/flagged  paid to honest  paid to poisoner  slashes"
    );
    let roles: BTreeMap<Address, &str> = organizations
        .iter()
        .map(|o| (o.signer.address(), o.role))
        .collect();
    let mut settled: Vec<StoredRound> = Vec::new();
    while let Some(RoundReport {
        stored,
        failed_attempts,
    }) = reports.recv().await
    {
        print_round(&stored.settled, failed_attempts, &roles);
        settled.push(stored);
    }
    serving.await.context("coordinator task")??;
    for client in clients {
        client.await.context("client task")??;
    }
    let Some(tree) = StoredRound::latest_tree(&settled) else {
        bail!("the coordinator settled no round that paid anyone");
    };

    // Skip the challenge window on the embedded clock, then everyone claims.
    ledger
        .chain()
        .advance_time(rewards.challenge_window + 1)
        .await?;
    println!();
    println!(
        "client                                      role       claimed                    stake left"
    );
    for organization in &organizations {
        let account = organization.signer.address();
        let claimed = match tree.amount(account) {
            Some(amount) if amount > U256::ZERO => {
                let proof = tree.proof(account)?;
                ledger
                    .claim(&organization.signer, task_id, account, amount, proof)
                    .await?;
                amount
            }
            _ => U256::ZERO,
        };
        let staked = ledger.stake_of(task_id, account).await?;
        println!(
            "{account}  {:<9}  {:<25}  {}",
            organization.role, claimed, staked.active
        );
    }
    let task = ledger.task(task_id).await?;
    println!();
    println!(
        "pool left {} of {}; paid out {}; slashed back to the pool {}",
        task.poolRemaining, task.initialPool, task.claimedTotal, task.slashedToPool
    );
    write_report(&args.out, &settled, &roles)?;
    println!("report written to {}", args.out.display());
    Ok(())
}

/// The organizations with their private shares (Dirichlet label skew) of
/// one synthetic dataset, and the sponsor's validation set.
fn organizations(spec: &TaskSpec, args: &DemoArgs) -> anyhow::Result<(Vec<Organization>, Dataset)> {
    let per_client = 400;
    let data = synthetic(&SyntheticSpec {
        classes: spec.data.classes as usize,
        dim: spec.data.features as usize,
        examples: CLIENTS * per_client + 2000,
        separation: 3.0,
        noise: 1.0,
        seed: args.seed,
    })?;
    let (pool, validation) = data.split(2000.0 / data.len() as f64, args.seed)?;
    let labels = pool.labels().to_vec();
    let shards = partition(
        &labels,
        pool.classes(),
        CLIENTS,
        Partition::Dirichlet { alpha: args.alpha },
        spec.training.batch_size as usize,
        args.seed,
    )?;
    let organizations = shards
        .iter()
        .enumerate()
        .map(|(index, shard)| Organization {
            signer: PrivateKeySigner::random(),
            role: match index {
                POISONER => "poisoner",
                DROPOUT => "dropout",
                _ => "honest",
            },
            data: pool.select(shard),
        })
        .collect();
    Ok((organizations, validation))
}

#[allow(clippy::too_many_arguments)]
fn client_options(
    spec: &TaskSpec,
    args: &DemoArgs,
    work: &std::path::Path,
    coordinator: SocketAddr,
    fingerprint: [u8; 32],
    task_id: U256,
    index: usize,
    organization: &Organization,
) -> ClientOptions {
    let seed = args.seed ^ index as u64;
    let trainer: TrainerFactory = Arc::new(move |spec: &TaskSpec| {
        build_trainer(
            spec,
            std::path::Path::new("."),
            &BackendOptions::default(),
            seed,
        )
    });
    ClientOptions {
        coordinator,
        server_name: "localhost".into(),
        certificate_sha256: fingerprint,
        task_id,
        spec_hash: spec.spec_hash(),
        signer: organization.signer.clone(),
        data: Arc::new(organization.data.clone()),
        trainer,
        state_dir: work.join(format!("client-{index}")),
        reconnect: Reconnect::default(),
        behaviour: if index == POISONER {
            Behaviour::SignFlip { scale: 4.0 }
        } else {
            Behaviour::Honest
        },
        crash: (index == DROPOUT).then_some(CrashPoint {
            round: 2,
            phase: Some(Phase::MaskedInput),
        }),
        seed,
    }
}

/// Runs a client; the one scripted to crash restarts once, as its
/// operator would.
async fn run_demo_client(options: ClientOptions) -> anyhow::Result<()> {
    match run_client(options.clone()).await {
        Ok(_) => Ok(()),
        Err(ClientRunError::Crashed { round, phase }) => {
            println!(
                "  (client {} crashed in round {round} at {phase}; restarting)",
                options.signer.address()
            );
            run_client(ClientOptions {
                crash: None,
                ..options
            })
            .await?;
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

fn paid_to(round: &SettledRound<Address>, roles: &BTreeMap<Address, &str>, poisoner: bool) -> u128 {
    round
        .payouts
        .iter()
        .filter(|(address, _)| (roles.get(address).copied() == Some("poisoner")) == poisoner)
        .map(|(_, amount)| amount)
        .sum()
}

fn print_round(
    round: &SettledRound<Address>,
    failed_attempts: u32,
    roles: &BTreeMap<Address, &str>,
) {
    let flagged = round.groups.iter().filter(|g| g.flagged).count();
    println!(
        "{:>5}  {:>8}  {:>7.1}%  {:>10}/{:<6}  {:>14.2}  {:>16.2}  {:>7}",
        round.round,
        failed_attempts + 1,
        round.accuracy * 100.0,
        round.groups.len(),
        flagged,
        tokens(paid_to(round, roles, false)),
        tokens(paid_to(round, roles, true)),
        round.slashes.len()
    );
}

/// Base units as tokens of 18 decimals.
fn tokens(amount: u128) -> f64 {
    amount as f64 / 1e18
}

fn write_report(
    out: &std::path::Path,
    rounds: &[StoredRound],
    roles: &BTreeMap<Address, &str>,
) -> anyhow::Result<()> {
    let Some(tree) = StoredRound::latest_tree(rounds) else {
        bail!("no settled round paid anyone");
    };
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut csv = String::from(
        "round,attempt,accuracy,loss,groups,flagged_groups,paid_honest,paid_poisoner,slashes\n",
    );
    let mut markdown = String::from(
        "# fedstake demo\n\n| round | attempt | accuracy | groups | flagged | paid to honest | paid to poisoner | slashes |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for stored in rounds {
        let round = &stored.settled;
        let flagged = round.groups.iter().filter(|g| g.flagged).count();
        let (honest, poisoner) = (paid_to(round, roles, false), paid_to(round, roles, true));
        csv.push_str(&format!(
            "{},{},{:.4},{:.4},{},{flagged},{honest},{poisoner},{}\n",
            round.round,
            round.attempt,
            round.accuracy,
            round.loss,
            round.groups.len(),
            round.slashes.len()
        ));
        markdown.push_str(&format!(
            "| {} | {} | {:.1}% | {} | {flagged} | {:.2} | {:.2} | {} |\n",
            round.round,
            round.attempt,
            round.accuracy * 100.0,
            round.groups.len(),
            tokens(honest),
            tokens(poisoner),
            round.slashes.len()
        ));
    }
    markdown.push_str("\n## Cumulative payouts\n\n| client | role | tokens |\n|---|---|---:|\n");
    for (address, amount) in tree.entries() {
        let role = roles.get(&address).copied().unwrap_or("?");
        let amount = u128::try_from(amount).unwrap_or(u128::MAX);
        markdown.push_str(&format!("| {address} | {role} | {:.4} |\n", tokens(amount)));
    }
    let write = |name: &str, text: &str| {
        let path = out.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    write("rounds.csv", &csv)?;
    write("report.md", &markdown)?;
    tree.save(&out.join("payouts.json"))?;
    Ok(())
}
