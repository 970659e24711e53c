//! Every aggregation rule against hand-computed cases, with its verdicts and errors.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use fedstake_aggregation::spec::{AggregationRule, AggregationSpec, Bucketing};
use fedstake_aggregation::{
    Aggregate, AggregationError, Aggregator, Reason, RoundContext, Rule, Verdict,
};
use ndarray::{Array2, array};

fn run(rule: Rule, updates: &Array2<f32>, weights: &[f32]) -> Result<Aggregate, AggregationError> {
    run_with(rule, None, updates, weights, &RoundContext::default())
}

fn run_with(
    rule: Rule,
    bucket_size: Option<usize>,
    updates: &Array2<f32>,
    weights: &[f32],
    context: &RoundContext,
) -> Result<Aggregate, AggregationError> {
    Aggregator::new(rule, bucket_size)?.aggregate(updates.view(), weights, context)
}

fn ones(n: usize) -> Vec<f32> {
    vec![1.0; n]
}

fn assert_close(actual: &[f32], expected: &[f32], tolerance: f32) {
    assert_eq!(actual.len(), expected.len());
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= tolerance,
            "coordinate {i}: {a} != {e} (+-{tolerance})"
        );
    }
}

fn trimmed(fraction: f32, weight: f32) -> Verdict {
    Verdict {
        weight,
        reason: Reason::Trimmed { fraction },
    }
}

fn not_selected(score: f32) -> Verdict {
    Verdict {
        weight: 0.0,
        reason: Reason::NotSelected { score },
    }
}

/// Four honest inputs that take turns being the smallest, and an outlier at
/// 100 everywhere.
fn rotating_with_outlier() -> Array2<f32> {
    array![
        [1.0, 2.0, 3.0, 4.0],
        [2.0, 3.0, 4.0, 1.0],
        [3.0, 4.0, 1.0, 2.0],
        [4.0, 1.0, 2.0, 3.0],
        [100.0, 100.0, 100.0, 100.0],
    ]
}

// ---------------------------------------------------------------- inputs

#[test]
fn non_finite_values_are_rejected_with_their_position() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let updates = array![[0.0, 1.0], [2.0, bad], [3.0, 4.0]];
        let trimmed = Rule::TrimmedMean { trim_fraction: 0.2 };
        for rule in [Rule::Median, trimmed, Rule::Krum { f: 0 }, Rule::FlTrust] {
            assert_eq!(
                run(rule, &updates, &ones(3)),
                Err(AggregationError::NonFinite {
                    input: 1,
                    coordinate: 1
                })
            );
        }
    }
}

#[test]
fn the_first_non_finite_value_of_a_long_update_is_named() {
    let mut updates = Array2::<f32>::zeros((3, 100_000));
    updates[[2, 77_777]] = f32::NAN;
    updates[[1, 99_999]] = f32::INFINITY;
    // The coordinate-wise rules find it in their own pass; the error is the
    // same.
    let trimmed = Rule::TrimmedMean { trim_fraction: 0.1 };
    for rule in [Rule::FedAvg, Rule::Median, trimmed] {
        assert_eq!(
            run(rule, &updates, &ones(3)),
            Err(AggregationError::NonFinite {
                input: 1,
                coordinate: 99_999
            })
        );
    }
}

#[test]
fn invalid_weights_and_dimensions_are_rejected() {
    let updates = array![[1.0f32, 2.0], [3.0, 4.0]];
    assert_eq!(
        run(Rule::Median, &updates, &[1.0]),
        Err(AggregationError::WeightCount {
            updates: 2,
            weights: 1
        })
    );
    assert_eq!(
        run(Rule::Median, &updates, &[0.0, 0.0]),
        Err(AggregationError::ZeroTotalWeight)
    );
    let root = array![1.0f32, 2.0, 3.0];
    let context = RoundContext {
        root_update: Some(root.view()),
        ..RoundContext::default()
    };
    assert_eq!(
        run_with(Rule::FlTrust, None, &updates, &ones(2), &context),
        Err(AggregationError::DimensionMismatch {
            what: "root update",
            expected: 2,
            found: 3
        })
    );
}

