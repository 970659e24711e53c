//! Which backend trains, and on what device: the `--backend` and `--device`
//! choices of `fedstake client`, and [`build_trainer`], which makes the trainer
//! a task asks for on the chosen backend.
//!
//! Everything here compiles without the `torch` feature, so a binary built
//! without it can still parse `--backend torch` and say how to enable it.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use fedstake_protocol::spec::TaskSpec;

use super::{CpuTrainer, TrainError, Trainer, architecture_for, optimizer_for};

/// A training backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// The ndarray CPU backend ([`CpuTrainer`]), always built.
    #[default]
    Ndarray,
    /// The tch (libtorch) backend, built with the `torch` feature.
    Torch,
}

impl FromStr for Backend {
    type Err = ParseChoiceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ndarray" => Ok(Backend::Ndarray),
            "torch" => Ok(Backend::Torch),
            _ => Err(ParseChoiceError(format!(
                "unknown backend {s:?}: expected ndarray or torch"
            ))),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Ndarray => "ndarray",
            Backend::Torch => "torch",
        })
    }
}

/// Where a backend computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// The CPU.
    #[default]
    Cpu,
    /// The CUDA device with this index (`cuda` alone is `cuda:0`).
    Cuda(usize),
}

impl FromStr for Device {
    type Err = ParseChoiceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => match s.strip_prefix("cuda:") {
                Some(index) => index.parse().map(Device::Cuda).map_err(|_| {
                    ParseChoiceError(format!(
                        "invalid device {s:?}: {index:?} is not a CUDA device index (0, 1, ...)"
                    ))
                }),
                None => Err(ParseChoiceError(format!(
                    "invalid device {s:?}: expected cpu, cuda or cuda:N"
                ))),
            },
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(index) => write!(f, "cuda:{index}"),
        }
    }
}

/// A `--backend` or `--device` value that is not one of the choices.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseChoiceError(String);

/// How and where to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BackendOptions {
    /// The backend.
    pub backend: Backend,
    /// The device (the ndarray backend runs on the CPU only).
    pub device: Device,
    /// Mixed precision (CUDA autocast); the torch backend on CUDA only.
    pub mixed_precision: bool,
}

/// What a binary built without the `torch` feature says to `--backend torch`.
#[cfg(not(feature = "torch"))]
const TORCH_NOT_BUILT: &str = "the torch backend is not in this build of fedstake; \
    run scripts/install-torch.sh, then rebuild with LIBTORCH_USE_PYTORCH=1, \
    .venv-torch/bin first on PATH and `cargo build --release --features torch` \
    (see the README)";

/// The trainer for `spec`'s model on the chosen backend, with fresh
/// parameters: the built-in models' seeded initialization, or a TorchScript
/// model's own parameters. A TorchScript `model.path` is resolved against
/// `task_dir`, the directory of the task file.
pub fn build_trainer(
    spec: &TaskSpec,
    task_dir: &Path,
    options: &BackendOptions,
    seed: u64,
) -> Result<Box<dyn Trainer>, TrainError> {
    let optimizer = optimizer_for(&spec.training)?;
    match options.backend {
        Backend::Ndarray => {
            if options.device != Device::Cpu {
                return Err(TrainError::Unavailable(format!(
                    "the ndarray backend runs on the CPU only; device {} needs --backend torch",
                    options.device
                )));
            }
            if options.mixed_precision {
                return Err(TrainError::Unavailable(
                    "the ndarray backend has no mixed precision; it needs --backend torch \
                     on a CUDA device"
                        .into(),
                ));
            }
            let architecture = architecture_for(&spec.model, &spec.data)?;
            Ok(Box::new(CpuTrainer::initialized(
                architecture,
                optimizer,
                seed,
            )?))
        }
        Backend::Torch => torch_trainer(spec, task_dir, optimizer, options, seed),
    }
}

#[cfg(feature = "torch")]
use super::torch::build as torch_trainer;

/// Stands in for the torch backend's constructor in a build without it.
#[cfg(not(feature = "torch"))]
fn torch_trainer(
    _: &TaskSpec,
    _: &Path,
    _: super::Optimizer,
    _: &BackendOptions,
    _: u64,
) -> Result<Box<dyn Trainer>, TrainError> {
    Err(TrainError::Unavailable(TORCH_NOT_BUILT.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_and_print() {
        assert_eq!("cpu".parse(), Ok(Device::Cpu));
        assert_eq!("cuda".parse(), Ok(Device::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(Device::Cuda(3)));
        assert_eq!(Device::Cuda(3).to_string(), "cuda:3");
        for bad in ["gpu", "CUDA", "cuda:", "cuda:-1", "cuda:x", "cuda:0:1", ""] {
            let err = bad.parse::<Device>().unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn backends_parse_and_print() {
        assert_eq!("ndarray".parse(), Ok(Backend::Ndarray));
        assert_eq!("torch".parse(), Ok(Backend::Torch));
        assert_eq!(Backend::Torch.to_string(), "torch");
        let err = "tch".parse::<Backend>().unwrap_err().to_string();
        assert!(err.contains("ndarray or torch"), "{err}");
    }
}
