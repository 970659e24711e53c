//! One SecAgg+ round with 100 clients and a model of about 10^6 parameters
//! over loopback QUIC, in one process: prints the time of each phase and
//! the bytes per client.
//!
//! `cargo bench -p fedstake-coordinator --bench round` (`-- --clients N`
//! for another cohort). The clients are tasks of this process sharing its
//! two cores with the coordinator, so every client's masking and the
//! coordinator's unmasking compete for the same CPU; training is on 60
//! examples and is reported separately.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use fedstake_client::run_client;
use fedstake_protocol::spec::TaskSpec;
use fedstake_training::local_update;
use fedstake_training::trainer::{BackendOptions, build_trainer};

fn spec(clients: u32) -> TaskSpec {
    // 1000 features -> 1000 hidden -> 10 classes: 1,011,010 parameters.
    TaskSpec::from_toml_str(&format!(
        r#"
name = "round benchmark"
rounds = 1

[model]
kind = "mlp"
hidden = [1000]

[data]
features = 1000
classes = 10

[cohort]
size = {clients}
min = {clients}

[deadlines]
join = 60
train = 300
advertise_keys = 120
share_keys = 120
masked_input = 120
consistency = 120
unmasking = 120

[training]
epochs = 1
batch_size = 60
learning_rate = 0.01
max_examples = 60

[training.optimizer]
kind = "sgd"

[update]
clip_norm = 1.0
fractional_bits = 16

[privacy]
mode = "secagg"
group_size = 10
threshold = 6

[aggregation]
rule = "fedavg"

[rewards]
pool = "1_000_000_000_000_000_000_000"
round_budget = "10_000_000_000_000_000_000"
min_stake = "1_000_000_000_000_000_000"
"#
    ))
    .unwrap()
}

/// `name{name="label"} value` lines of the metrics text.
fn sample(text: &str, metric: &str, label: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(metric) && l.contains(&format!("name=\"{label}\"")))
        .and_then(|l| l.split_whitespace().last())
        .map_or(f64::NAN, |v| v.parse().unwrap())
}

/// The summed duration of a phase.
fn sample_total(text: &str, phase: &str) -> f64 {
    sample(text, "fedstake_phase_seconds_sum", phase)
}

fn total(text: &str, metric: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(metric))
        .and_then(|l| l.split_whitespace().last())
        .map_or(f64::NAN, |v| v.parse().unwrap())
}

fn main() {
    let clients: usize = std::env::args()
        .skip_while(|a| a != "--clients")
        .nth(1)
        .map_or(100, |n| n.parse().unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let net = common::setup(spec(clients as u32), clients).await;

        // Training alone, for one client, to tell it apart from the protocol.
        let mut trainer = build_trainer(&net.spec, std::path::Path::new("."), &BackendOptions::default(), 0).unwrap();
        let global = trainer.parameters();
        let started = Instant::now();
        let local = local_update(trainer.as_mut(), &net.data[0], &global, &net.spec, (0, 1), |_| {}).unwrap();
        let train_one = started.elapsed().as_secs_f64();
        println!(
            "{clients} clients, {} parameters, groups of 10; one client's training {:.3} s ({} examples)",
            local.update.len(),
            train_one,
            net.data[0].len()
        );

        let coordinator = net.coordinator(false, 1000).await;
        let (address, fingerprint) = (coordinator.local_addr().unwrap(), coordinator.fingerprint());
        let metrics = coordinator.metrics();
        let started = Instant::now();
        let serving = tokio::spawn(coordinator.run());
        let running: Vec<_> = (0..clients)
            .map(|index| tokio::spawn(run_client(net.client(index, address, fingerprint, None))))
            .collect();
        let settled = serving.await.unwrap().unwrap();
        let round_seconds = started.elapsed().as_secs_f64();
        for client in running {
            client.await.unwrap().unwrap();
        }
        let text = metrics.encode();
        let groups = settled[0].settled.groups.len() as f64;
        println!("task done in {round_seconds:.2} s (100 joins included), {groups} groups");
        println!("phase            mean per group (s)   (phases of all groups overlap)");
        for phase in ["advertise_keys", "share_keys", "masked_input", "consistency", "unmasking"] {
            let sum = sample(&text, "fedstake_phase_seconds_sum", phase);
            let count = sample(&text, "fedstake_phase_seconds_count", phase);
            println!("{phase:<16} {:>8.3}", sum / count);
        }
        for phase in ["collect", "settle"] {
            println!("{phase:<16} {:>8.3}   (whole round)", sample_total(&text, phase));
        }
        // What the coordinator received from a client is what the client sent.
        let uploaded = total(&text, "fedstake_received_bytes_total") / clients as f64;
        let downloaded = total(&text, "fedstake_sent_bytes_total") / clients as f64;
        let vector = 4.0 * (local.update.len() + 1) as f64;
        println!(
            "bytes per client: uploaded {uploaded:.0} ({:.4}x the 4-byte vector), downloaded {downloaded:.0} ({:.4}x, the model included)",
            uploaded / vector,
            downloaded / vector
        );
        // From the announcement to the settled round; training runs on the
        // same two cores, its share about clients x one client's training / 2.
        let round = sample_total(&text, "collect") + sample_total(&text, "settle");
        let training_share = clients as f64 * train_one / 2.0;
        println!(
            "announcement to settlement {round:.2} s; protocol without training about {:.2} s (training share {training_share:.2} s)",
            round - training_share
        );
    });
}
