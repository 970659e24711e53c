//! The in-process lab of fedstake.
//!
//! Simulations drive the round engine the coordinator runs
//! (`fedstake_round`: plan, cohort draw, grouping, settlement, carried state)
//! in memory, with the production trainers and the secure-aggregation state
//! machines, so what is measured here is what a coordinator does. It holds
//! client data [`partition`]s, [`attack`]s, the clients' local training
//! ([`federated`]), the engine's in-memory driver ([`driver`]) and
//! experiment grids ([`experiment`], [`runner`], [`report`]).

pub mod attack;
pub mod driver;
pub mod experiment;
pub mod federated;
pub mod partition;
pub mod report;
pub mod runner;

use fedstake_aggregation::AggregationError;
use fedstake_aggregation::quality::QualityError;
use fedstake_protocol::spec::SpecError;
use fedstake_rewards::PolicyError;
use fedstake_training::data::DataError;
use fedstake_training::trainer::TrainError;

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Settings that cannot be simulated.
    #[error("{0}")]
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
    /// Contribution scoring failed.
    #[error(transparent)]
    Quality(#[from] QualityError),
    /// The payout or slashing policy refused its inputs.
    #[error(transparent)]
    Policy(#[from] PolicyError),
}
