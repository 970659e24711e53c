#!/usr/bin/env node
// Compile the contracts with the pinned solc-js (standard JSON) and write one artifact per
// contract to artifacts/<Name>.json, shaped as alloy's `sol!` macro accepts:
//   { "abi": [...], "evm": { "bytecode": { "object": "0x..." }, "deployedBytecode": { "object": "0x..." } } }
//
// Output is deterministic: fixed compiler, fixed settings, no metadata hash in the bytecode.
//
//   node scripts/build-artifacts.mjs           write the artifacts
//   node scripts/build-artifacts.mjs --check   fail if the committed artifacts differ
//
// The settings must match foundry.toml (optimizer, runs, evm version, bytecode hash), so the
// bytecode here is the bytecode `forge test` exercised; scripts/test-contracts.sh checks that.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const solc = require('solc');

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Contracts that get an artifact: source file -> contract name. */
export const CONTRACTS = [
  ['src/FederatedRewards.sol', 'FederatedRewards'],
  ['src/TestToken.sol', 'TestToken'],
  ['src/NotRewards.sol', 'NotRewards'],
];

/** Compiler settings shared with foundry.toml. */
export const SETTINGS = {
  optimizer: { enabled: true, runs: 10000 },
  evmVersion: 'cancun',
  viaIR: false,
  metadata: { bytecodeHash: 'none' },
  outputSelection: {
    '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] },
  },
};

function findImports(p) {
  const candidates = [path.join(root, p), path.join(root, 'node_modules', p)];
  for (const c of candidates) {
    if (existsSync(c)) return { contents: readFileSync(c, 'utf8') };
  }
  return { error: `File not found: ${p}` };
}

export function compile() {
  const sources = {};
  for (const [file] of CONTRACTS) {
    sources[file] = { content: readFileSync(path.join(root, file), 'utf8') };
  }
  const input = { language: 'Solidity', sources, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const errors = (output.errors || []).filter((e) => e.severity === 'error');
  if (errors.length > 0) {
    for (const e of errors) process.stderr.write(`${e.formattedMessage || e.message}\n`);
    throw new Error('compilation failed');
  }
  const artifacts = {};
  for (const [file, name] of CONTRACTS) {
    const c = output.contracts[file][name];
    const artifact = {
      abi: c.abi,
      evm: {
        bytecode: { object: `0x${c.evm.bytecode.object}` },
        deployedBytecode: { object: `0x${c.evm.deployedBytecode.object}` },
      },
    };
    artifacts[name] = `${JSON.stringify(artifact, null, 2)}\n`;
  }
  return artifacts;
}

function main() {
  const check = process.argv.includes('--check');
  const outDir = path.join(root, 'artifacts');
  const artifacts = compile();
  let stale = [];
  for (const [name, text] of Object.entries(artifacts)) {
    const file = path.join(outDir, `${name}.json`);
    if (check) {
      const current = existsSync(file) ? readFileSync(file, 'utf8') : null;
      if (current !== text) stale.push(path.relative(root, file));
    } else {
      mkdirSync(outDir, { recursive: true });
      writeFileSync(file, text);
      process.stdout.write(`wrote ${path.relative(root, file)} (${(text.length / 1024).toFixed(1)} KiB)\n`);
    }
  }
  if (check) {
    if (stale.length > 0) {
      process.stderr.write(
        `artifacts out of date: ${stale.join(', ')}\nrun: node contracts/scripts/build-artifacts.mjs\n`,
      );
      process.exit(1);
    }
    process.stdout.write(`artifacts up to date (solc ${solc.version()})\n`);
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main();
}
