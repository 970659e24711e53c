//! Properties of the aggregation rules on random inputs (proptest).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use fedstake_aggregation::{
    Aggregate, AggregationError, Aggregator, Reason, RoundContext, Rule, Verdict,
};
use ndarray::{Array1, Array2, Axis};
use proptest::prelude::*;

/// `n` updates of dimension `d` with positive weights.
#[derive(Debug, Clone)]
struct Round {
    updates: Array2<f32>,
    weights: Vec<f32>,
    root: Array1<f32>,
}

impl Round {
    fn run(&self, rule: Rule) -> Result<Aggregate, AggregationError> {
        let context = RoundContext {
            root_update: Some(self.root.view()),
            ..RoundContext::default()
        };
        Aggregator::new(rule, None)?.aggregate(self.updates.view(), &self.weights, &context)
    }

    /// The geometric median's objective `sum_i w_i ||z - u_i||` at `z`.
    fn objective(&self, z: &Array1<f32>) -> f64 {
        self.updates
            .rows()
            .into_iter()
            .zip(&self.weights)
            .map(|(row, &w)| {
                let squared: f64 = row
                    .iter()
                    .zip(z)
                    .map(|(&u, &z)| (f64::from(u) - f64::from(z)).powi(2))
                    .sum();
                f64::from(w) * squared.sqrt()
            })
            .sum()
    }

    fn permuted(&self, order: &[usize]) -> Round {
        Round {
            updates: self.updates.select(Axis(0), order),
            weights: order.iter().map(|&i| self.weights[i]).collect(),
            root: self.root.clone(),
        }
    }
}

fn round(
    inputs: std::ops::RangeInclusive<usize>,
    max_d: usize,
    values: impl Strategy<Value = f32> + Clone,
) -> impl Strategy<Value = Round> {
    (inputs, 1..=max_d).prop_flat_map(move |(n, d)| {
        (
            proptest::collection::vec(values.clone(), n * d),
            proptest::collection::vec(0.1f32..5.0, n),
            proptest::collection::vec(values.clone(), d),
        )
            .prop_map(move |(values, weights, root)| Round {
                updates: Array2::from_shape_vec((n, d), values).unwrap(),
                weights,
                root: Array1::from(root),
            })
    })
}

/// A round and a permutation of its inputs.
fn permuted_round() -> impl Strategy<Value = (Round, Vec<usize>)> {
    round(1..=9, 6, -10.0f32..10.0).prop_flat_map(|round| {
        let n = round.updates.nrows();
        (
            Just(round),
            Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
        )
    })
}

/// Every deterministic rule, with parameters that suit `n` inputs where one
/// exists (the rest must fail the same way in any order).
fn deterministic_rules(n: usize) -> Vec<Rule> {
    let f = usize::from(n >= 5);
    vec![
        Rule::FedAvg,
        Rule::Median,
        Rule::TrimmedMean { trim_fraction: 0.2 },
        Rule::Krum { f },
        Rule::MultiKrum {
            f,
            m: n.saturating_sub(f + 1).max(1),
        },
        Rule::Bulyan {
            f: usize::from(n >= 7),
        },
        Rule::GeometricMedian {
            max_iters: 20,
            tolerance: 1e-6,
            smoothing: 1e-6,
        },
        Rule::CenteredClipping {
            radius: 3.0,
            iterations: 3,
        },
        Rule::NormBounding { bound: 5.0 },
        Rule::FlTrust,
    ]
}

fn close(a: f32, b: f32, tolerance: f32) -> bool {
    (a - b).abs() <= tolerance * (1.0 + a.abs().max(b.abs()))
}

fn assert_updates_close(a: &Array1<f32>, b: &Array1<f32>, tolerance: f32, what: &str) {
    assert_eq!(a.len(), b.len());
    for (j, (&x, &y)) in a.iter().zip(b).enumerate() {
        assert!(close(x, y, tolerance), "{what}: coordinate {j}: {x} != {y}");
    }
}

/// Same kind of reason and nearly the same numbers.
fn assert_verdicts_close(a: &Verdict, b: &Verdict, rule: &Rule) {
    let same = match (a.reason, b.reason) {
        (Reason::Kept, Reason::Kept) => true,
        (Reason::Clipped { norm: x, .. }, Reason::Clipped { norm: y, .. })
        | (Reason::Trimmed { fraction: x }, Reason::Trimmed { fraction: y })
        | (Reason::NotSelected { score: x }, Reason::NotSelected { score: y })
        | (Reason::Trust { cosine: x }, Reason::Trust { cosine: y }) => close(x, y, 1e-4),
        // The Weiszfeld weight of an input the estimate nearly coincides with
        // is f32 noise: only the kind is compared.
        (Reason::Reweighted { .. }, Reason::Reweighted { .. }) => return,
        _ => false,
    };
    assert!(
        same && close(a.weight, b.weight, 1e-4),
        "{rule:?}: {a:?} vs {b:?}"
    );
}

