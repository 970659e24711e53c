//! `fedstake coordinator serve` killed with SIGKILL in the middle of a round
//! and restarted: the task completes, no round is paid twice, no attempt
//! (and so no mask) is used twice, and every balance reconciles.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[path = "../coordinator/tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;

use alloy::primitives::U256;
use alloy::signers::local::PrivateKeySigner;
use fedstake_client::History;
use fedstake_client::{Behaviour, ClientOptions, Reconnect, run_client};
use fedstake_coordinator::Store;
use fedstake_coordinator::store::AttemptOutcome;
use fedstake_protocol::spec::{DEFAULT_CHAIN_ID, TaskSpec};
use fedstake_training::data::{SyntheticSpec, synthetic};
use fedstake_training::trainer::{BackendOptions, build_trainer};

use fedstake_ledger::chain::{Chain, EmbeddedChain};
use fedstake_ledger::embedded_defaults;

const PASSWORD: &str = "restart test";
const CLIENTS: usize = 10;
const ROUNDS: u64 = 4;

const TASK: &str = r#"
name = "restart test"
rounds = 4

[model]
kind = "mlp"
hidden = [16]

[data]
features = 10
classes = 3

[cohort]
size = 10
min = 10

[deadlines]
join = 10
train = 30
advertise_keys = 10
share_keys = 10
masked_input = 10
consistency = 10
unmasking = 10

[training]
epochs = 3
batch_size = 8
learning_rate = 0.05
max_examples = 1000

[training.optimizer]
kind = "sgd"

[update]
clip_norm = 2.0
fractional_bits = 16

[privacy]
mode = "secagg"
group_size = 5
threshold = 3

[aggregation]
rule = "fedavg"

[rewards]
pool = "1_000_000_000_000_000_000_000"
round_budget = "10_000_000_000_000_000_000"
min_stake = "1_000_000_000_000_000_000"
challenge_window = 60
"#;

/// Starts the coordinator process; returns it and a channel of its JSON
/// log lines (stderr) and its stdout lines.
fn serve(dir: &Path, port: u16) -> (Child, mpsc::Receiver<String>, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fedstake"))
        .args([
            "--log-format",
            "json",
            "coordinator",
            "serve",
            "--task",
            dir.join("task.toml").to_str().unwrap(),
            "--task-id",
            "1",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--state",
            dir.join("coordinator").to_str().unwrap(),
            "--validation",
            "synthetic:300,5",
            "--key",
            dir.join("coordinator.json").to_str().unwrap(),
            "--chain",
            &format!("embedded:{}", dir.join("chain.sqlite").display()),
        ])
        .env("FEDSTAKE_PASSWORD", PASSWORD)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = |stream: Box<dyn std::io::Read + Send>| {
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        receiver
    };
    let stdout = lines(Box::new(child.stdout.take().unwrap()));
    let stderr = lines(Box::new(child.stderr.take().unwrap()));
    (child, stdout, stderr)
}

