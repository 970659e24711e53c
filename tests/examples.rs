//! Every example task spec that `fedstake task validate` accepts starts a
//! coordinator: validation is the round engine's plan, the very checks the
//! coordinator makes, so nothing can be escrowed for a task it would refuse.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../coordinator/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use fedstake_coordinator::{Coordinator, CoordinatorConfig};
use fedstake_protocol::spec::TaskSpec;

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("task-") && n.ends_with(".toml"))
        })
        .collect();
    files.sort();
    files
}

fn validate(path: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fedstake"))
        .args(["task", "validate", path.to_str().unwrap()])
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_task_validate_accepts_starts_a_coordinator() {
    let files = examples();
    assert!(files.len() >= 4, "{files:?}");
    for path in files {
        let output = validate(&path);
        assert!(
            output.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let mut spec = TaskSpec::load(&path).unwrap();
        // The example pins a certificate nobody here holds; the coordinator
        // would refuse it for that alone.
        spec.coordinator = None;
        let net = common::setup(spec, 1).await;
        let config = CoordinatorConfig {
            // The sponsor's clean data, for specs that need a root update.
            root: Some(net.validation.clone()),
            ..net.config(false, 10)
        };
        let started = Coordinator::start(config, std::sync::Arc::clone(&net.ledger)).await;
        assert!(started.is_ok(), "{}: {:?}", path.display(), started.err());
    }
}

/// `examples/task-demo.toml` with its `[aggregation]` table replaced.
fn demo_with_aggregation(dir: &Path, name: &str, aggregation: &str) -> PathBuf {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/task-demo.toml"),
    )
    .unwrap();
    let (head, tail) = text.split_once("[aggregation]").unwrap();
    let (_, rest) = tail.split_once("\n[").unwrap();
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("{head}[aggregation]\n{aggregation}\n\n[{rest}"),
    )
    .unwrap();
    path
}

#[test]
fn task_validate_refuses_what_the_aggregator_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    // Below 0.5 as the spec writes it (f64), 0.5 once the rule has it (f32).
    let bad = demo_with_aggregation(
        dir.path(),
        "trim.toml",
        "rule = \"trimmed-mean\"\ntrim_fraction = 0.49999999999",
    );
    let output = validate(&bad);
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("trim.toml cannot be served") && error.contains("trim"),
        "{error}"
    );
}

#[test]
fn task_validate_refuses_a_geometric_median_without_smoothing() {
    let dir = tempfile::tempdir().unwrap();
    let bad = demo_with_aggregation(
        dir.path(),
        "geometric.toml",
        "rule = \"geometric-median\"\nsmoothing = 0.0",
    );
    let output = validate(&bad);
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("geometric.toml") && error.contains("aggregation.smoothing"),
        "{error}"
    );
}
