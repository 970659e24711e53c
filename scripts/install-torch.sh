#!/usr/bin/env bash
# Installs libtorch for the `torch` training backend: the pinned PyTorch wheel
# from PyPI in a virtualenv at .venv-torch (gitignored). tch's build script
# (torch-sys, with LIBTORCH_USE_PYTORCH=1) asks this venv's python where the
# headers and shared libraries are, and our build scripts put that library
# directory into the binaries' rpath. Idempotent: a second run that finds the
# pinned version installed does nothing.
#
# The PyPI wheel bundles the CUDA runtime libraries (about 4.7 GB installed);
# the same build then trains on the CPU or on any CUDA device the driver shows.
set -euo pipefail
cd "$(dirname "$0")/.."

# tch 0.26 (torch-sys) refuses any other libtorch version at build time.
TORCH_VERSION=2.13.0
VENV=.venv-torch

installed() {
    "$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null
}

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if [ "$(installed)" != "$TORCH_VERSION" ]; then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "torch==$TORCH_VERSION"
fi
if [ "$(installed)" != "$TORCH_VERSION" ]; then
    echo "install-torch.sh: torch $TORCH_VERSION did not import from $VENV" >&2
    exit 1
fi
echo "torch $TORCH_VERSION ready in $VENV"