#[test]
fn strided_views_give_the_same_result_as_contiguous_ones() {
    let columns = rotating_with_outlier()
        .reversed_axes()
        .as_standard_layout()
        .to_owned();
    let strided = columns.t();
    let contiguous = rotating_with_outlier();
    for rule in [
        Rule::Median,
        Rule::TrimmedMean { trim_fraction: 0.2 },
        Rule::Krum { f: 1 },
        Rule::GeometricMedian {
            max_iters: 20,
            tolerance: 1e-6,
            smoothing: 1e-6,
        },
    ] {
        let aggregator = Aggregator::new(rule, None).unwrap();
        let context = RoundContext::default();
        assert_eq!(
            aggregator.aggregate(strided, &ones(5), &context),
            aggregator.aggregate(contiguous.view(), &ones(5), &context),
            "{rule:?}"
        );
    }
}

// ---------------------------------------------------------------- fedavg, norm bounding

#[test]
fn fedavg_is_the_weighted_mean_and_keeps_everyone() {
    let updates = array![[1.0f32, 2.0, -3.0], [3.0, 6.0, 1.0]];
    let result = run(Rule::FedAvg, &updates, &[1.0, 3.0]).unwrap();
    assert_eq!(result.update, array![2.5f32, 5.0, 0.0]);
    assert_eq!(result.verdicts, vec![Verdict::KEPT; 2]);
}

#[test]
fn norm_bounding_scales_long_inputs_down_and_says_so() {
    // Norms 5 and 0.5; bound 1 scales the first by 1/5.
    let updates = array![[3.0f32, 4.0], [0.3, 0.4]];
    let result = run(Rule::NormBounding { bound: 1.0 }, &updates, &[1.0, 1.0]).unwrap();
    assert_close(result.update.as_slice().unwrap(), &[0.45, 0.6], 1e-6);
    assert!((result.verdicts[0].weight - 0.2).abs() < 1e-6);
    assert_eq!(
        result.verdicts[0].reason,
        Reason::Clipped {
            norm: 5.0,
            bound: 1.0
        }
    );
    assert_eq!(result.verdicts[1], Verdict::KEPT);
}

// ---------------------------------------------------------------- median

#[test]
fn median_of_an_odd_number_of_inputs_takes_the_middle_value() {
    let updates = array![[3.0f32, 10.0], [1.0, 30.0], [2.0, 20.0]];
    let result = run(Rule::Median, &updates, &ones(3)).unwrap();
    assert_eq!(result.update, array![2.0f32, 20.0]);
    // Below 4 inputs the central half is everything: nobody is trimmed.
    assert_eq!(result.verdicts, vec![Verdict::KEPT; 3]);
}

#[test]
fn median_of_an_even_number_of_inputs_averages_the_two_middle_values() {
    let updates = array![[1.0f32, 4.0], [2.0, 3.0], [3.0, 2.0], [10.0, 1.0]];
    let result = run(Rule::Median, &updates, &ones(4)).unwrap();
    assert_eq!(result.update, array![2.5f32, 2.5]);
    // n = 4: the lowest and highest rank of each coordinate are outside the
    // central half. Inputs 0 and 3 are always there: fraction 1 > 5/6.
    assert_eq!(
        result.verdicts,
        vec![
            trimmed(1.0, 0.0),
            Verdict::KEPT,
            Verdict::KEPT,
            trimmed(1.0, 0.0)
        ]
    );
}

#[test]
fn median_rejects_an_outlier_and_says_why() {
    let result = run(Rule::Median, &rotating_with_outlier(), &ones(5)).unwrap();
    assert_eq!(result.update, array![3.0f32, 3.0, 3.0, 3.0]);
    // k = floor(5/4) = 1: each honest input is the lowest in one of four
    // coordinates; the outlier is the highest in all. Threshold (1 + 2/5)/2.
    let mut expected = vec![trimmed(0.25, 0.75); 4];
    expected.push(trimmed(1.0, 0.0));
    assert_eq!(result.verdicts, expected);
    assert!(result.verdicts[4].is_rejected());
    assert_eq!(
        result.verdicts[4].reason.to_string(),
        "trimmed in 100.0% of coordinates"
    );
}

