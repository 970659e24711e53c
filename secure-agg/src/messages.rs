//! Protocol messages and their explicit, bounded byte encoding.
//!
//! Every message is a [`SignedMessage`]: a [`Header`] (the [`Context`] — task,
//! round, attempt, group — and the sender index), a typed [`Body`] and a
//! recoverable secp256k1 signature. The wire format is
//!
//! ```text
//! kind (u8) || context (48 bytes, see kdf::Context::to_bytes) || sender (u32 BE)
//!   || payload length (u32 BE) || payload || signature (65 bytes)
//! ```
//!
//! and the signature covers `keccak256("fedstake/secagg/v1/" || everything before
//! the signature)`, so it binds the message kind, the context, the sender and the
//! payload. Integers in payloads are big-endian except the masked vector, whose
//! coordinates are little-endian `u32`. Lists are prefixed with a `u32` count that
//! is checked against [`DecodeLimits`] before anything is allocated; decoding
//! refuses truncated input, trailing bytes and wrong fixed lengths with specific
//! errors. Server messages use the sender index [`SERVER_SENDER`].
//!
//! Nesting is one level deep: [`Body::KeysDelivery`] and
//! [`Body::UnmaskingRequest`] carry signed messages of one leaf kind
//! ([`NestedKind`]), whose kind byte is checked before their body is
//! decoded, so a nested message can never itself nest messages and decoding
//! never recurses further, whatever the bytes. (A decoder that checked the
//! kind after decoding recursed once per 126 bytes: one 2 MB frame overflowed
//! the coordinator's stack.)

use thiserror::Error;

use crate::identity::{
    Address, Identity, IdentityError, SIGNATURE_BYTES, SignatureBytes, keccak256, verify_digest,
};
use crate::kdf::{Context, INFO_PREFIX};
use crate::keys::PublicKeyBytes;
use crate::session::Phase;
use crate::shamir::{SHARE_BYTES, ShamirError, Share};
use crate::share_box::TAG_BYTES;

/// Sender index of messages the server signs.
pub const SERVER_SENDER: u32 = u32::MAX;

/// Plaintext of one share box: the share of the mask secret, then the share of the
/// self-mask seed.
pub const SHARE_PLAINTEXT_BYTES: usize = 2 * SHARE_BYTES;

/// Ciphertext length of one share box.
pub const SHARE_CIPHERTEXT_BYTES: usize = SHARE_PLAINTEXT_BYTES + TAG_BYTES;

/// Bytes of the header: kind, context, sender, payload length.
pub const HEADER_BYTES: usize = 1 + Context::ENCODED_LEN + 4 + 4;

/// Why a message could not be encoded, decoded or signed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MessageError {
    /// The input ended before a field.
    #[error("message truncated: {field} needs {needed} bytes, {remaining} remain")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes it needs.
        needed: usize,
        /// Bytes left.
        remaining: usize,
    },
    /// Bytes follow the end of the message or payload.
    #[error("{0} unexpected bytes after the end of the {1}")]
    TrailingBytes(usize, &'static str),
    /// The kind byte is unknown.
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    /// A list is longer than the limit.
    #[error("{what} has {count} entries, the limit is {limit}")]
    TooManyEntries {
        /// Which list.
        what: &'static str,
        /// Entries announced.
        count: u64,
        /// The limit.
        limit: u64,
    },
    /// A share box has the wrong length.
    #[error("a share box has {got} bytes, expected {SHARE_CIPHERTEXT_BYTES}")]
    WrongCiphertextLength {
        /// Bytes found.
        got: usize,
    },
    /// A revealed share is malformed.
    #[error("a revealed share is malformed: {0}")]
    MalformedShare(ShamirError),
    /// The kind byte of a revealed share is unknown.
    #[error("unknown revealed share kind {0}")]
    UnknownShareKind(u8),
    /// A nested message has the wrong kind.
    #[error("a nested message is {got:?}, expected {expected:?}")]
    WrongNestedKind {
        /// The kind required there.
        expected: MessageKind,
        /// The kind found.
        got: MessageKind,
    },
    /// The payload is longer than a `u32` length can describe.
    #[error("the payload of {0} bytes is too long to encode")]
    PayloadTooLong(usize),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Signing(IdentityError),
}

/// The kinds that may be nested inside another message: leaves, which
/// never contain messages themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NestedKind {
    /// In [`Body::KeysDelivery`].
    AdvertiseKeys,
    /// In [`Body::UnmaskingRequest`].
    ConsistencyResponse,
}

