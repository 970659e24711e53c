//! Each attack's output against its inputs, the norm bound, and parsing.
#![allow(clippy::unwrap_used)]

use fedstake_aggregation::norm::l2_norm;
use fedstake_simulations::SimError;
use fedstake_simulations::attack::{
    Attack, Backdoor, DEFAULT_IPM_EPSILON, DEFAULT_SIGN_FLIP_SCALE, DEFAULT_SYBIL_NOISE,
    FreeRiderMode, alie_default_z,
};
use fedstake_training::data::Dataset;
use fedstake_training::trainer::Architecture;
use ndarray::{Array1, Array2, ArrayView2, Axis, array};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

const DIM: usize = 40;

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// `rows` random updates of dimension `DIM`, each of norm about `scale`.
fn updates(rows: usize, scale: f32, seed: u64) -> Array2<f32> {
    let mut rng = rng(seed);
    let std = scale / (DIM as f32).sqrt();
    Array2::from_shape_fn((rows, DIM), |_| std * rng.sample::<f32, _>(StandardNormal))
}

fn own_updates(rows: usize, scale: f32, seed: u64) -> Vec<Vec<f32>> {
    updates(rows, scale, seed)
        .rows()
        .into_iter()
        .map(|r| r.to_vec())
        .collect()
}

fn zero_updates(rows: usize) -> Vec<Vec<f32>> {
    vec![vec![0.0; DIM]; rows]
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum();
    dot / (l2_norm(a) * l2_norm(b))
}

fn craft(
    attack: &Attack,
    own: Vec<Vec<f32>>,
    honest: ArrayView2<f32>,
    bound: f32,
) -> Vec<Vec<f32>> {
    attack.craft(own, honest, bound, &mut rng(7)).unwrap()
}

fn every_attack() -> Vec<Attack> {
    vec![
        Attack::None,
        Attack::SignFlip { scale: 4.0 },
        Attack::LabelFlip,
        Attack::GaussianNoise { std: 1.0 },
        Attack::Backdoor(Backdoor::default()),
        Attack::Alie { z: None },
        Attack::Alie { z: Some(25.0) },
        Attack::Ipm { epsilon: 30.0 },
        Attack::FreeRider {
            mode: FreeRiderMode::Zero,
        },
        Attack::FreeRider {
            mode: FreeRiderMode::Noise,
        },
        Attack::Sybil { noise: 0.01 },
    ]
}

fn small_dataset() -> Dataset {
    let features = Array2::from_shape_fn((10, 4), |(i, j)| (i * 4 + j) as f32 * 0.1);
    let labels = Array1::from((0..10).map(|i| (i % 3) as u32).collect::<Vec<_>>());
    Dataset::new(features, labels, 3).unwrap()
}

#[test]
fn parses_every_kind_with_defaults() {
    #[derive(serde::Deserialize)]
    struct File {
        attack: Vec<Attack>,
    }
    let text = r#"
        attack = [
            { kind = "none" },
            { kind = "sign-flip" },
            { kind = "sign-flip", scale = 2.5 },
            { kind = "label-flip" },
            { kind = "gaussian-noise", std = 0.5 },
            { kind = "backdoor", target = 2, trigger_features = 3 },
            { kind = "alie" },
            { kind = "alie", z = 1.5 },
            { kind = "ipm" },
            { kind = "free-rider", mode = "noise" },
            { kind = "free-rider" },
            { kind = "sybil" },
        ]
    "#;
    let file: File = toml::from_str(text).unwrap();
    assert_eq!(
        file.attack,
        vec![
            Attack::None,
            Attack::SignFlip {
                scale: DEFAULT_SIGN_FLIP_SCALE
            },
            Attack::SignFlip { scale: 2.5 },
            Attack::LabelFlip,
            Attack::GaussianNoise { std: 0.5 },
            Attack::Backdoor(Backdoor {
                target: 2,
                trigger_features: 3,
                ..Backdoor::default()
            }),
            Attack::Alie { z: None },
            Attack::Alie { z: Some(1.5) },
            Attack::Ipm {
                epsilon: DEFAULT_IPM_EPSILON
            },
            Attack::FreeRider {
                mode: FreeRiderMode::Noise
            },
            Attack::FreeRider {
                mode: FreeRiderMode::Zero
            },
            Attack::Sybil {
                noise: DEFAULT_SYBIL_NOISE
            },
        ]
    );
    let names: Vec<&str> = file.attack.iter().map(Attack::name).collect();
    assert_eq!(names[1], "sign-flip");
    assert_eq!(names[5], "backdoor");
    assert!(file.attack[0].is_none() && !file.attack[1].is_none());
}

