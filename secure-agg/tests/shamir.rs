//! Shamir sharing: any t of k shares reconstruct, t - 1 do not, bad inputs are refused.
#![allow(clippy::unwrap_used)]

use fedstake_secure_agg::shamir::{SHARE_BYTES, ShamirError, Share, reconstruct, split};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha20Rng;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_threshold_shares_reconstruct_and_fewer_do_not(
        secret in any::<[u8; 32]>(),
        share_count in 1usize..12,
        threshold_fraction in 0.0f64..1.0,
        seed in any::<u64>(),
    ) {
        let threshold = 1 + ((share_count - 1) as f64 * threshold_fraction) as usize;
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut shares = split(&secret, threshold, share_count, &mut rng).unwrap();
        prop_assert_eq!(shares.len(), share_count);
        let points: Vec<u32> = shares.iter().map(Share::x).collect();
        prop_assert_eq!(points, (1..=share_count as u32).collect::<Vec<_>>());
        shares.shuffle(&mut rng);
        let recovered = reconstruct(&shares[..threshold], threshold).unwrap();
        prop_assert_eq!(*recovered, secret);
        // Serialization round trip.
        let parsed: Vec<Share> =
            shares.iter().map(|s| Share::from_bytes(s.to_bytes().as_ref()).unwrap()).collect();
        prop_assert_eq!(*reconstruct(&parsed, threshold).unwrap(), secret);
        if threshold >= 2 {
            // t - 1 shares interpolate a polynomial of too low a degree.
            let partial = reconstruct(&shares[..threshold - 1], threshold - 1);
            prop_assert!(partial.map(|s| *s != secret).unwrap_or(true));
            prop_assert_eq!(
                reconstruct(&shares[..threshold - 1], threshold).unwrap_err(),
                ShamirError::TooFewShares { given: threshold - 1, threshold }
            );
        }
    }
}

#[test]
fn bad_parameters_are_refused() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let secret = [7u8; 32];
    assert_eq!(
        split(&secret, 0, 3, &mut rng).unwrap_err(),
        ShamirError::ZeroThreshold
    );
    assert_eq!(
        split(&secret, 4, 3, &mut rng).unwrap_err(),
        ShamirError::ThresholdAboveShareCount {
            threshold: 4,
            share_count: 3
        }
    );
    let shares = split(&secret, 2, 3, &mut rng).unwrap();
    assert_eq!(
        reconstruct(&shares, 0).unwrap_err(),
        ShamirError::ZeroThreshold
    );
    let duplicated = vec![shares[1].clone(), shares[1].clone()];
    assert_eq!(
        reconstruct(&duplicated, 2).unwrap_err(),
        ShamirError::DuplicateEvaluationPoint(2)
    );
    let mut zero_point = shares[0].to_bytes();
    zero_point[..4].copy_from_slice(&0u32.to_be_bytes());
    assert_eq!(
        Share::from_bytes(zero_point.as_ref()).unwrap_err(),
        ShamirError::ZeroEvaluationPoint
    );
    assert_eq!(
        Share::from_bytes(&[0u8; 3]).unwrap_err(),
        ShamirError::WrongShareLength(3)
    );
    let mut non_canonical = shares[0].to_bytes();
    non_canonical[4..36].copy_from_slice(&[0xff; 32]);
    assert_eq!(
        Share::from_bytes(non_canonical.as_ref()).unwrap_err(),
        ShamirError::NonCanonicalScalar
    );
    assert_eq!(SHARE_BYTES, 68);
}

#[test]
fn a_share_from_another_sharing_is_detected() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let secret = [0xabu8; 32];
    let shares = split(&secret, 3, 5, &mut rng).unwrap();
    let unrelated = split(&[0x11u8; 32], 3, 5, &mut rng).unwrap();
    // Share 1 of the right sharing with the values of share 1 of another sharing.
    let mut corrupted = shares[0].to_bytes();
    corrupted[4..].copy_from_slice(&unrelated[0].to_bytes()[4..]);
    let corrupted = Share::from_bytes(corrupted.as_ref()).unwrap();
    let set = vec![corrupted, shares[1].clone(), shares[2].clone()];
    assert_eq!(
        reconstruct(&set, 3).unwrap_err(),
        ShamirError::InvalidReconstruction
    );
}

#[test]
fn the_all_ones_secret_is_exact() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let secret = [0xffu8; 32];
    let shares = split(&secret, 4, 7, &mut rng).unwrap();
    assert_eq!(*reconstruct(&shares[3..], 4).unwrap(), secret);
}
