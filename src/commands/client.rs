//! `fedstake client ...`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use fedstake_aggregation::Model;
use fedstake_protocol::spec::TaskSpec;
use fedstake_training::data::{DataSource, Dataset, Schema};
use fedstake_training::trainer::{
    Backend, BackendOptions, Device, Trainer, build_trainer, schedule_for,
};

/// Which backend trains, and where (shared by `train`, `evaluate` and `run`).
#[derive(Debug, clap::Args)]
pub struct BackendArgs {
    /// Training backend: ndarray (CPU, always built) or torch (libtorch;
    /// needs a build with `--features torch`, see the README).
    #[arg(long, default_value_t = Backend::Ndarray)]
    backend: Backend,
    /// Device: cpu, cuda or cuda:N (CUDA needs --backend torch).
    #[arg(long, default_value_t = Device::Cpu)]
    device: Device,
    /// Mixed precision (CUDA autocast; --backend torch on CUDA only).
    #[arg(long)]
    mixed_precision: bool,
}

impl BackendArgs {
    fn options(&self) -> BackendOptions {
        BackendOptions {
            backend: self.backend,
            device: self.device,
            mixed_precision: self.mixed_precision,
        }
    }
}

/// Options of `fedstake client train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// The task spec (TOML).
    #[arg(long)]
    task: PathBuf,
    /// The data: csv:PATH, idx:IMAGES,LABELS, npy:FEATURES,LABELS or
    /// synthetic:EXAMPLES[,SEED].
    #[arg(long)]
    data: DataSource,
    /// Start from this model (safetensors) instead of a fresh initialization.
    #[arg(long)]
    init: Option<PathBuf>,
    /// Where to write the trained model (safetensors).
    #[arg(long)]
    out: PathBuf,
    /// Epochs to train (default: the task's `training.epochs`).
    #[arg(long)]
    epochs: Option<usize>,
    /// Fraction of the data held out to report validation accuracy.
    #[arg(long, default_value_t = 0.2)]
    validation_fraction: f64,
    /// Seed of the initialization, the split and the shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    backend: BackendArgs,
}

/// Options of `fedstake client evaluate`.
#[derive(Debug, clap::Args)]
pub struct EvaluateArgs {
    /// The task spec (TOML).
    #[arg(long)]
    task: PathBuf,
    /// The data: csv:PATH, idx:IMAGES,LABELS, npy:FEATURES,LABELS or
    /// synthetic:EXAMPLES[,SEED].
    #[arg(long)]
    data: DataSource,
    /// The model to evaluate (safetensors, the task's layout).
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    backend: BackendArgs,
}

pub fn load_data(spec: &TaskSpec, source: &DataSource) -> anyhow::Result<Dataset> {
    let schema = Schema {
        features: spec.data.features as usize,
        classes: spec.data.classes as usize,
        feature_scale: spec.data.feature_scale.map(|s| s as f32),
    };
    source
        .load(&schema)
        .with_context(|| format!("loading {source}"))
}

/// The task file's directory, which a TorchScript `model.path` is relative to.
fn task_dir(task: &Path) -> &Path {
    task.parent().unwrap_or(Path::new(""))
}

/// The task's trainer on the chosen backend, starting from the model in
/// `init` if given (it must have the trainer's layout).
fn trainer(
    spec: &TaskSpec,
    task: &Path,
    backend: &BackendArgs,
    init: Option<&Path>,
    seed: u64,
) -> anyhow::Result<Box<dyn Trainer>> {
    let mut trainer = build_trainer(spec, task_dir(task), &backend.options(), seed)?;
    if let Some(path) = init {
        let model = Model::load(path, Some(trainer.layout()))?;
        trainer.set_parameters(model.params())?;
    }
    Ok(trainer)
}

/// Trains the task's model on local data.
pub fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let spec = TaskSpec::load(&args.task)?;
    let mut trainer = trainer(
        &spec,
        &args.task,
        &args.backend,
        args.init.as_deref(),
        args.seed,
    )?;
    let data = load_data(&spec, &args.data)?;
    let (train, validation) = data.split(args.validation_fraction, args.seed)?;
    let mut schedule = schedule_for(&spec.training, args.seed);
    if let Some(epochs) = args.epochs {
        schedule.epochs = epochs;
    }
    println!(
        "{} training and {} validation examples",
        train.len(),
        validation.len()
    );
    let before = trainer.evaluate(&validation)?;
    let report = trainer.train(&train, &schedule)?;
    let after = trainer.evaluate(&validation)?;
    for (epoch, loss) in report.epoch_losses.iter().enumerate() {
        println!("epoch {:>3}  train loss {loss:.4}", epoch + 1);
    }
    println!(
        "validation: loss {:.4} -> {:.4}, accuracy {:.1}% -> {:.1}%",
        before.loss,
        after.loss,
        before.accuracy * 100.0,
        after.accuracy * 100.0
    );
    let model = trainer.model()?;
    model.save(&args.out)?;
    println!(
        "wrote {} (model {})",
        args.out.display(),
        model.content_hash_hex()
    );
    Ok(())
}

