//! The CPU trainer: gradients, convergence, determinism and input checks.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use fedstake_protocol::spec::{ModelSpec, TaskSpec};
use fedstake_training::data::{Dataset, SyntheticSpec, synthetic};
use fedstake_training::trainer::{
    Architecture, BackendOptions, CpuTrainer, Device, LocalTraining, SgdConfig, TrainError,
    Trainer, build_trainer,
};
use ndarray::{Array1, Array2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

const SGD: SgdConfig = SgdConfig {
    learning_rate: 0.1,
    momentum: 0.9,
    weight_decay: 1e-4,
};

fn random_batch(rows: usize, cols: usize, classes: u32, seed: u64) -> (Array2<f64>, Array1<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = Array2::from_shape_fn((rows, cols), |_| StandardNormal.sample(&mut rng));
    let y = Array1::from_shape_fn(rows, |i| (i as u32 * 7 + 3) % classes);
    (x, y)
}

/// Central finite differences against the analytic gradient, in f64, on a small
/// two-hidden-layer net: every parameter, relative error < 1e-4.
#[test]
fn mlp_gradient_matches_finite_differences() {
    let arch = Architecture::mlp(5, vec![4, 3], 3).unwrap();
    let params: Vec<f64> = arch
        .init_parameters(11)
        .iter()
        .map(|&p| f64::from(p) + 0.01)
        .collect();
    let (x, y) = random_batch(6, 5, 3, 5);
    let mut grad = vec![0.0; params.len()];
    arch.loss_and_gradient(&params, x.view(), y.view(), &mut grad);

    let h = 1e-6;
    let mut scratch = vec![0.0; params.len()];
    let mut worst = 0.0f64;
    for i in 0..params.len() {
        let mut plus = params.clone();
        plus[i] += h;
        let mut minus = params.clone();
        minus[i] -= h;
        let numeric = (arch.loss_and_gradient(&plus, x.view(), y.view(), &mut scratch)
            - arch.loss_and_gradient(&minus, x.view(), y.view(), &mut scratch))
            / (2.0 * h);
        let rel = (numeric - grad[i]).abs() / numeric.abs().max(grad[i].abs()).max(1e-8);
        worst = worst.max(rel);
    }
    assert!(worst < 1e-4, "worst relative gradient error {worst}");
}

#[test]
fn softmax_regression_gradient_matches_finite_differences() {
    let arch = Architecture::softmax_regression(4, 3).unwrap();
    let params: Vec<f64> = (0..arch.num_params())
        .map(|i| (i as f64 * 0.37).sin())
        .collect();
    let (x, y) = random_batch(5, 4, 3, 9);
    let mut grad = vec![0.0; params.len()];
    arch.loss_and_gradient(&params, x.view(), y.view(), &mut grad);
    let mut scratch = vec![0.0; params.len()];
    for i in 0..params.len() {
        let mut plus = params.clone();
        plus[i] += 1e-6;
        let mut minus = params.clone();
        minus[i] -= 1e-6;
        let numeric = (arch.loss_and_gradient(&plus, x.view(), y.view(), &mut scratch)
            - arch.loss_and_gradient(&minus, x.view(), y.view(), &mut scratch))
            / 2e-6;
        let rel = (numeric - grad[i]).abs() / numeric.abs().max(grad[i].abs()).max(1e-8);
        assert!(
            rel < 1e-4,
            "parameter {i}: analytic {} numeric {numeric}",
            grad[i]
        );
    }
}

fn separable() -> (Dataset, Dataset) {
    let data = synthetic(&SyntheticSpec {
        classes: 4,
        dim: 10,
        examples: 2000,
        separation: 4.0,
        noise: 0.7,
        seed: 3,
    })
    .unwrap();
    data.split(0.25, 1).unwrap()
}

#[test]
fn mlp_reaches_95_percent_on_a_separable_set() {
    let (train, validation) = separable();
    let arch = Architecture::mlp(10, vec![16], 4).unwrap();
    let mut trainer = CpuTrainer::initialized(arch, SGD, 0).unwrap();
    let before = trainer.evaluate(&validation).unwrap();
    let schedule = LocalTraining {
        epochs: 5,
        batch_size: 32,
        seed: 1,
    };
    let report = trainer.train(&train, &schedule).unwrap();
    let after = trainer.evaluate(&validation).unwrap();
    assert!(
        after.accuracy >= 0.95,
        "validation accuracy {}",
        after.accuracy
    );
    assert!(after.loss < before.loss);
    assert!(report.epoch_losses.last() < report.epoch_losses.first());
    assert_eq!(report.examples, 5 * train.len());
}

#[test]
fn softmax_regression_reaches_95_percent_on_a_separable_set() {
    let (train, validation) = separable();
    let arch = Architecture::softmax_regression(10, 4).unwrap();
    let mut trainer = CpuTrainer::initialized(arch, SGD, 0).unwrap();
    trainer
        .train(
            &train,
            &LocalTraining {
                epochs: 5,
                batch_size: 32,
                seed: 1,
            },
        )
        .unwrap();
    let after = trainer.evaluate(&validation).unwrap();
    assert!(
        after.accuracy >= 0.95,
        "validation accuracy {}",
        after.accuracy
    );
}

#[test]
fn training_is_deterministic_for_a_seed() {
    let (train, _) = separable();
    let run = |seed| {
        let arch = Architecture::mlp(10, vec![8], 4).unwrap();
        let mut trainer = CpuTrainer::initialized(arch, SGD, 5).unwrap();
        trainer
            .train(
                &train,
                &LocalTraining {
                    epochs: 2,
                    batch_size: 16,
                    seed,
                },
            )
            .unwrap();
        trainer.parameters()
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn bad_batches_are_rejected_and_leave_parameters_intact() {
    let arch = Architecture::mlp(3, vec![4], 2).unwrap();
    let mut trainer = CpuTrainer::initialized(arch, SGD, 0).unwrap();
    let before = trainer.parameters();
    let x = Array2::<f32>::zeros((2, 4));
    let y = Array1::from(vec![0u32, 1]);
    assert!(matches!(
        trainer.train_batch(x.view(), y.view()),
        Err(TrainError::Data(_))
    ));
    let x = Array2::<f32>::zeros((2, 3));
    let y = Array1::from(vec![0u32, 2]);
    let err = trainer.train_batch(x.view(), y.view()).unwrap_err();
    assert!(err.to_string().contains("label 2"), "{err}");
    let x = Array2::from_elem((2, 3), f32::MAX);
    let y = Array1::from(vec![0u32, 1]);
    assert!(matches!(
        trainer.train_batch(x.view(), y.view()),
        Err(TrainError::Diverged { .. })
    ));
    assert_eq!(trainer.parameters(), before);
}

#[test]
fn invalid_hyperparameters_are_rejected() {
    let arch = || Architecture::mlp(3, vec![4], 2).unwrap();
    for sgd in [
        SgdConfig {
            learning_rate: 0.0,
            ..SGD
        },
        SgdConfig {
            learning_rate: f32::NAN,
            ..SGD
        },
        SgdConfig {
            momentum: 1.0,
            ..SGD
        },
        SgdConfig {
            weight_decay: -1.0,
            ..SGD
        },
    ] {
        assert!(matches!(
            CpuTrainer::initialized(arch(), sgd, 0),
            Err(TrainError::Config(_))
        ));
    }
    assert!(Architecture::mlp(3, vec![0], 2).is_err());
    assert!(Architecture::softmax_regression(3, 1).is_err());
}

#[test]
fn model_round_trips_through_safetensors_into_another_trainer() {
    let arch = Architecture::mlp(6, vec![5], 3).unwrap();
    let trainer = CpuTrainer::initialized(arch.clone(), SGD, 9).unwrap();
    let bytes = trainer.model().unwrap().to_safetensors().unwrap();
    let model =
        fedstake_aggregation::Model::from_safetensors(&bytes, Some(&arch.layout())).unwrap();
    let mut other = CpuTrainer::initialized(arch, SGD, 10).unwrap();
    other.set_parameters(model.params()).unwrap();
    assert_eq!(other.parameters(), trainer.parameters());
}

#[test]
fn build_trainer_names_what_a_backend_cannot_do() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut spec = TaskSpec::load(&examples.join("task-demo.toml")).unwrap();
    let ndarray = BackendOptions::default();
    let trainer = build_trainer(&spec, &examples, &ndarray, 3).unwrap();
    assert_eq!(
        trainer.layout(),
        &Architecture::mlp(20, vec![32], 4).unwrap().layout()
    );

    let on_cuda = BackendOptions {
        device: Device::Cuda(0),
        ..ndarray
    };
    let err = build_trainer(&spec, &examples, &on_cuda, 3).err().unwrap();
    assert!(matches!(err, TrainError::Unavailable(_)), "{err:?}");
    let mixed = BackendOptions {
        mixed_precision: true,
        ..ndarray
    };
    assert!(build_trainer(&spec, &examples, &mixed, 3).is_err());

    spec.model = ModelSpec::Torchscript {
        path: "model.pt".into(),
        sha256: None,
    };
    let err = build_trainer(&spec, &examples, &ndarray, 3).err().unwrap();
    assert!(err.to_string().contains("needs the torch backend"), "{err}");
}

#[cfg(not(feature = "torch"))]
#[test]
fn the_torch_backend_without_the_feature_says_how_to_enable_it() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let spec = TaskSpec::load(&examples.join("task-demo.toml")).unwrap();
    let torch = BackendOptions {
        backend: fedstake_training::trainer::Backend::Torch,
        ..BackendOptions::default()
    };
    let err = build_trainer(&spec, &examples, &torch, 0).err().unwrap();
    assert!(matches!(err, TrainError::Unavailable(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("scripts/install-torch.sh") && text.contains("--features torch"),
        "{text}"
    );
}
