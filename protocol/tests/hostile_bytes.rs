//! Every decoder a peer's bytes reach in this crate, fed as an attacker
//! would: random bytes, and valid encodings with bits flipped, cut short,
//! spliced together, with bytes inserted and with length fields inflated.
//!
//! - `wire::decode_client` (coordinator side) and `wire::decode_server`
//!   (client side): never panic, and what decodes re-encodes to bytes that
//!   decode to the same message;
//! - `framing::FrameDecoder` under arbitrary chunking: never panics, never
//!   returns a frame above its limit, and the frames it returns re-encode to
//!   a prefix of the stream;
//! - the join challenge and the EIP-712 submission: random or mutated
//!   signatures never panic and never verify for the claimed signer;
//! - the task spec a client receives at admission
//!   (`TaskSpec::from_toml_str`): never panics, and what parses
//!   round-trips through its canonical form.
//!
//! `PROPTEST_CASES` raises the number of cases (default 2000 per property).
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::LazyLock;

use alloy_primitives::{Address, B256, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use fedstake_protocol::framing::{FrameDecoder, FrameError, HEADER_BYTES, encode_frame};
use fedstake_protocol::join::JoinChallenge;
use fedstake_protocol::wire::{
    Admission, ClientMessage, Role, RoundAnnouncement, RoundResult, ServerMessage, decode_client,
    decode_server, encode,
};
use fedstake_protocol::{Submission, TaskSpec, submission_domain};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(2000)
}

/// The demo task, in canonical form: what a coordinator sends at admission.
static SPEC_TOML: LazyLock<String> = LazyLock::new(|| {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/task-demo.toml");
    TaskSpec::load(std::path::Path::new(path))
        .unwrap()
        .to_toml_string()
});

static CLIENT_SAMPLES: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    [
        ClientMessage::Hello {
            task_id: [1; 32],
            address: [2; 20],
        },
        ClientMessage::JoinSignature {
            signature: vec![3; 65],
        },
        ClientMessage::SecAgg {
            message: (0..200).map(|i| i as u8).collect(),
        },
        ClientMessage::Submission {
            round: 300,
            attempt: 2,
            update_hash: [4; 32],
            signature: vec![5; 65],
        },
        ClientMessage::PlainUpdate {
            round: 1,
            attempt: 0,
            weight: 70_000,
            update: vec![6; 4 * 40],
            signature: vec![7; 65],
        },
        ClientMessage::Decline {
            round: u64::MAX,
            attempt: u32::MAX,
            reason: "training failed: ünïcode".into(),
        },
    ]
    .iter()
    .map(encode)
    .collect()
});