#[test]
fn median_ties_share_the_cut() {
    // Sorted 1, 1, 1, 5: one of the three 1s is below the central half, so
    // each carries a third of that; the 5 is always above it.
    let updates = array![[1.0f32], [1.0], [1.0], [5.0]];
    let result = run(Rule::Median, &updates, &ones(4)).unwrap();
    assert_eq!(result.update, array![1.0f32]);
    let third = trimmed(1.0 / 3.0, 2.0 / 3.0);
    assert_eq!(
        result.verdicts,
        vec![third, third, third, trimmed(1.0, 0.0)]
    );
}

#[test]
fn median_of_duplicates_is_the_duplicated_value() {
    let updates = array![
        [0.5f32, -2.0],
        [0.5, -2.0],
        [7.0, 9.0],
        [0.5, -2.0],
        [-4.0, 3.0]
    ];
    let result = run(Rule::Median, &updates, &ones(5)).unwrap();
    assert_eq!(result.update, array![0.5f32, -2.0]);
}

#[test]
fn median_and_trimmed_mean_ignore_weights() {
    let updates = rotating_with_outlier();
    for rule in [Rule::Median, Rule::TrimmedMean { trim_fraction: 0.2 }] {
        assert_eq!(
            run(rule, &updates, &ones(5)).unwrap(),
            run(rule, &updates, &[5.0, 0.0, 1.0, 2.0, 9.0]).unwrap()
        );
    }
}

// ---------------------------------------------------------------- trimmed mean

#[test]
fn trimmed_mean_drops_the_extremes_of_each_coordinate() {
    let result = run(
        Rule::TrimmedMean { trim_fraction: 0.2 },
        &rotating_with_outlier(),
        &ones(5),
    )
    .unwrap();
    // Each coordinate keeps 2, 3, 4.
    assert_eq!(result.update, array![3.0f32, 3.0, 3.0, 3.0]);
    let mut expected = vec![trimmed(0.25, 0.75); 4];
    expected.push(trimmed(1.0, 0.0));
    assert_eq!(result.verdicts, expected);
}

#[test]
fn trimmed_mean_trims_floor_of_fraction_times_n() {
    // 20 inputs valued i^2; trim 0.35 drops 7 at each end (not 6: 0.35 is
    // slightly below 0.35 in f32) and keeps 7^2..=12^2.
    let updates = Array2::from_shape_fn((20, 1), |(i, _)| (i * i) as f32);
    let result = run(
        Rule::TrimmedMean {
            trim_fraction: 0.35,
        },
        &updates,
        &ones(20),
    )
    .unwrap();
    assert_close(result.update.as_slice().unwrap(), &[559.0 / 6.0], 1e-4);
    // One coordinate: trimmed inputs are trimmed everywhere and rejected.
    for (i, verdict) in result.verdicts.iter().enumerate() {
        let kept = (7..13).contains(&i);
        assert_eq!(
            *verdict,
            if kept {
                Verdict::KEPT
            } else {
                trimmed(1.0, 0.0)
            },
            "input {i}"
        );
    }
    // Fewer than 1/trim inputs: nothing to trim, the plain mean.
    let few = array![[1.0f32], [2.0], [6.0]];
    let result = run(Rule::TrimmedMean { trim_fraction: 0.3 }, &few, &ones(3)).unwrap();
    assert_eq!(result.update, array![3.0f32]);
    assert_eq!(result.verdicts, vec![Verdict::KEPT; 3]);
}

#[test]
fn trimmed_mean_of_equal_values_charges_everyone_alike() {
    // Every value is 2: the two trimmed values are shared by all five inputs,
    // 2/5 each, the average rate, so nobody is rejected.
    let updates = Array2::from_elem((5, 3), 2.0f32);
    let result = run(Rule::TrimmedMean { trim_fraction: 0.2 }, &updates, &ones(5)).unwrap();
    assert_eq!(result.update, array![2.0f32, 2.0, 2.0]);
    assert_eq!(result.verdicts, vec![trimmed(0.4, 0.6); 5]);
}

#[test]
fn trimmed_mean_parameters_are_checked() {
    for trim_fraction in [-0.1f32, 0.5, 0.7, f32::NAN] {
        assert!(matches!(
            Aggregator::new(Rule::TrimmedMean { trim_fraction }, None),
            Err(AggregationError::InvalidParameter {
                rule: "trimmed-mean",
                ..
            })
        ));
    }
}

// ---------------------------------------------------------------- krum, multi-krum, bulyan