impl NestedKind {
    fn kind(self) -> MessageKind {
        match self {
            NestedKind::AdvertiseKeys => MessageKind::AdvertiseKeys,
            NestedKind::ConsistencyResponse => MessageKind::ConsistencyResponse,
        }
    }
}

/// Bounds applied when decoding untrusted bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Most clients any list may name (the group size).
    pub max_members: u32,
    /// Most coordinates of a masked vector.
    pub max_dimension: u32,
}

/// Which message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// Client to server: the two public keys.
    AdvertiseKeys,
    /// Server to client: the neighbours' signed advertisements.
    KeysDelivery,
    /// Client to server: one share box per neighbour.
    ShareKeys,
    /// Server to client: the share boxes addressed to it.
    SharesDelivery,
    /// Client to server: the masked input.
    MaskedInput,
    /// Server to client: the survivor list to sign.
    ConsistencyRequest,
    /// Client to server: the survivor list, signed back.
    ConsistencyResponse,
    /// Server to client: which clients survived and dropped, with the consistency
    /// signatures.
    UnmaskingRequest,
    /// Client to server: the revealed shares.
    UnmaskingResponse,
}

impl MessageKind {
    const ALL: [MessageKind; 9] = [
        MessageKind::AdvertiseKeys,
        MessageKind::KeysDelivery,
        MessageKind::ShareKeys,
        MessageKind::SharesDelivery,
        MessageKind::MaskedInput,
        MessageKind::ConsistencyRequest,
        MessageKind::ConsistencyResponse,
        MessageKind::UnmaskingRequest,
        MessageKind::UnmaskingResponse,
    ];

    /// The phase a client's message of this kind answers; `None` for the
    /// server's kinds.
    pub fn client_phase(self) -> Option<Phase> {
        match self {
            MessageKind::AdvertiseKeys => Some(Phase::AdvertiseKeys),
            MessageKind::ShareKeys => Some(Phase::ShareKeys),
            MessageKind::MaskedInput => Some(Phase::MaskedInput),
            MessageKind::ConsistencyResponse => Some(Phase::Consistency),
            MessageKind::UnmaskingResponse => Some(Phase::Unmasking),
            _ => None,
        }
    }

    /// The kind byte on the wire (1..=9).
    pub fn to_byte(self) -> u8 {
        match self {
            MessageKind::AdvertiseKeys => 1,
            MessageKind::KeysDelivery => 2,
            MessageKind::ShareKeys => 3,
            MessageKind::SharesDelivery => 4,
            MessageKind::MaskedInput => 5,
            MessageKind::ConsistencyRequest => 6,
            MessageKind::ConsistencyResponse => 7,
            MessageKind::UnmaskingRequest => 8,
            MessageKind::UnmaskingResponse => 9,
        }
    }

    /// The kind of a wire byte.
    pub fn from_byte(byte: u8) -> Result<Self, MessageError> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.to_byte() == byte)
            .ok_or(MessageError::UnknownKind(byte))
    }
}

/// A client's two X25519 public keys for this attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertiseKeys {
    /// Key whose agreements seed the pairwise masks.
    pub mask_public_key: PublicKeyBytes,
    /// Key whose agreements encrypt the share boxes.
    pub encryption_public_key: PublicKeyBytes,
}

/// One share box and the other client of it (receiver in [`Body::ShareKeys`], sender in
/// [`Body::SharesDelivery`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareBoxEntry {
    /// The other client.
    pub peer: u32,
    /// `SHARE_CIPHERTEXT_BYTES` of ChaCha20-Poly1305 output.
    pub ciphertext: Vec<u8>,
}

/// Which secret a revealed share belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevealedShareKind {
    /// A share of the owner's self-mask seed `b` (owner survived).
    SelfMaskSeed,
    /// A share of the owner's mask secret key (owner dropped).
    MaskSecret,
}

/// A share of `owner`'s secret revealed at unmasking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevealedShare {
    /// Whose secret.
    pub owner: u32,
    /// Which secret.
    pub kind: RevealedShareKind,
    /// The share.
    pub share: Share,
}

