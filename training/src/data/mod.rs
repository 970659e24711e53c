//! Labelled datasets and the loaders that read them.
//!
//! A [`Dataset`] is a dense `f32` feature matrix (one row per example) with one
//! class label per row. Loaders for CSV, IDX (MNIST format, plain or gzip) and
//! NPY stream their input and report malformed files with the file, the
//! position and what was expected; the synthetic generator makes Gaussian
//! class clusters for tests, the demo and simulations.

mod csv;
mod error;
mod idx;
mod input;
mod npy;
mod source;
mod synthetic;

pub use self::csv::{CsvHeader, CsvOptions, LabelColumn, load_csv};
pub use error::{DataError, Position};
pub use idx::{load_idx, write_idx};
pub use npy::{load_npy, write_npy_f32, write_npy_labels};
pub use source::{DataSource, Schema};
pub use synthetic::{SyntheticSpec, synthetic};

use ndarray::{Array1, Array2, Axis};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// A labelled dataset: `features[i]` has label `labels[i] < classes`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    features: Array2<f32>,
    labels: Array1<u32>,
    classes: usize,
}

impl Dataset {
    /// Builds a dataset, checking that rows and labels agree, that every label is
    /// below `classes` and that every feature is finite.
    pub fn new(
        features: Array2<f32>,
        labels: Array1<u32>,
        classes: usize,
    ) -> Result<Self, DataError> {
        if features.nrows() != labels.len() {
            return Err(DataError::Shape(format!(
                "{} feature rows but {} labels",
                features.nrows(),
                labels.len()
            )));
        }
        if classes < 2 {
            return Err(DataError::Shape(format!(
                "a classification dataset needs at least 2 classes, got {classes}"
            )));
        }
        if let Some((row, &label)) = labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| l as usize >= classes)
        {
            return Err(DataError::Shape(format!(
                "label {label} of example {row} is not below the class count {classes}"
            )));
        }
        if let Some(pos) = features.iter().position(|v| !v.is_finite()) {
            let cols = features.ncols().max(1);
            return Err(DataError::Shape(format!(
                "feature {} of example {} is not finite",
                pos % cols,
                pos / cols
            )));
        }
        Ok(Self {
            features,
            labels,
            classes,
        })
    }

    /// The feature matrix, `[examples, features]`.
    pub fn features(&self) -> &Array2<f32> {
        &self.features
    }

    /// The labels, one per example.
    pub fn labels(&self) -> &Array1<u32> {
        &self.labels
    }

    /// Number of classes (labels are `0..classes`).
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the dataset has no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of features per example.
    pub fn dim(&self) -> usize {
        self.features.ncols()
    }

    /// The examples at `indices`, in that order.
    ///
    /// # Panics
    /// If an index is out of range (indices come from the program, not from input).
    pub fn select(&self, indices: &[usize]) -> Dataset {
        Dataset {
            features: self.features.select(Axis(0), indices),
            labels: self.labels.select(Axis(0), indices),
            classes: self.classes,
        }
    }

    /// The same examples with every feature multiplied by `factor`.
    pub fn scaled(mut self, factor: f32) -> Dataset {
        self.features.mapv_inplace(|v| v * factor);
        self
    }

    /// Number of examples of each class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &label in &self.labels {
            counts[label as usize] += 1;
        }
        counts
    }

    /// Shuffles the examples with `seed` and splits off `validation_fraction` of
    /// them as a validation set: `(train, validation)`.
    pub fn split(
        &self,
        validation_fraction: f64,
        seed: u64,
    ) -> Result<(Dataset, Dataset), DataError> {
        if !(validation_fraction > 0.0 && validation_fraction < 1.0) {
            return Err(DataError::Shape(format!(
                "validation fraction must be strictly between 0 and 1, got {validation_fraction}"
            )));
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let validation = ((self.len() as f64) * validation_fraction).round() as usize;
        if validation == 0 || validation == self.len() {
            return Err(DataError::Shape(format!(
                "splitting {} examples with validation fraction {validation_fraction} leaves one side empty",
                self.len()
            )));
        }
        let (val_idx, train_idx) = order.split_at(validation);
        Ok((self.select(train_idx), self.select(val_idx)))
    }
}