static SERVER_SAMPLES: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    [
        ServerMessage::Challenge {
            task_id: [1; 32],
            nonce: [2; 32],
            certificate_sha256: [3; 32],
        },
        ServerMessage::Admitted(Admission {
            spec_toml: SPEC_TOML.clone(),
            coordinator: [4; 20],
            chain_id: 31337,
            contract: [5; 20],
        }),
        ServerMessage::Refused {
            reason: "full".into(),
        },
        ServerMessage::Round(RoundAnnouncement {
            round: 2,
            attempt: 1,
            model_hash: [6; 32],
            model_bytes: 1 << 40,
            role: Role::SecAgg {
                cohort: vec![[7; 20], [8; 20], [9; 20]],
            },
        }),
        ServerMessage::Round(RoundAnnouncement {
            round: 2,
            attempt: 0,
            model_hash: [6; 32],
            model_bytes: 100,
            role: Role::Plain,
        }),
        ServerMessage::SecAgg {
            message: vec![10; 300],
        },
        ServerMessage::RoundResult(RoundResult {
            round: 4,
            attempt: 0,
            model_hash: [11; 32],
            accuracy: 0.75,
            payout: u128::MAX,
            cumulative: 12,
            accepted: false,
        }),
        ServerMessage::Finished { rounds: 5 },
    ]
    .iter()
    .map(encode)
    .collect()
});

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
    /// Overwrites bytes with a large length (a postcard varint of
    /// `u64::MAX`, or a big-endian `u32`), wherever a length field may lie.
    Inflate(prop::sample::Index, Vec<u8>),
    /// Inserts bytes.
    Insert(prop::sample::Index, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let index = any::<prop::sample::Index>;
    let inflated = prop_oneof![
        // The varint of u64::MAX, of 2^32 and of 2^21 - 1.
        Just(vec![
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
        ]),
        Just(vec![0x80, 0x80, 0x80, 0x80, 0x10]),
        Just(vec![0xff, 0xff, 0x7f]),
        any::<u32>().prop_map(|v| v.to_be_bytes().to_vec()),
    ];
    prop_oneof![
        (index(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip(at, bit)),
        index().prop_map(Mutation::Truncate),
        (index(), index(), index()).prop_map(|(at, other, from)| Mutation::Splice(at, other, from)),
        (index(), inflated).prop_map(|(at, bytes)| Mutation::Inflate(at, bytes)),
        (index(), prop::collection::vec(any::<u8>(), 1..16))
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
        Mutation::Inflate(at, inflated) if len >= inflated.len() => {
            let at = at.index(len - inflated.len() + 1);
            bytes[at..at + inflated.len()].copy_from_slice(inflated);
        }
        Mutation::Insert(at, extra) => {
            let at = at.index(len + 1);
            bytes.splice(at..at, extra.iter().copied());
        }
        _ => {}
    }
}

/// `base` changed by `mutations`, splicing from `samples`.
fn mutated(base: &[u8], samples: &[Vec<u8>], mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = base.to_vec();
    for mutation in mutations {
        apply(&mut bytes, mutation, samples);
    }
    bytes
}

/// What `decode_client` accepts re-encodes to bytes it decodes identically.
fn client_consistently(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(message) = decode_client(bytes) {
        let again = encode(&message);
        prop_assert_eq!(decode_client(&again).unwrap(), message);
        prop_assert!(again.len() <= bytes.len(), "re-encoding grew");
    }
    Ok(())
}

/// What `decode_server` accepts re-encodes to bytes it decodes identically
/// (compared as bytes: an accuracy may be NaN).
fn server_consistently(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(message) = decode_server(bytes) {
        let again = encode(&message);
        prop_assert_eq!(encode(&decode_server(&again).unwrap()), again.clone());
        prop_assert!(again.len() <= bytes.len(), "re-encoding grew");
    }
    Ok(())
}

#[test]
fn every_sample_decodes_to_itself() {
    for bytes in CLIENT_SAMPLES.iter() {
        assert_eq!(&encode(&decode_client(bytes).unwrap()), bytes);
    }
    for bytes in SERVER_SAMPLES.iter() {
        assert_eq!(&encode(&decode_server(bytes).unwrap()), bytes);
    }
}

#[test]
fn a_huge_announced_length_is_refused_without_allocating_it() {
    // PlainUpdate with an update announced as u64::MAX bytes long.
    let mut bytes = vec![4, 1, 0, 1];
    bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    bytes.extend_from_slice(&[0; 8]);
    let error = decode_client(&bytes).unwrap_err();
    assert!(error.to_string().contains("client message"), "{error}");
}

/// Feeds `stream` to a decoder in `cuts`-sized chunks; checks every frame
/// against `limit` and that the frames re-encode to a prefix of the
/// stream. Returns the frames and the error, if any.
fn drain(
    stream: &[u8],
    cuts: &[usize],
    limit: u32,
) -> Result<(Vec<Vec<u8>>, Option<FrameError>), TestCaseError> {
    let mut decoder = FrameDecoder::new(limit);
    let mut frames = Vec::new();
    let mut rest = stream;
    let mut error = None;
    for cut in cuts.iter().cycle() {
        if rest.is_empty() || error.is_some() {
            break;
        }
        let (chunk, tail) = rest.split_at((*cut).min(rest.len()));
        decoder.push(chunk);
        rest = tail;
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    prop_assert!(frame.len() <= limit as usize);
                    frames.push(frame);
                }
                Ok(None) => break,
                Err(e) => {
                    prop_assert_eq!(decoder.next_frame(), Err(e.clone()), "errors stick");
                    error = Some(e);
                    break;
                }
            }
        }
    }
    let consumed: Vec<u8> = frames
        .iter()
        .flat_map(|f| encode_frame(f, limit).unwrap())
        .collect();
    prop_assert_eq!(&stream[..consumed.len()], consumed.as_slice());
    match &error {
        Some(FrameError::TooLarge { length, limit: l }) => {
            prop_assert!(*length > u64::from(*l));
            let header = &stream[consumed.len()..consumed.len() + HEADER_BYTES];
            prop_assert_eq!(
                u64::from(u32::from_be_bytes(header.try_into().unwrap())),
                *length
            );
        }
        Some(other) => prop_assert!(false, "unexpected error {other:?}"),
        None => match decoder.finish() {
            Ok(()) => prop_assert_eq!(consumed.len(), stream.len()),
            Err(FrameError::Truncated { missing }) => {
                prop_assert!(missing > 0);
                prop_assert!(consumed.len() < stream.len());
            }
            Err(other) => prop_assert!(false, "finish: {other:?}"),
        },
    }
    Ok((frames, error))
}

static SIGNER: LazyLock<PrivateKeySigner> =
    LazyLock::new(|| PrivateKeySigner::from_bytes(&B256::repeat_byte(0x42)).unwrap());

const CHALLENGE: JoinChallenge = JoinChallenge {
    task_id: U256::from_limbs([3, 0, 0, 0]),
    nonce: [7; 32],
    certificate_sha256: [9; 32],
};

static JOIN_SIGNATURE: LazyLock<Vec<u8>> = LazyLock::new(|| {
    SIGNER
        .sign_message_sync(CHALLENGE.text().as_bytes())
        .unwrap()
        .as_bytes()
        .to_vec()
});

fn submission() -> (Submission, alloy_sol_types::Eip712Domain) {
    (
        Submission::new(U256::from(3), 1, 0, B256::repeat_byte(1)),
        submission_domain(31337, Address::repeat_byte(2)),
    )
}