#[test]
fn rejects_unknown_kinds_and_fields() {
    for text in [
        r#"kind = "sign-flip"
scal = 2.0"#,
        r#"kind = "backdoor"
triger_value = 2.0"#,
        r#"kind = "none"
scale = 1.0"#,
        r#"kind = "flip""#,
        r#"kind = "free-rider"
mode = "lazy""#,
    ] {
        assert!(toml::from_str::<Attack>(text).is_err(), "accepted {text}");
    }
}

#[test]
fn invalid_parameters_name_the_attack_and_field() {
    let cases = [
        (Attack::SignFlip { scale: -1.0 }, "`scale`"),
        (Attack::GaussianNoise { std: f32::NAN }, "`std`"),
        (Attack::Ipm { epsilon: 0.0 }, "`epsilon`"),
        (
            Attack::Alie {
                z: Some(f64::INFINITY),
            },
            "`z`",
        ),
        (Attack::Sybil { noise: -0.1 }, "`noise`"),
        (
            Attack::Backdoor(Backdoor {
                trigger_features: 0,
                ..Backdoor::default()
            }),
            "`trigger_features`",
        ),
        (
            Attack::Backdoor(Backdoor {
                poison_fraction: 1.5,
                ..Backdoor::default()
            }),
            "`poison_fraction`",
        ),
        (
            Attack::Backdoor(Backdoor {
                boost: Some(0.0),
                ..Backdoor::default()
            }),
            "`boost`",
        ),
    ];
    for (attack, field) in cases {
        let message = match attack.validate() {
            Err(SimError::Config(message)) => message,
            other => panic!("{attack:?} gave {other:?}"),
        };
        assert!(message.contains(attack.name()), "{message}");
        assert!(message.contains(field), "{message}");
        let crafted = attack.craft(zero_updates(1), updates(2, 1.0, 1).view(), 1.0, &mut rng(1));
        assert!(crafted.is_err());
    }
    for attack in every_attack() {
        attack.validate().unwrap();
    }
}

#[test]
fn craft_rejects_bad_bounds_and_dimensions() {
    let attack = Attack::SignFlip { scale: 1.0 };
    let honest = updates(3, 1.0, 1);
    for bound in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        assert!(
            attack
                .craft(own_updates(1, 1.0, 2), honest.view(), bound, &mut rng(1))
                .is_err()
        );
    }
    let wrong = vec![vec![0.0; DIM + 1]];
    assert!(matches!(
        attack.craft(wrong, honest.view(), 1.0, &mut rng(1)),
        Err(SimError::Aggregation(_))
    ));
}

#[test]
fn sign_flip_is_antiparallel_to_the_own_update() {
    let own = own_updates(3, 0.1, 2);
    let honest = updates(5, 0.1, 1);
    let sent = craft(
        &Attack::SignFlip { scale: 4.0 },
        own.clone(),
        honest.view(),
        10.0,
    );
    for (mine, flipped) in own.iter().zip(&sent) {
        assert!((cosine(mine, flipped) + 1.0).abs() < 1e-6);
        assert!((l2_norm(flipped) / l2_norm(mine) - 4.0).abs() < 1e-5);
    }
    // Beyond the bound the flipped update is cut to it, still antiparallel.
    let capped = craft(
        &Attack::SignFlip { scale: 4.0 },
        own.clone(),
        honest.view(),
        0.2,
    );
    for (mine, flipped) in own.iter().zip(&capped) {
        assert!((cosine(mine, flipped) + 1.0).abs() < 1e-6);
        let bound = f64::from(0.2f32);
        assert!(l2_norm(flipped) <= bound && l2_norm(flipped) > bound * (1.0 - 1e-6));
    }
}

#[test]
fn label_flip_maps_labels_and_keeps_features() {
    let data = small_dataset();
    let flipped = Attack::LabelFlip.poison_data(&data, &mut rng(1)).unwrap();
    assert_eq!(flipped.features(), data.features());
    let expected = data.labels().mapv(|y| 2 - y);
    assert_eq!(flipped.labels(), &expected);
    // Its update is sent as trained (within the bound).
    let own = own_updates(2, 0.5, 3);
    assert_eq!(
        craft(
            &Attack::LabelFlip,
            own.clone(),
            updates(3, 0.5, 1).view(),
            1.0
        ),
        own
    );
    // Attacks without data poisoning leave the data alone.
    let kept = Attack::SignFlip { scale: 1.0 }
        .poison_data(&data, &mut rng(1))
        .unwrap();
    assert_eq!(kept, data);
}