/// The typed content of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// See [`AdvertiseKeys`].
    AdvertiseKeys(AdvertiseKeys),
    /// The signed [`AdvertiseKeys`] messages of the recipient's live neighbours.
    KeysDelivery(Vec<SignedMessage>),
    /// One box per live neighbour (peer = receiver).
    ShareKeys(Vec<ShareBoxEntry>),
    /// The boxes addressed to the recipient (peer = sender).
    SharesDelivery(Vec<ShareBoxEntry>),
    /// The masked vector `y`.
    MaskedInput(Vec<u32>),
    /// The survivor list (clients whose masked input arrived), ascending.
    ConsistencyRequest(Vec<u32>),
    /// The survivor list the client signs back.
    ConsistencyResponse(Vec<u32>),
    /// Survivors, dropouts and the consistency signatures.
    UnmaskingRequest {
        /// Clients whose masked input is in the sum (reveal `b` shares).
        survivors: Vec<u32>,
        /// Clients that shared keys but sent no masked input (reveal mask shares).
        dropouts: Vec<u32>,
        /// The signed [`Body::ConsistencyResponse`] messages received.
        consistency_responses: Vec<SignedMessage>,
    },
    /// The revealed shares.
    UnmaskingResponse(Vec<RevealedShare>),
}

impl Body {
    /// The kind of this body.
    pub fn kind(&self) -> MessageKind {
        match self {
            Body::AdvertiseKeys(_) => MessageKind::AdvertiseKeys,
            Body::KeysDelivery(_) => MessageKind::KeysDelivery,
            Body::ShareKeys(_) => MessageKind::ShareKeys,
            Body::SharesDelivery(_) => MessageKind::SharesDelivery,
            Body::MaskedInput(_) => MessageKind::MaskedInput,
            Body::ConsistencyRequest(_) => MessageKind::ConsistencyRequest,
            Body::ConsistencyResponse(_) => MessageKind::ConsistencyResponse,
            Body::UnmaskingRequest { .. } => MessageKind::UnmaskingRequest,
            Body::UnmaskingResponse(_) => MessageKind::UnmaskingResponse,
        }
    }

    fn encode_payload(&self, out: &mut Vec<u8>) -> Result<(), MessageError> {
        match self {
            Body::AdvertiseKeys(keys) => {
                out.extend_from_slice(&keys.mask_public_key);
                out.extend_from_slice(&keys.encryption_public_key);
            }
            Body::KeysDelivery(messages) => encode_messages(messages, out)?,
            Body::ShareKeys(entries) | Body::SharesDelivery(entries) => {
                put_count(out, entries.len())?;
                for entry in entries {
                    put_u32(out, entry.peer);
                    out.extend_from_slice(&entry.ciphertext);
                }
            }
            Body::MaskedInput(values) => {
                put_count(out, values.len())?;
                for value in values {
                    out.extend_from_slice(&value.to_le_bytes());
                }
            }
            Body::ConsistencyRequest(list) | Body::ConsistencyResponse(list) => {
                encode_indices(list, out)?;
            }
            Body::UnmaskingRequest {
                survivors,
                dropouts,
                consistency_responses,
            } => {
                encode_indices(survivors, out)?;
                encode_indices(dropouts, out)?;
                encode_messages(consistency_responses, out)?;
            }
            Body::UnmaskingResponse(shares) => {
                put_count(out, shares.len())?;
                for revealed in shares {
                    put_u32(out, revealed.owner);
                    out.push(match revealed.kind {
                        RevealedShareKind::SelfMaskSeed => 0,
                        RevealedShareKind::MaskSecret => 1,
                    });
                    out.extend_from_slice(revealed.share.to_bytes().as_ref());
                }
            }
        }
        Ok(())
    }

