//! The messages a client and the coordinator exchange, one per frame.
//!
//! A connection carries one control stream (a QUIC bidirectional stream of
//! [`framing`](crate::framing) frames, each the postcard encoding of one
//! message) and, per model download, a stream of its own that carries the
//! model's safetensors bytes (see [`MODEL_HASH_BYTES`]).
//!
//! The conversation:
//!
//! 1. client [`ClientMessage::Hello`]; coordinator [`ServerMessage::Challenge`];
//!    client [`ClientMessage::JoinSignature`] (EIP-191, see [`crate::join`]);
//!    coordinator [`ServerMessage::Admitted`] or [`ServerMessage::Refused`].
//!    Until admission the frame limit is [`JOIN_FRAME_LIMIT`], so an
//!    unauthenticated peer cannot make the coordinator buffer more than that.
//! 2. per round the client is drawn for: [`ServerMessage::Round`] (the model
//!    hash and the client's role); the client downloads the model, trains,
//!    and either runs SecAgg+ ([`ClientMessage::SecAgg`] /
//!    [`ServerMessage::SecAgg`], the secure-agg crate's signed messages as
//!    bytes, plus a [`ClientMessage::Submission`] signature of its masked
//!    input as slashing evidence) or sends a [`ClientMessage::PlainUpdate`];
//! 3. [`ServerMessage::RoundResult`] with what the round paid the client;
//! 4. [`ServerMessage::Finished`] when the task has run all its rounds.
//!
//! Every message names the round and attempt it belongs to (SecAgg messages
//! carry them in their signed header), so a message replayed from another
//! round or attempt is recognized and refused.

use serde::{Deserialize, Serialize};

/// Frame limit before a client is admitted: the join messages are tiny.
pub const JOIN_FRAME_LIMIT: u32 = 16 * 1024;

/// Bytes a client writes on a model-download stream: the SHA-256 content
/// hash of the model it wants. The coordinator answers with the model's
/// safetensors bytes and finishes the stream.
pub const MODEL_HASH_BYTES: usize = 32;

/// Bytes allowed on top of the vector itself in a task's frames: message
/// headers, signatures, share boxes of a group (each under 200 bytes per
/// member) and the task spec of [`ServerMessage::Admitted`].
const FRAME_OVERHEAD: u64 = 2 << 20;

/// The frame limit of an admitted connection to a task whose update vectors
/// have `dimension` coordinates: 4 bytes per coordinate plus the weight
/// coordinate, plus [`FRAME_OVERHEAD`]. `None` when that exceeds `u32`.
pub fn task_frame_limit(dimension: usize) -> Option<u32> {
    let bytes = (dimension as u64)
        .checked_add(1)?
        .checked_mul(4)?
        .checked_add(FRAME_OVERHEAD)?;
    u32::try_from(bytes).ok()
}

/// Why bytes are not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The bytes are not the encoding of any message of this version.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// Which kind of message was expected.
        what: &'static str,
        /// The decoder's complaint.
        reason: String,
    },
}

/// A 20-byte Ethereum address.
pub type AddressBytes = [u8; 20];

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClientMessage {
    /// The first message: which task, and which address the client claims.
    Hello {
        /// The on-chain task id (big-endian `uint256`).
        task_id: [u8; 32],
        /// The client's Ethereum address, whose stake admits it.
        address: AddressBytes,
    },
    /// The EIP-191 signature of the coordinator's [`ServerMessage::Challenge`].
    JoinSignature {
        /// 65 bytes `r || s || v`.
        #[serde(with = "serde_bytes")]
        signature: Vec<u8>,
    },
    /// A SecAgg+ message (the secure-agg crate's signed wire encoding).
    SecAgg {
        /// The encoded message.
        #[serde(with = "serde_bytes")]
        message: Vec<u8>,
    },
    /// The client's EIP-712 `Submission` signature over the Keccak-256 hash
    /// of its masked input message: the evidence a slash needs.
    Submission {
        /// Round.
        round: u64,
        /// Attempt.
        attempt: u32,
        /// Keccak-256 of the encoded MaskedInput message.
        update_hash: [u8; 32],
        /// 65 bytes `r || s || v`.
        #[serde(with = "serde_bytes")]
        signature: Vec<u8>,
    },
    /// A clipped update in the clear (`plain` privacy mode).
    PlainUpdate {
        /// Round.
        round: u64,
        /// Attempt.
        attempt: u32,
        /// The client's weight: its example count, capped by the task.
        weight: u32,
        /// The update, little-endian `f32`s.
        #[serde(with = "serde_bytes")]
        update: Vec<u8>,
        /// EIP-712 `Submission` signature over the Keccak-256 of `update`.
        #[serde(with = "serde_bytes")]
        signature: Vec<u8>,
    },
    /// The client cannot take part in this attempt (training failed, or it
    /// already took part in an attempt with this context).
    Decline {
        /// Round.
        round: u64,
        /// Attempt.
        attempt: u32,
        /// Why.
        reason: String,
    },
}

