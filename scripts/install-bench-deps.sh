#!/usr/bin/env bash
# Installs what scripts/bench-numpy-aggregators.py needs: a pinned numpy in a
# virtualenv at .venv-bench (gitignored). Idempotent: a second run that finds
# the pinned version installed does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

# numpy 2.4.x is the last series that supports Python 3.11 (the system Python).
NUMPY_VERSION=2.4.6
VENV=.venv-bench

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if [ "$("$VENV/bin/python" -c 'import numpy; print(numpy.__version__)' 2>/dev/null)" != "$NUMPY_VERSION" ]; then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "numpy==$NUMPY_VERSION"
fi
echo "numpy $NUMPY_VERSION ready in $VENV"
