//! The `fedstake` binary, run as a user runs it.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fedstake_training::data::{SyntheticSpec, synthetic};

/// Runs the binary as a user would: without LD_LIBRARY_PATH, which cargo
/// may set for tests (a torch build must find libtorch by its rpath).
fn fedstake(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fedstake"))
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

#[test]
fn demo_runs_the_task_over_quic_pays_and_writes_its_report() {
    let out = tempfile::tempdir().unwrap();
    let output = fedstake(&[
        "demo",
        "--rounds",
        "3",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    // One row per round: round, attempts, accuracy, groups, paid...
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip_while(|l| !l.starts_with("round"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter(|l| !l.trim_start().starts_with('('))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 3, "{text}");
    let accuracy = |row: &Vec<&str>| row[2].trim_end_matches('%').parse::<f64>().unwrap();
    assert!(accuracy(&rows[2]) > 50.0, "{text}");
    // The dropout crashed in round 2, which needed no second attempt to
    // complete, and every client claimed what the last tree pays it.
    assert!(text.contains("crashed in round 2"), "{text}");
    let claimed: Vec<u128> = text
        .lines()
        .filter(|l| l.starts_with("0x"))
        .map(|l| l.split_whitespace().nth(2).unwrap().parse().unwrap())
        .collect();
    assert_eq!(claimed.len(), 8, "{text}");
    assert!(claimed.iter().sum::<u128>() > 0, "{text}");
    for file in ["report.md", "rounds.csv", "payouts.json"] {
        assert!(out.path().join(file).exists(), "{file} missing");
    }
}

#[test]
fn task_validate_accepts_the_examples_and_names_the_bad_field() {
    let output = fedstake(&[
        "task",
        "validate",
        example("task-mnist-mlp.toml").to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("spec hash"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(example("task-demo.toml")).unwrap();
    std::fs::write(&bad, text.replace("min = 8", "min = 9")).unwrap();
    let output = fedstake(&["task", "validate", bad.to_str().unwrap()]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains("bad.toml") && err.contains("cohort.min"),
        "{err}"
    );
}

fn write_csv(path: &Path, features: usize, seed: u64) {
    let data = synthetic(&SyntheticSpec {
        classes: 4,
        dim: features,
        examples: 600,
        separation: 4.0,
        noise: 0.8,
        seed,
    })
    .unwrap();
    let mut text = String::new();
    for (row, label) in data.features().rows().into_iter().zip(data.labels()) {
        for v in row {
            text.push_str(&format!("{v},"));
        }
        text.push_str(&format!("{label}\n"));
    }
    std::fs::write(path, text).unwrap();
}

/// Trains on a CSV for 5 epochs with `--backend train_backend`, evaluates the
/// model it wrote with each of `evaluate_backends`, and returns the accuracies
/// printed, in percent.
fn train_and_evaluate(train_backend: &str, evaluate_backends: &[&str]) -> Vec<f64> {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("train.csv");
    write_csv(&csv, 20, 1);
    let model = dir.path().join("model.safetensors");
    let task = example("task-demo.toml");
    let data = format!("csv:{}", csv.display());
    let common = ["--task", task.to_str().unwrap(), "--data", &data];
    let mut args = vec![
        "client",
        "train",
        "--backend",
        train_backend,
        "--epochs",
        "5",
    ];
    args.extend_from_slice(&common);
    args.extend_from_slice(&["--out", model.to_str().unwrap()]);
    let output = fedstake(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(model.exists());

    let mut accuracies = Vec::new();
    for backend in evaluate_backends {
        let mut args = vec!["client", "evaluate", "--backend", backend];
        args.extend_from_slice(&common);
        args.extend_from_slice(&["--model", model.to_str().unwrap()]);
        let output = fedstake(&args);
        assert!(output.status.success(), "{}", stderr(&output));
        let text = stdout(&output);
        let accuracy = text.split("accuracy ").nth(1).unwrap();
        accuracies.push(accuracy.trim().trim_end_matches('%').parse().unwrap());
    }
    accuracies
}

#[test]
fn client_trains_on_csv_writes_the_model_and_evaluates_it() {
    let accuracy = train_and_evaluate("ndarray", &["ndarray"]);
    assert!(accuracy[0] > 90.0, "{accuracy:?}");
}

/// The torch backend through the binary, which finds libtorch by its rpath
/// (`fedstake` runs without LD_LIBRARY_PATH); the model it writes evaluates
/// the same on both backends.
#[cfg(feature = "torch")]
#[test]
fn client_trains_with_the_torch_backend_and_both_backends_evaluate_it() {
    let accuracy = train_and_evaluate("torch", &["torch", "ndarray"]);
    assert_eq!(accuracy[0], accuracy[1]);
    assert!(accuracy[0] > 90.0, "{accuracy:?}");
}

#[test]
fn client_refuses_data_that_does_not_fit_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("wide.csv");
    write_csv(&csv, 21, 2);
    let output = fedstake(&[
        "client",
        "train",
        "--task",
        example("task-demo.toml").to_str().unwrap(),
        "--data",
        &format!("csv:{}", csv.display()),
        "--out",
        dir.path().join("m.safetensors").to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains("wide.csv") && err.contains("21 features"),
        "{err}"
    );

    let output = fedstake(&[
        "client",
        "train",
        "--task",
        "x.toml",
        "--data",
        "parquet:x",
        "--out",
        "m",
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("unknown data kind"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn client_backend_and_device_choices_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let task = example("task-demo.toml");
    let out = dir.path().join("m.safetensors");
    let train = |extra: &[&str]| {
        let mut args = vec![
            "client",
            "train",
            "--task",
            task.to_str().unwrap(),
            "--data",
            "synthetic:200",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        stderr(&fedstake(&args))
    };
    let err = train(&["--device", "gpu"]);
    assert!(
        err.contains(r#"invalid device "gpu": expected cpu, cuda or cuda:N"#),
        "{err}"
    );
    let err = train(&["--device", "cuda:one"]);
    assert!(err.contains("not a CUDA device index"), "{err}");
    let err = train(&["--backend", "tch"]);
    assert!(err.contains("expected ndarray or torch"), "{err}");
    let err = train(&["--device", "cuda:1"]);
    assert!(
        err.contains(
            "the ndarray backend runs on the CPU only; device cuda:1 needs --backend torch"
        ),
        "{err}"
    );
    if cfg!(not(feature = "torch")) {
        let err = train(&["--backend", "torch"]);
        assert!(
            err.contains("not in this build") && err.contains("--features torch"),
            "{err}"
        );
    }
    assert!(!out.exists());
}

#[test]
fn sim_run_writes_a_run_folder_and_refuses_bad_experiments() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(example("robustness.toml"))
        .unwrap()
        .replace("seeds = [1, 2, 3]", "seeds = [1]")
        .replace("rounds = 30", "rounds = 2")
        .replace("examples = 12500", "examples = 3000");
    let experiment = dir.path().join("small.toml");
    std::fs::write(&experiment, &text).unwrap();
    let out = dir.path().join("run");
    let output = fedstake(&[
        "sim",
        "run",
        experiment.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--jobs",
        "2",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    for file in [
        "rounds.csv",
        "summary.json",
        "report.md",
        "plots/final-accuracy-heatmap.png",
    ] {
        assert!(out.join(file).exists(), "{file} missing");
    }

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, text.replace("clients = 25", "clients = 1")).unwrap();
    let output = fedstake(&["sim", "run", bad.to_str().unwrap()]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("bad.toml") && err.contains("clients"), "{err}");
}

#[test]
fn coordinator_certificate_is_made_once_and_client_run_needs_a_coordinator() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("coordinator");
    let state = state.to_str().unwrap();
    let first = fedstake(&["coordinator", "certificate", "--state", state]);
    assert!(first.status.success(), "{}", stderr(&first));
    let fingerprint = stdout(&first).trim().to_string();
    assert_eq!(fingerprint.len(), 64, "{fingerprint}");
    assert!(fingerprint.chars().all(|c| c.is_ascii_hexdigit()));
    let again = fedstake(&["coordinator", "certificate", "--state", state]);
    assert_eq!(stdout(&again).trim(), fingerprint);

    // The demo task names no coordinator: client run needs the flags.
    let output = fedstake(&[
        "client",
        "run",
        "--task",
        example("task-demo.toml").to_str().unwrap(),
        "--task-id",
        "1",
        "--data",
        "synthetic:50",
        "--key",
        dir.path().join("missing.json").to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("no --coordinator"),
        "{}",
        stderr(&output)
    );
}
