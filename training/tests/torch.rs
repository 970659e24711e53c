//! The tch backend (`--features torch`): parity with the ndarray backend after
//! an epoch, a TorchScript model exported at test time by
//! `export_torchscript.py` (training, the safetensors and aggregation round
//! trip), and the errors a user can run into.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;

use fedstake_aggregation::{Aggregator, Model, RoundContext, Rule};
use fedstake_protocol::spec::{ModelSpec, TaskSpec};
use fedstake_training::data::{Dataset, SyntheticSpec, synthetic};
use fedstake_training::trainer::{
    AdamConfig, Architecture, Backend, BackendOptions, CpuTrainer, Device, LocalTraining,
    Optimizer, SgdConfig, TchTrainer, TorchScriptFile, TrainError, Trainer, build_trainer,
};
use ndarray::Array2;
use sha2::{Digest, Sha256};

const SGD: SgdConfig = SgdConfig {
    learning_rate: 0.05,
    momentum: 0.9,
    weight_decay: 1e-3,
};

const ADAM: AdamConfig = AdamConfig {
    learning_rate: 0.01,
    beta1: 0.9,
    beta2: 0.999,
    epsilon: 1e-8,
    weight_decay: 1e-2,
};

/// The exported CNN: 8x8 images, 4 classes.
const SIDE: usize = 8;
const CLASSES: usize = 4;

/// Gaussian class clusters, centres `separation` from the origin (noise 1).
fn clusters(dim: usize, classes: usize, examples: usize, separation: f32) -> Dataset {
    synthetic(&SyntheticSpec {
        classes,
        dim,
        examples,
        separation,
        noise: 1.0,
        seed: 11,
    })
    .unwrap()
}

/// `||a - b|| / ||b||`.
fn relative_gap(a: &[f32], b: &[f32]) -> f64 {
    let diff: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    let norm: f64 = b.iter().map(|&y| f64::from(y).powi(2)).sum();
    (diff / norm).sqrt()
}

/// One epoch from the same initial parameters on the same batches: every
/// tensor of the tch result within 1e-4 (relative L2) of the ndarray result.
fn assert_parity(architecture: Architecture, optimizer: Optimizer) {
    let data = clusters(architecture.inputs(), architecture.classes(), 1024, 2.0);
    let init = architecture.init_parameters(3);
    let mut ndarray = CpuTrainer::new(architecture.clone(), optimizer, init.clone()).unwrap();
    let mut tch = TchTrainer::new(&architecture, optimizer, &init, Device::Cpu, false).unwrap();
    let schedule = LocalTraining {
        epochs: 1,
        batch_size: 32,
        seed: 5,
    };
    let ndarray_report = ndarray.train(&data, &schedule).unwrap();
    let tch_report = tch.train(&data, &schedule).unwrap();
    assert_eq!(ndarray_report.steps, 32);
    assert_eq!(tch_report.steps, ndarray_report.steps);

    let (expected, found) = (ndarray.parameters(), tch.parameters());
    assert!(
        relative_gap(&init, &expected) > 0.05,
        "the epoch should move the parameters"
    );
    for (tensor, range) in architecture.layout().ranges() {
        let gap = relative_gap(&found[range.clone()], &expected[range]);
        assert!(gap < 1e-4, "{tensor}: relative gap {gap:e}");
    }
    let (a, b) = (ndarray_report.epoch_losses[0], tch_report.epoch_losses[0]);
    assert!((a - b).abs() < 1e-4 * a, "epoch loss {a} vs {b}");
    let (a, b) = (
        ndarray.evaluate(&data).unwrap(),
        tch.evaluate(&data).unwrap(),
    );
    assert!((a.loss - b.loss).abs() < 1e-4 * a.loss, "{a:?} vs {b:?}");
    assert!(
        (a.accuracy - b.accuracy).abs() <= 2.0 / 1024.0,
        "{a:?} vs {b:?}"
    );
}

#[test]
fn mlp_matches_the_ndarray_backend_under_sgd_with_momentum_and_weight_decay() {
    assert_parity(Architecture::mlp(20, vec![32, 16], 4).unwrap(), SGD.into());
}

#[test]
fn mlp_matches_the_ndarray_backend_under_adamw() {
    assert_parity(Architecture::mlp(20, vec![32, 16], 4).unwrap(), ADAM.into());
}

#[test]
fn logreg_matches_the_ndarray_backend_under_sgd_and_adamw() {
    assert_parity(Architecture::softmax_regression(20, 4).unwrap(), SGD.into());
    assert_parity(
        Architecture::softmax_regression(20, 4).unwrap(),
        ADAM.into(),
    );
}

