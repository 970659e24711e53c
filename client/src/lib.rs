//! The training client of fedstake.
//!
//! It owns everything that runs on an organization's machine before an update
//! leaves it: reading the organization's private data ([`data`]) and training
//! the task's model on it ([`trainer`]). Parameters go in and out as the flat
//! vectors of `fedstake_aggregation::model`, so the coordinator and the
//! aggregators never care which backend trained them. [`net`] is the client's
//! QUIC session with the coordinator (`fedstake client run`).

pub mod data;
pub mod net;
pub mod trainer;
