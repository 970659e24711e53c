//! Errors of task spec parsing and validation.

use std::path::PathBuf;

/// Why a task spec was refused.
///
/// Each message is complete on its own (it includes its cause), so printing it with `{}` is
/// enough.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read task spec {}: {error}", path.display())]
    Read {
        /// The file that was being read.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The text is longer than [`super::MAX_SPEC_BYTES`].
    #[error("task spec is too large: more than {max} bytes")]
    TooLarge {
        /// The limit that was exceeded, in bytes.
        max: usize,
    },
    /// The text is not valid TOML, has an unknown key, lacks a required key or has a value of
    /// the wrong type.
    #[error("cannot parse task spec: {message}")]
    Parse {
        /// The TOML error text, with line, column and the offending line.
        message: String,
    },
    /// The spec parses but a setting is out of range or inconsistent with another.
    #[error("invalid task spec: {field}: {reason}")]
    Invalid {
        /// Dotted path of the offending field, e.g. `"cohort.min"`.
        field: String,
        /// What is wrong and, where it helps, how to fix it.
        reason: String,
    },
    /// An error in a named file (from [`super::TaskSpec::load`]).
    #[error("{}: {error}", path.display())]
    InFile {
        /// The task spec file.
        path: PathBuf,
        /// What was wrong with its content.
        error: Box<SpecError>,
    },
}

impl SpecError {
    /// A [`SpecError::Invalid`] for `field` (a dotted path such as `"cohort.min"`).
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SpecError {
        SpecError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The dotted path of the invalid field, if this is (or wraps) [`SpecError::Invalid`].
    pub fn field(&self) -> Option<&str> {
        match self.innermost() {
            SpecError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }

    /// The error itself, or the one an [`SpecError::InFile`] wraps (recursively).
    pub fn innermost(&self) -> &SpecError {
        match self {
            SpecError::InFile { error, .. } => error.innermost(),
            other => other,
        }
    }
}