proptest! {
    // Failures print their minimal input; no regression files are written.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn deterministic_rules_do_not_depend_on_input_order((round, order) in permuted_round()) {
        let permuted = round.permuted(&order);
        for rule in deterministic_rules(round.updates.nrows()) {
            match (round.run(rule), permuted.run(rule)) {
                (Ok(original), Ok(shuffled)) => {
                    if matches!(rule, Rule::GeometricMedian { .. }) {
                        // Iterations stop once the objective barely improves,
                        // which rounding can make happen an iteration earlier
                        // in one order; where the objective is nearly flat the
                        // two estimates may then lie far apart, with the same
                        // objective value.
                        let (a, b) = (round.objective(&original.update), round.objective(&shuffled.update));
                        prop_assert!((a - b).abs() <= 1e-4 * a.max(b), "{} vs {}", a, b);
                    } else {
                        let scale = round.updates.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                        let (original_update, shuffled_update) = (&original.update / scale, &shuffled.update / scale);
                        assert_updates_close(&original_update, &shuffled_update, 1e-4, &format!("{rule:?}"));
                    }
                    for (k, &i) in order.iter().enumerate() {
                        // Of identical inputs, which one is selected or
                        // trimmed depends on their positions.
                        let has_twin = round.updates.rows().into_iter().enumerate()
                            .any(|(j, row)| j != i && row == round.updates.row(i));
                        if !has_twin {
                            assert_verdicts_close(&original.verdicts[i], &shuffled.verdicts[k], &rule);
                        }
                    }
                }
                (original, shuffled) => prop_assert_eq!(original, shuffled, "{:?}", rule),
            }
        }
    }

    #[test]
    fn median_and_trimmed_mean_stay_within_each_coordinates_range(
        round in round(1..=12, 70, -100.0f32..100.0),
        trim_fraction in 0.0f32..0.49,
    ) {
        let min = round.updates.fold_axis(Axis(0), f32::INFINITY, |m, &v| m.min(v));
        let max = round.updates.fold_axis(Axis(0), f32::NEG_INFINITY, |m, &v| m.max(v));
        for rule in [Rule::Median, Rule::TrimmedMean { trim_fraction }] {
            let update = round.run(rule).unwrap().update;
            for j in 0..update.len() {
                let slack = 1e-5 * (1.0 + min[j].abs().max(max[j].abs()));
                prop_assert!(update[j] >= min[j] - slack && update[j] <= max[j] + slack);
            }
        }
    }

    #[test]
    fn trimmed_mean_without_trimming_is_the_unweighted_mean(round in round(1..=12, 70, -100.0f32..100.0)) {
        let n = round.updates.nrows();
        let trimmed = round.run(Rule::TrimmedMean { trim_fraction: 0.0 }).unwrap();
        let unweighted = Round { weights: vec![1.0; n], ..round };
        let mean = unweighted.run(Rule::FedAvg).unwrap();
        assert_updates_close(&trimmed.update, &mean.update, 1e-5, "trimmed mean");
        prop_assert_eq!(trimmed.verdicts, mean.verdicts);
    }

    #[test]
    fn multi_krum_selecting_everyone_is_fedavg(round in round(3..=10, 20, -10.0f32..10.0)) {
        let n = round.updates.nrows();
        let selected = round.run(Rule::MultiKrum { f: 0, m: n }).unwrap();
        let mean = round.run(Rule::FedAvg).unwrap();
        assert_updates_close(&selected.update, &mean.update, 1e-5, "multi-krum");
        prop_assert_eq!(selected.verdicts, mean.verdicts);
    }

    #[test]
    fn norm_bounding_with_a_huge_bound_is_fedavg(round in round(1..=10, 20, -1e3f32..1e3)) {
        let bounded = round.run(Rule::NormBounding { bound: 1e30 }).unwrap();
        let mean = round.run(Rule::FedAvg).unwrap();
        assert_updates_close(&bounded.update, &mean.update, 1e-6, "norm bounding");
        prop_assert_eq!(bounded.verdicts, mean.verdicts);
    }

    #[test]
    fn geometric_median_of_identical_inputs_is_that_input(
        input in proptest::collection::vec(-1e3f32..1e3, 1..40),
        weights in proptest::collection::vec(0.1f32..5.0, 1..8),
    ) {
        let n = weights.len();
        let updates = Array2::from_shape_fn((n, input.len()), |(_, j)| input[j]);
        let round = Round { updates, weights, root: Array1::zeros(input.len()) };
        let result = round.run(Rule::GeometricMedian { max_iters: 10, tolerance: 1e-6, smoothing: 1e-6 }).unwrap();
        assert_updates_close(&result.update, &Array1::from(input), 1e-5, "geometric median");
        prop_assert!(result.verdicts.iter().all(|v| v.weight == 1.0));
    }

    /// The vectorized sort, the tie handling and the verdict threshold against
    /// a direct computation from ranks, on values with and without ties.
    #[test]
    fn coordinate_wise_rules_match_a_rank_based_reference(
        round in prop_oneof![
            round(1..=12, 100, -1.0f32..1.0),
            round(1..=12, 100, (-2i8..=2).prop_map(f32::from)),
        ],
        trim_fraction in prop_oneof![Just(0.0f32), Just(0.1), Just(0.25), 0.0f32..0.49],
    ) {
        let (n, d) = round.updates.dim();
        let trim = ((trim_fraction * n as f32).floor() as usize).min((n - 1) / 2);
        let result = round.run(Rule::TrimmedMean { trim_fraction }).unwrap();
        let trimmed = rank_reference(&round.updates, trim);
        for j in 0..d {
            let sorted = sorted_column(&round.updates, j);
            let kept = &sorted[trim..n - trim];
            let mean = kept.iter().map(|&v| f64::from(v)).sum::<f64>() / kept.len() as f64;
            prop_assert!(close(result.update[j], mean as f32, 1e-5));
        }
        check_verdicts(&result.verdicts, &trimmed, d, n, trim);

        let median = round.run(Rule::Median).unwrap();
        let trimmed = rank_reference(&round.updates, n / 4);
        for j in 0..d {
            let sorted = sorted_column(&round.updates, j);
            let middle = 0.5 * sorted[(n - 1) / 2] + 0.5 * sorted[n / 2];
            prop_assert_eq!(median.update[j], middle);
        }
        check_verdicts(&median.verdicts, &trimmed, d, n, n / 4);
    }
}

