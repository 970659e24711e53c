#!/usr/bin/env node
// End-to-end check of the committed artifacts on a real node: start the pinned anvil on
// 127.0.0.1, deploy artifacts/*.json, run every entry point as a real transaction and print
// the gas of each from its receipt (intrinsic gas and calldata included). Slashing evidence is
// signed by anvil itself (eth_signTypedData_v4), and the contract's EIP-712 digest is compared
// with one computed here from the spec, so the typed data is checked against an independent
// implementation. Exits non-zero if anything fails or a gas goal of issue 5 is missed.
//
//   node scripts/anvil-check.mjs [--json FILE]
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const { encode, decode } = require('@metamask/abi-utils');
const { keccak256 } = require('ethereum-cryptography/keccak');

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const anvilBin = path.join(root, 'node_modules', '.bin', 'anvil');

// ------------------------------------------------------------------ encoding helpers

const hex = (bytes) => `0x${Buffer.from(bytes).toString('hex')}`;
const k256 = (data) => Buffer.from(keccak256(Buffer.isBuffer(data) ? data : Buffer.from(data)));
const selector = (sig) => k256(sig).subarray(0, 4);
const calldata = (sig, types, values) =>
  hex(Buffer.concat([selector(sig), Buffer.from(encode(types, values))]));
const leaf = (account, amount) => k256(k256(Buffer.from(encode(['address', 'uint256'], [account, amount]))));
const hashPair = (a, b) => (Buffer.compare(a, b) < 0 ? k256(Buffer.concat([a, b])) : k256(Buffer.concat([b, a])));

/** Root and proof of `account`'s leaf in a tree of 2^depth leaves (the other leaves are arbitrary). */
function deepTree(account, amount, depth, salt) {
  let node = leaf(account, amount);
  const proof = [];
  for (let i = 0; i < depth; i++) {
    const sibling = k256(`sibling ${salt} ${i}`);
    proof.push(hex(sibling));
    node = hashPair(node, sibling);
  }
  return { root: hex(node), proof };
}

// ------------------------------------------------------------------ node

function startAnvil() {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const child = spawn(anvilBin, ['--host', '127.0.0.1', '--port', String(port), '--silent'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  return { child, url: `http://127.0.0.1:${port}`, stderr: () => stderr };
}

let rpcId = 0;
async function rpc(url, method, params = []) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: ++rpcId, method, params }),
  });
  const body = await res.json();
  if (body.error) throw new Error(`${method}: ${JSON.stringify(body.error)}`);
  return body.result;
}