static SUBMISSION_SIGNATURE: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let (submission, domain) = submission();
    submission
        .sign(&*SIGNER, &domain)
        .unwrap()
        .as_bytes()
        .to_vec()
});

/// Both signatures, to splice from.
static SIGNATURES: LazyLock<Vec<Vec<u8>>> =
    LazyLock::new(|| vec![JOIN_SIGNATURE.clone(), SUBMISSION_SIGNATURE.clone()]);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn random_bytes_never_panic_the_message_decoders(
        bytes in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        client_consistently(&bytes)?;
        server_consistently(&bytes)?;
    }

    #[test]
    fn mutated_client_messages_never_panic_and_re_encode(
        sample in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        client_consistently(&mutated(sample.get::<Vec<u8>>(&CLIENT_SAMPLES), &CLIENT_SAMPLES, &mutations))?;
    }

    #[test]
    fn mutated_server_messages_never_panic_and_re_encode(
        sample in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        server_consistently(&mutated(sample.get::<Vec<u8>>(&SERVER_SAMPLES), &SERVER_SAMPLES, &mutations))?;
    }

    #[test]
    fn random_streams_are_framed_within_the_limit_or_refused(
        stream in prop::collection::vec(any::<u8>(), 0..2000),
        cuts in prop::collection::vec(1usize..300, 1..20),
        limit in prop_oneof![Just(0u32), 1u32..64, Just(u32::MAX)],
    ) {
        drain(&stream, &cuts, limit)?;
    }

    #[test]
    fn mutated_frame_streams_decode_their_intact_prefix(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..100), 1..10),
        mutations in prop::collection::vec(mutation(), 1..4),
        cuts in prop::collection::vec(1usize..300, 1..20),
    ) {
        let stream: Vec<u8> =
            payloads.iter().flat_map(|p| encode_frame(p, 100).unwrap()).collect();
        let bytes = mutated(&stream, std::slice::from_ref(&stream), &mutations);
        let (frames, _) = drain(&bytes, &cuts, 100)?;
        // Frames wholly before the first changed byte are the originals.
        let first_change = stream
            .iter()
            .zip(&bytes)
            .position(|(a, b)| a != b)
            .unwrap_or(stream.len().min(bytes.len()));
        let mut offset = 0;
        for (frame, original) in frames.iter().zip(&payloads) {
            offset += HEADER_BYTES + original.len();
            if offset > first_change {
                break;
            }
            prop_assert_eq!(frame, original);
        }
    }

    #[test]
    fn random_join_signatures_never_panic_or_verify(
        signature in prop::collection::vec(any::<u8>(), 0..80),
    ) {
        prop_assert!(CHALLENGE.verify(&signature, SIGNER.address()).is_err());
    }

    #[test]
    fn mutated_signatures_verify_for_nobody_they_claim(
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let join = mutated(&JOIN_SIGNATURE, &SIGNATURES, &mutations);
        if join != *JOIN_SIGNATURE {
            prop_assert!(CHALLENGE.verify(&join, SIGNER.address()).is_err());
        }
        let update = mutated(&SUBMISSION_SIGNATURE, &SIGNATURES, &mutations);
        let (submission, domain) = submission();
        if update != *SUBMISSION_SIGNATURE {
            prop_assert!(submission.verify(&update, &domain, SIGNER.address()).is_err());
        }
    }

    #[test]
    fn mutated_task_specs_never_panic_and_what_parses_round_trips(
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let samples = [SPEC_TOML.as_bytes().to_vec()];
        let bytes = mutated(&samples[0], &samples, &mutations);
        if let Ok(text) = std::str::from_utf8(&bytes)
            && let Ok(spec) = TaskSpec::from_toml_str(text)
        {
            let again = TaskSpec::from_toml_str(&spec.to_toml_string()).unwrap();
            prop_assert_eq!(again.spec_hash(), spec.spec_hash());
        }
    }
}

#[test]
fn a_signature_is_accepted_in_one_encoding_only() {
    // alloy also reads v as 0/1 or EIP-155 (59 = 35 + 2 * 12 + 0); the chain
    // reads 27/28 only, so a submission signed otherwise would be evidence
    // the contract refuses.
    CHALLENGE.verify(&JOIN_SIGNATURE, SIGNER.address()).unwrap();
    let (submission, domain) = submission();
    submission
        .verify(&SUBMISSION_SIGNATURE, &domain, SIGNER.address())
        .unwrap();
    for signature in [&*JOIN_SIGNATURE, &*SUBMISSION_SIGNATURE] {
        // v - 27 (0/1) and v + 32 (EIP-155 with chain id 12).
        for shift in [27u8, 0u8.wrapping_sub(32)] {
            let mut other = signature.clone();
            other[64] = other[64].wrapping_sub(shift);
            let join = CHALLENGE.verify(&other, SIGNER.address());
            let update = submission.verify(&other, &domain, SIGNER.address());
            assert!(join.is_err() && update.is_err(), "v {} accepted", other[64]);
        }
    }
}
