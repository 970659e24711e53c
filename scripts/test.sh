#!/usr/bin/env bash
# The whole test suite: formatting, lints (warnings are errors) and every test
# of every crate. CI runs exactly this (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

# Installs the contract toolchain (npm, pinned), checks the committed
# artifacts, runs forge's unit/fuzz/invariant tests and prints the gas report.
# The Rust ledger tests below need the same install (anvil, merkle-tree).
scripts/test-contracts.sh

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