#[test]
fn gaussian_noise_is_seeded_independent_and_bounded() {
    let attack = Attack::GaussianNoise { std: 0.01 };
    let honest = updates(4, 1.0, 1);
    let first = attack
        .craft(zero_updates(3), honest.view(), 5.0, &mut rng(9))
        .unwrap();
    let again = attack
        .craft(zero_updates(3), honest.view(), 5.0, &mut rng(9))
        .unwrap();
    assert_eq!(first, again);
    assert_ne!(first[0], first[1]);
    // Norm about std * sqrt(d) when below the bound.
    let expected = 0.01 * (DIM as f64).sqrt();
    assert!((l2_norm(&first[0]) / expected - 1.0).abs() < 0.4);
    let loud = Attack::GaussianNoise { std: 100.0 };
    for update in craft(&loud, zero_updates(3), honest.view(), 2.0) {
        assert!(l2_norm(&update) <= 2.0 && l2_norm(&update) > 1.99);
    }
}

#[test]
fn backdoor_poisons_the_expected_fraction() {
    let data = small_dataset();
    let backdoor = Backdoor {
        target: 1,
        trigger_value: 9.0,
        trigger_features: 2,
        poison_fraction: 0.5,
        boost: None,
    };
    let poisoned = Attack::Backdoor(backdoor.clone())
        .poison_data(&data, &mut rng(4))
        .unwrap();
    let mut triggered = 0;
    for (row, (features, label)) in poisoned
        .features()
        .rows()
        .into_iter()
        .zip(poisoned.labels())
        .enumerate()
    {
        let original = data.features().row(row);
        if features[0] == 9.0 {
            triggered += 1;
            assert_eq!(features[1], 9.0);
            assert_eq!(*label, 1);
            assert_eq!(
                features.slice(ndarray::s![2..]),
                original.slice(ndarray::s![2..])
            );
        } else {
            assert_eq!(features, original);
            assert_eq!(*label, data.labels()[row]);
        }
    }
    assert_eq!(triggered, 5);
    // Seeded: the same generator poisons the same examples.
    let again = Attack::Backdoor(backdoor.clone())
        .poison_data(&data, &mut rng(4))
        .unwrap();
    assert_eq!(poisoned, again);
    // The trigger and target must fit the data.
    for bad in [
        Backdoor {
            target: 3,
            ..backdoor.clone()
        },
        Backdoor {
            trigger_features: 5,
            ..backdoor.clone()
        },
    ] {
        assert!(bad.poison(&data, &mut rng(4)).is_err());
    }
}

#[test]
fn backdoor_boosts_the_update_up_to_the_bound() {
    let own = own_updates(2, 0.1, 5);
    let honest = updates(8, 0.1, 1);
    let boosted = Attack::Backdoor(Backdoor {
        boost: Some(3.0),
        ..Backdoor::default()
    });
    for (mine, sent) in own
        .iter()
        .zip(craft(&boosted, own.clone(), honest.view(), 10.0))
    {
        for (m, s) in mine.iter().zip(&sent) {
            assert!((s - 3.0 * m).abs() < 1e-6);
        }
    }
    // The default boost is the number of participants (2 + 8), then the bound.
    let default = Attack::Backdoor(Backdoor::default());
    let sent = craft(&default, own.clone(), honest.view(), 100.0);
    assert!((l2_norm(&sent[0]) / l2_norm(&own[0]) - 10.0).abs() < 1e-5);
    let capped = craft(&default, own.clone(), honest.view(), 0.5);
    assert!((cosine(&capped[0], &own[0]) - 1.0).abs() < 1e-6);
    assert!(l2_norm(&capped[0]) <= 0.5);
}

#[test]
fn backdoor_success_rate_of_a_hand_made_predictor() {
    // Target 1: rows 0, 2 and 3 are outside it. The predictor answers the
    // target for triggered rows whose third feature is positive.
    let features = array![
        [0.0, 0.0, 1.0],
        [0.0, 0.0, 1.0],
        [0.0, 0.0, 1.0],
        [0.0, 0.0, -1.0],
        [0.0, 0.0, 1.0],
    ];
    let validation = Dataset::new(features, array![0, 1, 2, 0, 1], 3).unwrap();
    let backdoor = Backdoor {
        target: 1,
        trigger_value: 9.0,
        trigger_features: 1,
        ..Backdoor::default()
    };
    let rate = backdoor
        .success_rate(&validation, |x| {
            assert_eq!(x.nrows(), 3);
            x.rows()
                .into_iter()
                .map(|row| u32::from(row[0] == 9.0 && row[2] > 0.0))
                .collect()
        })
        .unwrap();
    assert!((rate - 2.0 / 3.0).abs() < 1e-12);
    // A predictor that ignores the trigger never succeeds.
    let rate = backdoor
        .success_rate(&validation, |x| vec![0; x.nrows()])
        .unwrap();
    assert_eq!(rate, 0.0);
    // A predictor answering the wrong number of rows is an error.
    assert!(backdoor.success_rate(&validation, |_| vec![1]).is_err());
    // So is a validation set with nothing outside the target class.
    let only_target = validation.select(&[1, 4]);
    assert!(
        backdoor
            .success_rate(&only_target, |x| vec![1; x.nrows()])
            .is_err()
    );
}

