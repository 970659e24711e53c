//! Reading a task's TorchScript file: the bytes are read once, hashed and
//! checked against the task's pin, and those same bytes are what libtorch
//! loads, so the file cannot change between the check and the load.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::trainer::TrainError;

/// A TorchScript file in memory whose SHA-256 matched the task's pin (if the
/// task pins one).
#[derive(Debug, Clone)]
pub struct TorchScriptFile {
    path: PathBuf,
    bytes: Vec<u8>,
    sha256: String,
}

impl TorchScriptFile {
    /// Reads `path` and checks its SHA-256 against `expected_sha256` (64 hex
    /// digits, any case), naming both digests on a mismatch.
    pub fn read(path: &Path, expected_sha256: Option<&str>) -> Result<Self, TrainError> {
        let bytes = std::fs::read(path).map_err(|e| TrainError::TorchScript {
            path: path.into(),
            reason: format!("cannot read it: {e}"),
        })?;
        let sha256 = format!("{:x}", Sha256::digest(&bytes));
        if let Some(expected) = expected_sha256
            && !expected.eq_ignore_ascii_case(&sha256)
        {
            return Err(TrainError::TorchScript {
                path: path.into(),
                reason: format!(
                    "sha256 mismatch: the task pins {expected}, the file's is {sha256}"
                ),
            });
        }
        Ok(Self {
            path: path.into(),
            bytes,
            sha256,
        })
    }

    /// Where the file was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's SHA-256 in lowercase hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The file's contents.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// An error about this file.
    pub(super) fn error(&self, reason: impl Into<String>) -> TrainError {
        TrainError::TorchScript {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }
}
