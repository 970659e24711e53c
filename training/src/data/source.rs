//! Where a client's data lives, as written on the command line:
//! `csv:PATH`, `idx:IMAGES,LABELS`, `npy:FEATURES,LABELS` or
//! `synthetic:EXAMPLES[,SEED]`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::{
    CsvOptions, DataError, Dataset, SyntheticSpec, load_csv, load_idx, load_npy, synthetic,
};

/// A dataset on disk (or generated), before it is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    /// A CSV file; the label is the last column, the header detected.
    Csv(PathBuf),
    /// IDX images and labels (MNIST format, plain or gzip).
    Idx {
        /// Images file.
        images: PathBuf,
        /// Labels file.
        labels: PathBuf,
    },
    /// NPY features (2-D) and labels (1-D).
    Npy {
        /// Features file.
        features: PathBuf,
        /// Labels file.
        labels: PathBuf,
    },
    /// Gaussian class clusters shaped by the task's schema.
    Synthetic {
        /// Number of examples.
        examples: usize,
        /// Generator seed.
        seed: u64,
    },
}

/// The schema loaded data must follow (the task spec's `[data]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schema {
    /// Features per example.
    pub features: usize,
    /// Number of classes.
    pub classes: usize,
    /// Factor applied to every feature after loading, if any.
    pub feature_scale: Option<f32>,
}

impl From<&fedstake_protocol::spec::DataSpec> for Schema {
    fn from(spec: &fedstake_protocol::spec::DataSpec) -> Self {
        Self {
            features: spec.features as usize,
            classes: spec.classes as usize,
            feature_scale: spec.feature_scale.map(|s| s as f32),
        }
    }
}

impl DataSource {
    /// The same source with relative paths resolved against `base` (the
    /// directory of the file that named them).
    pub fn relative_to(self, base: &std::path::Path) -> DataSource {
        let resolve = |path: PathBuf| base.join(path);
        match self {
            DataSource::Csv(path) => DataSource::Csv(resolve(path)),
            DataSource::Idx { images, labels } => DataSource::Idx {
                images: resolve(images),
                labels: resolve(labels),
            },
            DataSource::Npy { features, labels } => DataSource::Npy {
                features: resolve(features),
                labels: resolve(labels),
            },
            synthetic @ DataSource::Synthetic { .. } => synthetic,
        }
    }

    /// Loads the data and checks it against `schema`: the feature count must
    /// match and every label must be below the class count.
    pub fn load(&self, schema: &Schema) -> Result<Dataset, DataError> {
        let classes = Some(schema.classes);
        let (dataset, origin) = match self {
            DataSource::Csv(path) => {
                let options = CsvOptions {
                    classes,
                    ..CsvOptions::default()
                };
                (load_csv(path, &options)?, path.display().to_string())
            }
            DataSource::Idx { images, labels } => (
                load_idx(images, labels, classes)?,
                images.display().to_string(),
            ),
            DataSource::Npy { features, labels } => (
                load_npy(features, labels, classes)?,
                features.display().to_string(),
            ),
            DataSource::Synthetic { examples, seed } => {
                let spec = SyntheticSpec {
                    classes: schema.classes,
                    dim: schema.features,
                    examples: *examples,
                    separation: 3.0,
                    noise: 1.0,
                    seed: *seed,
                };
                return synthetic(&spec);
            }
        };
        if dataset.dim() != schema.features {
            return Err(DataError::Shape(format!(
                "{origin}: examples have {} features, the task's schema has {}",
                dataset.dim(),
                schema.features
            )));
        }
        Ok(match schema.feature_scale {
            Some(scale) => dataset.scaled(scale),
            None => dataset,
        })
    }
}

impl FromStr for DataSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, rest) = s.split_once(':').ok_or_else(|| {
            format!("data source {s:?} has no kind; use csv:PATH, idx:IMAGES,LABELS, npy:FEATURES,LABELS or synthetic:EXAMPLES[,SEED]")
        })?;
        let pair = |what: &str| -> Result<(PathBuf, PathBuf), String> {
            rest.split_once(',')
                .filter(|(a, b)| !a.is_empty() && !b.is_empty())
                .map(|(a, b)| (PathBuf::from(a), PathBuf::from(b)))
                .ok_or_else(|| {
                    format!("{kind}: data needs two files, {what}, separated by a comma")
                })
        };
        match kind {
            "csv" if !rest.is_empty() => Ok(DataSource::Csv(rest.into())),
            "csv" => Err("csv: data needs a file path".into()),
            "idx" => {
                pair("IMAGES,LABELS").map(|(images, labels)| DataSource::Idx { images, labels })
            }
            "npy" => pair("FEATURES,LABELS")
                .map(|(features, labels)| DataSource::Npy { features, labels }),
            "synthetic" => {
                let (examples, seed) = rest.split_once(',').unwrap_or((rest, "0"));
                let examples = examples
                    .parse()
                    .map_err(|_| format!("synthetic: examples {examples:?} is not a count"))?;
                let seed = seed
                    .parse()
                    .map_err(|_| format!("synthetic: seed {seed:?} is not a number"))?;
                Ok(DataSource::Synthetic { examples, seed })
            }
            other => Err(format!(
                "unknown data kind {other:?}; expected csv, idx, npy or synthetic"
            )),
        }
    }
}

impl fmt::Display for DataSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSource::Csv(path) => write!(f, "csv:{}", path.display()),
            DataSource::Idx { images, labels } => {
                write!(f, "idx:{},{}", images.display(), labels.display())
            }
            DataSource::Npy { features, labels } => {
                write!(f, "npy:{},{}", features.display(), labels.display())
            }
            DataSource::Synthetic { examples, seed } => write!(f, "synthetic:{examples},{seed}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_and_round_trips() {
        for text in [
            "csv:data/train.csv",
            "idx:a.idx,b.idx",
            "npy:x.npy,y.npy",
            "synthetic:100,3",
        ] {
            let source: DataSource = text.parse().unwrap();
            assert_eq!(source.to_string(), text);
        }
        assert_eq!(
            "synthetic:50".parse::<DataSource>().unwrap(),
            DataSource::Synthetic {
                examples: 50,
                seed: 0
            }
        );
    }

    #[test]
    fn rejects_malformed_sources() {
        for text in [
            "train.csv",
            "csv:",
            "idx:only-one",
            "npy:,y",
            "synthetic:many",
            "parquet:x",
        ] {
            assert!(text.parse::<DataSource>().is_err(), "{text}");
        }
    }
}