/// 0, 1, 2, 3 and an outlier at 100.
fn line_with_outlier() -> Array2<f32> {
    array![[0.0f32], [1.0], [2.0], [3.0], [100.0]]
}

#[test]
fn krum_selects_the_input_closest_to_its_neighbours() {
    // f = 1: scores are the sums of the 2 smallest squared distances:
    // 0 -> 1 + 4, 1 -> 1 + 1, 2 -> 1 + 1, 3 -> 1 + 4, 100 -> 97^2 + 98^2.
    // 1 and 2 tie; 2 is closer to all the others (9610 < 9807).
    let result = run(Rule::Krum { f: 1 }, &line_with_outlier(), &ones(5)).unwrap();
    assert_eq!(result.update, array![2.0f32]);
    assert_eq!(
        result.verdicts,
        vec![
            not_selected(5.0),
            not_selected(2.0),
            Verdict::KEPT,
            not_selected(5.0),
            not_selected(19013.0)
        ]
    );
    assert_eq!(
        result.verdicts[4].reason.to_string(),
        "not selected (score 19013.0000)"
    );
}

#[test]
fn krum_does_not_depend_on_input_order_even_with_tied_scores() {
    let forward = run(Rule::Krum { f: 1 }, &line_with_outlier(), &ones(5)).unwrap();
    let reversed = line_with_outlier().slice(ndarray::s![..;-1, ..]).to_owned();
    let backward = run(Rule::Krum { f: 1 }, &reversed, &ones(5)).unwrap();
    assert_eq!(forward.update, backward.update);
    let mut verdicts = backward.verdicts;
    verdicts.reverse();
    assert_eq!(forward.verdicts, verdicts);
}

#[test]
fn krum_selects_one_of_duplicates() {
    let updates = array![
        [1.0f32, 1.0],
        [1.0, 1.0],
        [5.0, -5.0],
        [1.0, 1.0],
        [-9.0, 9.0]
    ];
    let result = run(Rule::Krum { f: 1 }, &updates, &ones(5)).unwrap();
    assert_eq!(result.update, array![1.0f32, 1.0]);
    // Identical inputs tie on everything; the first is selected.
    assert_eq!(result.verdicts[0], Verdict::KEPT);
    assert!(result.verdicts[1..].iter().all(Verdict::is_rejected));
}

#[test]
fn multi_krum_averages_the_best_inputs_with_their_weights() {
    // Best: 2 and 1 (score 2), then 3 before 0 (both 5; 3 is closer to all).
    let weights = [1.0, 3.0, 1.0, 1.0, 1.0];
    let result = run(
        Rule::MultiKrum { f: 1, m: 3 },
        &line_with_outlier(),
        &weights,
    )
    .unwrap();
    assert_close(
        result.update.as_slice().unwrap(),
        &[(3.0 + 2.0 + 3.0) / 5.0],
        1e-6,
    );
    assert_eq!(
        result.verdicts,
        vec![
            not_selected(5.0),
            Verdict::KEPT,
            Verdict::KEPT,
            Verdict::KEPT,
            not_selected(19013.0)
        ]
    );
}

#[test]
fn krum_family_needs_enough_inputs() {
    let updates = line_with_outlier();
    let error = run(Rule::Krum { f: 2 }, &updates, &ones(5)).unwrap_err();
    assert_eq!(
        error,
        AggregationError::TooFewInputs {
            rule: "krum",
            n: 5,
            requirement: "n > 2f + 2 = 6".into()
        }
    );
    assert_eq!(error.to_string(), "krum needs n > 2f + 2 = 6, got n = 5");
    assert_eq!(
        run(Rule::MultiKrum { f: 1, m: 5 }, &updates, &ones(5)).unwrap_err(),
        AggregationError::TooFewInputs {
            rule: "multi-krum",
            n: 5,
            requirement: "n >= m + f = 6".into()
        }
    );
    assert_eq!(
        run(
            Rule::Bulyan { f: 1 },
            &updates.slice(ndarray::s![..4, ..]).to_owned(),
            &ones(4)
        )
        .unwrap_err(),
        AggregationError::TooFewInputs {
            rule: "bulyan",
            n: 4,
            requirement: "n >= 4f + 3 = 7".into()
        }
    );
    assert!(matches!(
        Aggregator::new(Rule::MultiKrum { f: 0, m: 0 }, None),
        Err(AggregationError::InvalidParameter {
            rule: "multi-krum",
            ..
        })
    ));
}