    fn decode_payload(
        kind: MessageKind,
        reader: &mut Reader<'_>,
        limits: &DecodeLimits,
    ) -> Result<Self, MessageError> {
        let members = u64::from(limits.max_members);
        Ok(match kind {
            MessageKind::AdvertiseKeys => Body::AdvertiseKeys(AdvertiseKeys {
                mask_public_key: reader.array("mask public key")?,
                encryption_public_key: reader.array("encryption public key")?,
            }),
            MessageKind::KeysDelivery => {
                Body::KeysDelivery(decode_messages(reader, limits, NestedKind::AdvertiseKeys)?)
            }
            MessageKind::ShareKeys | MessageKind::SharesDelivery => {
                let count = reader.count("share boxes", members)?;
                let mut entries = Vec::with_capacity(count.min(reader.remaining() / 4));
                for _ in 0..count {
                    let peer = reader.u32("share box peer")?;
                    let ciphertext = reader.bytes("share box", SHARE_CIPHERTEXT_BYTES)?.to_vec();
                    entries.push(ShareBoxEntry { peer, ciphertext });
                }
                if kind == MessageKind::ShareKeys {
                    Body::ShareKeys(entries)
                } else {
                    Body::SharesDelivery(entries)
                }
            }
            MessageKind::MaskedInput => {
                let count = reader.count("masked input", u64::from(limits.max_dimension))?;
                let raw = reader.bytes("masked input", count.saturating_mul(4))?;
                Body::MaskedInput(
                    raw.chunks_exact(4)
                        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
                        .collect(),
                )
            }
            MessageKind::ConsistencyRequest => {
                Body::ConsistencyRequest(decode_indices(reader, "survivor list", members)?)
            }
            MessageKind::ConsistencyResponse => {
                Body::ConsistencyResponse(decode_indices(reader, "survivor list", members)?)
            }
            MessageKind::UnmaskingRequest => Body::UnmaskingRequest {
                survivors: decode_indices(reader, "survivors", members)?,
                dropouts: decode_indices(reader, "dropouts", members)?,
                consistency_responses: decode_messages(
                    reader,
                    limits,
                    NestedKind::ConsistencyResponse,
                )?,
            },
            MessageKind::UnmaskingResponse => {
                // At most two shares (one per secret) per member could be honest;
                // the session rejects the second kind, the decoder only bounds size.
                let count = reader.count("revealed shares", 2 * members)?;
                let mut shares = Vec::with_capacity(count.min(reader.remaining() / 4));
                for _ in 0..count {
                    let owner = reader.u32("revealed share owner")?;
                    let kind = match reader.bytes("revealed share kind", 1)?[0] {
                        0 => RevealedShareKind::SelfMaskSeed,
                        1 => RevealedShareKind::MaskSecret,
                        other => return Err(MessageError::UnknownShareKind(other)),
                    };
                    let share = Share::from_bytes(reader.bytes("revealed share", SHARE_BYTES)?)
                        .map_err(MessageError::MalformedShare)?;
                    shares.push(RevealedShare { owner, kind, share });
                }
                Body::UnmaskingResponse(shares)
            }
        })
    }
}

/// Who sent a message, and for which attempt of which group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Task, round, attempt and group.
    pub context: Context,
    /// Client index in the group, or [`SERVER_SENDER`].
    pub sender: u32,
}

/// A message with its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedMessage {
    /// Context and sender.
    pub header: Header,
    /// Content.
    pub body: Body,
    /// Recoverable signature over [`SignedMessage::digest`].
    pub signature: SignatureBytes,
}

impl SignedMessage {
    /// Signs `body` from `header.sender` with `identity`.
    pub fn sign(header: Header, body: Body, identity: &Identity) -> Result<Self, MessageError> {
        let unsigned = encode_unsigned(&header, &body)?;
        let signature = identity
            .sign_digest(&digest_of(&unsigned))
            .map_err(MessageError::Signing)?;
        Ok(Self {
            header,
            body,
            signature,
        })
    }

    /// The kind of the body.
    pub fn kind(&self) -> MessageKind {
        self.body.kind()
    }

    /// `keccak256("fedstake/secagg/v1/" || header || payload)`.
    pub fn digest(&self) -> Result<[u8; 32], MessageError> {
        Ok(digest_of(&encode_unsigned(&self.header, &self.body)?))
    }

    /// Checks that the signature was made by `expected`.
    pub fn verify(&self, expected: &Address) -> Result<(), IdentityError> {
        // A body that cannot be encoded cannot have been signed.
        let digest = self
            .digest()
            .map_err(|_| IdentityError::MalformedSignature)?;
        verify_digest(&digest, &self.signature, expected)
    }

    /// The wire bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, MessageError> {
        let mut bytes = encode_unsigned(&self.header, &self.body)?;
        bytes.extend_from_slice(&self.signature);
        Ok(bytes)
    }

    /// Parses wire bytes (the signature is not checked here).
    pub fn from_bytes(bytes: &[u8], limits: &DecodeLimits) -> Result<Self, MessageError> {
        let mut reader = Reader { bytes };
        let message = Self::read(&mut reader, limits)?;
        if !reader.bytes.is_empty() {
            return Err(MessageError::TrailingBytes(reader.bytes.len(), "message"));
        }
        Ok(message)
    }

    fn read(reader: &mut Reader<'_>, limits: &DecodeLimits) -> Result<Self, MessageError> {
        let kind = MessageKind::from_byte(reader.bytes("kind", 1)?[0])?;
        let task_id = reader.array("task id")?;
        let round = u64::from_be_bytes(reader.array("round")?);
        let attempt = reader.u32("attempt")?;
        let group = reader.u32("group")?;
        let sender = reader.u32("sender")?;
        let payload_len = reader.u32("payload length")? as usize;
        let mut payload = Reader {
            bytes: reader.bytes("payload", payload_len)?,
        };
        let body = Body::decode_payload(kind, &mut payload, limits)?;
        if !payload.bytes.is_empty() {
            return Err(MessageError::TrailingBytes(payload.bytes.len(), "payload"));
        }
        let signature = reader.array("signature")?;
        Ok(Self {
            header: Header {
                context: Context {
                    task_id,
                    round,
                    attempt,
                    group,
                },
                sender,
            },
            body,
            signature,
        })
    }
}

