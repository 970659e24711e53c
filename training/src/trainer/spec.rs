//! From a task's `[model]`, `[data]` and `[training]` sections to a trainer's
//! settings.

use fedstake_protocol::spec::{DataSpec, ModelSpec, OptimizerSpec, TrainingSpec};

use super::{AdamConfig, Architecture, LocalTraining, Optimizer, SgdConfig, TrainError};

/// The network a task trains. TorchScript models need the `torch` backend.
pub fn architecture_for(model: &ModelSpec, data: &DataSpec) -> Result<Architecture, TrainError> {
    let inputs = data.features as usize;
    let classes = data.classes as usize;
    match model {
        ModelSpec::Logreg {} => Architecture::softmax_regression(inputs, classes),
        ModelSpec::Mlp { hidden } => Architecture::mlp(
            inputs,
            hidden.iter().map(|&h| h as usize).collect(),
            classes,
        ),
        ModelSpec::Torchscript { path, .. } => Err(TrainError::Config(format!(
            "model.kind = \"torchscript\" ({path}) needs the torch backend; \
             the CPU backend trains the built-in logreg and mlp models"
        ))),
    }
}

/// A task's optimizer (`[training]` and `[training.optimizer]`).
pub fn optimizer_for(training: &TrainingSpec) -> Result<Optimizer, TrainError> {
    let learning_rate = training.learning_rate as f32;
    let optimizer = match training.optimizer {
        OptimizerSpec::Sgd {
            momentum,
            weight_decay,
        } => Optimizer::Sgd(SgdConfig {
            learning_rate,
            momentum: momentum as f32,
            weight_decay: weight_decay as f32,
        }),
        OptimizerSpec::Adam {
            beta1,
            beta2,
            epsilon,
            weight_decay,
        } => Optimizer::Adam(AdamConfig {
            learning_rate,
            beta1: beta1 as f32,
            beta2: beta2 as f32,
            epsilon: epsilon as f32,
            weight_decay: weight_decay as f32,
        }),
    };
    optimizer.validate()?;
    Ok(optimizer)
}

/// A task's local epochs and batch size, shuffled with `seed`.
pub fn schedule_for(training: &TrainingSpec, seed: u64) -> LocalTraining {
    LocalTraining {
        epochs: training.epochs as usize,
        batch_size: training.batch_size as usize,
        seed,
    }
}