async function waitReady(url) {
  for (let i = 0; i < 100; i++) {
    try {
      return await rpc(url, 'eth_chainId');
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error('anvil did not start');
}

// ------------------------------------------------------------------ main

const GOALS = {
  'claim: fresh payee, round already final, 1024-leaf tree': 100_000,
  'claim: payee holding tokens, finalizes the round, 1024-leaf tree': 100_000,
  'claim: later claim of the same payee, 1024-leaf tree': 100_000,
  'postRound: first round': 150_000,
  'postRound: later round': 150_000,
  'stake: first stake': 100_000,
  'stake: top-up': 100_000,
};

async function main() {
  const jsonOut = process.argv.includes('--json') ? process.argv[process.argv.indexOf('--json') + 1] : null;
  const node = startAnvil();
  const gas = {};
  try {
    const url = node.url;
    const chainId = BigInt(await waitReady(url));
    const accounts = await rpc(url, 'eth_accounts');
    const [sponsor, coordinator, arbiter, client, staker, payeeA, payeeB, payeeC, reporter] = accounts;

    async function send(from, to, data, label) {
      const hash = await rpc(url, 'eth_sendTransaction', [{ from, to, data, gas: '0x989680' }]);
      let receipt = null;
      for (let i = 0; i < 200 && !receipt; i++) {
        receipt = await rpc(url, 'eth_getTransactionReceipt', [hash]);
        if (!receipt) await new Promise((r) => setTimeout(r, 20));
      }
      if (!receipt || receipt.status !== '0x1') throw new Error(`transaction failed: ${label || data.slice(0, 10)}`);
      if (label) gas[label] = parseInt(receipt.gasUsed, 16);
      return receipt;
    }
    async function call(to, data) {
      return rpc(url, 'eth_call', [{ to, data }, 'latest']);
    }
    async function advance(seconds) {
      await rpc(url, 'evm_increaseTime', [seconds]);
      await rpc(url, 'evm_mine');
    }
    const artifact = (name) => JSON.parse(readFileSync(path.join(root, 'artifacts', `${name}.json`), 'utf8'));
    const deploy = async (name) => (await send(sponsor, null, artifact(name).evm.bytecode.object)).contractAddress;

    const token = await deploy('TestToken');
    const rewards = await deploy('FederatedRewards');
    const notRewards = await deploy('NotRewards');
    if ((await rpc(url, 'eth_getCode', [notRewards, 'latest'])) === '0x') throw new Error('NotRewards has no code');

    // EIP-712: the contract's digest equals the one from the spec
    const domainTypeHash = k256('EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)');
    const domainSeparator = k256(
      Buffer.from(
        encode(
          ['bytes32', 'bytes32', 'bytes32', 'uint256', 'address'],
          [domainTypeHash, k256('FederatedRewards'), k256('1'), chainId, rewards],
        ),
      ),
    );
    const submissionTypeHash = k256('Submission(uint256 taskId,uint64 round,uint32 attempt,bytes32 updateHash)');
    const digest = (taskId, round, attempt, updateHash) =>
      hex(
        k256(
          Buffer.concat([
            Buffer.from([0x19, 0x01]),
            domainSeparator,
            k256(
              Buffer.from(
                encode(
                  ['bytes32', 'uint256', 'uint64', 'uint32', 'bytes32'],
                  [submissionTypeHash, taskId, round, attempt, updateHash],
                ),
              ),
            ),
          ]),
        ),
      );
    const onChainDigest = await call(
      rewards,
      calldata('hashSubmission(uint256,uint64,uint32,bytes32)', ['uint256', 'uint64', 'uint32', 'bytes32'], [
        1n,
        7n,
        2n,
        hex(k256('update')),
      ]),
    );
    if (onChainDigest !== digest(1n, 7n, 2n, hex(k256('update')))) throw new Error('EIP-712 digest mismatch');
    const signSubmission = (signer, taskId, round, attempt, updateHash) =>
      rpc(url, 'eth_signTypedData_v4', [
        signer,
        {
          types: {
            EIP712Domain: [
              { name: 'name', type: 'string' },
              { name: 'version', type: 'string' },
              { name: 'chainId', type: 'uint256' },
              { name: 'verifyingContract', type: 'address' },
            ],
            Submission: [
              { name: 'taskId', type: 'uint256' },
              { name: 'round', type: 'uint64' },
              { name: 'attempt', type: 'uint32' },
              { name: 'updateHash', type: 'bytes32' },
            ],
          },
          primaryType: 'Submission',
          domain: { name: 'FederatedRewards', version: '1', chainId: Number(chainId), verifyingContract: rewards },
          message: { taskId: Number(taskId), round: Number(round), attempt: Number(attempt), updateHash },
        },
      ]);

    // a task
    const E18 = 10n ** 18n;
    const pool = 1_000_000n * E18;
    const now = parseInt((await rpc(url, 'eth_getBlockByNumber', ['latest', false])).timestamp, 16);
    const WINDOW = 3600;
    const mint = (to, amount) =>
      send(to, token, calldata('mint(address,uint256)', ['address', 'uint256'], [to, amount]));
    const approve = (from, amount) =>
      send(from, token, calldata('approve(address,uint256)', ['address', 'uint256'], [rewards, amount]));
    await mint(sponsor, pool);
    await approve(sponsor, pool);
    const taskParams = [
      hex(k256('task.toml')),
      token,
      coordinator,
      arbiter,
      pool,
      100n * E18,
      10_000n * E18,
      BigInt(WINDOW),
      BigInt(WINDOW),
      BigInt(now + 30 * 86400),
      BigInt(now + 60 * 86400),
    ];
    const TASK = '(bytes32,address,address,address,uint256,uint256,uint256,uint64,uint64,uint64,uint64)';
    await send(sponsor, rewards, calldata(`createTask(${TASK})`, [TASK], [taskParams]), 'createTask');
    const taskCount = decode(['uint256'], Buffer.from((await call(rewards, calldata('taskCount()', [], []))).slice(2), 'hex'))[0];
    if (taskCount !== 1n) throw new Error('taskCount != 1');

    // stakes: a staker that keeps some tokens, a client to slash
    for (const who of [staker, client]) {
      await mint(who, 2_000n * E18);
      await approve(who, 2_000n * E18);
    }
    const stake = (from, amount, label) =>
      send(from, rewards, calldata('stake(uint256,uint256)', ['uint256', 'uint256'], [1n, amount]), label);
    await stake(staker, 500n * E18, 'stake: first stake');
    await stake(staker, 100n * E18, 'stake: top-up');
    await stake(client, 1_000n * E18);

    // rounds and claims
    const post = (round, rootHex, total, label) =>
      send(
        coordinator,
        rewards,
        calldata('postRound(uint256,uint64,bytes32,bytes32,uint256)', ['uint256', 'uint64', 'bytes32', 'bytes32', 'uint256'], [
          1n,
          BigInt(round),
          hex(k256(`model ${round}`)),
          rootHex,
          total,
        ]),
        label,
      );
    const claim = (payee, amount, proof, label) =>
      send(
        reporter,
        rewards,
        calldata('claim(uint256,address,uint256,bytes32[])', ['uint256', 'address', 'uint256', 'bytes32[]'], [
          1n,
          payee,
          amount,
          proof,
        ]),
        label,
      );
    const finalize = (label) =>
      send(reporter, rewards, calldata('finalizeRounds(uint256)', ['uint256'], [1n]), label);
    const DEPTH = 10;
    const amount = 100n * E18;

    let t = deepTree(payeeA, amount, DEPTH, 1);
    await post(1, t.root, amount, 'postRound: first round');
    await advance(WINDOW);
    await finalize('finalizeRounds: one round');
    await claim(payeeA, amount, t.proof, 'claim: fresh payee, round already final, 1024-leaf tree');

    await mint(payeeB, 1n);
    t = deepTree(payeeB, amount, DEPTH, 2);
    await post(2, t.root, amount, 'postRound: later round');
    await advance(WINDOW);
    await claim(payeeB, amount, t.proof, 'claim: payee holding tokens, finalizes the round, 1024-leaf tree');

    t = deepTree(payeeC, amount, DEPTH, 3);
    await post(3, t.root, amount);
    await advance(WINDOW);
    await claim(payeeC, amount, t.proof, 'claim: fresh payee, finalizes the round, 1024-leaf tree');

    t = deepTree(payeeA, amount + 50n * E18, DEPTH, 4);
    await post(4, t.root, 50n * E18);
    await advance(WINDOW);
    await finalize();
    await claim(payeeA, amount + 50n * E18, t.proof, 'claim: later claim of the same payee, 1024-leaf tree');

    t = deepTree(payeeA, 1n, 14, 5);
    await post(5, t.root, 1n);
    await send(arbiter, rewards, calldata('veto(uint256,uint64)', ['uint256', 'uint64'], [1n, 5n]), 'veto');

    // slashing with signatures made by anvil
    const EVIDENCE = '(uint32,bytes32,uint8,bytes32,bytes)';
    const SIGNED = '(uint32,bytes32,bytes)';
    const slash = async (round, attempt, updateHash, slashAmount, label) => {
      const sig = await signSubmission(client, 1n, round, attempt, updateHash);
      return send(
        coordinator,
        rewards,
        calldata(`slash(uint256,address,uint64,uint256,${EVIDENCE})`, ['uint256', 'address', 'uint64', 'uint256', EVIDENCE], [
          1n,
          client,
          BigInt(round),
          slashAmount,
          [BigInt(attempt), updateHash, 1n, hex(k256('norm over bound')), sig],
        ]),
        label,
      );
    };
    const slashId = (round, equivocation) =>
      hex(k256(Buffer.from(encode(['uint256', 'address', 'uint64', 'bool'], [1n, client, BigInt(round), equivocation]))));
    await slash(1, 0, hex(k256('update 1')), 100n * E18, 'slash');
    await slash(2, 1, hex(k256('update 2')), 100n * E18);
    await send(arbiter, rewards, calldata('vetoSlash(uint256,bytes32)', ['uint256', 'bytes32'], [1n, slashId(1, false)]), 'vetoSlash');
    const ua = hex(k256('update a'));
    const ub = hex(k256('update b'));
    const sa = await signSubmission(client, 1n, 3, 0, ua);
    const sb = await signSubmission(client, 1n, 3, 0, ub);
    await send(
      reporter,
      rewards,
      calldata(`slashEquivocation(uint256,address,uint64,${SIGNED},${SIGNED})`, ['uint256', 'address', 'uint64', SIGNED, SIGNED], [
        1n,
        client,
        3n,
        [0n, ua, sa],
        [0n, ub, sb],
      ]),
      'slashEquivocation',
    );
    await advance(WINDOW);
    await send(reporter, rewards, calldata('finalizeSlash(uint256,bytes32)', ['uint256', 'bytes32'], [1n, slashId(2, false)]), 'finalizeSlash');

    // unstake, withdraw, reclaim
    await send(staker, rewards, calldata('requestUnstake(uint256,uint256)', ['uint256', 'uint256'], [1n, 200n * E18]), 'requestUnstake');
    await advance(WINDOW);
    await send(staker, rewards, calldata('withdraw(uint256)', ['uint256'], [1n]), 'withdraw');
    await advance(30 * 86400);
    await send(sponsor, rewards, calldata('reclaim(uint256)', ['uint256'], [1n]), 'reclaim: unreserved pool after the end');

    // report
    const width = Math.max(...Object.keys(gas).map((k) => k.length));
    let failed = false;
    console.log(`gas per transaction on anvil (receipts; intrinsic and calldata included):`);
    for (const [label, used] of Object.entries(gas)) {
      const goal = GOALS[label];
      const verdict = goal === undefined ? '' : used <= goal ? `  <= ${goal} ok` : `  > ${goal} GOAL MISSED`;
      if (goal !== undefined && used > goal) failed = true;
      console.log(`  ${label.padEnd(width)}  ${String(used).padStart(7)}${verdict}`);
    }
    if (jsonOut) writeFileSync(jsonOut, `${JSON.stringify(gas, null, 2)}\n`);
    if (failed) throw new Error('a gas goal was missed');
    console.log('anvil end-to-end check passed (artifacts deploy, EIP-712 digest and anvil signatures accepted)');
  } finally {
    node.child.kill('SIGTERM');
  }
}

main().catch((e) => {
  process.stderr.write(`anvil-check: ${e.stack || e}\n`);
  process.exit(1);
});
