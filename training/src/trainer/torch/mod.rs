//! The tch (libtorch) backend: fedstake's built-in networks and TorchScript
//! models, trained on the CPU or a CUDA device with libtorch's own SGD and
//! AdamW (PyTorch's semantics, which the ndarray backend follows too).
//!
//! Parameters travel in the same layout and flat vector as with the ndarray
//! backend: a built-in network's tensors are its linear layers' weights
//! `[out, in]` and biases in [`Architecture::layout`] order; a TorchScript
//! model's are its named parameters in the module's order. Batches come from
//! the provided [`Trainer::train`] loop, so both backends see the same batches
//! in the same order, and aggregation cannot tell which backend trained.
//!
//! A TorchScript model maps `[batch, features]` `f32` to logits
//! `[batch, classes]`; the loss is the mean cross-entropy of those logits, as
//! for the built-in networks. Only parameters are exchanged: buffers (batch
//! norm statistics, say) stay as local training leaves them.

mod script;

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use fedstake_aggregation::{ModelError, ModelLayout, TensorSpec};
use fedstake_protocol::spec::{ModelSpec, TaskSpec};
use ndarray::{ArrayView1, ArrayView2, Axis};
use tch::{CModule, COptimizer, Kind, Reduction, TchError, Tensor};

pub use script::TorchScriptFile;

use super::network::check_batch;
use super::{
    Architecture, BackendOptions, Device, Evaluation, Optimizer, TrainError, Trainer,
    architecture_for,
};
use crate::data::Dataset;

/// Examples per forward pass when evaluating (bounds device memory).
const EVAL_CHUNK: usize = 4096;

/// The trainer for `spec`'s model on the torch backend (see
/// [`super::build_trainer`]).
pub(super) fn build(
    spec: &TaskSpec,
    task_dir: &Path,
    optimizer: Optimizer,
    options: &BackendOptions,
    seed: u64,
) -> Result<Box<dyn Trainer>, TrainError> {
    let trainer = match &spec.model {
        ModelSpec::Torchscript { path, sha256 } => {
            let file = TorchScriptFile::read(&task_dir.join(path), sha256.as_deref())?;
            TchTrainer::torchscript(
                &file,
                spec.data.features as usize,
                spec.data.classes as usize,
                optimizer,
                options.device,
                options.mixed_precision,
            )?
        }
        model => {
            let architecture = architecture_for(model, &spec.data)?;
            TchTrainer::new(
                &architecture,
                optimizer,
                &architecture.init_parameters(seed),
                options.device,
                options.mixed_precision,
            )?
        }
    };
    Ok(Box::new(trainer))
}

/// What computes the logits.
enum Net {
    /// fedstake's fully connected network: the parameters are its layers'
    /// weights and biases, in pairs.
    Builtin,
    /// A TorchScript module, which holds the parameters. Behind a mutex
    /// because switching it between training and evaluation mode takes
    /// `&mut`, and [`Trainer::evaluate`] has only `&self`.
    Script(Mutex<CModule>),
}

/// A device that exists, and whether to run the forward pass under autocast.
#[derive(Clone, Copy)]
struct Placement {
    device: tch::Device,
    mixed_precision: bool,
}

impl Placement {
    fn resolve(device: Device, mixed_precision: bool) -> Result<Self, TrainError> {
        let resolved = match device {
            Device::Cpu => tch::Device::Cpu,
            Device::Cuda(index) => {
                let found = tch::Cuda::device_count();
                if i64::try_from(index).map_or(true, |index| index >= found) {
                    return Err(TrainError::Unavailable(format!(
                        "{device} requested but tch reports {found} CUDA device{}",
                        if found == 1 { "" } else { "s" }
                    )));
                }
                tch::Device::Cuda(index)
            }
        };
        if mixed_precision && resolved == tch::Device::Cpu {
            return Err(TrainError::Unavailable(
                "mixed precision (CUDA autocast) needs a CUDA device; \
                 use --device cuda[:N] or leave it off"
                    .into(),
            ));
        }
        Ok(Self {
            device: resolved,
            mixed_precision,
        })
    }
}