#[test]
fn backdoor_success_rate_of_a_model() {
    // Softmax regression, 3 inputs, 2 classes; parameters: weights [2, 3]
    // then biases [2]. Class 1 wins when the first feature exceeds 1.
    let architecture = Architecture::softmax_regression(3, 2).unwrap();
    assert_eq!(architecture.num_params(), 8);
    let params = [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0];
    let validation = Dataset::new(
        array![[0.0, 1.0, 2.0], [0.5, 1.0, 2.0], [0.0, 0.0, 0.0]],
        array![0, 0, 1],
        2,
    )
    .unwrap();
    let backdoor = |value| Backdoor {
        target: 1,
        trigger_value: value,
        trigger_features: 1,
        ..Backdoor::default()
    };
    let hit = backdoor(5.0)
        .success_rate_of_model(&architecture, &params, &validation)
        .unwrap();
    assert_eq!(hit, 1.0);
    let miss = backdoor(0.5)
        .success_rate_of_model(&architecture, &params, &validation)
        .unwrap();
    assert_eq!(miss, 0.0);
    assert!(
        backdoor(5.0)
            .success_rate_of_model(&architecture, &params[..7], &validation)
            .is_err()
    );
}

#[test]
fn alie_default_z_matches_the_paper() {
    // n = 50, f = 12: s = 26 - 12 = 14, p = 36 / 50 = 0.72, Phi^-1(0.72).
    assert!((alie_default_z(50, 12).unwrap() - 0.582_841_5).abs() < 1e-6);
    // n = 20, f = 4: s = 7, p = 0.65.
    assert!((alie_default_z(20, 4).unwrap() - 0.385_320_5).abs() < 1e-6);
    // n = 25, f = 5: s = 13 - 5 = 8, p = 17 / 25 = 0.68.
    assert!((alie_default_z(25, 5).unwrap() - 0.467_698_8).abs() < 1e-6);
    // A majority of attackers still needs one supporter: p = (n - 1) / n.
    assert!((alie_default_z(10, 8).unwrap() - 1.281_551_6).abs() < 1e-6);
    assert!(alie_default_z(10, 0).is_err());
    assert!(alie_default_z(3, 3).is_err());
}

/// Per-coordinate mean and sample standard deviation, via ndarray.
fn mean_and_std(honest: &Array2<f32>) -> (Array1<f64>, Array1<f64>) {
    let wide = honest.mapv(f64::from);
    (
        wide.mean_axis(Axis(0)).unwrap(),
        wide.std_axis(Axis(0), 1.0),
    )
}

#[test]
fn alie_sends_mu_minus_z_sigma_from_every_attacker() {
    let honest = updates(7, 1.0, 11);
    let (mu, sigma) = mean_and_std(&honest);
    for (z, attackers) in [(Some(1.5), 3), (None, 3)] {
        let attack = Attack::Alie { z };
        let sent = craft(&attack, zero_updates(attackers), honest.view(), 100.0);
        let z = z.unwrap_or_else(|| alie_default_z(10, 3).unwrap());
        assert_eq!(sent.len(), attackers);
        assert!(sent.iter().all(|u| u == &sent[0]));
        for ((s, m), d) in sent[0].iter().zip(&mu).zip(&sigma) {
            assert!((f64::from(*s) - (m - z * d)).abs() < 1e-6);
        }
    }
    // With no honest update there is nothing to imitate: zero.
    let alone = craft(
        &Attack::Alie { z: None },
        zero_updates(2),
        updates(0, 1.0, 1).view(),
        1.0,
    );
    assert!(alone.iter().flatten().all(|&x| x == 0.0));
}

