//! Synthetic Gaussian class clusters, for tests, the demo and simulations.
//!
//! Class `k` has a centre `separation * u_k`, where `u_k` is a random unit
//! direction; an example of class `k` is its centre plus independent
//! `N(0, noise^2)` noise on every coordinate. Classes are assigned round-robin
//! (so they are balanced to within one example) and the examples shuffled.
//! Everything is drawn from a ChaCha8 generator seeded with the spec's seed,
//! so a spec always yields the same dataset.
//!
//! With `dim` well above `classes` the random directions are nearly orthogonal
//! and centres are about `separation * sqrt(2)` apart; in very low dimensions
//! two centres can fall close together.

use ndarray::{Array1, Array2};
use rand::Rng;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::Dataset;
use super::error::DataError;

/// Parameters of a synthetic dataset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyntheticSpec {
    /// Number of classes (at least 2).
    pub classes: usize,
    /// Number of features (at least 1).
    pub dim: usize,
    /// Number of examples (at least 1).
    pub examples: usize,
    /// Distance of each class centre from the origin (finite).
    pub separation: f32,
    /// Standard deviation of the per-coordinate noise (finite, non-negative).
    pub noise: f32,
    /// Seed of the generator.
    pub seed: u64,
}

/// Generates the dataset described by `spec`.
pub fn synthetic(spec: &SyntheticSpec) -> Result<Dataset, DataError> {
    validate(spec)?;
    let values = spec
        .examples
        .checked_mul(spec.dim)
        .ok_or_else(|| DataError::InvalidSpec {
            field: "examples",
            message: format!("times dim {} overflows the address space", spec.dim),
        })?;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);

    let mut centres = Array2::<f32>::zeros((spec.classes, spec.dim));
    for mut centre in centres.rows_mut() {
        let direction = random_unit_vector(&mut rng, spec.dim);
        centre
            .iter_mut()
            .zip(direction)
            .for_each(|(c, u)| *c = u * spec.separation);
    }

    let mut labels: Vec<u32> = (0..spec.examples)
        .map(|i| (i % spec.classes) as u32)
        .collect();
    labels.shuffle(&mut rng);

    let mut features = Vec::with_capacity(values);
    for &label in &labels {
        let centre = centres.row(label as usize);
        features.extend(centre.iter().map(|&c| {
            let z: f32 = rng.sample(StandardNormal);
            c + spec.noise * z
        }));
    }
    let features = Array2::from_shape_vec((spec.examples, spec.dim), features)
        .map_err(|e| DataError::Shape(e.to_string()))?;
    Dataset::new(features, Array1::from(labels), spec.classes)
}

/// Checks every field of `spec`.
fn validate(spec: &SyntheticSpec) -> Result<(), DataError> {
    let invalid = |field, message: String| Err(DataError::InvalidSpec { field, message });
    if spec.classes < 2 {
        return invalid(
            "classes",
            format!("must be at least 2, got {}", spec.classes),
        );
    }
    if u32::try_from(spec.classes).is_err() {
        return invalid(
            "classes",
            format!("must fit in a u32 label, got {}", spec.classes),
        );
    }
    if spec.dim == 0 {
        return invalid("dim", "must be at least 1, got 0".to_string());
    }
    if spec.examples == 0 {
        return invalid("examples", "must be at least 1, got 0".to_string());
    }
    if !spec.separation.is_finite() {
        return invalid(
            "separation",
            format!("must be finite, got {}", spec.separation),
        );
    }
    if !(spec.noise.is_finite() && spec.noise >= 0.0) {
        return invalid(
            "noise",
            format!("must be finite and non-negative, got {}", spec.noise),
        );
    }
    Ok(())
}

/// A direction drawn uniformly from the unit sphere in `dim` dimensions.
fn random_unit_vector(rng: &mut ChaCha8Rng, dim: usize) -> Vec<f32> {
    loop {
        let v: Vec<f32> = (0..dim).map(|_| rng.sample(StandardNormal)).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 1e-6 {
            return v.into_iter().map(|x| x / norm).collect();
        }
    }
}
