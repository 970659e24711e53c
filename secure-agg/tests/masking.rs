//! Pairwise masks from real X25519 agreements cancel exactly; self masks are removed.
#![allow(clippy::unwrap_used)]

use fedstake_secure_agg::kdf::{ClientPair, Context, Purpose, self_mask_seed};
use fedstake_secure_agg::keys::KeyPair;
use fedstake_secure_agg::prg::{
    MaskSign, SignedMask, add_mask, apply_masks, mask_vector, sub_mask,
};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

fn context() -> Context {
    Context {
        task_id: [9u8; 32],
        round: 3,
        attempt: 1,
        group: 2,
    }
}

fn wrapping_sum<'a>(vectors: impl Iterator<Item = &'a Vec<u32>>, dimension: usize) -> Vec<u32> {
    let mut sum = vec![0u32; dimension];
    for vector in vectors {
        for (s, v) in sum.iter_mut().zip(vector) {
            *s = s.wrapping_add(*v);
        }
    }
    sum
}

#[test]
fn pairwise_and_self_masks_cancel_in_the_sum() {
    let context = context();
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    for clients in 3u32..=10 {
        // Crosses a keystream buffer boundary for some sizes.
        let dimension = rng.random_range(1..40_000);
        let keys: Vec<KeyPair> = (0..clients).map(|_| KeyPair::generate(&mut rng)).collect();
        let inputs: Vec<Vec<u32>> = (0..clients)
            .map(|_| (0..dimension).map(|_| rng.next_u32()).collect())
            .collect();
        let self_secrets: Vec<[u8; 32]> = (0..clients).map(|_| rng.random()).collect();
        let mut masked = Vec::new();
        for i in 0..clients {
            let mut seeds = Vec::new();
            for j in (0..clients).filter(|&j| j != i) {
                let mine = keys[i as usize]
                    .agree(&keys[j as usize].public_key())
                    .unwrap();
                let theirs = keys[j as usize]
                    .agree(&keys[i as usize].public_key())
                    .unwrap();
                assert_eq!(mine.as_bytes(), theirs.as_bytes());
                let pair = ClientPair::new(i, j);
                let seed = mine.derive(&context, Purpose::Mask, pair);
                assert_eq!(seed, theirs.derive(&context, Purpose::Mask, pair));
                let sign = if j > i {
                    MaskSign::Add
                } else {
                    MaskSign::Subtract
                };
                seeds.push((seed, sign));
            }
            let self_seed = self_mask_seed(&self_secrets[i as usize], &context, i);
            let mut masks: Vec<SignedMask<'_>> = seeds
                .iter()
                .map(|(seed, sign)| SignedMask {
                    seed: seed.as_bytes(),
                    sign: *sign,
                })
                .collect();
            masks.push(SignedMask {
                seed: self_seed.as_bytes(),
                sign: MaskSign::Add,
            });
            let mut y = inputs[i as usize].clone();
            apply_masks(&mut y, &masks).unwrap();
            assert_ne!(y, inputs[i as usize]);
            masked.push(y);
        }
        let mut sum = wrapping_sum(masked.iter(), dimension);
        // The server reconstructs every b_i and removes the self masks.
        for i in 0..clients {
            sub_mask(
                &mut sum,
                self_mask_seed(&self_secrets[i as usize], &context, i).as_bytes(),
            )
            .unwrap();
        }
        assert_eq!(
            sum,
            wrapping_sum(inputs.iter(), dimension),
            "{clients} clients"
        );
    }
}

#[test]
fn add_then_sub_is_identity_and_matches_mask_vector() {
    let seed = [5u8; 32];
    let original: Vec<u32> = (0..70_000).collect();
    let mut values = original.clone();
    add_mask(&mut values, &seed).unwrap();
    let mask = mask_vector(&seed, original.len()).unwrap();
    for ((v, o), m) in values.iter().zip(&original).zip(&mask) {
        assert_eq!(*v, o.wrapping_add(*m));
    }
    sub_mask(&mut values, &seed).unwrap();
    assert_eq!(values, original);
    // A prefix of the stream does not depend on the length.
    assert_eq!(mask_vector(&seed, 10).unwrap(), mask[..10]);
    assert!(mask_vector(&seed, 0).unwrap().is_empty());
}

#[test]
fn mask_is_the_chacha20_keystream() {
    use chacha20::ChaCha20;
    use chacha20::cipher::{KeyIvInit, StreamCipher};
    let seed = [0x42u8; 32];
    let mut bytes = vec![0u8; 400];
    ChaCha20::new(&seed.into(), &[0u8; 12].into()).apply_keystream(&mut bytes);
    let expected: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        .collect();
    assert_eq!(mask_vector(&seed, 100).unwrap(), expected);
}

#[test]
fn small_order_peer_keys_are_refused() {
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let keys = KeyPair::generate(&mut rng);
    assert!(keys.agree(&[0u8; 32]).is_err());
}
