//! Bytes as an attacker sends them to `SignedMessage::from_bytes`: every
//! SecAgg+ message a drawn member (or a malicious coordinator) sends reaches
//! this decoder before any signature is checked.
//!
//! - one frame of deeply nested `KeysDelivery` messages, which used to
//!   recurse once per 126 bytes until the stack overflowed;
//! - random bytes and mutations of valid encodings (bit flips, truncations,
//!   splices, inflated length and count fields): the decoder never panics,
//!   and whatever it accepts re-encodes to exactly the bytes it came from.
//!
//! `PROPTEST_CASES` raises the number of cases (default 2000 per property).
#![allow(clippy::unwrap_used, missing_docs)]

use fedstake_secure_agg::identity::Identity;
use fedstake_secure_agg::kdf::Context;
use fedstake_secure_agg::messages::{
    AdvertiseKeys, Body, DecodeLimits, HEADER_BYTES, Header, MessageError, MessageKind,
    RevealedShare, RevealedShareKind, SHARE_CIPHERTEXT_BYTES, ShareBoxEntry, SignedMessage,
};
use fedstake_secure_agg::shamir::Share;
use std::sync::LazyLock;

use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const LIMITS: DecodeLimits = DecodeLimits {
    max_members: 8,
    max_dimension: 64,
};

/// Bytes of the signature that ends every message.
const SIGNATURE_BYTES: usize = 65;

const CONTEXT: Context = Context {
    task_id: [1; 32],
    round: 2,
    attempt: 0,
    group: 3,
};

/// The header of a message of `kind` whose payload has `payload_len` bytes.
fn raw_header(kind: MessageKind, payload_len: usize) -> Vec<u8> {
    let mut header = vec![kind.to_byte()];
    header.extend_from_slice(&CONTEXT.to_bytes());
    header.extend_from_slice(&1u32.to_be_bytes());
    header.extend_from_slice(&u32::try_from(payload_len).unwrap().to_be_bytes());
    header
}

/// `depth` `KeysDelivery` messages, each the single nested message of the
/// one around it, around an empty one: what a member sends to crash a
/// decoder that recurses before it checks the nested kind.
fn nested_keys_deliveries(depth: usize) -> Vec<u8> {
    // Innermost: an empty delivery (count 0).
    let core_len = HEADER_BYTES + 4 + SIGNATURE_BYTES;
    // Lengths from the inside out: level i's payload is a count and level i-1.
    let mut lengths = vec![core_len];
    for _ in 0..depth {
        let inner = *lengths.last().unwrap();
        lengths.push(HEADER_BYTES + 4 + inner + SIGNATURE_BYTES);
    }
    let mut bytes = Vec::with_capacity(*lengths.last().unwrap());
    for level in (1..=depth).rev() {
        bytes.extend(raw_header(
            MessageKind::KeysDelivery,
            4 + lengths[level - 1],
        ));
        bytes.extend_from_slice(&1u32.to_be_bytes());
    }
    bytes.extend(raw_header(MessageKind::KeysDelivery, 4));
    bytes.extend_from_slice(&0u32.to_be_bytes());
    bytes.resize(*lengths.last().unwrap(), 0x1b);
    bytes
}

#[test]
fn a_two_megabyte_nest_of_key_deliveries_is_refused_at_its_first_nested_header() {
    // 16,600 levels of 126 bytes: 2.09 MB, under an admitted client's
    // frame limit (`task_frame_limit`, over 2 MiB).
    let frame = nested_keys_deliveries(16_600);
    assert!(frame.len() > 2_000_000, "{} bytes", frame.len());
    assert_eq!(
        SignedMessage::from_bytes(&frame, &LIMITS),
        Err(MessageError::WrongNestedKind {
            expected: MessageKind::AdvertiseKeys,
            got: MessageKind::KeysDelivery,
        })
    );
    // One level is a valid delivery of nothing.
    let empty = SignedMessage::from_bytes(&nested_keys_deliveries(0), &LIMITS).unwrap();
    assert_eq!(empty.body, Body::KeysDelivery(vec![]));
}

#[test]
fn a_nested_message_of_a_container_kind_is_refused_whatever_its_body() {
    // An UnmaskingRequest (which itself nests messages) inside a
    // KeysDelivery: refused from its kind byte, before its body, which here
    // is not even a valid UnmaskingRequest.
    let inner_payload = [0xff; 12];
    let mut inner = raw_header(MessageKind::UnmaskingRequest, inner_payload.len());
    inner.extend_from_slice(&inner_payload);
    inner.extend_from_slice(&[0; SIGNATURE_BYTES]);
    let mut outer = raw_header(MessageKind::KeysDelivery, 4 + inner.len());
    outer.extend_from_slice(&1u32.to_be_bytes());
    outer.extend_from_slice(&inner);
    outer.extend_from_slice(&[0; SIGNATURE_BYTES]);
    assert_eq!(
        SignedMessage::from_bytes(&outer, &LIMITS),
        Err(MessageError::WrongNestedKind {
            expected: MessageKind::AdvertiseKeys,
            got: MessageKind::UnmaskingRequest,
        })
    );
}

/// One valid, signed message of every kind, signed once per test binary.
static SAMPLES: LazyLock<Vec<Vec<u8>>> = LazyLock::new(samples);

