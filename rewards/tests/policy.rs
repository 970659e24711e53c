//! Payout and slashing policy: exact money, and slashing at exactly `m` of `w`.
#![allow(clippy::unwrap_used)]

use fedstake_rewards::slashing::VALIDATION_HARM_THRESHOLD;
use fedstake_rewards::{
    BasisPoints, CumulativePayouts, FlagReason, PolicyError, RoundObservation, SCORE_ONE, Score,
    SlashingPolicy, SlashingTracker, split_budget,
};
use proptest::prelude::*;

/// A 1e27 wei budget: a billion 18-decimal tokens.
const LARGE_BUDGET: u128 = 1_000_000_000_000_000_000_000_000_000;

fn scores(raw: &[u64]) -> Vec<Score> {
    raw.iter().copied().map(Score::from_raw).collect()
}

#[test]
fn splits_by_hand_computed_cases() {
    let round = split_budget(100, &scores(&[1, 1, 1]));
    assert_eq!(round.payouts, vec![33, 33, 33]);
    assert_eq!((round.paid, round.dust), (99, 1));

    let round = split_budget(1000, &scores(&[3, 1, 0]));
    assert_eq!(round.payouts, vec![750, 250, 0]);
    assert_eq!(round.dust, 0);
}

#[test]
fn all_zero_scores_pay_nothing() {
    for raw in [&[][..], &[0, 0, 0][..]] {
        let round = split_budget(LARGE_BUDGET, &scores(raw));
        assert!(round.payouts.iter().all(|&pay| pay == 0));
        assert_eq!((round.paid, round.dust), (0, LARGE_BUDGET));
    }
}

#[test]
fn exact_where_the_product_overflows_u128() {
    // R * s_i needs ~154 bits here.
    let round = split_budget(u128::MAX, &scores(&[u64::MAX, u64::MAX, 1]));
    let total = 2 * u128::from(u64::MAX) + 1;
    // floor(MAX * s / total) for s = u64::MAX, computed by hand: MAX = total * q + r.
    let (q, r) = (u128::MAX / total, u128::MAX % total);
    let big = q * u128::from(u64::MAX) + r * u128::from(u64::MAX) / total;
    assert_eq!(round.payouts, vec![big, big, q + r / total]);
    assert_eq!(round.paid + round.dust, u128::MAX);

    let round = split_budget(LARGE_BUDGET, &scores(&[SCORE_ONE, 3 * SCORE_ONE]));
    assert_eq!(round.payouts, vec![LARGE_BUDGET / 4, LARGE_BUDGET / 4 * 3]);
}

#[test]
fn scores_convert_to_fixed_point() {
    assert_eq!(Score::from_f64(1.0).unwrap().raw(), SCORE_ONE);
    assert_eq!(Score::from_f64(0.25).unwrap().raw(), SCORE_ONE / 4);
    assert_eq!(Score::from_f64(0.0).unwrap(), Score::ZERO);
    assert_eq!(Score::from_f64(4e-10).unwrap(), Score::ZERO);
    assert_eq!(Score::from_f64(6e-10).unwrap().raw(), 1);
}

#[test]
fn invalid_scores_are_refused() {
    for bad in [-1e-3, f64::NAN, f64::INFINITY, Score::MAX_F64, 1e20] {
        assert!(
            matches!(Score::from_f64(bad), Err(PolicyError::InvalidScore { .. })),
            "{bad} accepted"
        );
    }
    assert!(Score::from_f64(Score::MAX_F64 * 0.999_999).is_ok());
}

#[test]
fn cumulative_totals_add_up_across_rounds() {
    let mut totals = CumulativePayouts::new();
    totals
        .credit_round([("alice", 10), ("bob", 5), ("carol", 0)])
        .unwrap();
    totals
        .credit_round([("bob", 7), ("alice", 1), ("bob", 1)])
        .unwrap();
    assert_eq!(totals.total(&"alice"), 11);
    assert_eq!(totals.total(&"bob"), 13);
    assert_eq!(totals.total(&"carol"), 0);
    assert_eq!(totals.paid(), 24);
    assert_eq!(
        totals.iter().collect::<Vec<_>>(),
        vec![(&"alice", 11), (&"bob", 13)]
    );
}

