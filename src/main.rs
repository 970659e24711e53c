//! The `fedstake` command: parses the command line and hands each subcommand
//! to its implementation in [`commands`].

mod commands;

use std::path::PathBuf;

use alloy::primitives::{Address, U256};
use clap::{Parser, Subcommand};
use commands::chain::{ChainArgs, KeyArgs, block_on, parse_amount};
use commands::rewards::StakeAction;

/// fedstake: federated learning with secure aggregation and on-chain rewards.
#[derive(Debug, Parser)]
#[command(name = "fedstake", version, about, long_about = None)]
struct Cli {
    /// Log format on stderr: text or json (one JSON object per line).
    /// Verbosity follows $RUST_LOG (default: info; warn for the demo).
    #[arg(long, global = true, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn init_logging(format: LogFormat, default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a federated training task end to end in this process: an
    /// embedded chain, a sponsor, a coordinator and 8 clients over loopback
    /// QUIC with secure aggregation; print a per-round table and balances.
    Demo(commands::demo::DemoArgs),
    /// What the sponsor's operator runs: the coordinator of a task.
    #[command(subcommand)]
    Coordinator(CoordinatorCommand),
    /// Work with task specs (the sponsor's task.toml).
    #[command(subcommand)]
    Task(TaskCommand),
    /// What an organization runs on its own machine: local training on its
    /// private data, and its stake in a task.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Ethereum keys in encrypted JSON keystores.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// What a token holder checks and claims.
    #[command(subcommand)]
    Rewards(RewardsCommand),
    /// Local-chain helpers: mint the test token, move the block clock.
    #[command(subcommand)]
    Chain(ChainCommand),
    /// The simulation lab: experiment grids of aggregators x attacks x data
    /// partitions x seeds, run in process with the production code.
    #[command(subcommand)]
    Sim(SimCommand),
}

#[derive(Debug, Subcommand)]
enum CoordinatorCommand {
    /// Serve a task: admit staked clients over QUIC, run its rounds with
    /// secure aggregation, post rewards and slashes on chain.
    Serve(Box<commands::coordinator::ServeArgs>),
    /// Create the coordinator's TLS certificate (kept in --state) before the
    /// task exists, and print its SHA-256 for the task's
    /// `[coordinator] tls_fingerprint`.
    Certificate {
        /// The coordinator's state directory (the one `serve --state` uses).
        #[arg(long, default_value = "coordinator-state")]
        state: PathBuf,
        /// DNS names for the certificate besides localhost.
        #[arg(long)]
        name: Vec<String>,
    },
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
    /// Rounds, accuracy, participants, payouts and slashes, from a
    /// coordinator's state directory.
    Status {
        /// The coordinator's state directory (`coordinator serve --state`).
        #[arg(long, default_value = "coordinator-state")]
        state: PathBuf,
    },
    /// Escrow the spec's reward pool in the reward contract and register the
    /// task (spec hash, coordinator, arbiter, windows) on chain.
    Create {
        /// The task spec (TOML) with a [rewards] section.
        spec: PathBuf,
        /// The coordinator's address (default: the sponsor's own).
        #[arg(long)]
        coordinator: Option<Address>,
        /// Do not approve the pool to the contract first (fail if the
        /// allowance is missing).
        #[arg(long)]
        no_approve: bool,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        chain: ChainArgs,
    },
}

