#!/usr/bin/env bash
# Install the contracts' pinned toolchain (forge, anvil, solc-js, OpenZeppelin, merkle-tree)
# into contracts/node_modules from the npm registry. Idempotent: runs `npm ci` only when
# node_modules is missing or package-lock.json changed since the last install; otherwise a
# fast no-op.
set -euo pipefail
cd "$(dirname "$0")/../contracts"

# One install at a time (cargo tests and this script may run it concurrently).
exec 9>.install.lock
flock 9

stamp=node_modules/.fedstake-lock.sha256
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x node_modules/.bin/forge ]]; then
  exit 0
fi

echo "installing contract toolchain (npm ci in contracts/)" >&2
npm ci --no-audit --no-fund --loglevel=error
node_modules/.bin/forge --version >/dev/null
node scripts/solc.mjs --version >/dev/null
echo "$want" >"$stamp"