/// Mini-batch training with libtorch: SGD with momentum and weight decay, or
/// AdamW, as [`Optimizer`] says.
pub struct TchTrainer {
    net: Net,
    layout: ModelLayout,
    inputs: usize,
    classes: usize,
    /// The trained tensors in layout order, on the device, requiring grad.
    params: Vec<Tensor>,
    optimizer: Optimizer,
    /// libtorch's optimizer over `params`; replaced with the parameters.
    state: COptimizer,
    placement: Placement,
    steps: usize,
}

impl TchTrainer {
    /// A trainer for the built-in `architecture` starting from `params` (its
    /// layout's flat vector) on `device`; `mixed_precision` needs CUDA.
    pub fn new(
        architecture: &Architecture,
        optimizer: impl Into<Optimizer>,
        params: &[f32],
        device: Device,
        mixed_precision: bool,
    ) -> Result<Self, TrainError> {
        let placement = Placement::resolve(device, mixed_precision)?;
        let layout = architecture.layout();
        check_length(&layout, params)?;
        let tensors = layout
            .ranges()
            .map(|(spec, range)| {
                Tensor::f_from_slice(&params[range])?
                    .f_view(dims(&spec.shape).as_slice())?
                    .f_to_device(placement.device)?
                    .f_set_requires_grad(true)
            })
            .collect::<Result<Vec<_>, TchError>>()?;
        Self::assemble(
            Net::Builtin,
            layout,
            (architecture.inputs(), architecture.classes()),
            tensors,
            optimizer.into(),
            placement,
        )
    }

    /// A trainer for a TorchScript model mapping `inputs` features to
    /// `classes` logits, starting from the parameters in the file. Fails with
    /// [`TrainError::TorchScript`] if libtorch cannot load the file, it has no
    /// parameters or a parameter is not `f32`, or its output on a probe batch
    /// is not `[1, classes]`.
    pub fn torchscript(
        file: &TorchScriptFile,
        inputs: usize,
        classes: usize,
        optimizer: impl Into<Optimizer>,
        device: Device,
        mixed_precision: bool,
    ) -> Result<Self, TrainError> {
        let placement = Placement::resolve(device, mixed_precision)?;
        let module = CModule::load_data_on_device(&mut file.bytes(), placement.device)
            .map_err(|e| file.error(format!("libtorch cannot load it: {}", message(&e))))?;
        let named = module
            .named_parameters()
            .map_err(|e| file.error(format!("cannot list its parameters: {}", message(&e))))?;
        if named.is_empty() {
            return Err(file.error("it has no parameters to train"));
        }
        let mut specs = Vec::with_capacity(named.len());
        let mut tensors = Vec::with_capacity(named.len());
        for (name, tensor) in named {
            let kind = tensor.f_kind()?;
            if kind != Kind::Float {
                return Err(file.error(format!(
                    "parameter {name} is {kind:?}; fedstake trains and exchanges f32 \
                     parameters (export the module after .float())"
                )));
            }
            let shape: Vec<usize> = tensor.size().iter().map(|&d| d as usize).collect();
            specs.push(TensorSpec::new(name, shape));
            tensors.push(tensor.f_set_requires_grad(true)?);
        }
        let trainer = Self::assemble(
            Net::Script(Mutex::new(module)),
            ModelLayout::new(specs)?,
            (inputs, classes),
            tensors,
            optimizer.into(),
            placement,
        )?;
        // Fail at load time, naming the file, rather than at the first batch.
        trainer.set_training(false)?;
        let probe = Tensor::f_zeros([1, inputs as i64], (Kind::Float, placement.device))?;
        tch::no_grad(|| trainer.logits(&probe).map(drop))
            .map_err(|e| file.error(format!("on a probe batch: {e}")))?;
        Ok(trainer)
    }

    fn assemble(
        net: Net,
        layout: ModelLayout,
        (inputs, classes): (usize, usize),
        params: Vec<Tensor>,
        optimizer: Optimizer,
        placement: Placement,
    ) -> Result<Self, TrainError> {
        optimizer.validate()?;
        let state = optimizer_state(optimizer, &params)?;
        Ok(Self {
            net,
            layout,
            inputs,
            classes,
            params,
            optimizer,
            state,
            placement,
            steps: 0,
        })
    }