fn sorted_column(updates: &Array2<f32>, j: usize) -> Vec<f32> {
    let mut column = updates.column(j).to_vec();
    column.sort_by(f32::total_cmp);
    column
}

/// Per input, the coordinates where it is trimmed: a value whose run of
/// equal values spans ranks `[lt, lt + eq)` is trimmed by the share of those
/// ranks below `trim` or at least `n - trim`.
fn rank_reference(updates: &Array2<f32>, trim: usize) -> Vec<f64> {
    let (n, d) = updates.dim();
    let mut trimmed = vec![0.0; n];
    for j in 0..d {
        let column = updates.column(j);
        for (i, &v) in column.iter().enumerate() {
            let lt = column.iter().filter(|&&x| x < v).count();
            let eq = column.iter().filter(|&&x| x == v).count();
            let low = (lt + eq).min(trim).saturating_sub(lt);
            let high = (lt + eq).saturating_sub(lt.max(n - trim));
            trimmed[i] += (low + high) as f64 / eq as f64;
        }
    }
    trimmed
}

fn check_verdicts(verdicts: &[Verdict], trimmed: &[f64], d: usize, n: usize, trim: usize) {
    let threshold = (2.0 + 2.0 * trim as f64 / n as f64) / 3.0;
    for (i, (verdict, &count)) in verdicts.iter().zip(trimmed).enumerate() {
        let fraction = count / d as f64;
        if count == 0.0 {
            assert_eq!(*verdict, Verdict::KEPT, "input {i}");
            continue;
        }
        let Reason::Trimmed { fraction: reported } = verdict.reason else {
            panic!("input {i}: {verdict:?}");
        };
        assert!(
            (f64::from(reported) - fraction).abs() < 1e-6,
            "input {i}: {reported} vs {fraction}"
        );
        if (fraction - threshold).abs() > 1e-9 {
            let expected = if fraction > threshold {
                0.0
            } else {
                1.0 - fraction
            };
            assert!(
                (f64::from(verdict.weight) - expected).abs() < 1e-6,
                "input {i}: {verdict:?}"
            );
        }
    }
}
