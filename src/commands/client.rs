//! `fedstake client ...`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use fedstake_aggregation::Model;
use fedstake_client::data::{DataSource, Dataset, Schema};
use fedstake_client::trainer::{
    Backend, BackendOptions, Device, Trainer, build_trainer, schedule_for,
};
use fedstake_protocol::spec::TaskSpec;

/// Which backend trains, and where (shared by `train` and `evaluate`).
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

fn load_data(spec: &TaskSpec, source: &DataSource) -> anyhow::Result<Dataset> {
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