fn fingerprint(stdout: &mpsc::Receiver<String>) -> [u8; 32] {
    loop {
        let line = stdout.recv().unwrap();
        if let Some(hex_text) = line.strip_prefix("certificate sha256 ") {
            return hex::decode(hex_text).unwrap().try_into().unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_killed_mid_round_resumes_without_paying_twice_or_reusing_an_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let spec = TaskSpec::from_toml_str(TASK).unwrap();
    std::fs::write(dir.path().join("task.toml"), TASK).unwrap();
    let (coordinator_key, _) = PrivateKeySigner::new_keystore(
        dir.path(),
        &mut rand08::thread_rng(),
        PASSWORD,
        Some("coordinator.json"),
    )
    .unwrap();

    // The sponsor escrows, ten clients stake; then the chain file is closed
    // and the coordinator process owns it.
    let rewards = spec.rewards.clone().unwrap();
    let clients: Vec<PrivateKeySigner> = (0..CLIENTS).map(|_| PrivateKeySigner::random()).collect();
    let stake = U256::from(rewards.min_stake);
    {
        let chain =
            EmbeddedChain::open(&dir.path().join("chain.sqlite"), DEFAULT_CHAIN_ID).unwrap();
        let (ledger, token) = embedded_defaults(chain).await.unwrap();
        let address = coordinator_key.address();
        let task_id =
            common::escrow_and_stake(&ledger, token, &spec, address, &clients, stake).await;
        assert_eq!(task_id, U256::from(1));
    }

    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (mut first, stdout, logs) = serve(dir.path(), port);
    let pinned = fingerprint(&stdout);
    let data = synthetic(&SyntheticSpec {
        classes: 3,
        dim: 10,
        examples: CLIENTS * 400,
        separation: 3.0,
        noise: 1.0,
        seed: 5,
    })
    .unwrap();
    let mut running = Vec::new();
    for (index, signer) in clients.iter().enumerate() {
        let seed = index as u64;
        let options = ClientOptions {
            coordinator: format!("127.0.0.1:{port}").parse().unwrap(),
            server_name: "localhost".into(),
            certificate_sha256: pinned,
            task_id: U256::from(1),
            spec_hash: spec.spec_hash(),
            signer: signer.clone(),
            data: Arc::new(data.select(&(index * 400..(index + 1) * 400).collect::<Vec<_>>())),
            trainer: Arc::new(move |spec: &TaskSpec| {
                build_trainer(spec, Path::new("."), &BackendOptions::default(), seed)
            }),
            state_dir: dir.path().join(format!("client-{index}")),
            reconnect: Reconnect {
                initial: std::time::Duration::from_millis(100),
                max: std::time::Duration::from_millis(500),
                attempts: 200,
            },
            behaviour: Behaviour::Honest,
            crash: None,
            seed,
        };
        running.push(tokio::spawn(run_client(options)));
    }

    // SIGKILL as soon as round 3 is announced, before it can settle.
    let announced = |line: &str| line.contains("attempt announced") && line.contains("\"round\":3");
    let logs = tokio::task::spawn_blocking(move || {
        while let Ok(line) = logs.recv() {
            if announced(&line) {
                first.kill().unwrap();
                first.wait().unwrap();
                return;
            }
        }
        panic!("the coordinator never announced round 3");
    });
    logs.await.unwrap();

    let (mut second, _stdout, _logs) = serve(dir.path(), port);
    for client in running {
        let report = client.await.unwrap().unwrap();
        assert_eq!(report.task_rounds, ROUNDS);
        assert!(report.connections >= 2, "{report:?}");
    }
    assert!(second.wait().unwrap().success());

    // The store: round 3's first attempt was abandoned, not resumed; the
    // round ran again under a new attempt number; every round settled once.
    let (store, _, _) = Store::inspect(&dir.path().join("coordinator/coordinator.sqlite")).unwrap();
    let settled = store.settled_rounds().unwrap();
    assert_eq!(
        settled.iter().map(|r| r.settled.round).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    let attempts = store.attempts().unwrap();
    let third: Vec<_> = attempts.iter().filter(|a| a.round == 3).collect();
    assert_eq!(third[0].attempt, 0);
    assert_ne!(
        third[0].outcome,
        Some(AttemptOutcome::Completed),
        "the kill came after round 3 settled: {attempts:?}"
    );
    assert_eq!(settled[2].settled.attempt, third.last().unwrap().attempt);
    assert!(settled[2].settled.attempt >= 1);
    // Clients entered each (round, attempt) at most once, so each SecAgg+
    // context had fresh keys and masks; round 3 was entered under its old
    // and its new attempt number.
    for index in 0..CLIENTS {
        let history = History::open(&dir.path().join(format!("client-{index}"))).unwrap();
        let entered = history.attempts("1").unwrap();
        let mut unique = entered.clone();
        unique.dedup();
        assert_eq!(unique, entered);
        assert!(
            entered.contains(&(3, settled[2].settled.attempt)),
            "client {index}: {entered:?}"
        );
    }

    // The chain: four rounds posted once, their totals reserved; after the
    // challenge window everyone claims exactly what the last tree says.
    let chain = EmbeddedChain::open(&dir.path().join("chain.sqlite"), DEFAULT_CHAIN_ID).unwrap();
    let (ledger, token) = embedded_defaults(chain).await.unwrap();
    let task = ledger.task(U256::from(1)).await.unwrap();
    let posted: u128 = settled.iter().map(|r| r.settled.total()).sum();
    assert_eq!(task.postedTotal, U256::from(posted));
    assert_eq!(task.lastPostedRound, ROUNDS);
    assert_eq!(task.poolRemaining, task.initialPool - task.postedTotal);
    ledger
        .chain()
        .advance_time(rewards.challenge_window + 1)
        .await
        .unwrap();
    let tree = settled[3].payout_tree.as_ref().unwrap();
    let mut claimed = U256::ZERO;
    for client in &clients {
        let amount = tree.amount(client.address()).unwrap_or_default();
        if amount > U256::ZERO {
            let proof = tree.proof(client.address()).unwrap();
            ledger
                .claim(client, U256::from(1), client.address(), amount, proof)
                .await
                .unwrap();
        }
        assert_eq!(
            ledger.balance_of(token, client.address()).await.unwrap(),
            amount
        );
        claimed += amount;
    }
    assert_eq!(claimed, U256::from(posted));
    assert_eq!(
        ledger.task(U256::from(1)).await.unwrap().claimedTotal,
        U256::from(posted)
    );

    // `task status` reads the same store.
    let status = Command::new(env!("CARGO_BIN_EXE_fedstake"))
        .args([
            "task",
            "status",
            "--state",
            dir.path().join("coordinator").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(status.status.success());
    let text = String::from_utf8(status.stdout).unwrap();
    assert!(text.contains("4 rounds settled"), "{text}");
    let rows: Vec<&str> = text.lines().filter(|l| l.ends_with(" done")).collect();
    assert_eq!(rows.len(), 4, "{text}");
    let attempt = settled[2].settled.attempt.to_string();
    assert_eq!(
        rows[2].split_whitespace().nth(1),
        Some(attempt.as_str()),
        "{text}"
    );
}