#[test]
fn cumulative_overflow_credits_nothing() {
    let mut totals = CumulativePayouts::new();
    totals.credit_round([("alice", u128::MAX - 1)]).unwrap();
    let before = totals.clone();
    assert_eq!(
        totals.credit_round([("bob", 1), ("alice", 1)]),
        Err(PolicyError::PayoutOverflow)
    );
    assert_eq!(totals, before);
    assert_eq!(
        totals.credit_round([("bob", u128::MAX), ("bob", 1)]),
        Err(PolicyError::PayoutOverflow)
    );
    assert_eq!(totals, before);
}

fn policy(window: usize, min_flags: usize, basis_points: u16) -> SlashingPolicy {
    SlashingPolicy {
        window,
        min_flags,
        fraction: BasisPoints::new(basis_points).unwrap(),
    }
}

fn clean() -> RoundObservation {
    RoundObservation {
        update_norm: Some(1.0),
        norm_bound: 1.0,
        rejected: false,
        alignment: 0.3,
        near_duplicate_cosine: None,
        validation_harm: None,
    }
}

fn over_bound() -> RoundObservation {
    RoundObservation {
        update_norm: Some(10.0),
        ..clean()
    }
}

#[test]
fn flags_follow_the_design_rules() {
    assert!(clean().flags().is_empty());
    // Exactly at the bound, or a rounding ulp over it: not a flag.
    let at_bound = RoundObservation {
        update_norm: Some(1.0 + 1e-7),
        ..clean()
    };
    assert!(at_bound.flags().is_empty());
    assert_eq!(
        over_bound().flags(),
        vec![FlagReason::NormOverBound {
            norm: 10.0,
            bound: 1.0
        }]
    );
    // Rejection alone, or negative alignment alone, is no flag.
    let rejected_aligned = RoundObservation {
        rejected: true,
        ..clean()
    };
    assert!(rejected_aligned.flags().is_empty());
    let misaligned_kept = RoundObservation {
        alignment: -0.5,
        ..clean()
    };
    assert!(misaligned_kept.flags().is_empty());
    let rejected_misaligned = RoundObservation {
        rejected: true,
        alignment: -0.5,
        ..clean()
    };
    assert_eq!(
        rejected_misaligned.flags(),
        vec![FlagReason::RejectedMisaligned { alignment: -0.5 }]
    );
    let sybil = RoundObservation {
        near_duplicate_cosine: Some(0.999),
        ..over_bound()
    };
    assert_eq!(sybil.flags().len(), 2);
    // Validation harm counts only above the threshold and together with
    // negative alignment, rejected or not.
    let harmful_misaligned = RoundObservation {
        alignment: -0.2,
        validation_harm: Some(0.05),
        ..clean()
    };
    assert_eq!(
        harmful_misaligned.flags(),
        vec![FlagReason::HarmfulMisaligned {
            alignment: -0.2,
            harm: 0.05
        }]
    );
    let harmful_aligned = RoundObservation {
        validation_harm: Some(0.05),
        ..clean()
    };
    assert!(harmful_aligned.flags().is_empty());
    let slightly_harmful = RoundObservation {
        alignment: -0.2,
        validation_harm: Some(VALIDATION_HARM_THRESHOLD),
        ..clean()
    };
    assert!(slightly_harmful.flags().is_empty());
    let non_finite = RoundObservation {
        validation_harm: Some(f64::NAN),
        ..clean()
    };
    assert!(non_finite.validate().is_err());
}

