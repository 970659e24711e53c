//! The in-process lab of fedstake.
//!
//! Simulations run the production code — the client's trainers, the
//! aggregation crate, the secure-aggregation state machines and the reward
//! policy — with every participant in one process and messages moved through
//! memory, so what is measured here is what runs for real. It holds client
//! data [`partition`]s, [`attack`]s, a federated [`federated::Population`]
//! advanced round by round, experiment grids ([`experiment`], [`runner`],
//! [`scoring`], [`secure`], [`report`]).

pub mod attack;
pub mod experiment;
pub mod federated;
pub mod partition;
pub mod report;
pub mod runner;
pub mod scoring;
pub mod secure;

use fedstake_aggregation::AggregationError;
use fedstake_aggregation::quality::QualityError;
use fedstake_client::data::DataError;
use fedstake_client::trainer::TrainError;
use fedstake_protocol::spec::SpecError;
use fedstake_rewards::PolicyError;

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
