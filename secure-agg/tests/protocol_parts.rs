//! Neighbourhood graphs, Ethereum identities and the message encoding.
#![allow(clippy::unwrap_used)]

use fedstake_secure_agg::graph::{
    GraphError, GroupTopology, NeighbourGraph, recommended_degree, recommended_threshold,
};
use fedstake_secure_agg::identity::{Identity, IdentityError, keccak256, verify_digest};
use fedstake_secure_agg::kdf::Context;
use fedstake_secure_agg::messages::{
    AdvertiseKeys, Body, DecodeLimits, Header, MessageError, SHARE_CIPHERTEXT_BYTES, ShareBoxEntry,
    SignedMessage,
};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn assert_regular_and_symmetric(graph: &NeighbourGraph) {
    let n = graph.group_size();
    for client in 0..n {
        let neighbours = graph.neighbours(client);
        assert_eq!(neighbours.len() as u32, graph.degree(), "client {client}");
        assert!(!neighbours.contains(&client));
        for &peer in neighbours {
            assert!(graph.are_neighbours(peer, client), "{client} - {peer}");
        }
    }
}

#[test]
fn harary_graphs_are_regular_and_symmetric() {
    for n in 3u32..=40 {
        for k in 1..n {
            match NeighbourGraph::harary(n, k) {
                Ok(graph) => assert_regular_and_symmetric(&graph),
                Err(error) => {
                    assert_eq!(
                        error,
                        GraphError::OddDegreeOddGroup {
                            degree: k,
                            group_size: n
                        }
                    );
                }
            }
        }
        assert_regular_and_symmetric(&NeighbourGraph::for_group(n).unwrap());
    }
}

#[test]
fn degree_grows_logarithmically_and_small_groups_are_complete() {
    assert_eq!(recommended_degree(3), 2);
    assert_eq!(recommended_degree(8), 6);
    assert_eq!(recommended_degree(30), 10);
    assert_eq!(recommended_degree(100), 14);
    assert_eq!(recommended_degree(1000), 20);
    assert_eq!(NeighbourGraph::for_group(6).unwrap().degree(), 5);
    assert_eq!(recommended_threshold(10, 0), 6);
    assert_eq!(recommended_threshold(10, 1), 6);
    assert_eq!(recommended_threshold(10, 2), 7);
    let topology = GroupTopology::for_group(100, 1).unwrap();
    assert_eq!(topology.threshold(), 8);
    assert_eq!(topology.dropout_tolerance(), 6);
    assert_eq!(topology.min_survivors(), 8);
}

#[test]
fn impossible_parameters_are_refused() {
    assert_eq!(
        NeighbourGraph::complete(1).unwrap_err(),
        GraphError::GroupTooSmall(1)
    );
    assert_eq!(
        NeighbourGraph::harary(5, 5).unwrap_err(),
        GraphError::DegreeOutOfRange {
            degree: 5,
            group_size: 5
        }
    );
    assert_eq!(
        NeighbourGraph::harary(5, 0).unwrap_err(),
        GraphError::DegreeOutOfRange {
            degree: 0,
            group_size: 5
        }
    );
    let graph = NeighbourGraph::harary(10, 4).unwrap();
    assert_eq!(
        GroupTopology::new(graph.clone(), 2, 0).unwrap_err(),
        GraphError::ThresholdOutOfRange {
            threshold: 2,
            degree: 4,
            corrupt: 0
        }
    );
    assert!(GroupTopology::new(graph.clone(), 5, 0).is_err());
    assert_eq!(
        GroupTopology::new(graph.clone(), 3, 1)
            .unwrap()
            .dropout_tolerance(),
        1
    );
    // Two colluders need 2t > 4 + 2.
    assert!(GroupTopology::new(graph.clone(), 3, 2).is_err());
    assert_eq!(GroupTopology::new(graph, 4, 2).unwrap().min_survivors(), 4);
    // Against one colluder a group of 3 must keep all three in every sum.
    let triangle = NeighbourGraph::complete(3).unwrap();
    assert_eq!(
        GroupTopology::new(triangle.clone(), 2, 1)
            .unwrap()
            .min_survivors(),
        3
    );
    assert_eq!(
        GroupTopology::new(triangle, 2, 2).unwrap_err(),
        GraphError::ThresholdOutOfRange {
            threshold: 2,
            degree: 2,
            corrupt: 2
        }
    );
}

