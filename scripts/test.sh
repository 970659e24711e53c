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

# Crates that each do one job: the round engine does no IO, the training
# client links no EVM, the lab no QUIC (docs/architecture.md).
refuse_dependency() { # crate, dependency
  if cargo tree -p "$1" -e normal --locked --prefix none | grep -qE "^$2 v"; then
    echo "$1 depends on $2" >&2
    cargo tree -p "$1" -e normal --locked -i "$2" >&2
    exit 1
  fi
}
for io in tokio quinn rusqlite revm; do refuse_dependency fedstake-round "$io"; done
refuse_dependency fedstake-client revm
refuse_dependency fedstake-simulations quinn
refuse_dependency fedstake-simulations revm
echo "crate boundaries: ok"
cargo test --workspace --locked

# The torch feature: tch's build script (torch-sys) asks the venv's python
# where libtorch is (LIBTORCH_USE_PYTORCH); training/build.rs puts that
# directory into the executables' rpath, and the tests export their
# TorchScript model with the venv's python.
scripts/install-torch.sh
export LIBTORCH_USE_PYTORCH=1 PATH="$PWD/.venv-torch/bin:$PATH"
cargo clippy -p fedstake-training -p fedstake --all-targets --features torch --locked -- -D warnings
# One invocation for both packages: one feature resolution, so libtorch's C++
# shim (torch-sys, minutes on two cores) is compiled once for both.
cargo test -p fedstake-training -p fedstake --features torch --locked --tests
