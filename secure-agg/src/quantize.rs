//! Fixed-point quantization of model updates into `Z_{2^32}`.
//!
//! A client's update `u` is clipped to L2 norm `B` (`clip_norm`), multiplied by its
//! weight `w` (its example count), scaled by `2^f` (`fractional_bits`) and rounded
//! stochastically (floor plus a Bernoulli draw with the fractional part as
//! probability, so the rounding is unbiased). The integers are stored in two's
//! complement as `u32`, and the weight is appended as one extra coordinate, so a
//! secure sum reveals `sum w_i u_i` and `sum w_i` but never a single `w_i`.
//!
//! [`QuantizationParams::validate`] proves that the sum of `summands` such vectors
//! cannot overflow the signed 32-bit range: every quantized coordinate has
//! magnitude at most `W * B * 2^f + 1` (`W` = `max_weight`; the `+ 1` is the
//! rounding step), so `summands * (W * B * 2^f + 1) < 2^31` bounds the data
//! coordinates and `summands * W < 2^31` bounds the weight coordinate. This is the
//! same inequality the task-spec validation of `fedstake-protocol` enforces.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use thiserror::Error;

use crate::kdf::{ClientPair, Context, Purpose, derive_key};

/// `2^31`: every partial group sum must stay strictly below it in magnitude.
pub const QUANTIZED_SUM_LIMIT: u64 = 1 << 31;

/// Largest accepted `fractional_bits`; beyond it even a tiny clip norm overflows.
pub const MAX_FRACTIONAL_BITS: u32 = 30;

/// Why quantization parameters or inputs were refused.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum QuantizeError {
    /// The clip norm is not a finite number above 0.
    #[error("clip_norm {0} must be a finite number above 0")]
    InvalidClipNorm(f32),
    /// `summands` is 0.
    #[error("summands must be at least 1")]
    ZeroSummands,
    /// `max_weight` is 0.
    #[error("max_weight must be at least 1")]
    ZeroMaxWeight,
    /// `fractional_bits` is above [`MAX_FRACTIONAL_BITS`].
    #[error("fractional_bits {0} is above the maximum {MAX_FRACTIONAL_BITS}")]
    TooManyFractionalBits(u32),
    /// `summands * max_weight < 2^31` is violated.
    #[error(
        "the summed weights can overflow: summands * max_weight = {summands} * {max_weight} = \
         {weight_sum} must be below 2^31"
    )]
    WeightSumOverflow {
        /// Number of vectors summed.
        summands: u32,
        /// Largest accepted weight.
        max_weight: u32,
        /// Their product.
        weight_sum: u64,
    },
    /// `summands * (max_weight * clip_norm * 2^fractional_bits + 1) < 2^31` is violated.
    #[error(
        "the quantized sum can overflow: summands * (max_weight * clip_norm * \
         2^fractional_bits + 1) = {summands} * ({max_weight} * {clip_norm} * \
         2^{fractional_bits} + 1) = {bound} must be below 2^31"
    )]
    QuantizedSumOverflow {
        /// Number of vectors summed.
        summands: u32,
        /// Largest accepted weight.
        max_weight: u32,
        /// L2 clip norm.
        clip_norm: f32,
        /// Fixed-point fractional bits.
        fractional_bits: u32,
        /// The left-hand side of the inequality.
        bound: f64,
    },
    /// An update coordinate is NaN or infinite.
    #[error("update coordinate {index} is {value}, not a finite number")]
    NonFiniteCoordinate {
        /// Position in the update.
        index: usize,
        /// The offending value.
        value: f32,
    },
    /// The weight is 0.
    #[error("weight must be at least 1")]
    ZeroWeight,
    /// The weight is above `max_weight`.
    #[error("weight {weight} is above max_weight {max_weight}")]
    WeightAboveMax {
        /// The offending weight.
        weight: u32,
        /// The limit.
        max_weight: u32,
    },
    /// A quantized sum has no coordinates, so not even the weight coordinate.
    #[error("a quantized sum needs at least the weight coordinate, got an empty vector")]
    EmptySum,
    /// A quantized sum has a length other than the expected one.
    #[error("a quantized sum has {actual} coordinates, expected {expected} (dimension + 1)")]
    WrongSumLength {
        /// Expected length.
        expected: usize,
        /// Received length.
        actual: usize,
    },
    /// The weight coordinate of a sum is outside `0..2^31`, so the sum is corrupt.
    #[error("the weight coordinate {0} of the sum is not below 2^31; the sum is corrupt")]
    WeightSumOutOfRange(u32),
    /// The weighted mean of a sum whose weights add to 0 was asked for.
    #[error("the weights of the sum add up to 0, so there is no weighted mean")]
    ZeroWeightSum,
    /// A sum's weight coordinate is outside what its inputs can add up to.
    #[error(
        "the summed weight {weight} is outside {inputs}..={max}, what {inputs} inputs of weight \
         1..=max_weight add up to"
    )]
    WeightSumImpossible {
        /// The weight coordinate.
        weight: u32,
        /// Inputs in the sum.
        inputs: usize,
        /// `inputs * max_weight`.
        max: u64,
    },
    /// A sum's norm is above what its clipped inputs can add up to.
    #[error(
        "the sum has norm {norm}, above {bound}: summed weight times the clip norm, plus \
         rounding"
    )]
    SumNormImpossible {
        /// `||sum w_i u_i||` in real units.
        norm: f64,
        /// The largest honest value.
        bound: f64,
    },
}