#[test]
fn slashes_at_m_of_w_with_evidence_then_restarts() {
    let mut tracker = SlashingTracker::new(policy(4, 2, 2_500)).unwrap();
    let stake = 1_000_003;
    assert_eq!(tracker.record("eve", 1, &over_bound(), stake), Ok(None));
    assert_eq!(tracker.record("eve", 2, &clean(), stake), Ok(None));
    let slash = tracker
        .record("eve", 5, &over_bound(), stake)
        .unwrap()
        .unwrap();
    assert_eq!(slash.account, "eve");
    assert_eq!(slash.round, 5);
    assert_eq!(slash.amount, 250_000);
    assert_eq!(
        slash.evidence.iter().map(|r| r.round).collect::<Vec<_>>(),
        vec![1, 5]
    );
    // The same flags never slash twice: the window restarted.
    assert_eq!(tracker.flags_in_window(&"eve"), 0);
    assert_eq!(tracker.record("eve", 6, &over_bound(), stake), Ok(None));
    assert!(
        tracker
            .record("eve", 7, &over_bound(), stake)
            .unwrap()
            .is_some()
    );
}

#[test]
fn flags_older_than_the_window_do_not_count() {
    let mut tracker = SlashingTracker::new(policy(3, 2, 10_000)).unwrap();
    let rounds = [
        over_bound(),
        clean(),
        clean(),
        over_bound(),
        clean(),
        clean(),
        clean(),
    ];
    for (round, observation) in (0u64..).zip(&rounds) {
        assert_eq!(tracker.record(1u8, round, observation, 10), Ok(None));
    }
    // Clients are independent.
    assert_eq!(tracker.record(2u8, 0, &over_bound(), 10), Ok(None));
    assert_eq!(tracker.flags_in_window(&1), 0);
    assert_eq!(tracker.flags_in_window(&2), 1);
}

#[test]
fn refuses_bad_policies_replays_and_bad_evidence() {
    for (window, min_flags) in [(0, 0), (3, 0), (3, 4)] {
        assert_eq!(
            SlashingTracker::<u8>::new(policy(window, min_flags, 1)).err(),
            Some(PolicyError::InvalidSlashingPolicy { window, min_flags })
        );
    }
    assert_eq!(
        BasisPoints::new(10_001),
        Err(PolicyError::InvalidBasisPoints {
            basis_points: 10_001
        })
    );
    let mut tracker = SlashingTracker::new(policy(2, 1, 1)).unwrap();
    tracker.record(0u8, 4, &clean(), 1).unwrap();
    assert_eq!(
        tracker.record(0u8, 4, &over_bound(), 1),
        Err(PolicyError::RoundOutOfOrder { round: 4, last: 4 })
    );
    assert_eq!(tracker.flags_in_window(&0), 0);
    let nan_norm = RoundObservation {
        update_norm: Some(f64::NAN),
        ..clean()
    };
    assert!(matches!(
        tracker.record(0u8, 5, &nan_norm, 1),
        Err(PolicyError::InvalidObservation {
            field: "update_norm",
            ..
        })
    ));
    let bad_alignment = RoundObservation {
        alignment: 1.5,
        ..clean()
    };
    assert!(tracker.record(0u8, 5, &bad_alignment, 1).is_err());
    // The refused round 5 was not recorded.
    assert_eq!(tracker.record(0u8, 5, &clean(), 1), Ok(None));
}

#[test]
fn slash_amounts_are_exact_at_u128_extremes() {
    assert_eq!(BasisPoints::FULL.of(u128::MAX), u128::MAX);
    assert_eq!(BasisPoints::new(0).unwrap().of(u128::MAX), 0);
    assert_eq!(
        BasisPoints::new(5_000).unwrap().of(u128::MAX),
        u128::MAX / 2
    );
    // MAX = 10_000 q + r: floor(MAX * 9_999 / 10_000) = 9_999 q + floor(9_999 r / 10_000).
    let (q, r) = (u128::MAX / 10_000, u128::MAX % 10_000);
    assert_eq!(
        BasisPoints::new(9_999).unwrap().of(u128::MAX),
        9_999 * q + 9_999 * r / 10_000
    );
    assert_eq!(BasisPoints::new(1).unwrap().of(9_999), 0);
    assert_eq!(BasisPoints::new(1).unwrap().of(10_000), 1);
}