    /// Switches a TorchScript module between training and evaluation mode
    /// (dropout, batch norm); the built-in networks have no modes.
    fn set_training(&self, training: bool) -> Result<(), TchError> {
        if let Net::Script(module) = &self.net {
            // The mode flag is all a panic elsewhere could have left behind.
            let mut module = module.lock().unwrap_or_else(PoisonError::into_inner);
            if training {
                module.f_set_train()?;
            } else {
                module.f_set_eval()?;
            }
        }
        Ok(())
    }

    /// `f32` logits `[rows, classes]` of a batch `[rows, inputs]` on the device.
    fn logits(&self, x: &Tensor) -> Result<Tensor, TrainError> {
        let forward = || -> Result<Tensor, TchError> {
            match &self.net {
                Net::Builtin => {
                    let layers = self.params.len() / 2;
                    let mut h = x.shallow_clone();
                    for (l, pair) in self.params.chunks_exact(2).enumerate() {
                        h = h.f_linear(&pair[0], Some(&pair[1]))?;
                        if l + 1 < layers {
                            h = h.f_relu()?;
                        }
                    }
                    Ok(h)
                }
                Net::Script(module) => module
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .forward_ts(&[x]),
            }
        };
        let logits = if self.placement.mixed_precision {
            tch::autocast(true, forward)
        } else {
            forward()
        }?;
        let rows = x.size().first().copied().unwrap_or_default();
        let expected = [rows, self.classes as i64];
        if logits.size() != expected {
            return Err(TrainError::Data(format!(
                "the model returns logits of shape {:?}, expected {expected:?}",
                logits.size()
            )));
        }
        Ok(logits.f_to_kind(Kind::Float)?)
    }

    fn features_tensor(&self, features: ArrayView2<'_, f32>) -> Result<Tensor, TchError> {
        let (rows, cols) = features.dim();
        let contiguous = features.as_standard_layout();
        let flat = contiguous
            .as_slice()
            .expect("a standard-layout array is one slice");
        Tensor::f_from_slice(flat)?
            .f_view([rows as i64, cols as i64])?
            .f_to_device(self.placement.device)
    }

    fn labels_tensor(&self, labels: ArrayView1<'_, u32>) -> Result<Tensor, TchError> {
        let labels: Vec<i64> = labels.iter().map(|&l| i64::from(l)).collect();
        Tensor::f_from_slice(&labels)?.f_to_device(self.placement.device)
    }

    /// Whether every gradient is finite, with one device synchronization.
    ///
    /// The `f64` sum of `f32` values is finite exactly when they all are (it
    /// cannot overflow, and NaN and infinities propagate), and costs one
    /// reduction per tensor: a third of `isfinite().all()` per step here.
    fn gradients_finite(&self) -> Result<bool, TchError> {
        let mut sums = Vec::with_capacity(self.params.len());
        for param in &self.params {
            let grad = param.f_grad()?;
            if grad.defined() {
                sums.push(grad.f_sum(Kind::Double)?);
            }
        }
        if sums.is_empty() {
            return Ok(true);
        }
        let total = Tensor::f_stack(&sums, 0)?.f_sum(Kind::Double)?;
        Ok(total.f_double_value(&[])?.is_finite())
    }
}

impl Trainer for TchTrainer {
    fn layout(&self) -> &ModelLayout {
        &self.layout
    }

    fn parameters(&self) -> Vec<f32> {
        let mut flat = vec![0.0; self.layout.num_params()];
        for (param, (_, range)) in self.params.iter().zip(self.layout.ranges()) {
            let n = range.len();
            param
                .f_copy_data(&mut flat[range], n)
                .expect("parameters are f32 tensors of their layout's shape");
        }
        flat
    }

    fn set_parameters(&mut self, params: &[f32]) -> Result<(), TrainError> {
        check_length(&self.layout, params)?;
        tch::no_grad(|| -> Result<(), TchError> {
            for (param, (spec, range)) in self.params.iter_mut().zip(self.layout.ranges()) {
                param.f_copy_(
                    &Tensor::f_from_slice(&params[range])?.f_view(dims(&spec.shape).as_slice())?,
                )?;
            }
            Ok(())
        })?;
        self.state = optimizer_state(self.optimizer, &self.params)?;
        self.steps = 0;
        Ok(())
    }