#[test]
fn multi_krum_fails_when_every_selected_input_has_zero_weight() {
    let weights = [1.0, 0.0, 0.0, 1.0, 1.0];
    assert_eq!(
        run(
            Rule::MultiKrum { f: 1, m: 2 },
            &line_with_outlier(),
            &weights
        ),
        Err(AggregationError::ZeroTotalWeight)
    );
}

#[test]
fn bulyan_selects_by_repeated_krum_then_trims_around_the_median() {
    // f = 1, n = 7: five inputs chosen (0..=4 beat 50 and -60), then the
    // trimmed mean of those drops the lowest and highest: mean(1, 2, 3).
    let updates = array![[0.0f32], [1.0], [2.0], [3.0], [4.0], [50.0], [-60.0]];
    let result = run(Rule::Bulyan { f: 1 }, &updates, &ones(7)).unwrap();
    assert_eq!(result.update, array![2.0f32]);
    // Krum scores among all 7 (4 neighbours): 50 -> 46^2+47^2+48^2+49^2,
    // -60 -> 60^2+61^2+62^2+63^2.
    assert_eq!(
        result.verdicts,
        vec![
            trimmed(1.0, 0.0),
            Verdict::KEPT,
            Verdict::KEPT,
            Verdict::KEPT,
            trimmed(1.0, 0.0),
            not_selected(9030.0),
            not_selected(15134.0)
        ]
    );
}

// ---------------------------------------------------------------- geometric median

#[test]
fn geometric_median_of_symmetric_points_is_their_center() {
    let updates = array![[1.0f32, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]];
    let rule = Rule::GeometricMedian {
        max_iters: 50,
        tolerance: 1e-7,
        smoothing: 1e-6,
    };
    let result = run(rule, &updates, &ones(4)).unwrap();
    assert_close(result.update.as_slice().unwrap(), &[0.0, 0.0], 1e-6);
    // All at the same distance: the same Weiszfeld weight.
    for verdict in &result.verdicts {
        assert!((verdict.weight - 1.0).abs() < 1e-5, "{verdict:?}");
        assert!(matches!(verdict.reason, Reason::Reweighted { .. }));
    }
}

#[test]
fn geometric_median_resists_an_outlier_and_down_weights_it() {
    // On a line the geometric median is the median: 2, where the mean is 21.
    let updates = array![[0.0f32], [1.0], [2.0], [3.0], [100.0]];
    let rule = Rule::GeometricMedian {
        max_iters: 500,
        tolerance: 1e-9,
        smoothing: 1e-6,
    };
    let result = run(rule, &updates, &ones(5)).unwrap();
    assert_close(result.update.as_slice().unwrap(), &[2.0], 1e-3);
    let weights: Vec<f32> = result.verdicts.iter().map(|v| v.weight).collect();
    assert_eq!(weights[2], 1.0);
    assert!(weights[4] < weights[0] && weights[4] > 0.0, "{weights:?}");
    assert!(result.verdicts.iter().all(|v| !v.is_rejected()));
}

#[test]
fn geometric_median_uses_the_nominal_weights() {
    // Weight 3 at 0 against 1 + 1 at 10: the weighted geometric median is 0.
    let updates = array![[0.0f32], [10.0], [10.0]];
    let rule = Rule::GeometricMedian {
        max_iters: 500,
        tolerance: 1e-9,
        smoothing: 1e-6,
    };
    let result = run(rule, &updates, &[3.0, 1.0, 1.0]).unwrap();
    assert_close(result.update.as_slice().unwrap(), &[0.0], 1e-3);
}

// ---------------------------------------------------------------- centered clipping

#[test]
fn centered_clipping_clips_differences_to_the_radius() {
    // From zero: the first input (norm 5) is clipped to 1/5 of itself.
    let updates = array![[3.0f32, 4.0], [0.3, 0.4]];
    let rule = Rule::CenteredClipping {
        radius: 1.0,
        iterations: 1,
    };
    let result = run(rule, &updates, &[1.0, 1.0]).unwrap();
    assert_close(result.update.as_slice().unwrap(), &[0.45, 0.6], 1e-6);
    assert!((result.verdicts[0].weight - 0.2).abs() < 1e-6);
    assert_eq!(
        result.verdicts[0].reason,
        Reason::Clipped {
            norm: 5.0,
            bound: 1.0
        }
    );
    assert_eq!(result.verdicts[1], Verdict::KEPT);
}

