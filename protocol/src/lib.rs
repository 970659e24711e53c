//! Shared language of fedstake: everything that the coordinator, the clients, the simulator and
//! the reward contract must agree on byte for byte.
//!
//! This crate owns the wire messages, their framing, the task spec, participant identities and
//! signatures. Today it holds the **task spec** ([`spec`]): the sponsor's `task.toml`, parsed
//! with typos rejected, validated so that no setting can silently break a round (for example a
//! fixed-point encoding whose secure sum could overflow), and hashed canonically so that the hash
//! recorded on chain identifies the task whatever the file's layout. Wire messages, framing and
//! identities arrive with later issues.
//!
//! The crate is sans-IO apart from [`TaskSpec::load`], a convenience that reads one file.

pub mod spec;

pub use spec::{SpecError, TaskSpec};