/// Quantization parameters shared by every client of a group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantizationParams {
    /// L2 norm every update is clipped to (`B`).
    pub clip_norm: f32,
    /// Fixed-point fractional bits (`f`): values are scaled by `2^f`.
    pub fractional_bits: u32,
    /// Largest accepted weight (`W`), e.g. the task's `max_examples`.
    pub max_weight: u32,
    /// Number of vectors that are summed (the group size).
    pub summands: u32,
}

impl QuantizationParams {
    /// Checks that the parameters are usable and that the sum of `summands`
    /// quantized vectors cannot overflow (see the module documentation); the error
    /// names the violated inequality.
    pub fn validate(&self) -> Result<(), QuantizeError> {
        if !(self.clip_norm.is_finite() && self.clip_norm > 0.0) {
            return Err(QuantizeError::InvalidClipNorm(self.clip_norm));
        }
        if self.summands == 0 {
            return Err(QuantizeError::ZeroSummands);
        }
        if self.max_weight == 0 {
            return Err(QuantizeError::ZeroMaxWeight);
        }
        if self.fractional_bits > MAX_FRACTIONAL_BITS {
            return Err(QuantizeError::TooManyFractionalBits(self.fractional_bits));
        }
        let weight_sum = u64::from(self.summands) * u64::from(self.max_weight);
        if weight_sum >= QUANTIZED_SUM_LIMIT {
            return Err(QuantizeError::WeightSumOverflow {
                summands: self.summands,
                max_weight: self.max_weight,
                weight_sum,
            });
        }
        let bound = f64::from(self.summands) * (self.max_magnitude(self.max_weight) + 1.0);
        if bound >= QUANTIZED_SUM_LIMIT as f64 {
            return Err(QuantizeError::QuantizedSumOverflow {
                summands: self.summands,
                max_weight: self.max_weight,
                clip_norm: self.clip_norm,
                fractional_bits: self.fractional_bits,
                bound,
            });
        }
        Ok(())
    }

    /// `2^f` as a float.
    fn scale(&self) -> f64 {
        f64::from(self.fractional_bits).exp2()
    }

    /// `weight * B * 2^f`: the largest magnitude of a scaled coordinate before rounding.
    fn max_magnitude(&self, weight: u32) -> f64 {
        f64::from(weight) * f64::from(self.clip_norm) * self.scale()
    }
}

/// Quantizes `update` with weight `weight`: clip to L2 norm `clip_norm`, multiply by
/// `weight`, scale by `2^fractional_bits`, round stochastically and map into
/// `Z_{2^32}`; the weight is appended, so the result has `update.len() + 1`
/// coordinates.
pub fn quantize<R: Rng + ?Sized>(
    update: &[f32],
    weight: u32,
    params: &QuantizationParams,
    rng: &mut R,
) -> Result<Vec<u32>, QuantizeError> {
    params.validate()?;
    if weight == 0 {
        return Err(QuantizeError::ZeroWeight);
    }
    if weight > params.max_weight {
        return Err(QuantizeError::WeightAboveMax {
            weight,
            max_weight: params.max_weight,
        });
    }
    if let Some((index, &value)) = update.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(QuantizeError::NonFiniteCoordinate { index, value });
    }
    let norm = update
        .iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum::<f64>()
        .sqrt();
    let clip = f64::from(params.clip_norm);
    let clip_factor = if norm > clip { clip / norm } else { 1.0 };
    let factor = clip_factor * f64::from(weight) * params.scale();
    // Clamping makes the bound of `validate` hold even if the clipped norm exceeds
    // `B` by a rounding error.
    let max_magnitude = params.max_magnitude(weight);
    let mut quantized = Vec::with_capacity(update.len() + 1);
    quantized.extend(update.iter().map(|&v| {
        let scaled = (f64::from(v) * factor).clamp(-max_magnitude, max_magnitude);
        let floor = scaled.floor();
        let round_up = rng.random::<f64>() < scaled - floor;
        let integer = floor as i64 + i64::from(round_up);
        // |integer| <= W * B * 2^f + 1 < 2^31 by `validate`.
        integer as i32 as u32
    }));
    quantized.push(weight);
    Ok(quantized)
}