#[test]
fn centered_clipping_starts_from_the_previous_aggregate() {
    // Centered at (3, 4): the first input is at the center, the second 4.5
    // away and clipped to 1/4.5: v = (3, 4) + (0 + (-0.6, -0.8)) / 2.
    let updates = array![[3.0f32, 4.0], [0.3, 0.4]];
    let previous = array![3.0f32, 4.0];
    let context = RoundContext {
        previous_aggregate: Some(previous.view()),
        ..RoundContext::default()
    };
    let rule = Rule::CenteredClipping {
        radius: 1.0,
        iterations: 1,
    };
    let result = run_with(rule, None, &updates, &[1.0, 1.0], &context).unwrap();
    assert_close(result.update.as_slice().unwrap(), &[2.7, 3.6], 1e-6);
    assert_eq!(result.verdicts[0], Verdict::KEPT);
    assert!((result.verdicts[1].weight - 1.0 / 4.5).abs() < 1e-6);
}

#[test]
fn centered_clipping_iterations_move_toward_the_inliers() {
    let updates = array![[1.0f32], [1.2], [0.8], [1.0], [50.0]];
    let rule = |iterations| Rule::CenteredClipping {
        radius: 0.5,
        iterations,
    };
    let one = run(rule(1), &updates, &ones(5)).unwrap();
    let many = run(rule(30), &updates, &ones(5)).unwrap();
    // Each step moves at most the radius: one step from 0 reaches 0.5; many
    // settle near the inliers (the outlier pulls by at most 0.5 / 5).
    assert_close(one.update.as_slice().unwrap(), &[0.5], 1e-6);
    assert!((many.update[0] - 1.0).abs() < 0.15, "{}", many.update[0]);
    assert!(many.verdicts[4].weight < 0.02);
    assert_eq!(many.verdicts[0], Verdict::KEPT);
}

// ---------------------------------------------------------------- fltrust