fn samples() -> Vec<Vec<u8>> {
    let identity = Identity::generate(&mut ChaCha20Rng::seed_from_u64(7));
    let header = Header {
        context: CONTEXT,
        sender: 1,
    };
    let sign = |body| SignedMessage::sign(header, body, &identity).unwrap();
    let keys = sign(Body::AdvertiseKeys(AdvertiseKeys {
        mask_public_key: [3; 32],
        encryption_public_key: [4; 32],
    }));
    let response = sign(Body::ConsistencyResponse(vec![0, 1, 2]));
    let boxes = vec![
        ShareBoxEntry {
            peer: 0,
            ciphertext: vec![5; SHARE_CIPHERTEXT_BYTES],
        },
        ShareBoxEntry {
            peer: 2,
            ciphertext: vec![6; SHARE_CIPHERTEXT_BYTES],
        },
    ];
    let mut share = [0u8; 68];
    share[3] = 1;
    share[4] = 9;
    let share = Share::from_bytes(&share).unwrap();
    let bodies = vec![
        keys.body.clone(),
        Body::KeysDelivery(vec![keys.clone(), keys]),
        Body::ShareKeys(boxes.clone()),
        Body::SharesDelivery(boxes),
        Body::MaskedInput((0..16).map(|i| i * 0x0101_0101).collect()),
        Body::ConsistencyRequest(vec![0, 1, 2]),
        response.body.clone(),
        Body::UnmaskingRequest {
            survivors: vec![0, 1],
            dropouts: vec![2],
            consistency_responses: vec![response.clone(), response],
        },
        Body::UnmaskingResponse(vec![
            RevealedShare {
                owner: 0,
                kind: RevealedShareKind::SelfMaskSeed,
                share: share.clone(),
            },
            RevealedShare {
                owner: 2,
                kind: RevealedShareKind::MaskSecret,
                share,
            },
        ]),
    ];
    bodies
        .into_iter()
        .map(|body| sign(body).to_bytes().unwrap())
        .collect()
}

/// A change an attacker makes to a valid encoding.
#[derive(Debug, Clone)]
enum Mutation {
    /// Flips one bit.
    Flip(prop::sample::Index, u8),
    /// Cuts the bytes short.
    Truncate(prop::sample::Index),
    /// Replaces the tail from a point with the tail of another sample.
    Splice(
        prop::sample::Index,
        prop::sample::Index,
        prop::sample::Index,
    ),
    /// Overwrites four bytes (a length or count field, wherever it lies)
    /// with a large or off-by-one value.
    Inflate(prop::sample::Index, u32),
    /// Inflates the outer payload length field.
    PayloadLength(u32),
    /// Inserts bytes.
    Insert(prop::sample::Index, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let value = prop_oneof![
        Just(u32::MAX),
        Just(0x8000_0000),
        Just(0x0010_0000),
        0u32..300,
        any::<u32>(),
    ];
    prop_oneof![
        (any::<prop::sample::Index>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip(at, bit)),
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        any::<(
            prop::sample::Index,
            prop::sample::Index,
            prop::sample::Index
        )>()
        .prop_map(|(at, other, from)| Mutation::Splice(at, other, from)),
        (any::<prop::sample::Index>(), value.clone()).prop_map(|(at, v)| Mutation::Inflate(at, v)),
        value.prop_map(Mutation::PayloadLength),
        (
            any::<prop::sample::Index>(),
            prop::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation, samples: &[Vec<u8>]) {
    let len = bytes.len();
    match mutation {
        Mutation::Flip(at, bit) if len > 0 => bytes[at.index(len)] ^= 1 << bit,
        Mutation::Truncate(at) if len > 0 => bytes.truncate(at.index(len)),
        Mutation::Splice(at, other, from) => {
            let other = other.get(samples);
            bytes.truncate(at.index(len + 1));
            bytes.extend_from_slice(&other[from.index(other.len())..]);
        }
        Mutation::Inflate(at, value) if len >= 4 => {
            let at = at.index(len - 3);
            bytes[at..at + 4].copy_from_slice(&value.to_be_bytes());
        }
        Mutation::PayloadLength(value) if len >= HEADER_BYTES => {
            bytes[HEADER_BYTES - 4..HEADER_BYTES].copy_from_slice(&value.to_be_bytes());
        }
        Mutation::Insert(at, extra) => {
            let at = at.index(len + 1);
            bytes.splice(at..at, extra.iter().copied());
        }
        _ => {}
    }
}

/// Decodes `bytes`; anything accepted must re-encode to the same bytes.
fn decode_consistently(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(message) = SignedMessage::from_bytes(bytes, &LIMITS) {
        prop_assert_eq!(message.to_bytes().unwrap(), bytes);
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(2000)
}

#[test]
fn every_sample_decodes_to_itself() {
    for bytes in SAMPLES.iter() {
        assert_eq!(
            SignedMessage::from_bytes(bytes, &LIMITS)
                .unwrap()
                .to_bytes()
                .unwrap(),
            *bytes
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn random_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        decode_consistently(&bytes)?;
    }

    #[test]
    fn mutated_messages_never_panic_and_what_decodes_re_encodes(
        sample in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        let samples = &*SAMPLES;
        let mut bytes = sample.get(samples).clone();
        for mutation in &mutations {
            apply(&mut bytes, mutation, samples);
        }
        decode_consistently(&bytes)?;
    }
}
