#!/usr/bin/env bash
# The whole test suite: formatting, lints (warnings are errors) and every test
# of every crate. CI runs exactly this (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/test-contracts.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