/// What the coordinator sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerMessage {
    /// What the client must sign to join (see [`crate::join::JoinChallenge`]).
    Challenge {
        /// The task.
        task_id: [u8; 32],
        /// Fresh randomness.
        nonce: [u8; 32],
        /// SHA-256 of the coordinator's certificate.
        certificate_sha256: [u8; 32],
    },
    /// The client is in.
    Admitted(Admission),
    /// The client is not admitted; the connection closes.
    Refused {
        /// Why, for the operator of the client.
        reason: String,
    },
    /// The client is in this attempt's cohort.
    Round(RoundAnnouncement),
    /// A SecAgg+ message for the client.
    SecAgg {
        /// The encoded message.
        #[serde(with = "serde_bytes")]
        message: Vec<u8>,
    },
    /// What a round gave the client.
    RoundResult(RoundResult),
    /// The task has run all its rounds; the connection closes.
    Finished {
        /// Rounds completed.
        rounds: u64,
    },
}

/// What an admitted client needs to take part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Admission {
    /// The task spec in canonical TOML; its SHA-256 is the spec hash on chain.
    pub spec_toml: String,
    /// The coordinator's Ethereum address (signs SecAgg+ server messages).
    pub coordinator: AddressBytes,
    /// Chain id of the reward contract (EIP-712 domain).
    pub chain_id: u64,
    /// The reward contract (EIP-712 domain).
    pub contract: AddressBytes,
}

/// One attempt of a round, as one cohort member sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundAnnouncement {
    /// Round, from 1.
    pub round: u64,
    /// Attempt of the round, from 0; a new attempt uses fresh keys.
    pub attempt: u32,
    /// SHA-256 content hash of the global model to train from.
    pub model_hash: [u8; 32],
    /// Size of the model's safetensors encoding.
    pub model_bytes: u64,
    /// What the client does in this attempt.
    pub role: Role,
}

/// A cohort member's part in an attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Role {
    /// Send the signed update in the clear.
    Plain,
    /// Run SecAgg+ in the group the public grouping rule gives this client
    /// in `cohort` (`fedstake_round::seat_of`): the client computes its group
    /// itself, so the coordinator cannot hand it one of its choosing.
    SecAgg {
        /// The attempt's whole cohort, ascending.
        cohort: Vec<AddressBytes>,
    },
}

/// A finished round, as one participant sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundResult {
    /// Round.
    pub round: u64,
    /// The attempt that completed.
    pub attempt: u32,
    /// Content hash of the new global model.
    pub model_hash: [u8; 32],
    /// Validation accuracy of the new model on the sponsor's data.
    pub accuracy: f64,
    /// What this round pays the client, in token base units.
    pub payout: u128,
    /// Everything the task has paid the client so far.
    pub cumulative: u128,
    /// Whether the client's contribution was counted.
    pub accepted: bool,
}

/// Encodes a message.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    // Every message type here is plain data; postcard cannot fail on it.
    postcard::to_stdvec(message).expect("wire messages always encode")
}

/// Decodes a [`ClientMessage`].
pub fn decode_client(bytes: &[u8]) -> Result<ClientMessage, WireError> {
    decode(bytes, "client message")
}

/// Decodes a [`ServerMessage`].
pub fn decode_server(bytes: &[u8]) -> Result<ServerMessage, WireError> {
    decode(bytes, "coordinator message")
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &'static str) -> Result<T, WireError> {
    let (message, rest) = postcard::take_from_bytes(bytes).map_err(|e| WireError::Malformed {
        what,
        reason: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(WireError::Malformed {
            what,
            reason: format!("{} trailing bytes", rest.len()),
        });
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_vectors_cost_four_bytes_a_coordinate() {
        let update = vec![7u8; 4 * 1000];
        let message = ClientMessage::PlainUpdate {
            round: 3,
            attempt: 1,
            weight: 500,
            update: update.clone(),
            signature: vec![1; 65],
        };
        let bytes = encode(&message);
        assert!(bytes.len() < update.len() + 100, "{} bytes", bytes.len());
        assert_eq!(decode_client(&bytes).unwrap(), message);

        let result = ServerMessage::RoundResult(RoundResult {
            round: 2,
            attempt: 0,
            model_hash: [9; 32],
            accuracy: 0.5,
            payout: u128::MAX,
            cumulative: 1,
            accepted: true,
        });
        assert_eq!(decode_server(&encode(&result)).unwrap(), result);
    }

    #[test]
    fn garbage_and_trailing_bytes_are_refused() {
        assert!(decode_client(&[0xff, 0xff, 0xff]).is_err());
        let mut bytes = encode(&ClientMessage::JoinSignature {
            signature: vec![0; 65],
        });
        bytes.push(0);
        let error = decode_client(&bytes).unwrap_err();
        assert!(error.to_string().contains("trailing"), "{error}");
    }

    #[test]
    fn task_frame_limit_covers_a_masked_vector() {
        assert_eq!(task_frame_limit(1_000_000), Some(4_000_004 + (2 << 20)));
        assert_eq!(task_frame_limit(usize::MAX / 2), None);
    }
}