    fn train_batch(
        &mut self,
        features: ArrayView2<'_, f32>,
        labels: ArrayView1<'_, u32>,
    ) -> Result<f32, TrainError> {
        check_batch(self.inputs, self.classes, &features, &labels)?;
        let x = self.features_tensor(features)?;
        let y = self.labels_tensor(labels)?;
        self.set_training(true)?;
        self.state.zero_grad()?;
        let loss = self
            .logits(&x)?
            .f_log_softmax(-1, Kind::Float)?
            .f_nll_loss::<Tensor>(&y, None, Reduction::Mean, -100)?;
        let value = loss.f_double_value(&[])? as f32;
        if !value.is_finite() {
            return Err(TrainError::Diverged {
                loss: value,
                step: self.steps,
            });
        }
        loss.f_backward()?;
        // Checked before the step, so a divergent batch leaves the parameters as they were.
        if !self.gradients_finite()? {
            return Err(TrainError::Diverged {
                loss: value,
                step: self.steps,
            });
        }
        self.state.step()?;
        self.steps += 1;
        Ok(value)
    }

    fn evaluate(&self, data: &Dataset) -> Result<Evaluation, TrainError> {
        if data.is_empty() {
            return Err(TrainError::Data(
                "cannot evaluate on an empty dataset".into(),
            ));
        }
        check_batch(
            self.inputs,
            self.classes,
            &data.features().view(),
            &data.labels().view(),
        )?;
        self.set_training(false)?;
        let _no_grad = tch::no_grad_guard();
        let (mut loss, mut correct) = (0.0, 0);
        let chunks = data
            .features()
            .axis_chunks_iter(Axis(0), EVAL_CHUNK)
            .zip(data.labels().axis_chunks_iter(Axis(0), EVAL_CHUNK));
        for (features, labels) in chunks {
            let logits = self.logits(&self.features_tensor(features)?)?;
            let mut host = vec![0.0f32; labels.len() * self.classes];
            let n = host.len();
            logits.f_copy_data(&mut host, n)?;
            let host = ArrayView2::from_shape((labels.len(), self.classes), &host)
                .map_err(|e| TrainError::Data(e.to_string()))?;
            let (chunk_loss, chunk_correct) = Architecture::loss_sum_and_correct(host, labels);
            loss += chunk_loss;
            correct += chunk_correct;
        }
        Ok(Evaluation::from_totals(loss, correct, data.len()))
    }
}

/// libtorch's optimizer over `params`, fresh (no momentum or moments yet).
fn optimizer_state(optimizer: Optimizer, params: &[Tensor]) -> Result<COptimizer, TchError> {
    let mut state = match optimizer {
        Optimizer::Sgd(c) => COptimizer::sgd(
            c.learning_rate.into(),
            c.momentum.into(),
            0.0,
            c.weight_decay.into(),
            false,
        )?,
        // AdamW with zero weight decay is Adam.
        Optimizer::Adam(c) => COptimizer::adamw(
            c.learning_rate.into(),
            c.beta1.into(),
            c.beta2.into(),
            c.weight_decay.into(),
            c.epsilon.into(),
            false,
        )?,
    };
    for param in params {
        state.add_parameters(param, 0)?;
    }
    Ok(state)
}

fn check_length(layout: &ModelLayout, params: &[f32]) -> Result<(), TrainError> {
    if params.len() != layout.num_params() {
        return Err(ModelError::LengthMismatch {
            expected: layout.num_params(),
            found: params.len(),
        }
        .into());
    }
    Ok(())
}

fn dims(shape: &[usize]) -> Vec<i64> {
    shape.iter().map(|&d| d as i64).collect()
}

/// libtorch's message without the C++ backtrace that follows it.
fn message(error: &TchError) -> String {
    let text = match error {
        TchError::Torch(text) => text.clone(),
        other => other.to_string(),
    };
    let text = text
        .split("Exception raised from")
        .next()
        .unwrap_or_default();
    text.trim().to_string()
}

impl From<TchError> for TrainError {
    fn from(error: TchError) -> Self {
        TrainError::Torch(message(&error))
    }
}