#[test]
fn replacing_the_parameters_resets_the_optimizer_like_the_ndarray_backend() {
    let architecture = Architecture::mlp(20, vec![8], 4).unwrap();
    let data = clusters(20, 4, 256, 2.0);
    let init = architecture.init_parameters(1);
    let mut tch = TchTrainer::new(&architecture, ADAM, &init, Device::Cpu, false).unwrap();
    let schedule = LocalTraining {
        epochs: 1,
        batch_size: 64,
        seed: 2,
    };
    tch.train(&data, &schedule).unwrap();
    let first_round = tch.parameters();
    tch.set_parameters(&init).unwrap();
    assert_eq!(tch.parameters(), init);
    tch.train(&data, &schedule).unwrap();
    assert_eq!(
        tch.parameters(),
        first_round,
        "fresh moments give the same round"
    );
}

/// The venv python of scripts/install-torch.sh, else `python3` on PATH.
fn python() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-torch/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// Exports the test CNN into `dir` with `export_torchscript.py`.
fn export_cnn(dir: &Path, classes: usize, seed: u64) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/export_torchscript.py");
    let out = dir.join(format!("cnn-{classes}-{seed}.pt"));
    let output = Command::new(python())
        .arg(&script)
        .arg(&out)
        .args(["--side", &SIDE.to_string()])
        .args(["--classes", &classes.to_string()])
        .args(["--seed", &seed.to_string()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "exporting the TorchScript model failed (scripts/install-torch.sh installs PyTorch): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

#[test]
fn torchscript_model_trains_and_round_trips_through_safetensors_and_fedavg() {
    let dir = tempfile::tempdir().unwrap();
    let path = export_cnn(dir.path(), CLASSES, 1);
    let file = TorchScriptFile::read(&path, None).unwrap();
    let mut trainer =
        TchTrainer::torchscript(&file, SIDE * SIDE, CLASSES, SGD, Device::Cpu, false).unwrap();
    let layout: Vec<String> = trainer
        .layout()
        .tensors()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        layout,
        [
            "conv.weight[4, 1, 3, 3] f32",
            "conv.bias[4] f32",
            "head.weight[4, 64] f32",
            "head.bias[4] f32"
        ]
    );

    // The clusters have no spatial structure for the convolution to use, so
    // they are set further apart than the parity tests' ones.
    let (train, validation) = clusters(SIDE * SIDE, CLASSES, 1200, 4.0)
        .split(0.25, 3)
        .unwrap();
    let before = trainer.evaluate(&validation).unwrap();
    let report = trainer
        .train(
            &train,
            &LocalTraining {
                epochs: 3,
                batch_size: 32,
                seed: 4,
            },
        )
        .unwrap();
    let after = trainer.evaluate(&validation).unwrap();
    assert!(
        report.epoch_losses.windows(2).all(|w| w[1] < w[0]),
        "{report:?}"
    );
    assert!(
        after.loss < 0.5 * before.loss,
        "validation loss {before:?} -> {after:?}"
    );
    assert!(after.accuracy > 0.6, "chance is 0.25: {after:?}");

    // Safetensors: the same layout and values, with or without the layout.
    let model = trainer.model().unwrap();
    let bytes = model.to_safetensors().unwrap();
    assert_eq!(
        Model::from_safetensors(&bytes, Some(trainer.layout())).unwrap(),
        model
    );
    assert_eq!(Model::from_safetensors(&bytes, None).unwrap(), model);

    // FedAvg over two copies is the model itself, and a fresh trainer loaded
    // from the same file takes it back unchanged.
    let params = model.params();
    let rows = Array2::from_shape_fn((2, params.len()), |(_, j)| params[j]);
    let aggregate = Aggregator::new(Rule::FedAvg, None)
        .unwrap()
        .aggregate(rows.view(), &[3.0, 3.0], &RoundContext::default())
        .unwrap();
    assert_eq!(aggregate.update.as_slice().unwrap(), params);
    let mut fresh =
        TchTrainer::torchscript(&file, SIDE * SIDE, CLASSES, SGD, Device::Cpu, false).unwrap();
    assert_ne!(fresh.parameters(), params);
    fresh
        .set_parameters(aggregate.update.as_slice().unwrap())
        .unwrap();
    assert_eq!(fresh.parameters(), params);
    assert_eq!(fresh.evaluate(&validation).unwrap(), after);
}

#[test]
fn torchscript_task_resolves_the_path_and_checks_the_pinned_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let path = export_cnn(dir.path(), CLASSES, 2);
    let digest = format!("{:x}", Sha256::digest(std::fs::read(&path).unwrap()));
    let mut spec =
        TaskSpec::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/task-demo.toml"))
            .unwrap();
    spec.data.features = (SIDE * SIDE) as u32;
    spec.data.classes = CLASSES as u32;
    let options = BackendOptions {
        backend: Backend::Torch,
        ..BackendOptions::default()
    };
    let relative = path.file_name().unwrap().to_str().unwrap().to_string();

    spec.model = ModelSpec::Torchscript {
        path: relative.clone(),
        sha256: Some(digest.to_uppercase()),
    };
    let trainer = build_trainer(&spec, dir.path(), &options, 0).unwrap();
    assert_eq!(trainer.layout().tensors().len(), 4);

    let wrong = "0".repeat(64);
    spec.model = ModelSpec::Torchscript {
        path: relative,
        sha256: Some(wrong.clone()),
    };
    let err = build_trainer(&spec, dir.path(), &options, 0).err().unwrap();
    let text = err.to_string();
    assert!(matches!(err, TrainError::TorchScript { .. }), "{err:?}");
    for part in [
        "sha256 mismatch",
        wrong.as_str(),
        digest.as_str(),
        path.to_str().unwrap(),
    ] {
        assert!(text.contains(part), "{text:?} lacks {part:?}");
    }
}