#[test]
fn ethereum_address_matches_a_known_vector() {
    let mut secret = [0u8; 32];
    let hex = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
    for (i, byte) in secret.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    let identity = Identity::from_secret_bytes(&secret).unwrap();
    let address: String = identity
        .address()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(address, "2c7536e3605d9c16a7a3d7b1898e529396a65c23");
    assert_eq!(
        Identity::from_secret_bytes(&[0u8; 32]).unwrap_err(),
        IdentityError::InvalidSecretKey
    );
}

#[test]
fn signatures_recover_the_signer_and_refuse_others() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let alice = Identity::generate(&mut rng);
    let bob = Identity::generate(&mut rng);
    let digest = keccak256(b"hello");
    let signature = alice.sign_digest(&digest).unwrap();
    verify_digest(&digest, &signature, &alice.address()).unwrap();
    assert!(matches!(
        verify_digest(&digest, &signature, &bob.address()),
        Err(IdentityError::WrongSigner { .. })
    ));
    let mut bad_recovery = signature;
    bad_recovery[64] = 9;
    assert_eq!(
        verify_digest(&digest, &bad_recovery, &alice.address()),
        Err(IdentityError::MalformedSignature)
    );
}

fn sample_message(identity: &Identity) -> SignedMessage {
    SignedMessage::sign(
        Header {
            context: Context {
                task_id: [1u8; 32],
                round: 2,
                attempt: 3,
                group: 4,
            },
            sender: 5,
        },
        Body::ShareKeys(vec![
            ShareBoxEntry {
                peer: 1,
                ciphertext: vec![7u8; SHARE_CIPHERTEXT_BYTES],
            },
            ShareBoxEntry {
                peer: 2,
                ciphertext: vec![8u8; SHARE_CIPHERTEXT_BYTES],
            },
        ]),
        identity,
    )
    .unwrap()
}

const LIMITS: DecodeLimits = DecodeLimits {
    max_members: 10,
    max_dimension: 100,
};

#[test]
fn messages_round_trip_and_signatures_bind_the_header() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let identity = Identity::generate(&mut rng);
    let message = sample_message(&identity);
    let bytes = message.to_bytes().unwrap();
    let decoded = SignedMessage::from_bytes(&bytes, &LIMITS).unwrap();
    assert_eq!(decoded, message);
    decoded.verify(&identity.address()).unwrap();
    let mut moved = decoded.clone();
    moved.header.context.attempt += 1;
    assert!(moved.verify(&identity.address()).is_err());
    let mut other_sender = decoded;
    other_sender.header.sender = 6;
    assert!(other_sender.verify(&identity.address()).is_err());

    let keys = SignedMessage::sign(
        message.header,
        Body::AdvertiseKeys(AdvertiseKeys {
            mask_public_key: [3u8; 32],
            encryption_public_key: [4u8; 32],
        }),
        &identity,
    )
    .unwrap();
    let delivery =
        SignedMessage::sign(message.header, Body::KeysDelivery(vec![keys]), &identity).unwrap();
    let bytes = delivery.to_bytes().unwrap();
    assert_eq!(
        SignedMessage::from_bytes(&bytes, &LIMITS).unwrap(),
        delivery
    );
}

#[test]
fn malformed_bytes_are_refused_with_specific_errors() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let identity = Identity::generate(&mut rng);
    let bytes = sample_message(&identity).to_bytes().unwrap();

    let truncated = &bytes[..bytes.len() - 1];
    assert!(matches!(
        SignedMessage::from_bytes(truncated, &LIMITS),
        Err(MessageError::Truncated {
            field: "signature",
            ..
        })
    ));

    let mut trailing = bytes.clone();
    trailing.push(0);
    assert_eq!(
        SignedMessage::from_bytes(&trailing, &LIMITS),
        Err(MessageError::TrailingBytes(1, "message"))
    );

    let mut unknown = bytes.clone();
    unknown[0] = 42;
    assert_eq!(
        SignedMessage::from_bytes(&unknown, &LIMITS),
        Err(MessageError::UnknownKind(42))
    );

    // The box count sits right after the 57-byte header.
    let mut oversized = bytes.clone();
    oversized[57..61].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        SignedMessage::from_bytes(&oversized, &LIMITS),
        Err(MessageError::TooManyEntries {
            what: "share boxes",
            ..
        })
    ));

    let masked = SignedMessage::sign(
        sample_message(&identity).header,
        Body::MaskedInput(vec![1; 101]),
        &identity,
    )
    .unwrap();
    assert!(matches!(
        SignedMessage::from_bytes(&masked.to_bytes().unwrap(), &LIMITS),
        Err(MessageError::TooManyEntries {
            what: "masked input",
            count: 101,
            limit: 100
        })
    ));
}