proptest! {
    #[test]
    fn payouts_and_dust_add_up_to_the_budget(
        budget in any::<u128>(),
        raw in proptest::collection::vec(any::<u64>(), 0..40),
    ) {
        let round = split_budget(budget, &scores(&raw));
        prop_assert_eq!(round.payouts.len(), raw.len());
        prop_assert_eq!(round.payouts.iter().sum::<u128>(), round.paid);
        prop_assert_eq!(round.paid.checked_add(round.dust), Some(budget));
        // Rounding loses less than one unit per contribution.
        prop_assert!(round.dust < raw.len().max(1) as u128 || raw.iter().all(|&s| s == 0));
    }

    #[test]
    fn payouts_are_monotone_in_score_and_zero_for_zero(
        budget in any::<u128>(),
        raw in proptest::collection::vec(any::<u64>(), 1..40),
    ) {
        let round = split_budget(budget, &scores(&raw));
        for (i, (&s_i, &pay_i)) in raw.iter().zip(&round.payouts).enumerate() {
            if s_i == 0 {
                prop_assert_eq!(pay_i, 0);
            }
            for (&s_j, &pay_j) in raw.iter().zip(&round.payouts).skip(i + 1) {
                if s_i <= s_j {
                    prop_assert!(pay_i <= pay_j);
                }
                if s_i == s_j {
                    prop_assert_eq!(pay_i, pay_j);
                }
            }
        }
    }

    #[test]
    fn payouts_are_proportional_within_one_unit(
        budget in 0u128..=LARGE_BUDGET,
        raw in proptest::collection::vec(0u64..=1_000 * SCORE_ONE, 1..20),
    ) {
        let round = split_budget(budget, &scores(&raw));
        let total: u128 = raw.iter().map(|&s| u128::from(s)).sum();
        prop_assume!(total > 0);
        // pay_i * total <= budget * s_i < (pay_i + 1) * total, checked in
        // 256 bits by comparing quotient and remainder.
        for (&s, &pay) in raw.iter().zip(&round.payouts) {
            let s = u128::from(s);
            let (q, r) = (budget / total, budget % total);
            // budget * s / total = q * s + r * s / total; r * s < 2^128 here.
            prop_assert_eq!(pay, q * s + r * s / total);
        }
    }

    #[test]
    fn slashing_fires_exactly_at_m_flags_of_w(
        window in 1usize..8,
        min_flags_seed in 0usize..8,
        pattern in proptest::collection::vec(any::<bool>(), 0..40),
        stake in any::<u128>(),
    ) {
        let min_flags = 1 + min_flags_seed % window;
        let policy = policy(window, min_flags, 3_333);
        let mut tracker = SlashingTracker::new(policy).unwrap();
        // Reference model: the flags since the last slash, last `window` rounds.
        let mut since_slash: Vec<bool> = Vec::new();
        for (round, &flagged) in (0u64..).zip(&pattern) {
            let observation = if flagged { over_bound() } else { clean() };
            since_slash.push(flagged);
            let recent = &since_slash[since_slash.len().saturating_sub(window)..];
            let flags = recent.iter().filter(|&&f| f).count();
            let decision = tracker.record(0u8, round, &observation, stake).unwrap();
            if flags >= min_flags {
                let slash = decision.unwrap();
                prop_assert_eq!(slash.evidence.len(), min_flags);
                prop_assert_eq!(slash.round, round);
                prop_assert!(slash.evidence.iter().all(|r| r.is_flagged()));
                prop_assert_eq!(slash.amount, policy.slash_amount(stake));
                since_slash.clear();
            } else {
                prop_assert!(decision.is_none());
            }
        }
    }

    #[test]
    fn slash_amount_is_floor_of_the_fraction(stake in any::<u128>(), bps in 0u16..=10_000) {
        let amount = BasisPoints::new(bps).unwrap().of(stake);
        let (q, r) = (stake / 10_000, stake % 10_000);
        prop_assert_eq!(amount, q * u128::from(bps) + r * u128::from(bps) / 10_000);
        prop_assert!(amount <= stake);
    }
}
