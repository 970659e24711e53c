//! `fedstake client ...`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use fedstake_aggregation::Model;
use fedstake_client::data::{DataSource, Dataset, Schema};
use fedstake_client::trainer::{
    CpuTrainer, Trainer, architecture_for, optimizer_for, schedule_for,
};
use fedstake_protocol::spec::TaskSpec;

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

/// Trains the task's model on local data.
pub fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let spec = TaskSpec::load(&args.task)?;
    let architecture = architecture_for(&spec.model, &spec.data)?;
    let data = load_data(&spec, &args.data)?;
    let (train, validation) = data.split(args.validation_fraction, args.seed)?;
    let mut trainer = match &args.init {
        Some(path) => {
            let model = Model::load(path, Some(&architecture.layout()))?;
            CpuTrainer::new(
                architecture,
                optimizer_for(&spec.training)?,
                model.into_params(),
            )?
        }
        None => CpuTrainer::initialized(architecture, optimizer_for(&spec.training)?, args.seed)?,
    };
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
pub fn evaluate(task: &Path, source: &DataSource, model_path: &Path) -> anyhow::Result<()> {
    let spec = TaskSpec::load(task)?;
    let architecture = architecture_for(&spec.model, &spec.data)?;
    let model = Model::load(model_path, Some(&architecture.layout()))?;
    let data = load_data(&spec, source)?;
    let trainer = CpuTrainer::new(
        architecture,
        optimizer_for(&spec.training)?,
        model.into_params(),
    )?;
    let result = trainer.evaluate(&data)?;
    println!(
        "{} examples: loss {:.4}, accuracy {:.2}%",
        result.examples,
        result.loss,
        result.accuracy * 100.0
    );
    Ok(())
}
