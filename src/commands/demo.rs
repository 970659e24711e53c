//! `fedstake demo`.

use std::path::PathBuf;

use anyhow::Context;
use fedstake_protocol::spec::TaskSpec;
use fedstake_simulations::demo::{DEMO_TASK, DemoOptions, DemoReport, run_demo};

/// Options of `fedstake demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Task spec to run instead of the embedded demo task.
    #[arg(long)]
    task: Option<PathBuf>,
    /// Rounds to run (default: the task's `rounds`).
    #[arg(long)]
    rounds: Option<u32>,
    /// Seed of data, partition, initialization and shuffling.
    #[arg(long, default_value_t = DemoOptions::default().seed)]
    seed: u64,
    /// Dirichlet concentration of the clients' label skew (smaller = more non-IID).
    #[arg(long, default_value_t = DemoOptions::default().alpha)]
    alpha: f64,
}

/// Runs the demo and prints its tables.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let spec = match &args.task {
        Some(path) => TaskSpec::load(path)?,
        None => TaskSpec::from_toml_str(DEMO_TASK).context("the embedded demo task")?,
    };
    let options = DemoOptions {
        rounds: args.rounds,
        seed: args.seed,
        alpha: args.alpha,
        ..DemoOptions::default()
    };
    let report = run_demo(&spec, &options)?;
    print_report(&report, &options);
    Ok(())
}

fn print_report(report: &DemoReport, options: &DemoOptions) {
    println!(
        "task {} (spec {}), {} parameters",
        report.task,
        &report.spec_hash[..16],
        report.parameters
    );
    println!(
        "{} clients, label skew Dirichlet({}), examples per class:",
        report.clients.len(),
        options.alpha
    );
    for (i, client) in report.clients.iter().enumerate() {
        println!(
            "  client {i:>2}: {:>4} examples  {:?}",
            client.examples, client.class_counts
        );
    }
    println!();
    println!("round  clients  train loss  update norm  clipped  val loss  val accuracy");
    println!(
        "{:>5}  {:>7}  {:>10}  {:>11}  {:>7}  {:>8.4}  {:>11.1}%",
        0,
        "-",
        "-",
        "-",
        "-",
        report.initial.loss,
        report.initial.accuracy * 100.0
    );
    for r in &report.rounds {
        println!(
            "{:>5}  {:>7}  {:>10.4}  {:>11.3}  {:>7}  {:>8.4}  {:>11.1}%",
            r.round,
            r.participants,
            r.train_loss,
            r.mean_update_norm,
            r.clipped,
            r.validation.loss,
            r.validation.accuracy * 100.0
        );
    }
    println!();
    println!("final model {}", report.final_model_hash);
}
