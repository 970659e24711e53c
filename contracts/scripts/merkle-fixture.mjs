#!/usr/bin/env node
// Write test/fixtures/merkle.json: a cumulative-payout tree built by scripts/merkle.mjs (the
// script the Rust tests also compare against), in a shape forge's JSON cheatcodes read. The
// Solidity test MerkleFixture.t.sol checks that its own tree builder and the contract agree.
//
//   node scripts/merkle-fixture.mjs           write the fixture
//   node scripts/merkle-fixture.mjs --check   fail if the committed fixture differs
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const file = path.join(root, 'test', 'fixtures', 'merkle.json');

// Seven accounts (odd count: an unbalanced tree), a zero amount, a one-wei amount, 2^100.
const values = [
  ['0x1111111111111111111111111111111111111111', '100000000000000000000'],
  ['0x2222222222222222222222222222222222222222', '250'],
  ['0x3333333333333333333333333333333333333333', '0'],
  ['0xabcdef0123456789abcdef0123456789abcdef01', '1'],
  ['0x00000000000000000000000000000000000000fe', '1267650600228229401496703205376'],
  ['0x5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a', '31415926535897932384626'],
  ['0xdeadbeefdeadbeefdeadbeefdeadbeefdeadbeef', '42'],
];

const out = JSON.parse(
  execFileSync(process.execPath, [path.join(root, 'scripts', 'merkle.mjs')], {
    input: JSON.stringify(values),
    encoding: 'utf8',
  }),
);
const fixture = {
  root: out.root,
  accounts: values.map((v) => v[0]),
  amounts: values.map((v) => v[1]),
  proofs: values.map((v) => out.proofs[v[0]]),
};
const text = `${JSON.stringify(fixture, null, 2)}\n`;

if (process.argv.includes('--check')) {
  if (!existsSync(file) || readFileSync(file, 'utf8') !== text) {
    process.stderr.write('test/fixtures/merkle.json is out of date: run node contracts/scripts/merkle-fixture.mjs\n');
    process.exit(1);
  }
  process.stdout.write('merkle fixture up to date\n');
} else {
  writeFileSync(file, text);
  process.stdout.write(`wrote ${path.relative(root, file)}\n`);
}