#[test]
fn a_file_that_is_not_torchscript_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.pt");
    std::fs::write(&path, b"these bytes are no TorchScript archive").unwrap();
    let file = TorchScriptFile::read(&path, None).unwrap();
    let err = TchTrainer::torchscript(&file, 64, CLASSES, SGD, Device::Cpu, false)
        .err()
        .unwrap();
    let text = err.to_string();
    assert!(matches!(err, TrainError::TorchScript { .. }), "{err:?}");
    assert!(
        text.starts_with(&format!(
            "TorchScript model {}: libtorch cannot load it",
            path.display()
        )),
        "{text}"
    );
    assert!(!text.contains("frame #"), "no C++ backtrace: {text}");

    let missing = dir.path().join("missing.pt");
    let err = TorchScriptFile::read(&missing, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing.pt") && err.contains("cannot read it"),
        "{err}"
    );
}

#[test]
fn a_torchscript_model_with_the_wrong_output_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let file = TorchScriptFile::read(&export_cnn(dir.path(), 3, 1), None).unwrap();
    let err = TchTrainer::torchscript(&file, SIDE * SIDE, CLASSES, SGD, Device::Cpu, false)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("probe batch") && err.contains("[1, 3]") && err.contains("[1, 4]"),
        "{err}"
    );
}

#[test]
fn cuda_without_a_cuda_device_and_mixed_precision_on_the_cpu_are_clear_errors() {
    let architecture = Architecture::mlp(4, vec![3], 2).unwrap();
    let init = architecture.init_parameters(0);
    // One index past the devices tch sees: unavailable on any machine.
    let found = tch::Cuda::device_count();
    let index = found as usize;
    let err = TchTrainer::new(&architecture, SGD, &init, Device::Cuda(index), false)
        .err()
        .unwrap();
    assert!(matches!(err, TrainError::Unavailable(_)), "{err:?}");
    let plural = if found == 1 { "" } else { "s" };
    assert_eq!(
        err.to_string(),
        format!("cuda:{index} requested but tch reports {found} CUDA device{plural}")
    );
    if found == 0 {
        let err = TchTrainer::new(&architecture, SGD, &init, "cuda".parse().unwrap(), false)
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "cuda:0 requested but tch reports 0 CUDA devices"
        );
    }
    let err = TchTrainer::new(&architecture, SGD, &init, Device::Cpu, true)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("mixed precision") && err.contains("CUDA"),
        "{err}"
    );
}

#[test]
fn bad_batches_are_rejected_and_leave_parameters_intact() {
    let architecture = Architecture::mlp(3, vec![4], 2).unwrap();
    let init = architecture.init_parameters(0);
    let mut trainer = TchTrainer::new(&architecture, SGD, &init, Device::Cpu, false).unwrap();
    let err = trainer
        .train_batch(
            Array2::<f32>::zeros((2, 3)).view(),
            ndarray::arr1(&[0u32, 2]).view(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("label 2"), "{err}");
    let err = trainer
        .train_batch(
            Array2::from_elem((2, 3), f32::MAX).view(),
            ndarray::arr1(&[0u32, 1]).view(),
        )
        .unwrap_err();
    assert!(matches!(err, TrainError::Diverged { .. }), "{err:?}");
    assert_eq!(trainer.parameters(), init);
}