/// A task id and an amount of tokens, for stake changes.
#[derive(Debug, clap::Args)]
struct StakeArgs {
    /// The task id (from `task create`).
    #[arg(long)]
    task: U256,
    /// Amount in token base units.
    #[arg(long, value_parser = parse_amount)]
    amount: U256,
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    chain: ChainArgs,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a new random key in an encrypted keystore; print its address.
    New {
        /// Directory of keystores.
        #[arg(long, default_value = "keys")]
        dir: PathBuf,
        /// File name of the keystore (default: a UUID).
        #[arg(long)]
        name: Option<String>,
        /// A file whose first line is the password (else $FEDSTAKE_PASSWORD,
        /// else asked twice on the terminal).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Print the address of a keystore.
    Show {
        #[command(flatten)]
        key: KeyArgs,
    },
}

#[derive(Debug, Subcommand)]
enum RewardsCommand {
    /// A task's pool, rounds and claims, and an account's stake and balance.
    Status {
        /// The task id.
        #[arg(long)]
        task: U256,
        /// The account (default: the --key's address).
        #[arg(long)]
        account: Option<Address>,
        /// A keystore whose address to report on.
        #[arg(long, env = "FEDSTAKE_KEY")]
        key: Option<PathBuf>,
        /// The payout tree the coordinator published (OpenZeppelin
        /// StandardMerkleTree JSON), to show what is claimable.
        #[arg(long)]
        payouts: Option<PathBuf>,
        #[command(flatten)]
        chain: ChainArgs,
    },
    /// Claim everything an account earned, with a proof from the published
    /// payout tree.
    Claim {
        /// The task id.
        #[arg(long)]
        task: U256,
        /// The payout tree of the latest final round (JSON).
        #[arg(long)]
        payouts: PathBuf,
        /// Claim for this account (default: the key's own); tokens always
        /// go to the account.
        #[arg(long)]
        account: Option<Address>,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        chain: ChainArgs,
    },
}

#[derive(Debug, Subcommand)]
enum ChainCommand {
    /// Mint the test token (the embedded chain's own, or --token on anvil).
    Mint {
        /// Who receives the tokens.
        #[arg(long)]
        to: Address,
        /// Amount in base units.
        #[arg(long, value_parser = parse_amount)]
        amount: U256,
        /// A TestToken address (default: the embedded chain's).
        #[arg(long)]
        token: Option<Address>,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        chain: ChainArgs,
    },
    /// Move the block clock forward (the embedded chain and dev nodes only).
    Advance {
        /// Seconds to add.
        #[arg(long)]
        seconds: u64,
        #[command(flatten)]
        chain: ChainArgs,
    },
}

#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Join a coordinator and take part in a task's rounds until it ends.
    Run(commands::client::RunArgs),
    /// Train the task's model on local data and write it as safetensors.
    Train(commands::client::TrainArgs),
    /// Evaluate a model (safetensors) on local data.
    Evaluate(commands::client::EvaluateArgs),
    /// Stake tokens in a task (approving the contract first).
    Stake {
        #[command(flatten)]
        stake: StakeArgs,
        /// Do not approve first (fail if the allowance is missing).
        #[arg(long)]
        no_approve: bool,
    },
    /// Start unbonding stake (it stays slashable until withdrawn).
    Unstake(StakeArgs),
    /// Withdraw stake whose unbonding period is over.
    Withdraw {
        /// The task id.
        #[arg(long)]
        task: U256,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        chain: ChainArgs,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The demo prints its own tables; its processes' logs are for debugging.
    let default_level = match cli.command {
        Command::Demo(_) => "warn",
        _ => "info",
    };
    init_logging(cli.log_format, default_level);
    match cli.command {
        Command::Coordinator(CoordinatorCommand::Serve(args)) => {
            block_on(commands::coordinator::serve(&args))
        }
        Command::Coordinator(CoordinatorCommand::Certificate { state, name }) => {
            commands::coordinator::certificate(&state, &name)
        }
        Command::Client(ClientCommand::Run(args)) => block_on(commands::client::run(&args)),
        Command::Task(TaskCommand::Status { state }) => commands::task::status(&state),
        Command::Demo(args) => commands::demo::run(&args),
        Command::Task(TaskCommand::Validate { spec }) => commands::task::validate(&spec),
        Command::Client(ClientCommand::Train(args)) => commands::client::train(&args),
        Command::Sim(SimCommand::Run(args)) => commands::sim::run(&args),
        Command::Client(ClientCommand::Evaluate(args)) => commands::client::evaluate(&args),
        Command::Task(TaskCommand::Create {
            spec,
            coordinator,
            no_approve,
            key,
            chain,
        }) => block_on(commands::task::create(
            &spec,
            &chain,
            &key,
            coordinator,
            no_approve,
        )),
        Command::Client(ClientCommand::Stake { stake, no_approve }) => {
            let action = StakeAction::Stake { no_approve };
            let StakeArgs {
                task,
                amount,
                key,
                chain,
            } = stake;
            block_on(commands::rewards::change_stake(
                &chain, &key, task, amount, action,
            ))
        }
        Command::Client(ClientCommand::Unstake(StakeArgs {
            task,
            amount,
            key,
            chain,
        })) => {
            let action = StakeAction::Unstake;
            block_on(commands::rewards::change_stake(
                &chain, &key, task, amount, action,
            ))
        }
        Command::Client(ClientCommand::Withdraw { task, key, chain }) => {
            block_on(commands::rewards::withdraw(&chain, &key, task))
        }
        Command::Keys(KeysCommand::New {
            dir,
            name,
            password_file,
        }) => commands::keys::new(&dir, name.as_deref(), password_file.as_deref()),
        Command::Keys(KeysCommand::Show { key }) => commands::keys::show(&key),
        Command::Rewards(RewardsCommand::Status {
            task,
            account,
            key,
            payouts,
            chain,
        }) => {
            let key = key.map(|key| KeyArgs {
                key,
                password_file: None,
            });
            let account = commands::rewards::account_of(account, key.as_ref())?;
            block_on(commands::rewards::status(
                &chain,
                task,
                account,
                payouts.as_deref(),
            ))
        }
        Command::Rewards(RewardsCommand::Claim {
            task,
            payouts,
            account,
            key,
            chain,
        }) => block_on(commands::rewards::claim(
            &chain, &key, task, account, &payouts,
        )),
        Command::Chain(ChainCommand::Mint {
            to,
            amount,
            token,
            key,
            chain,
        }) => block_on(commands::chain::mint(&chain, &key, to, amount, token)),
        Command::Chain(ChainCommand::Advance { seconds, chain }) => {
            block_on(commands::chain::advance(&chain, seconds))
        }
    }
}
