//! Quantization: round trip within the error bound, unbiased stochastic rounding, overflow proof.
#![allow(clippy::unwrap_used)]

use fedstake_secure_agg::quantize::{
    QuantizationParams, QuantizeError, check_honest_sum, dequantize_sum,
    dequantize_sum_of_dimension, quantize, weighted_mean,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

fn params(summands: u32) -> QuantizationParams {
    QuantizationParams {
        clip_norm: 10.0,
        fractional_bits: 16,
        max_weight: 100,
        summands,
    }
}

fn wrapping_sum(vectors: &[Vec<u32>]) -> Vec<u32> {
    let mut sum = vec![0u32; vectors[0].len()];
    for vector in vectors {
        for (s, v) in sum.iter_mut().zip(vector) {
            *s = s.wrapping_add(*v);
        }
    }
    sum
}

#[test]
fn round_trip_of_weighted_sum_is_within_rounding_bound() {
    let n = 10;
    let dimension = 50;
    let params = params(n);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut exact = vec![0f64; dimension];
    let mut weight_total = 0u64;
    let mut quantized = Vec::new();
    for _ in 0..n {
        // Norm at most sqrt(50) * 1 < 10 = clip_norm, so no clipping.
        let update: Vec<f32> = (0..dimension)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let weight = rng.random_range(1..=100);
        weight_total += u64::from(weight);
        for (e, u) in exact.iter_mut().zip(&update) {
            *e += f64::from(weight) * f64::from(*u);
        }
        quantized.push(quantize(&update, weight, &params, &mut rng).unwrap());
    }
    let sum = wrapping_sum(&quantized);
    let (values, weights) = dequantize_sum_of_dimension(&sum, dimension, &params).unwrap();
    assert_eq!(weights, weight_total);
    let bound = f64::from(n) * 2f64.powi(-16);
    for (value, exact) in values.iter().zip(&exact) {
        // Plus the f32 representation error of the result.
        let tolerance = bound + exact.abs() * f64::from(f32::EPSILON);
        assert!(
            (f64::from(*value) - exact).abs() <= tolerance,
            "{value} vs {exact}"
        );
    }
    let mean = weighted_mean(&sum, &params).unwrap();
    for (m, exact) in mean.iter().zip(&exact) {
        let expected = exact / weight_total as f64;
        assert!(
            (f64::from(*m) - expected).abs() <= 1e-4,
            "{m} vs {expected}"
        );
    }
}

#[test]
fn clipping_bounds_the_norm() {
    let params = params(1);
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let update = vec![30.0f32, 40.0]; // norm 50, clipped to 10: (6, 8)
    let quantized = quantize(&update, 3, &params, &mut rng).unwrap();
    let (values, weight) = dequantize_sum(&quantized, &params).unwrap();
    assert_eq!(weight, 3);
    assert!((values[0] - 18.0).abs() <= 1e-4);
    assert!((values[1] - 24.0).abs() <= 1e-4);
}

#[test]
fn negative_values_use_twos_complement() {
    let params = QuantizationParams {
        clip_norm: 10.0,
        fractional_bits: 2,
        max_weight: 1,
        summands: 1,
    };
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let quantized = quantize(&[-1.0, 0.5], 1, &params, &mut rng).unwrap();
    assert_eq!(quantized, vec![(-4i32) as u32, 2, 1]);
}

#[test]
fn stochastic_rounding_is_unbiased() {
    let params = QuantizationParams {
        clip_norm: 1.0,
        fractional_bits: 0,
        max_weight: 1,
        summands: 1,
    };
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let value = 0.3f32;
    let trials = 100_000;
    let mut total = 0i64;
    for _ in 0..trials {
        let q = quantize(&[value], 1, &params, &mut rng).unwrap();
        let rounded = q[0] as i32;
        assert!(rounded == 0 || rounded == 1);
        total += i64::from(rounded);
    }
    let mean = total as f64 / f64::from(trials);
    // Bernoulli(0.3): standard error sqrt(0.21 / 1e5) ~ 0.00145; allow 5 sigma.
    assert!((mean - 0.3).abs() < 0.0073, "mean {mean}");
    // Negative values too: -0.3 rounds to -1 with probability 0.3.
    let mut total = 0i64;
    for _ in 0..trials {
        total += i64::from(quantize(&[-value], 1, &params, &mut rng).unwrap()[0] as i32);
    }
    let mean = total as f64 / f64::from(trials);
    assert!((mean + 0.3).abs() < 0.0073, "mean {mean}");
}

#[test]
fn overflow_validation_refuses_overflow_and_accepts_the_boundary() {
    // 1 * (W * 1 * 2^0 + 1) = 2^31 - 1 < 2^31: accepted.
    let boundary = QuantizationParams {
        clip_norm: 1.0,
        fractional_bits: 0,
        max_weight: (1 << 31) - 2,
        summands: 1,
    };
    assert_eq!(boundary.validate(), Ok(()));
    // One more weight: 2^31, not below 2^31.
    let over = QuantizationParams {
        max_weight: (1 << 31) - 1,
        ..boundary
    };
    assert!(matches!(
        over.validate(),
        Err(QuantizeError::QuantizedSumOverflow { .. })
    ));
    // 8 * (2^27 + 1) fits, 8 * (2^28 + 1) does not.
    let fits = QuantizationParams {
        clip_norm: 1.0,
        fractional_bits: 27,
        max_weight: 1,
        summands: 8,
    };
    assert_eq!(fits.validate(), Ok(()));
    let too_many_bits = QuantizationParams {
        fractional_bits: 28,
        ..fits
    };
    let error = too_many_bits.validate().unwrap_err();
    assert!(
        error
            .to_string()
            .contains("summands * (max_weight * clip_norm"),
        "{error}"
    );
    // Weight sum: 2 * 2^30 = 2^31.
    let weights = QuantizationParams {
        clip_norm: 1e-9,
        fractional_bits: 0,
        max_weight: 1 << 30,
        summands: 2,
    };
    let error = weights.validate().unwrap_err();
    assert!(matches!(
        error,
        QuantizeError::WeightSumOverflow {
            weight_sum: 2_147_483_648,
            ..
        }
    ));
    assert!(error.to_string().contains("summands * max_weight"));
}

#[test]
fn worst_case_sum_at_the_boundary_does_not_overflow() {
    // summands * (W * B * 2^f + 1) = 4 * (255 * 2^20 + 1) ~ 1.07e9 < 2^31.
    let params = QuantizationParams {
        clip_norm: 1.0,
        fractional_bits: 20,
        max_weight: 255,
        summands: 4,
    };
    params.validate().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let vectors: Vec<Vec<u32>> = (0..4)
        .map(|_| quantize(&[1.0, -1.0], 255, &params, &mut rng).unwrap())
        .collect();
    let (values, weights) = dequantize_sum(&wrapping_sum(&vectors), &params).unwrap();
    assert_eq!(weights, 4 * 255);
    assert!(
        (values[0] - 4.0 * 255.0 / 2f32.sqrt()).abs() < 1e-2,
        "{}",
        values[0]
    );
    assert!(
        (values[1] + 4.0 * 255.0 / 2f32.sqrt()).abs() < 1e-2,
        "{}",
        values[1]
    );
}

#[test]
fn bad_inputs_are_refused() {
    let params = params(2);
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    assert_eq!(
        quantize(&[1.0, f32::NAN], 1, &params, &mut rng)
            .unwrap_err()
            .to_string(),
        QuantizeError::NonFiniteCoordinate {
            index: 1,
            value: f32::NAN
        }
        .to_string()
    );
    assert!(matches!(
        quantize(&[f32::INFINITY], 1, &params, &mut rng),
        Err(QuantizeError::NonFiniteCoordinate { index: 0, .. })
    ));
    assert_eq!(
        quantize(&[1.0], 0, &params, &mut rng),
        Err(QuantizeError::ZeroWeight)
    );
    assert_eq!(
        quantize(&[1.0], 101, &params, &mut rng),
        Err(QuantizeError::WeightAboveMax {
            weight: 101,
            max_weight: 100
        })
    );
    assert_eq!(dequantize_sum(&[], &params), Err(QuantizeError::EmptySum));
    assert_eq!(
        dequantize_sum_of_dimension(&[1, 2, 3], 3, &params),
        Err(QuantizeError::WrongSumLength {
            expected: 4,
            actual: 3
        })
    );
    assert_eq!(
        dequantize_sum(&[0, 1 << 31], &params),
        Err(QuantizeError::WeightSumOutOfRange(1 << 31))
    );
    assert_eq!(
        weighted_mean(&[0, 0], &params),
        Err(QuantizeError::ZeroWeightSum)
    );
    for clip_norm in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        let bad = QuantizationParams {
            clip_norm,
            ..params
        };
        assert!(matches!(
            bad.validate(),
            Err(QuantizeError::InvalidClipNorm(_))
        ));
    }
    assert_eq!(
        QuantizationParams {
            summands: 0,
            ..params
        }
        .validate(),
        Err(QuantizeError::ZeroSummands)
    );
    assert_eq!(
        QuantizationParams {
            max_weight: 0,
            ..params
        }
        .validate(),
        Err(QuantizeError::ZeroMaxWeight)
    );
}

