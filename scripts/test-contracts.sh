#!/usr/bin/env bash
# Contracts: install the pinned toolchain (idempotent), check that the committed artifacts and
# the Merkle fixture are current, run every forge test (unit, fuzz and invariant tests; runs
# and depth in contracts/foundry.toml), check forge compiled the very bytecode of the artifacts,
# then print the gas report and the gas of each entry point as a real transaction on anvil.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-contract-deps.sh
cd contracts
forge=node_modules/.bin/forge

echo "== artifacts and fixture"
node scripts/build-artifacts.mjs --check
node scripts/merkle-fixture.mjs --check

echo "== forge test"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
"$forge" test 2>&1 | tee "$log"
summary="$(grep -E '^Ran [0-9]+ test suites?' "$log" | tail -n 1)"
passed="$(sed -nE 's/.* ([0-9]+) tests passed.*/\1/p' <<<"$summary")"
failed="$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$summary")"

echo "== forge bytecode equals the committed artifacts"
node -e '
  const fs = require("fs");
  for (const name of ["FederatedRewards", "TestToken", "NotRewards"]) {
    const a = JSON.parse(fs.readFileSync(`artifacts/${name}.json`));
    const f = JSON.parse(fs.readFileSync(`out/${name}.sol/${name}.json`));
    if (a.evm.bytecode.object !== f.bytecode.object || a.evm.deployedBytecode.object !== f.deployedBytecode.object) {
      console.error(`${name}: forge bytecode differs from artifacts/${name}.json (settings drifted?)`);
      process.exit(1);
    }
  }
  console.log("same bytecode");
'

echo "== gas report (forge, one transaction per call)"
"$forge" test --match-contract GasTest --gas-report 2>&1 |
  grep -E '^\| *(Function Name|Deployment|[0-9]|claim |createTask|finalize|postRound|reclaim|requestUnstake|slash|stake |veto|withdraw)' |
  grep -vE '^\| (slashIdOf|slashInfo|stakeOf)' || true

echo "== gas per scenario (anvil receipts)"
node scripts/anvil-check.mjs

echo "contracts: ${passed:-0} passed, ${failed:-0} failed"
