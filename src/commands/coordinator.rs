//! `fedstake coordinator serve`.

use std::net::SocketAddr;
use std::path::PathBuf;

use alloy::primitives::U256;
use anyhow::Context;
use fedstake_coordinator::{Coordinator, CoordinatorConfig};
use fedstake_protocol::spec::TaskSpec;
use fedstake_training::data::DataSource;

use super::chain::{ChainArgs, KeyArgs};
use super::client::load_data;

/// Options of `fedstake coordinator serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The task spec (TOML); its hash must be the one recorded on chain.
    #[arg(long)]
    task: PathBuf,
    /// The on-chain task id (from `task create`).
    #[arg(long)]
    task_id: U256,
    /// UDP address to listen on.
    #[arg(long, default_value = "0.0.0.0:4433")]
    listen: SocketAddr,
    /// Directory of the coordinator's store and TLS certificate.
    #[arg(long, default_value = "coordinator-state")]
    state: PathBuf,
    /// The sponsor's validation data: csv:PATH, idx:IMAGES,LABELS,
    /// npy:FEATURES,LABELS or synthetic:EXAMPLES[,SEED].
    #[arg(long)]
    validation: DataSource,
    /// The sponsor's clean root data (same forms as --validation), needed
    /// when the task uses FLTrust or scores against the root update.
    #[arg(long)]
    root: Option<DataSource>,
    /// Serve Prometheus metrics on this TCP address (GET /metrics).
    #[arg(long)]
    metrics: Option<SocketAddr>,
    /// Most clients admitted at once.
    #[arg(long, default_value_t = 10_000)]
    max_clients: usize,
    /// Most connections in their QUIC handshake or join at once; more are
    /// refused until some are admitted or time out.
    #[arg(long, default_value_t = fedstake_coordinator::server::DEFAULT_MAX_UNADMITTED)]
    max_unadmitted: usize,
    /// Seed of the initial model.
    #[arg(long, default_value_t = 0)]
    init_seed: u64,
    /// DNS names to put in a newly created certificate (besides localhost).
    #[arg(long)]
    name: Vec<String>,
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    chain: ChainArgs,
}

/// Runs the task's remaining rounds.
pub async fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let spec = TaskSpec::load(&args.task)?;
    let validation = load_data(&spec, &args.validation)?;
    let root = args
        .root
        .as_ref()
        .map(|source| load_data(&spec, source))
        .transpose()?;
    let connected = args.chain.connect().await?;
    let signer = args.key.signer()?;
    let config = CoordinatorConfig {
        spec,
        task_id: args.task_id,
        listen: args.listen,
        metrics: args.metrics,
        state_dir: args.state.clone(),
        signer,
        validation,
        root,
        init_seed: args.init_seed,
        max_clients: args.max_clients,
        max_unadmitted: args.max_unadmitted,
        names: args.name.clone(),
    };
    let coordinator = Coordinator::start(config, std::sync::Arc::new(connected.ledger))
        .await
        .context("starting the coordinator")?;
    // Printed on stdout, one per line, for operators and scripts.
    println!("listening {}", coordinator.local_addr()?);
    println!(
        "certificate sha256 {}",
        hex::encode(coordinator.fingerprint())
    );
    if let Some(metrics) = coordinator.metrics_addr() {
        println!("metrics http://{metrics}/metrics");
    }
    let rounds = coordinator.run().await?;
    println!("task {} finished: {} rounds", args.task_id, rounds.len());
    Ok(())
}

/// `fedstake coordinator certificate`: creates the coordinator's TLS
/// certificate in its state directory (or reads the existing one) and prints
/// its SHA-256, the `[coordinator] tls_fingerprint` of the task spec.
pub fn certificate(state: &std::path::Path, names: &[String]) -> anyhow::Result<()> {
    let certificate = fedstake_coordinator::identity::Certificate::load_or_create(state, names)?;
    println!("{}", hex::encode(certificate.fingerprint()));
    Ok(())
}
