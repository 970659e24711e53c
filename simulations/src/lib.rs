//! The in-process lab of fedstake.
//!
//! Simulations run the production code — the client's trainers, the
//! aggregation crate, the secure-aggregation state machines and the reward
//! policy — with every participant in one process and messages moved through
//! memory, so what is measured here is what runs for real. It holds client
//! data [`partition`]s, [`attack`]s, a federated [`federated::Population`]
//! advanced round by round, experiment grids ([`experiment`], [`runner`],
//! [`secure`], [`report`]). Rounds are settled (scores, payouts, slashing
//! evidence) by the coordinator's own [`fedstake_rewards::settle`].

pub mod attack;
pub mod experiment;
pub mod federated;
pub mod partition;
pub mod report;
pub mod runner;
pub mod secure;

use fedstake_aggregation::AggregationError;
use fedstake_aggregation::quality::QualityError;
use fedstake_client::data::DataError;
use fedstake_client::trainer::TrainError;
use fedstake_protocol::spec::SpecError;
use fedstake_rewards::PolicyError;
use fedstake_rewards::settle::SettleError;

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

/// Settlement errors keep the lab's variants, so a failure reads the same
/// whether it came from settling or from the lab itself.
impl From<SettleError> for SimError {
    fn from(error: SettleError) -> Self {
        match error {
            SettleError::Quality(e) => Self::Quality(e),
            SettleError::Policy(e) => Self::Policy(e),
            // The lab's validation loss fails with a `SimError`: hand it back.
            SettleError::ValidationLoss(e) => match e.downcast::<SimError>() {
                Ok(e) => *e,
                Err(e) => Self::Config(e.to_string()),
            },
            e @ (SettleError::Attribution(_) | SettleError::NotAttributed(_)) => {
                Self::Config(e.to_string())
            }
        }
    }
}
