//! Shared language of fedstake: everything that the coordinator, the clients, the simulator and
//! the reward contract must agree on byte for byte.
//!
//! This crate owns the wire messages, their framing, the task spec, participant identities and
//! signatures. Today it holds:
//!
//! - the **task spec** ([`spec`]): the sponsor's `task.toml`, parsed with typos rejected,
//!   validated so that no setting can silently break a round (for example a fixed-point
//!   encoding whose secure sum could overflow), and hashed canonically so that the hash recorded
//!   on chain identifies the task whatever the file's layout;
//! - **framing** ([`framing`]): length-prefixed frames with an explicit maximum size, checked
//!   before any payload is buffered, and the ALPN id that versions the protocol;
//! - the **join challenge** ([`join`]): the EIP-191 signature by which a client proves it holds
//!   the staked Ethereum key, bound to the coordinator's certificate and a fresh nonce.
//!
//! - the **wire messages** ([`wire`]): every message of a connection, from the join to the
//!   round result, and the frame limits that bound them;
//! - the **submission** ([`Submission`]): the EIP-712 message a client signs over each update
//!   it sends, which the coordinator checks and the reward contract accepts as slashing
//!   evidence.
//!
//! The crate is sans-IO apart from [`TaskSpec::load`], a convenience that reads one file.

pub mod framing;
pub mod join;
pub mod spec;
mod submission;
pub mod wire;

pub use spec::{SpecError, TaskSpec};

/// Parses a 65-byte `r || s || v` signature whose `v` is 27 or 28, the one
/// encoding `ecrecover` on chain accepts. alloy alone also takes `v` as 0/1
/// and as EIP-155 `35 + 2 * chain_id + parity`, so one signature would have
/// several accepted byte strings, and a submission signed with another `v`
/// would pass here and fail as slashing evidence on chain.
pub(crate) fn parse_signature(bytes: &[u8]) -> Result<alloy_primitives::Signature, String> {
    match bytes {
        [.., 27 | 28] if bytes.len() == 65 => {
            alloy_primitives::Signature::try_from(bytes).map_err(|e| e.to_string())
        }
        [.., v] if bytes.len() == 65 => Err(format!("recovery byte v is {v}, not 27 or 28")),
        _ => Err(format!("{} bytes, not 65", bytes.len())),
    }
}
pub use submission::{Submission, SubmissionError, domain as submission_domain};
