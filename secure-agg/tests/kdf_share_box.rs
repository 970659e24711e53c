//! Key derivation separates contexts; share boxes refuse tampering and wrong associated data.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use fedstake_secure_agg::kdf::{ClientPair, Context, DerivationInfo, Purpose, derive_key};
use fedstake_secure_agg::keys::KeyPair;
use fedstake_secure_agg::share_box::{ShareBoxError, TAG_BYTES, open, seal};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn context() -> Context {
    Context {
        task_id: [1u8; 32],
        round: 7,
        attempt: 0,
        group: 4,
    }
}

#[test]
fn different_contexts_give_different_keys() {
    let base = context();
    let mut other_task = base;
    other_task.task_id[31] ^= 1;
    let contexts = [
        base,
        other_task,
        Context { round: 8, ..base },
        Context { attempt: 1, ..base },
        Context { group: 5, ..base },
    ];
    let ikm = [3u8; 32];
    let mut keys = HashSet::new();
    let mut count = 0;
    for context in &contexts {
        for purpose in [
            Purpose::Mask,
            Purpose::ShareEncryption,
            Purpose::SelfMask,
            Purpose::Grouping,
        ] {
            for pair in [
                ClientPair::new(0, 1),
                ClientPair::new(0, 2),
                ClientPair::single(0),
            ] {
                keys.insert(*derive_key(&ikm, context, purpose, pair).as_bytes());
                count += 1;
            }
        }
    }
    assert_eq!(keys.len(), count);
    // Pair order does not matter; input key material does.
    assert_eq!(
        derive_key(&ikm, &base, Purpose::Mask, ClientPair::new(2, 5)),
        derive_key(&ikm, &base, Purpose::Mask, ClientPair::new(5, 2))
    );
    assert_ne!(
        derive_key(&ikm, &base, Purpose::Mask, ClientPair::new(2, 5)),
        derive_key(&[4u8; 32], &base, Purpose::Mask, ClientPair::new(2, 5))
    );
}

#[test]
fn info_encoding_is_as_documented() {
    let info = DerivationInfo {
        context: context(),
        purpose: Purpose::ShareEncryption,
        pair: ClientPair::new(9, 2),
    }
    .to_bytes();
    let mut expected = b"fedstake/secagg/v1/share-encryption".to_vec();
    expected.extend_from_slice(&[1u8; 32]);
    expected.extend_from_slice(&7u64.to_be_bytes());
    expected.extend_from_slice(&0u32.to_be_bytes());
    expected.extend_from_slice(&4u32.to_be_bytes());
    expected.extend_from_slice(&2u32.to_be_bytes());
    expected.extend_from_slice(&9u32.to_be_bytes());
    assert_eq!(info, expected);
}

#[test]
fn share_box_round_trip_and_rejections() {
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let alice = KeyPair::generate(&mut rng);
    let bob = KeyPair::generate(&mut rng);
    let alice_shared = alice.agree(&bob.public_key()).unwrap();
    let bob_shared = bob.agree(&alice.public_key()).unwrap();
    let context = context();
    let payload = b"shares of b and of the mask key".to_vec();

    let boxed = seal(&alice_shared, &context, 0, 1, &payload).unwrap();
    assert_eq!(boxed.len(), payload.len() + TAG_BYTES);
    assert_eq!(*open(&bob_shared, &context, 0, 1, &boxed).unwrap(), payload);

    let failed = Err(ShareBoxError::DecryptionFailed {
        sender: 0,
        receiver: 1,
    });
    for position in [0, payload.len() / 2, boxed.len() - 1] {
        let mut tampered = boxed.clone();
        tampered[position] ^= 0x80;
        assert_eq!(open(&bob_shared, &context, 0, 1, &tampered), failed);
    }
    assert_eq!(
        open(&bob_shared, &context, 0, 1, &boxed[..boxed.len() - 1]),
        failed
    );
    assert_eq!(open(&bob_shared, &context, 0, 1, &[]), failed);
    // Wrong associated data: another round, attempt, group, or a swapped direction.
    for other in [
        Context {
            round: 8,
            ..context
        },
        Context {
            attempt: 1,
            ..context
        },
        Context {
            group: 5,
            ..context
        },
    ] {
        assert_eq!(open(&bob_shared, &other, 0, 1, &boxed), failed);
    }
    assert_eq!(
        open(&bob_shared, &context, 1, 0, &boxed),
        Err(ShareBoxError::DecryptionFailed {
            sender: 1,
            receiver: 0
        })
    );
    // A third party's key cannot open it.
    let carol = KeyPair::generate(&mut rng);
    let carol_shared = carol.agree(&alice.public_key()).unwrap();
    assert_eq!(open(&carol_shared, &context, 0, 1, &boxed), failed);
    assert_eq!(
        seal(&alice_shared, &context, 3, 3, &payload),
        Err(ShareBoxError::SenderIsReceiver(3))
    );
}