/// Sums of clipped inputs pass, at any weights, including updates far over
/// the clip norm (clipped by `quantize`) and all at the largest weight, all
/// aligned; one forged coordinate or weight fails with a specific error.
#[test]
fn honest_sums_pass_the_bounds_check_and_forged_ones_fail() {
    let params = params(8);
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    for trial in 0..200 {
        let inputs = rng.random_range(1..=8usize);
        let dimension = rng.random_range(1..=64usize);
        let aligned = trial % 2 == 0;
        let direction: Vec<f32> = (0..dimension)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let vectors: Vec<Vec<u32>> = (0..inputs)
            .map(|_| {
                let scale = rng.random_range(0.0..40.0f32);
                let update: Vec<f32> = if aligned {
                    direction.iter().map(|d| d * scale).collect()
                } else {
                    (0..dimension)
                        .map(|_| rng.random_range(-scale..=scale))
                        .collect()
                };
                let weight = if aligned {
                    100
                } else {
                    rng.random_range(1..=100)
                };
                quantize(&update, weight, &params, &mut rng).unwrap()
            })
            .collect();
        let sum = wrapping_sum(&vectors);
        check_honest_sum(&sum, inputs, &params).unwrap();

        let mut heavy = sum.clone();
        *heavy.last_mut().unwrap() = (inputs as u32) * 100 + 1;
        assert!(matches!(
            check_honest_sum(&heavy, inputs, &params),
            Err(QuantizeError::WeightSumImpossible { .. })
        ));
        let mut large = sum.clone();
        large[0] = large[0].wrapping_add(1 << 30);
        assert!(matches!(
            check_honest_sum(&large, inputs, &params),
            Err(QuantizeError::SumNormImpossible { .. })
        ));
    }
    // A sum of fewer inputs than it claims to hold cannot reach the weight.
    assert!(matches!(
        check_honest_sum(&[0, 0, 2], 3, &params),
        Err(QuantizeError::WeightSumImpossible { .. })
    ));
}