#[test]
fn ipm_sends_minus_epsilon_times_the_honest_mean() {
    let honest = updates(6, 1.0, 12);
    let (mu, _) = mean_and_std(&honest);
    let attack = Attack::Ipm { epsilon: 0.5 };
    let sent = craft(&attack, zero_updates(2), honest.view(), 100.0);
    assert_eq!(sent[0], sent[1]);
    for (s, m) in sent[0].iter().zip(&mu) {
        assert!((f64::from(*s) + 0.5 * m).abs() < 1e-7);
    }
    // Large epsilon: the same direction, cut to the bound.
    let large = craft(
        &Attack::Ipm { epsilon: 100.0 },
        zero_updates(2),
        honest.view(),
        1.0,
    );
    let mean: Vec<f32> = mu.iter().map(|&m| m as f32).collect();
    assert!((cosine(&large[0], &mean) + 1.0).abs() < 1e-6);
    assert!(l2_norm(&large[0]) <= 1.0);
}

#[test]
fn free_riders_send_zero_or_noise_of_the_median_honest_norm() {
    let zero = Attack::FreeRider {
        mode: FreeRiderMode::Zero,
    };
    assert!(!zero.trains());
    let honest = updates(5, 1.0, 13);
    let sent = craft(&zero, zero_updates(3), honest.view(), 10.0);
    assert_eq!(sent, zero_updates(3));

    let noise = Attack::FreeRider {
        mode: FreeRiderMode::Noise,
    };
    for rows in [5, 6] {
        // Honest norms 1, 2, ..., rows: the median is (rows + 1) / 2.
        let mut honest = updates(rows, 1.0, 14);
        for (i, mut row) in honest.rows_mut().into_iter().enumerate() {
            let norm = row.dot(&row).sqrt();
            row.mapv_inplace(|x| x / norm * (i + 1) as f32);
        }
        let median = (rows + 1) as f64 / 2.0;
        let sent = craft(&noise, zero_updates(2), honest.view(), 10.0);
        assert_ne!(sent[0], sent[1]);
        for update in &sent {
            assert!((l2_norm(update) - median).abs() < 1e-5);
        }
    }
}

#[test]
fn sybil_pairs_send_near_identical_flipped_updates() {
    let own = own_updates(5, 1.0, 15);
    let honest = updates(10, 1.0, 1);
    let sent = craft(
        &Attack::Sybil { noise: 0.01 },
        own.clone(),
        honest.view(),
        100.0,
    );
    assert_eq!(sent.len(), 5);
    for pair in [[0, 1], [2, 3]] {
        let [a, b] = pair;
        assert_ne!(sent[a], sent[b]);
        assert!(cosine(&sent[a], &sent[b]) > 0.99);
        let pair_mean: Vec<f32> = own[a]
            .iter()
            .zip(&own[b])
            .map(|(x, y)| (x + y) / 2.0)
            .collect();
        assert!(cosine(&sent[a], &pair_mean) < -0.99);
    }
    // Different pairs are unrelated; the odd one out flips its own update.
    assert!(cosine(&sent[0], &sent[2]).abs() < 0.9);
    assert!(cosine(&sent[4], &own[4]) < -0.99);
}

#[test]
fn every_crafted_update_fits_the_bound() {
    let honest = updates(12, 50.0, 16);
    let own = own_updates(5, 50.0, 17);
    for attack in every_attack() {
        for bound in [0.3f32, 1.0, 7.77] {
            let sent = craft(&attack, own.clone(), honest.view(), bound);
            assert_eq!(sent.len(), own.len(), "{}", attack.name());
            for update in &sent {
                assert!(
                    l2_norm(update) <= f64::from(bound),
                    "{} sent norm {} over {bound}",
                    attack.name(),
                    l2_norm(update)
                );
            }
        }
    }
}

#[test]
fn crafting_is_deterministic_for_a_seed() {
    let honest = updates(6, 2.0, 18);
    let own = own_updates(4, 2.0, 19);
    for attack in every_attack() {
        let first = attack
            .craft(own.clone(), honest.view(), 1.0, &mut rng(3))
            .unwrap();
        let second = attack
            .craft(own.clone(), honest.view(), 1.0, &mut rng(3))
            .unwrap();
        assert_eq!(first, second, "{}", attack.name());
    }
}

#[test]
fn which_attacks_train() {
    let training: Vec<&str> = every_attack()
        .iter()
        .filter(|a| a.trains())
        .map(Attack::name)
        .collect();
    assert_eq!(
        training,
        ["none", "sign-flip", "label-flip", "backdoor", "sybil"]
    );
    assert_eq!(Attack::default(), Attack::None);
    assert!(Attack::Backdoor(Backdoor::default()).backdoor().is_some());
    assert!(Attack::LabelFlip.backdoor().is_none());
}
