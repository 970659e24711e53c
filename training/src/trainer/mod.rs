//! Local training: the [`Trainer`] trait every backend implements, the
//! ndarray CPU backend ([`CpuTrainer`]), the tch (libtorch) backend
//! (`TchTrainer`, with the `torch` feature) and the choice between them
//! ([`build_trainer`]).
//!
//! A trainer holds one model's parameters as the flat vector of its
//! [`ModelLayout`] plus the optimizer state. The epoch loop (shuffling and
//! batching, deterministic for a seed) is the trait's provided method, so every
//! backend sees the same batches in the same order and their results can be
//! compared number for number.

mod backend;
mod cpu;
pub mod network;
mod spec;
#[cfg(feature = "torch")]
mod torch;

use fedstake_aggregation::norm::clip_l2;
use fedstake_aggregation::{Model, ModelError, ModelLayout};
use fedstake_protocol::spec::TaskSpec;
use ndarray::{ArrayView1, ArrayView2, Axis};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::data::Dataset;
pub use backend::{Backend, BackendOptions, Device, ParseChoiceError, build_trainer};
pub use cpu::CpuTrainer;
pub use network::Architecture;
pub use spec::{architecture_for, optimizer_for, schedule_for};
#[cfg(feature = "torch")]
pub use torch::{TchTrainer, TorchScriptFile};

/// Mini-batch SGD settings (PyTorch semantics: weight decay is added to the
/// gradient, then `v = momentum * v + g` and `p -= lr * v`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdConfig {
    /// Step size, > 0.
    pub learning_rate: f32,
    /// Momentum in `[0, 1)`; 0 disables it.
    pub momentum: f32,
    /// L2 weight decay, >= 0.
    pub weight_decay: f32,
}

/// Adam settings; weight decay is decoupled (AdamW, Loshchilov and Hutter):
/// `p -= lr * weight_decay * p` before the Adam step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Step size, > 0.
    pub learning_rate: f32,
    /// First-moment decay in `[0, 1)`.
    pub beta1: f32,
    /// Second-moment decay in `[0, 1)`.
    pub beta2: f32,
    /// Denominator term, > 0.
    pub epsilon: f32,
    /// Decoupled weight decay, >= 0.
    pub weight_decay: f32,
}

/// The local optimizer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optimizer {
    /// SGD with momentum and weight decay.
    Sgd(SgdConfig),
    /// Adam with decoupled weight decay.
    Adam(AdamConfig),
}

impl From<SgdConfig> for Optimizer {
    fn from(config: SgdConfig) -> Self {
        Optimizer::Sgd(config)
    }
}

impl From<AdamConfig> for Optimizer {
    fn from(config: AdamConfig) -> Self {
        Optimizer::Adam(config)
    }
}

impl Optimizer {
    /// Checks the settings, naming the first invalid one.
    pub fn validate(&self) -> Result<(), TrainError> {
        let (learning_rate, weight_decay) = match *self {
            Optimizer::Sgd(c) => {
                if !(0.0..1.0).contains(&c.momentum) {
                    return Err(TrainError::Config(format!(
                        "momentum must be in [0, 1), got {}",
                        c.momentum
                    )));
                }
                (c.learning_rate, c.weight_decay)
            }
            Optimizer::Adam(c) => {
                for (name, beta) in [("beta1", c.beta1), ("beta2", c.beta2)] {
                    if !(0.0..1.0).contains(&beta) {
                        return Err(TrainError::Config(format!(
                            "{name} must be in [0, 1), got {beta}"
                        )));
                    }
                }
                if !(c.epsilon.is_finite() && c.epsilon > 0.0) {
                    return Err(TrainError::Config(format!(
                        "epsilon must be finite and > 0, got {}",
                        c.epsilon
                    )));
                }
                (c.learning_rate, c.weight_decay)
            }
        };
        if !(learning_rate.is_finite() && learning_rate > 0.0) {
            return Err(TrainError::Config(format!(
                "learning_rate must be finite and > 0, got {learning_rate}"
            )));
        }
        if !(weight_decay.is_finite() && weight_decay >= 0.0) {
            return Err(TrainError::Config(format!(
                "weight_decay must be finite and >= 0, got {weight_decay}"
            )));
        }
        Ok(())
    }
}

/// How long and in what batches to train locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTraining {
    /// Passes over the local data.
    pub epochs: usize,
    /// Examples per mini-batch (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// Seed of the shuffling.
    pub seed: u64,
}

/// Loss and accuracy of a model on a dataset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction of examples whose arg-max prediction is the label.
    pub accuracy: f64,
    /// Number of examples evaluated.
    pub examples: usize,
}

impl Evaluation {
    /// The evaluation of `examples` examples from their summed loss and number
    /// of right predictions.
    pub(crate) fn from_totals(loss_sum: f64, correct: usize, examples: usize) -> Self {
        Self {
            loss: loss_sum / examples as f64,
            accuracy: correct as f64 / examples as f64,
            examples,
        }
    }
}