fn digest_of(unsigned: &[u8]) -> [u8; 32] {
    let mut prefixed = Vec::with_capacity(INFO_PREFIX.len() + unsigned.len());
    prefixed.extend_from_slice(INFO_PREFIX);
    prefixed.extend_from_slice(unsigned);
    keccak256(&prefixed)
}

fn encode_unsigned(header: &Header, body: &Body) -> Result<Vec<u8>, MessageError> {
    let mut payload = Vec::new();
    body.encode_payload(&mut payload)?;
    let payload_len =
        u32::try_from(payload.len()).map_err(|_| MessageError::PayloadTooLong(payload.len()))?;
    let mut bytes = Vec::with_capacity(HEADER_BYTES + payload.len() + SIGNATURE_BYTES);
    bytes.push(body.kind().to_byte());
    bytes.extend_from_slice(&header.context.to_bytes());
    put_u32(&mut bytes, header.sender);
    put_u32(&mut bytes, payload_len);
    bytes.extend_from_slice(&payload);
    Ok(bytes)
}

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn put_count(out: &mut Vec<u8>, count: usize) -> Result<(), MessageError> {
    let count = u32::try_from(count).map_err(|_| MessageError::PayloadTooLong(count))?;
    put_u32(out, count);
    Ok(())
}

fn encode_indices(list: &[u32], out: &mut Vec<u8>) -> Result<(), MessageError> {
    put_count(out, list.len())?;
    for &index in list {
        put_u32(out, index);
    }
    Ok(())
}

fn encode_messages(messages: &[SignedMessage], out: &mut Vec<u8>) -> Result<(), MessageError> {
    put_count(out, messages.len())?;
    for message in messages {
        out.extend_from_slice(&message.to_bytes()?);
    }
    Ok(())
}

fn decode_indices(
    reader: &mut Reader<'_>,
    what: &'static str,
    limit: u64,
) -> Result<Vec<u32>, MessageError> {
    let count = reader.count(what, limit)?;
    let raw = reader.bytes(what, count.saturating_mul(4))?;
    Ok(raw
        .chunks_exact(4)
        .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
        .collect())
}

/// Nested messages of the leaf kind `expected`: each one's kind byte is
/// checked before anything else of it is read, so this never recurses
/// beyond one level.
fn decode_messages(
    reader: &mut Reader<'_>,
    limits: &DecodeLimits,
    expected: NestedKind,
) -> Result<Vec<SignedMessage>, MessageError> {
    let expected = expected.kind();
    let count = reader.count("nested messages", u64::from(limits.max_members))?;
    let mut messages = Vec::with_capacity(count.min(reader.remaining() / HEADER_BYTES));
    for _ in 0..count {
        let got = MessageKind::from_byte(reader.peek_byte("nested kind")?)?;
        if got != expected {
            return Err(MessageError::WrongNestedKind { expected, got });
        }
        messages.push(SignedMessage::read(reader, limits)?);
    }
    Ok(messages)
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len()
    }

    fn peek_byte(&self, field: &'static str) -> Result<u8, MessageError> {
        self.bytes.first().copied().ok_or(MessageError::Truncated {
            field,
            needed: 1,
            remaining: 0,
        })
    }

    fn bytes(&mut self, field: &'static str, needed: usize) -> Result<&'a [u8], MessageError> {
        if self.bytes.len() < needed {
            return Err(MessageError::Truncated {
                field,
                needed,
                remaining: self.bytes.len(),
            });
        }
        let (head, tail) = self.bytes.split_at(needed);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], MessageError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.bytes(field, N)?);
        Ok(array)
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, MessageError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    fn count(&mut self, what: &'static str, limit: u64) -> Result<usize, MessageError> {
        let count = self.u32(what)?;
        if u64::from(count) > limit {
            return Err(MessageError::TooManyEntries {
                what,
                count: u64::from(count),
                limit,
            });
        }
        Ok(count as usize)
    }
}
