//! The CPU backend: the network of [`super::network`] in `f32` on ndarray, with
//! evaluation spread over cores by rayon.

use fedstake_aggregation::ModelLayout;
use ndarray::{ArrayView1, ArrayView2, Axis};
use rayon::prelude::*;

use super::{AdamConfig, Architecture, Evaluation, Optimizer, SgdConfig, TrainError, Trainer};
use crate::data::Dataset;

/// Examples per parallel evaluation task.
const EVAL_CHUNK: usize = 1024;

/// Mini-batch training (SGD with momentum and weight decay, or AdamW) on the CPU.
#[derive(Debug, Clone)]
pub struct CpuTrainer {
    architecture: Architecture,
    layout: ModelLayout,
    optimizer: Optimizer,
    params: Vec<f32>,
    grad: Vec<f32>,
    /// SGD velocity, or Adam's first moment.
    first_moment: Vec<f32>,
    /// Adam's second moment (empty under SGD).
    second_moment: Vec<f32>,
    /// Steps since the optimizer state was last reset (Adam's bias correction).
    steps: usize,
}

impl CpuTrainer {
    /// A trainer for `architecture` starting from `params`.
    pub fn new(
        architecture: Architecture,
        optimizer: impl Into<Optimizer>,
        params: Vec<f32>,
    ) -> Result<Self, TrainError> {
        let optimizer = optimizer.into();
        optimizer.validate()?;
        let layout = architecture.layout();
        if params.len() != layout.num_params() {
            return Err(TrainError::Model(
                fedstake_aggregation::ModelError::LengthMismatch {
                    expected: layout.num_params(),
                    found: params.len(),
                },
            ));
        }
        let n = params.len();
        let second = if matches!(optimizer, Optimizer::Adam(_)) {
            n
        } else {
            0
        };
        Ok(Self {
            architecture,
            layout,
            optimizer,
            params,
            grad: vec![0.0; n],
            first_moment: vec![0.0; n],
            second_moment: vec![0.0; second],
            steps: 0,
        })
    }

    /// A trainer for `architecture` from its seeded initialization.
    pub fn initialized(
        architecture: Architecture,
        optimizer: impl Into<Optimizer>,
        seed: u64,
    ) -> Result<Self, TrainError> {
        let params = architecture.init_parameters(seed);
        Self::new(architecture, optimizer, params)
    }

    fn sgd_step(&mut self, c: SgdConfig) {
        for ((p, v), &g) in self
            .params
            .iter_mut()
            .zip(&mut self.first_moment)
            .zip(&self.grad)
        {
            let g = g + c.weight_decay * *p;
            *v = c.momentum * *v + g;
            *p -= c.learning_rate * *v;
        }
    }

    fn adam_step(&mut self, c: AdamConfig) {
        let t = self.steps as i32 + 1;
        let correction1 = 1.0 - c.beta1.powi(t);
        let correction2 = 1.0 - c.beta2.powi(t);
        let decay = 1.0 - c.learning_rate * c.weight_decay;
        for (((p, m), v), &g) in self
            .params
            .iter_mut()
            .zip(&mut self.first_moment)
            .zip(&mut self.second_moment)
            .zip(&self.grad)
        {
            *p *= decay;
            *m = c.beta1 * *m + (1.0 - c.beta1) * g;
            *v = c.beta2 * *v + (1.0 - c.beta2) * g * g;
            *p -= c.learning_rate * (*m / correction1) / ((*v / correction2).sqrt() + c.epsilon);
        }
    }

    /// The architecture being trained.
    pub fn architecture(&self) -> &Architecture {
        &self.architecture
    }
}

impl Trainer for CpuTrainer {
    fn layout(&self) -> &ModelLayout {
        &self.layout
    }

    fn parameters(&self) -> Vec<f32> {
        self.params.clone()
    }

    fn set_parameters(&mut self, params: &[f32]) -> Result<(), TrainError> {
        if params.len() != self.params.len() {
            return Err(TrainError::Model(
                fedstake_aggregation::ModelError::LengthMismatch {
                    expected: self.params.len(),
                    found: params.len(),
                },
            ));
        }
        self.params.copy_from_slice(params);
        self.first_moment.fill(0.0);
        self.second_moment.fill(0.0);
        self.steps = 0;
        Ok(())
    }

    fn train_batch(
        &mut self,
        features: ArrayView2<'_, f32>,
        labels: ArrayView1<'_, u32>,
    ) -> Result<f32, TrainError> {
        self.architecture.check_batch(&features, &labels)?;
        let loss =
            self.architecture
                .loss_and_gradient(&self.params, features, labels, &mut self.grad);
        if !loss.is_finite() || self.grad.iter().any(|g| !g.is_finite()) {
            return Err(TrainError::Diverged {
                loss,
                step: self.steps,
            });
        }
        match self.optimizer {
            Optimizer::Sgd(c) => self.sgd_step(c),
            Optimizer::Adam(c) => self.adam_step(c),
        }
        self.steps += 1;
        Ok(loss)
    }

    fn evaluate(&self, data: &Dataset) -> Result<Evaluation, TrainError> {
        if data.is_empty() {
            return Err(TrainError::Data(
                "cannot evaluate on an empty dataset".into(),
            ));
        }
        self.architecture
            .check_batch(&data.features().view(), &data.labels().view())?;
        let chunks: Vec<(f64, usize)> = data
            .features()
            .axis_chunks_iter(Axis(0), EVAL_CHUNK)
            .into_par_iter()
            .zip(
                data.labels()
                    .axis_chunks_iter(Axis(0), EVAL_CHUNK)
                    .into_par_iter(),
            )
            .map(|(features, labels)| {
                let logits = self.architecture.logits(&self.params, features);
                Architecture::loss_sum_and_correct(logits.view(), labels)
            })
            .collect();
        let loss: f64 = chunks.iter().map(|c| c.0).sum();
        let correct: usize = chunks.iter().map(|c| c.1).sum();
        Ok(Evaluation::from_totals(loss, correct, data.len()))
    }
}