/// Dequantizes a group sum of quantized vectors: returns `sum w_i u_i` (clipped
/// updates) and `sum w_i`. Coordinates are read as `i32` two's complement.
pub fn dequantize_sum(
    sum: &[u32],
    params: &QuantizationParams,
) -> Result<(Vec<f32>, u64), QuantizeError> {
    params.validate()?;
    let (&weight_sum, data) = sum.split_last().ok_or(QuantizeError::EmptySum)?;
    if u64::from(weight_sum) >= QUANTIZED_SUM_LIMIT {
        return Err(QuantizeError::WeightSumOutOfRange(weight_sum));
    }
    let inverse_scale = 1.0 / params.scale();
    let values = data
        .iter()
        .map(|&v| (f64::from(v as i32) * inverse_scale) as f32)
        .collect();
    Ok((values, u64::from(weight_sum)))
}

/// Like [`dequantize_sum`] but also checks the sum has `dimension + 1` coordinates.
pub fn dequantize_sum_of_dimension(
    sum: &[u32],
    dimension: usize,
    params: &QuantizationParams,
) -> Result<(Vec<f32>, u64), QuantizeError> {
    let expected = dimension.saturating_add(1);
    if sum.len() != expected {
        return Err(QuantizeError::WrongSumLength {
            expected,
            actual: sum.len(),
        });
    }
    dequantize_sum(sum, params)
}

/// The weighted mean `sum w_i u_i / sum w_i` of a quantized group sum, computed in
/// `f64` from the integers before rounding to `f32`.
pub fn weighted_mean(sum: &[u32], params: &QuantizationParams) -> Result<Vec<f32>, QuantizeError> {
    params.validate()?;
    let (&weight_sum, data) = sum.split_last().ok_or(QuantizeError::EmptySum)?;
    if u64::from(weight_sum) >= QUANTIZED_SUM_LIMIT {
        return Err(QuantizeError::WeightSumOutOfRange(weight_sum));
    }
    if weight_sum == 0 {
        return Err(QuantizeError::ZeroWeightSum);
    }
    let inverse = 1.0 / (params.scale() * f64::from(weight_sum));
    Ok(data
        .iter()
        .map(|&v| (f64::from(v as i32) * inverse) as f32)
        .collect())
}

/// Checks that a quantized group `sum` is one `inputs` honest clients can
/// produce: its weight coordinate is in `inputs..=inputs * max_weight`, and
/// `||sum w_i u_i|| <= (sum w_i) * B + inputs * sqrt(d) / 2^f` (each input
/// clipped to `B`, and each of its `d` coordinates rounded by less than one
/// quantum). A member can mask any vector of `Z_{2^32}`; a sum outside these
/// bounds shows that one did, though not which, so its group fails and none
/// of its members is judged by it.
pub fn check_honest_sum(
    sum: &[u32],
    inputs: usize,
    params: &QuantizationParams,
) -> Result<(), QuantizeError> {
    params.validate()?;
    let (&weight, data) = sum.split_last().ok_or(QuantizeError::EmptySum)?;
    let max = inputs as u64 * u64::from(params.max_weight);
    if (u64::from(weight)) < inputs as u64 || u64::from(weight) > max {
        return Err(QuantizeError::WeightSumImpossible {
            weight,
            inputs,
            max,
        });
    }
    let scale = params.scale();
    let norm = data
        .iter()
        .map(|&v| {
            let real = f64::from(v as i32) / scale;
            real * real
        })
        .sum::<f64>()
        .sqrt();
    let rounding = inputs as f64 * (data.len() as f64).sqrt() / scale;
    let bound = f64::from(weight) * f64::from(params.clip_norm) + rounding;
    if norm > bound {
        return Err(QuantizeError::SumNormImpossible { norm, bound });
    }
    Ok(())
}

/// The stochastic-rounding stream of client `index`'s input in `context`,
/// keyed by the client's secret `key`. Nobody without the key can predict
/// it, and each (context, client) is quantized once (attempts are never
/// re-entered), so it is as good as fresh randomness for unbiased rounding;
/// being a function of the key, a simulation holding the key rounds exactly
/// as the client does.
pub fn rounding_rng(key: &[u8; 32], context: &Context, index: u32) -> ChaCha20Rng {
    let seed = derive_key(key, context, Purpose::Rounding, ClientPair::single(index));
    ChaCha20Rng::from_seed(*seed.as_bytes())
}
