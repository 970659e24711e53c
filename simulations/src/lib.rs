//! The in-process lab of fedstake.
//!
//! Simulations run the production code — the client's trainers, the
//! aggregation crate, later the secure-aggregation state machines and the
//! reward policy — with every participant in one process and messages moved
//! through memory, so what is measured here is what runs for real. Today it
//! holds client data [`partition`]s, a federated [`federated::Population`]
//! advanced round by round, and the [`demo`].

pub mod demo;
pub mod federated;
pub mod partition;

use fedstake_aggregation::AggregationError;
use fedstake_client::data::DataError;
use fedstake_client::trainer::TrainError;
use fedstake_protocol::spec::SpecError;

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Settings that cannot be simulated.
    #[error("invalid simulation settings: {0}")]
    Config(String),
    /// The task spec is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// Data could not be generated or loaded.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Local training failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// Aggregation failed.
    #[error(transparent)]
    Aggregation(#[from] AggregationError),
}