/// Evaluates a model on local data.
pub fn evaluate(args: &EvaluateArgs) -> anyhow::Result<()> {
    let spec = TaskSpec::load(&args.task)?;
    let trainer = trainer(&spec, &args.task, &args.backend, Some(&args.model), 0)?;
    let data = load_data(&spec, &args.data)?;
    let result = trainer.evaluate(&data)?;
    println!(
        "{} examples: loss {:.4}, accuracy {:.2}%",
        result.examples,
        result.loss,
        result.accuracy * 100.0
    );
    Ok(())
}

/// Options of `fedstake client run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The task spec (TOML); the coordinator's must hash the same.
    #[arg(long)]
    task: PathBuf,
    /// The coordinator: quic://HOST:PORT (default: the task's
    /// `[coordinator] address`).
    #[arg(long)]
    coordinator: Option<String>,
    /// SHA-256 of the coordinator's certificate (hex), as the sponsor
    /// published it; any other certificate is refused (default: the task's
    /// `[coordinator] tls_fingerprint`).
    #[arg(long)]
    fingerprint: Option<String>,
    /// The on-chain task id.
    #[arg(long)]
    task_id: alloy::primitives::U256,
    /// The private data: csv:PATH, idx:IMAGES,LABELS, npy:FEATURES,LABELS or
    /// synthetic:EXAMPLES[,SEED].
    #[arg(long)]
    data: DataSource,
    /// Directory of the client's history.
    #[arg(long, default_value = "client-state")]
    state: PathBuf,
    /// Seed of local shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Consecutive failed connections before giving up.
    #[arg(long, default_value_t = 30)]
    reconnect_attempts: u32,
    /// Test hook: drop the connection and exit at ROUND:PHASE (train,
    /// advertise_keys, share_keys, masked_input, consistency, unmasking).
    #[arg(long, hide = true)]
    crash_at: Option<fedstake_client::CrashPoint>,
    /// Test hook: submit the update flipped and scaled by this factor.
    #[arg(long, hide = true)]
    sign_flip: Option<f32>,
    #[command(flatten)]
    backend: BackendArgs,
    #[command(flatten)]
    key: super::chain::KeyArgs,
}

/// Joins the coordinator and takes part in the task's rounds.
pub async fn run(args: &RunArgs) -> anyhow::Result<()> {
    use std::sync::Arc;

    use fedstake_client::{Behaviour, ClientOptions, Reconnect, TrainerFactory, run_client};

    let spec = TaskSpec::load(&args.task)?;
    let data = load_data(&spec, &args.data)?;
    let named = spec.coordinator.as_ref();
    let address = match (&args.coordinator, named) {
        (Some(url), _) => url
            .strip_prefix("quic://")
            .with_context(|| format!("--coordinator {url:?} must be quic://HOST:PORT"))?
            .to_string(),
        (None, Some(named)) => named.address.clone(),
        (None, None) => anyhow::bail!(
            "no --coordinator, and {} has no [coordinator] address",
            args.task.display()
        ),
    };
    let fingerprint: [u8; 32] = match (&args.fingerprint, named) {
        (Some(text), _) => hex::decode(text.trim_start_matches("0x"))
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .context(
                "--fingerprint must be 64 hex digits (the SHA-256 of the coordinator certificate)",
            )?,
        (None, Some(named)) => named.fingerprint()?,
        (None, None) => anyhow::bail!(
            "no --fingerprint, and {} has no [coordinator] tls_fingerprint",
            args.task.display()
        ),
    };
    let coordinator = tokio::net::lookup_host(address.as_str())
        .await
        .with_context(|| format!("cannot resolve {address}"))?
        .next()
        .with_context(|| format!("{address} resolves to no address"))?;
    let server_name = address
        .rsplit_once(':')
        .map_or(address.as_str(), |(host, _)| host)
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    let task_dir = task_dir(&args.task).to_path_buf();
    let options = args.backend.options();
    let seed = args.seed;
    let trainer: TrainerFactory =
        Arc::new(move |spec: &TaskSpec| build_trainer(spec, &task_dir, &options, seed));
    let options = ClientOptions {
        coordinator,
        server_name,
        certificate_sha256: fingerprint,
        task_id: args.task_id,
        spec_hash: spec.spec_hash(),
        signer: args.key.signer()?,
        data: Arc::new(data),
        trainer,
        state_dir: args.state.clone(),
        reconnect: Reconnect {
            attempts: args.reconnect_attempts,
            ..Reconnect::default()
        },
        behaviour: args
            .sign_flip
            .map_or(Behaviour::Honest, |scale| Behaviour::SignFlip { scale }),
        crash: args.crash_at,
        seed,
    };
    let address = options.signer.address();
    println!(
        "client {address} joining task {} at {coordinator}",
        args.task_id
    );
    let report = run_client(options).await?;
    for result in &report.results {
        println!(
            "round {:>3} (attempt {}): accuracy {:.1}%, paid {}, total {}",
            result.round,
            result.attempt,
            result.accuracy * 100.0,
            result.payout,
            result.cumulative
        );
    }
    println!(
        "task finished after {} rounds; this client took part in {}",
        report.task_rounds,
        report.results.len()
    );
    Ok(())
}
