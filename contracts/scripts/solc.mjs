#!/usr/bin/env node
// A stand-in for the native `solc` binary, backed by the pinned solc-js (npm `solc`).
//
// Forge cannot download compilers here, so foundry.toml points `solc` at this file.
// Forge calls it in two ways, and this script answers both:
//   solc --version                          -> native-format version line
//   solc [--base-path P] [--include-path P] [--allow-paths P] --standard-json  (input on stdin)
//                                           -> standard-JSON output on stdout
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const solc = require('solc');

const args = process.argv.slice(2);

if (args.includes('--version') || args.includes('-v')) {
  // solc-js reports e.g. "0.8.28+commit.7893614a.Emscripten.clang"; forge expects native output.
  const long = solc.version();
  const m = long.match(/^(\d+\.\d+\.\d+)\+commit\.([0-9a-f]+)/);
  if (!m) {
    process.stderr.write(`unexpected solc-js version string: ${long}\n`);
    process.exit(1);
  }
  process.stdout.write(
    `solc, the solidity compiler commandline interface\nVersion: ${m[1]}+commit.${m[2]}.Linux.g++\n`,
  );
  process.exit(0);
}

if (!args.includes('--standard-json')) {
  process.stderr.write('this solc stand-in supports only --version and --standard-json\n');
  process.exit(2);
}

// Directories that imports may be resolved against when a source is not already in the input.
const roots = [process.cwd()];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--base-path' || args[i] === '--include-path') {
    if (args[i + 1]) roots.push(path.resolve(args[i + 1]));
    i++;
  }
}

function findImports(p) {
  for (const root of roots) {
    try {
      return { contents: readFileSync(path.resolve(root, p), 'utf8') };
    } catch {
      // try the next root
    }
  }
  return { error: `File not found: ${p}` };
}

const input = readFileSync(0, 'utf8');
process.stdout.write(solc.compile(input, { import: findImports }));
