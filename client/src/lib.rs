//! The organization's side of fedstake: [`run_client`] joins a task over
//! QUIC (pinning the coordinator's certificate, proving its staked address),
//! trains on the organization's private data with a `fedstake_training`
//! trainer, and takes part in every round it is drawn for — a signed plain
//! update, or a SecAgg+ client session whose protocol logic is the
//! secure-agg crate's. [`History`] keeps on disk every attempt entered, so a
//! restarted client never enters one twice (and so never reuses masks).

mod history;
mod session;

pub use history::{History, HistoryError, RecordedResult};
pub use session::{
    Behaviour, ClientOptions, ClientReport, ClientRunError, CrashPoint, Reconnect, TrainerFactory,
    run_client,
};
