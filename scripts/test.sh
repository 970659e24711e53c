#!/usr/bin/env bash
# The whole test suite: formatting, lints (warnings are errors) and every test
# of every crate, then the same for the optional torch training backend
# against the pinned PyTorch that scripts/install-torch.sh installs. CI runs
# exactly this (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
# A one-shot build gains nothing from incremental caches, which cost GBs.
export CARGO_INCREMENTAL=0

# Installs the contract toolchain (npm, pinned), checks the committed
# artifacts, runs forge's unit/fuzz/invariant tests and prints the gas report.
# The Rust ledger tests below need the same install (anvil, merkle-tree).
scripts/test-contracts.sh

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked

# The torch feature: tch's build script (torch-sys) asks the venv's python
# where libtorch is (LIBTORCH_USE_PYTORCH); client/build.rs puts that
# directory into the executables' rpath, and the tests export their
# TorchScript model with the venv's python.
scripts/install-torch.sh
export LIBTORCH_USE_PYTORCH=1 PATH="$PWD/.venv-torch/bin:$PATH"
cargo clippy -p fedstake-client -p fedstake --all-targets --features torch --locked -- -D warnings
# One invocation for both packages: one feature resolution, so libtorch's C++
# shim (torch-sys, minutes on two cores) is compiled once for both.
cargo test -p fedstake-client -p fedstake --features torch --locked --tests
