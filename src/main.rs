//! The `fedstake` command: parses the command line and hands each subcommand
//! to its implementation in [`commands`].

mod commands;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// fedstake: federated learning with secure aggregation and on-chain rewards.
#[derive(Debug, Parser)]
#[command(name = "fedstake", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a federated training task end to end in this process and print a
    /// per-round table (today: synthetic non-IID clients, FedAvg, no network
    /// or chain yet; see the README).
    Demo(commands::demo::DemoArgs),
    /// Work with task specs (the sponsor's task.toml).
    #[command(subcommand)]
    Task(TaskCommand),
    /// What an organization runs on its own machine: local training on its
    /// private data.
    #[command(subcommand)]
    Client(ClientCommand),
    /// The simulation lab: experiment grids of aggregators x attacks x data
    /// partitions x seeds, run in process with the production code.
    #[command(subcommand)]
    Sim(SimCommand),
}

#[derive(Debug, Subcommand)]
enum SimCommand {
    /// Run an experiment grid; write rounds.csv, summary.json, report.md and
    /// plots to a run folder.
    Run(commands::sim::RunArgs),
}

#[derive(Debug, Subcommand)]
enum TaskCommand {
    /// Parse and validate a task spec; print its summary and spec hash.
    Validate {
        /// The task spec (TOML).
        spec: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Train the task's model on local data and write it as safetensors.
    Train(commands::client::TrainArgs),
    /// Evaluate a model (safetensors) on local data.
    Evaluate(commands::client::EvaluateArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Demo(args) => commands::demo::run(&args),
        Command::Task(TaskCommand::Validate { spec }) => commands::task::validate(&spec),
        Command::Client(ClientCommand::Train(args)) => commands::client::train(&args),
        Command::Sim(SimCommand::Run(args)) => commands::sim::run(&args),
        Command::Client(ClientCommand::Evaluate(args)) => commands::client::evaluate(&args),
    }
}