#[test]
fn fltrust_weighs_rescaled_inputs_by_their_cosine_to_the_root_update() {
    let updates = array![[2.0f32, 0.0], [0.0, 3.0], [-1.0, 0.0], [1.0, 1.0]];
    let root = array![1.0f32, 0.0];
    let context = RoundContext {
        root_update: Some(root.view()),
        ..RoundContext::default()
    };
    // Trust 1, 0, 0, 1/sqrt 2; rescaled to norm 1: (1, 0) and (1, 1)/sqrt 2.
    // Nominal weights are ignored.
    let result = run_with(
        Rule::FlTrust,
        None,
        &updates,
        &[1.0, 5.0, 5.0, 9.0],
        &context,
    )
    .unwrap();
    let s = std::f32::consts::FRAC_1_SQRT_2;
    assert_close(
        result.update.as_slice().unwrap(),
        &[1.5 / (1.0 + s), 0.5 / (1.0 + s)],
        1e-6,
    );
    let cosines: Vec<f32> = result
        .verdicts
        .iter()
        .map(|v| match v.reason {
            Reason::Trust { cosine } => cosine,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_close(&cosines, &[1.0, 0.0, -1.0, s], 1e-6);
    let weights: Vec<f32> = result.verdicts.iter().map(|v| v.weight).collect();
    assert_close(&weights, &[1.0, 0.0, 0.0, s], 1e-6);
}

#[test]
fn fltrust_without_trust_changes_nothing_and_needs_a_root_update() {
    let updates = array![[-1.0f32, 0.0], [0.0, 2.0]];
    let root = array![1.0f32, 0.0];
    let context = RoundContext {
        root_update: Some(root.view()),
        ..RoundContext::default()
    };
    let result = run_with(Rule::FlTrust, None, &updates, &ones(2), &context).unwrap();
    assert_eq!(result.update, array![0.0f32, 0.0]);
    assert!(result.verdicts.iter().all(Verdict::is_rejected));
    assert_eq!(
        run(Rule::FlTrust, &updates, &ones(2)),
        Err(AggregationError::MissingRootUpdate)
    );
}

// ---------------------------------------------------------------- bucketing

#[test]
fn bucketing_gives_each_input_its_bucket_verdict() {
    // Eight inputs in buckets of two; the outlier drags its bucket mean away
    // and Krum (f = 0) picks one of the other three bucket means.
    let mut updates = Array2::from_shape_fn((8, 3), |(i, j)| ((i * 3 + j) % 5) as f32 * 0.01);
    updates.row_mut(5).fill(1000.0);
    let context = RoundContext {
        seed: 42,
        ..RoundContext::default()
    };
    let result = run_with(Rule::Krum { f: 0 }, Some(2), &updates, &ones(8), &context).unwrap();
    let kept: Vec<usize> = (0..8)
        .filter(|&i| !result.verdicts[i].is_rejected())
        .collect();
    assert_eq!(kept.len(), 2, "{:?}", result.verdicts);
    let outlier_bucket: Vec<usize> = (0..8)
        .filter(|&i| result.verdicts[i] == result.verdicts[5])
        .collect();
    assert_eq!(outlier_bucket.len(), 2);
    // The aggregate is the mean of the selected bucket.
    let mean = (&updates.row(kept[0]) + &updates.row(kept[1])) / 2.0;
    assert_eq!(result.update, mean);
    // Reproducible from the seed.
    assert_eq!(
        run_with(Rule::Krum { f: 0 }, Some(2), &updates, &ones(8), &context).unwrap(),
        result
    );
}

#[test]
fn bucketing_with_one_bucket_is_the_weighted_mean() {
    let updates = array![[1.0f32, 2.0], [3.0, 6.0], [5.0, -4.0]];
    let weights = [1.0, 2.0, 1.0];
    let bucketed = run_with(
        Rule::Median,
        Some(10),
        &updates,
        &weights,
        &RoundContext::default(),
    )
    .unwrap();
    let mean = run(Rule::FedAvg, &updates, &weights).unwrap();
    assert_close(
        bucketed.update.as_slice().unwrap(),
        mean.update.as_slice().unwrap(),
        1e-6,
    );
    assert_eq!(bucketed.verdicts, vec![Verdict::KEPT; 3]);
}

#[test]
fn bucketing_errors_count_buckets_as_inputs() {
    let updates = Array2::from_shape_fn((8, 2), |(i, j)| (i + j) as f32);
    let result = run_with(
        Rule::Krum { f: 1 },
        Some(2),
        &updates,
        &ones(8),
        &RoundContext::default(),
    );
    assert_eq!(
        result,
        Err(AggregationError::TooFewInputs {
            rule: "krum",
            n: 4,
            requirement: "n > 2f + 2 = 4".into()
        })
    );
    assert!(matches!(
        Aggregator::new(Rule::Median, Some(0)),
        Err(AggregationError::InvalidParameter {
            rule: "bucketing",
            ..
        })
    ));
}

// ---------------------------------------------------------------- task spec

#[test]
fn aggregators_are_built_from_the_task_spec() {
    let spec = AggregationSpec {
        rule: AggregationRule::MultiKrum { f: 2, m: 5 },
        bucketing: Some(Bucketing { size: 3 }),
    };
    let aggregator = Aggregator::try_from(&spec).unwrap();
    assert_eq!(*aggregator.rule(), Rule::MultiKrum { f: 2, m: 5 });
    assert_eq!(aggregator.bucket_size(), Some(3));
    assert_eq!(aggregator.to_string(), "multi-krum(f=2,m=5)+bucketing(3)");

    let spec = AggregationSpec {
        rule: AggregationRule::GeometricMedian {
            max_iters: 100,
            tolerance: 1e-6,
            smoothing: 1e-6,
        },
        bucketing: None,
    };
    assert_eq!(
        *Aggregator::try_from(&spec).unwrap().rule(),
        Rule::GeometricMedian {
            max_iters: 100,
            tolerance: 1e-6,
            smoothing: 1e-6
        }
    );

    let spec = AggregationSpec {
        rule: AggregationRule::TrimmedMean { trim_fraction: 0.6 },
        bucketing: None,
    };
    assert!(matches!(
        Aggregator::try_from(&spec),
        Err(AggregationError::InvalidParameter {
            rule: "trimmed-mean",
            ..
        })
    ));
}