/// What a call to [`Trainer::train`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainReport {
    /// Mean training loss of each epoch (over the batches as they were trained).
    pub epoch_losses: Vec<f64>,
    /// Number of optimizer steps taken.
    pub steps: usize,
    /// Number of examples processed (counting repeats across epochs).
    pub examples: usize,
}

/// A local training backend.
pub trait Trainer: Send {
    /// The layout of the model being trained.
    fn layout(&self) -> &ModelLayout;

    /// The current parameters as one flat vector in layout order.
    fn parameters(&self) -> Vec<f32>;

    /// Replaces the parameters and resets the optimizer state (each round
    /// starts from the global model with fresh momentum).
    fn set_parameters(&mut self, params: &[f32]) -> Result<(), TrainError>;

    /// One optimizer step on one batch; returns the batch's mean loss before
    /// the step. On error (bad shapes, labels, a non-finite loss) the
    /// parameters are unchanged.
    fn train_batch(
        &mut self,
        features: ArrayView2<'_, f32>,
        labels: ArrayView1<'_, u32>,
    ) -> Result<f32, TrainError>;

    /// Mean loss and accuracy on `data`.
    fn evaluate(&self, data: &Dataset) -> Result<Evaluation, TrainError>;

    /// The current model.
    fn model(&self) -> Result<Model, TrainError> {
        Ok(Model::new(self.layout().clone(), self.parameters())?)
    }

    /// Trains for `schedule.epochs` passes over `data`, reshuffling every
    /// epoch from one ChaCha8 stream seeded with `schedule.seed`.
    fn train(
        &mut self,
        data: &Dataset,
        schedule: &LocalTraining,
    ) -> Result<TrainReport, TrainError> {
        if schedule.batch_size == 0 {
            return Err(TrainError::Config("batch_size must be at least 1".into()));
        }
        if data.is_empty() {
            return Err(TrainError::Data("cannot train on an empty dataset".into()));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(schedule.seed);
        let mut order: Vec<usize> = (0..data.len()).collect();
        let mut report = TrainReport {
            epoch_losses: Vec::new(),
            steps: 0,
            examples: 0,
        };
        for _ in 0..schedule.epochs {
            order.shuffle(&mut rng);
            let mut loss_sum = 0.0f64;
            for batch in order.chunks(schedule.batch_size) {
                let features = data.features().select(Axis(0), batch);
                let labels = data.labels().select(Axis(0), batch);
                let loss = self.train_batch(features.view(), labels.view())?;
                loss_sum += f64::from(loss) * batch.len() as f64;
                report.steps += 1;
                report.examples += batch.len();
            }
            report.epoch_losses.push(loss_sum / data.len() as f64);
        }
        Ok(report)
    }
}

/// Why training or evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Invalid hyperparameters or architecture.
    #[error("invalid training configuration: {0}")]
    Config(String),
    /// Data that does not fit the model.
    #[error("data does not fit the model: {0}")]
    Data(String),
    /// The loss became NaN or infinite.
    #[error("training diverged: the loss became {loss} at step {step}; lower the learning rate")]
    Diverged {
        /// The non-finite loss.
        loss: f32,
        /// Optimizer steps taken so far.
        step: usize,
    },
    /// Parameters that do not fit the layout.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The backend, device or precision asked for is not in this build or on
    /// this machine.
    #[error("{0}")]
    Unavailable(String),
    /// A TorchScript model file that cannot be used.
    #[cfg(feature = "torch")]
    #[error("TorchScript model {}: {reason}", path.display())]
    TorchScript {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// libtorch failed (its message's first line).
    #[cfg(feature = "torch")]
    #[error("libtorch: {0}")]
    Torch(String),
}

/// What local training of one round gives.
#[derive(Debug, Clone)]
pub struct LocalUpdate {
    /// `local - global`, clipped to the task's L2 bound.
    pub update: Vec<f32>,
    /// The client's example count, capped by the task (at least 1).
    pub weight: u32,
    /// What training reported.
    pub report: TrainReport,
}

/// One round of local training from `global`, as every client of a task
/// runs it: the shuffling seed is `seed ^ (round << 32)`; the update
/// `local - global` goes through `transform` (the identity for an honest
/// client), then is clipped to the task's bound; the weight is the example
/// count capped by `training.max_examples`. Deterministic, so anyone holding
/// the data and the seed can recompute it.
pub fn local_update(
    trainer: &mut dyn Trainer,
    data: &Dataset,
    global: &[f32],
    spec: &TaskSpec,
    (seed, round): (u64, u64),
    transform: impl FnOnce(&mut [f32]),
) -> Result<LocalUpdate, TrainError> {
    trainer.set_parameters(global)?;
    let report = trainer.train(data, &schedule_for(&spec.training, seed ^ (round << 32)))?;
    let mut update: Vec<f32> = trainer
        .parameters()
        .iter()
        .zip(global)
        .map(|(local, g)| local - g)
        .collect();
    transform(&mut update);
    clip_l2(&mut update, spec.update.clip_norm as f32);
    let weight = u32::try_from(data.len())
        .unwrap_or(u32::MAX)
        .min(spec.training.max_examples)
        .max(1);
    Ok(LocalUpdate {
        update,
        weight,
        report,
    })
}
