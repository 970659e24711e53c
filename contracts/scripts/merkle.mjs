#!/usr/bin/env node
// Build an OpenZeppelin StandardMerkleTree of cumulative payouts, exactly as the contract
// verifies them (leaf = keccak256(bytes.concat(keccak256(abi.encode(address, uint256))))).
//
// stdin:  JSON [[address, amountString], ...]
// stdout: JSON {"root": "0x..", "proofs": {"<address as given>": ["0x..", ...], ...}}
//
// Used by the Rust tests to cross-check their Merkle trees, and by the Solidity fixture.
import { readFileSync } from 'node:fs';
import { StandardMerkleTree } from '@openzeppelin/merkle-tree';

function fail(message) {
  process.stderr.write(`merkle.mjs: ${message}\n`);
  process.exit(1);
}

let values;
try {
  values = JSON.parse(readFileSync(0, 'utf8'));
} catch (e) {
  fail(`stdin is not JSON: ${e.message}`);
}
if (!Array.isArray(values) || values.length === 0) fail('expected a non-empty array of [address, amount]');
for (const [i, v] of values.entries()) {
  if (!Array.isArray(v) || v.length !== 2 || typeof v[0] !== 'string' || typeof v[1] !== 'string') {
    fail(`entry ${i} is not [addressString, amountString]`);
  }
  if (!/^0x[0-9a-fA-F]{40}$/.test(v[0])) fail(`entry ${i}: bad address ${v[0]}`);
  if (!/^[0-9]+$/.test(v[1])) fail(`entry ${i}: amount must be a decimal string, got ${v[1]}`);
  if (BigInt(v[1]) >= 1n << 256n) fail(`entry ${i}: amount does not fit in uint256`);
}
const seen = new Set();
for (const [i, [address]] of values.entries()) {
  const key = address.toLowerCase();
  if (seen.has(key)) fail(`entry ${i}: duplicate address ${address} (one cumulative leaf per account)`);
  seen.add(key);
}

const tree = StandardMerkleTree.of(values, ['address', 'uint256']);
const proofs = {};
for (const [i, v] of tree.entries()) {
  proofs[v[0]] = tree.getProof(i);
}
process.stdout.write(`${JSON.stringify({ root: tree.root, proofs }, null, 2)}\n`);
