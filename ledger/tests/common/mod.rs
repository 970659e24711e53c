//! Paths to the npm-installed tools the integration tests run.
#![allow(dead_code)] // Each test binary uses only some of these.

use std::path::PathBuf;

/// `contracts/`, beside this crate (shared with the rewards crate's tests).
pub fn contracts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../contracts")
}

/// The pinned anvil binary; a clear panic if the install script has not run.
pub fn anvil_path() -> PathBuf {
    let path = contracts_dir().join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    assert!(
        path.exists(),
        "{} is missing: run scripts/install-contract-deps.sh (the test command does)",
        path.display()
    );
    path
}
