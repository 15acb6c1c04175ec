// End-to-end against a real Substrate runtime: one chopsticks dev chain (Rococo Asset Hub) for the
// whole file, reached through the Substrate adapter like any node would be.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Keyring } from '@polkadot/keyring';
import { blake2AsU8a, cryptoWaitReady } from '@polkadot/util-crypto';
import { u8aEq } from '@polkadot/util';
import { startDevChain, DEV_ACCOUNT_BALANCE, type DevChain } from '../../src/parentchain/devchain.ts';
import {
  connectParentchain,
  createPureProxy,
  proxyTransfer,
  type SubstrateParentchain,
} from '../../src/parentchain/substrate.ts';
import { ed25519Signer, keyringSigner } from '../../src/parentchain/signers.ts';
import { decodeMessage, encodeMessage, type ParentchainMessage } from '../../src/protocol/parentchain-messages.ts';
import type { ExtrinsicSigner, ParentchainBlock, ParentchainExtrinsic } from '../../src/parentchain/api.ts';
import { sleep, waitFor } from '../e2e/harness.ts';
import { same } from '../../src/protocol/bytes.ts';

const UNIT = 10n ** 12n; // ROC has 12 decimals
const enclave = ed25519Signer(new Uint8Array(32).fill(0x11));
let chain: DevChain;
let pc: SubstrateParentchain;
let alice: ExtrinsicSigner;
let bob: Uint8Array;
let charlie: Uint8Array;

const shard = new Uint8Array(32).fill(0x5a);
const invoke = (n: number): ParentchainMessage => ({
  tag: 'invoke',
  value: { shard, request: Uint8Array.of(n, n, n) },
});

/** Scans finalized blocks [from, to] and returns them (in order, as delivered). */
async function scanRange(from: number, to: number): Promise<ParentchainBlock[]> {
  const blocks: ParentchainBlock[] = [];
  const scanner = pc.scanFinalized(from, (b) => void blocks.push(b));
  await waitFor(() => scanner.next > to, `scan to ${to}`, 60_000);
  await scanner.stop();
  return blocks.filter((b) => b.header.number <= to);
}

before(async () => {
  await cryptoWaitReady();
  const keyring = new Keyring({ type: 'sr25519' });
  alice = keyringSigner(keyring.addFromUri('//Alice'));
  bob = keyring.addFromUri('//Bob').publicKey;
  charlie = keyring.addFromUri('//Charlie').publicKey;
  chain = await startDevChain({
    host: '127.0.0.1',
    blockTimeMs: 1000,
    endowments: [{ publicKey: enclave.publicKey, amount: 1_000n * UNIT }],
  });
  console.log(`dev chain ready at ${chain.endpoint} after ${chain.startupMs} ms`);
  pc = await connectParentchain({ endpoint: chain.endpoint, onWarning: () => undefined });
});

after(async () => {
  await pc?.close();
  await chain?.close();
});

test('dev accounts and endowments are funded at genesis', async () => {
  assert.equal((await pc.balance(alice.publicKey)).free, DEV_ACCOUNT_BALANCE);
  assert.equal((await pc.balance(enclave.publicKey)).free, 1_000n * UNIT);
});

test('finalized heads advance on the timer and the subscription reports them', async () => {
  const seen: number[] = [];
  const unsubscribe = await pc.subscribeFinalizedHeads((h) => seen.push(h.number));
  try {
    const start = (await pc.finalizedHead()).number;
    await waitFor(() => seen.filter((n) => n > start).length >= 3, 'three more finalized heads', 60_000);
    assert.ok((await pc.finalizedHead()).number >= start + 3);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i] >= seen[i - 1], 'finalized heads never go back');
  } finally {
    unsubscribe();
  }
});

test('headers hash to their block hash with blake2_256 and link to their parents', async () => {
  const head = (await pc.finalizedHead()).number;
  const blocks = await scanRange(0, head);
  assert.deepEqual(
    blocks.map((b) => b.header.number),
    [...Array(head + 1).keys()],
  );
  // chopsticks reports the genesis block under the pseudo hash 0x4545..; the chain of real hashes starts at #1
  assert.ok(u8aEq(blocks[1].header.parentHash, pc.genesisHash()));
  for (const b of blocks.slice(1)) {
    assert.ok(u8aEq(blake2AsU8a(b.header.encoded, 256), b.header.hash), `hash of #${b.header.number}`);
    assert.ok(u8aEq((await pc.header(b.header.number))!.encoded, b.header.encoded));
  }
  for (let i = 2; i < blocks.length; i++)
    assert.ok(u8aEq(blocks[i].header.parentHash, blocks[i - 1].header.hash), `parent of #${i}`);
});

test('a remark from the funded ed25519 account is found by scanning, with its signer and message', async () => {
  const from = (await pc.finalizedHead()).number + 1;
  const result = await pc.submit(enclave, { kind: 'remark', remark: encodeMessage(invoke(1)) });
  assert.equal(result.success, true);
  assert.ok(result.estimatedFee > 0n);
  const blocks = await scanRange(from, result.blockNumber);
  const found: ParentchainExtrinsic[] = blocks.flatMap((b) =>
    b.extrinsics.filter((x) => x.signer && u8aEq(x.signer, enclave.publicKey)),
  );
  assert.equal(found.length, 1);
  const [x] = found;
  assert.ok(u8aEq(x.hash, result.extrinsicHash));
  assert.equal(`${x.call.pallet}.${x.call.method}`, 'system.remarkWithEvent');
  assert.deepEqual(decodeMessage(x.call.remark!), invoke(1));
  assert.equal(x.success, true);
  assert.ok(x.events.some((e) => e.pallet === 'system' && e.name === 'Remarked'));
  // inherents are unsigned and other remarks are not ours
  assert.ok(blocks.every((b) => b.extrinsics.filter((e) => !e.signer).every((e) => e.call.remark === undefined)));
});

test('utility.batchAll[transferKeepAlive, remarkWithEvent] by //Alice is decoded with its inner calls', async () => {
  const before = (await pc.balance(bob)).free;
  const amount = 12_345n * 10n ** 9n;
  const shield: ParentchainMessage = { tag: 'shield', value: { shard, recipient: Uint8Array.of(9, 8, 7) } };
  const result = await pc.submit(
    alice,
    {
      kind: 'batchAll',
      calls: [
        { kind: 'transferKeepAlive', dest: bob, amount },
        { kind: 'remark', remark: encodeMessage(shield) },
      ],
    },
    { waitFor: 'finalized' },
  );
  assert.equal(result.success, true, result.error);
  const x = (await pc.block(result.blockHash)).extrinsics[result.index];
  assert.ok(u8aEq(x.signer!, alice.publicKey));
  assert.equal(`${x.call.pallet}.${x.call.method}`, 'utility.batchAll');
  const [transfer, remark] = x.call.calls!;
  assert.equal(`${transfer.pallet}.${transfer.method}`, 'balances.transferKeepAlive');
  assert.ok(u8aEq(transfer.transfer!.dest, bob));
  assert.equal(transfer.transfer!.amount, amount);
  assert.equal(`${remark.pallet}.${remark.method}`, 'system.remarkWithEvent');
  assert.deepEqual(decodeMessage(remark.remark!), shield);
  assert.equal((await pc.balance(bob)).free - before, amount);
});

test('an unfunded ed25519 account gets PARENTCHAIN_INSUFFICIENT_FUNDS', async () => {
  const poor = ed25519Signer(new Uint8Array(32).fill(0x99));
  await assert.rejects(
    pc.submit(poor, { kind: 'remark', remark: encodeMessage(invoke(2)) }),
    (err: { code?: string }) => err.code === 'PARENTCHAIN_INSUFFICIENT_FUNDS',
  );
  // and a funded one asking to move more than it has
  await assert.rejects(
    pc.submit(enclave, { kind: 'transferKeepAlive', dest: bob, amount: 10_000n * UNIT }),
    (err: { code?: string }) => err.code === 'PARENTCHAIN_INSUFFICIENT_FUNDS',
  );
});

test('a pure proxy (the shard vault) pays out through proxy.proxy by its controller', async () => {
  const { pure } = await createPureProxy(pc, enclave);
  assert.equal(pure.length, 32);
  const funded = await pc.submit(alice, { kind: 'transferKeepAlive', dest: pure, amount: 10n * UNIT });
  assert.equal(funded.success, true, funded.error);
  const before = (await pc.balance(charlie)).free;
  const paid = await proxyTransfer(pc, enclave, pure, charlie, 3n * UNIT);
  assert.equal(paid.success, true, paid.error);
  assert.equal((await pc.balance(charlie)).free - before, 3n * UNIT);
  assert.equal((await pc.balance(pure)).free, 7n * UNIT);
  const x = (await pc.block(paid.blockHash)).extrinsics[paid.index];
  assert.equal(`${x.call.pallet}.${x.call.method}`, 'proxy.proxy');
  assert.ok(u8aEq(x.call.real!, pure));
  assert.ok(u8aEq(x.call.calls![0].transfer!.dest, charlie));
  // a payout the vault cannot cover: the extrinsic is included but the proxied call fails
  const tooMuch = await proxyTransfer(pc, enclave, pure, charlie, 100n * UNIT);
  assert.equal(tooMuch.success, false);
  assert.match(tooMuch.error ?? '', /InsufficientBalance|FundsUnavailable|Token/);
  assert.equal((await pc.balance(pure)).free, 7n * UNIT);
});

test('an RPC outage: blocks go on, the scanner resumes without missing or repeating a block, a pending submission lands once', async () => {
  const from = (await pc.finalizedHead()).number;
  const numbers: number[] = [];
  let ours = 0;
  const message = encodeMessage(invoke(3));
  const scanner = pc.scanFinalized(from, (b) => {
    numbers.push(b.header.number);
    ours += b.extrinsics.filter((x) => x.call.remark && same(x.call.remark, message)).length;
  });
  await waitFor(() => numbers.length >= 2, 'scanner running', 60_000);
  await chain.suspendRpc();
  // submitted while the endpoint is down: it waits for the reconnection
  const pending = pc.submit(enclave, { kind: 'remark', remark: message });
  await sleep(4000);
  const headDuringOutage = await chain.newBlock(); // the chain itself keeps going
  await chain.resumeRpc();
  const result = await pending;
  assert.equal(result.success, true);
  assert.ok(result.blockNumber > headDuringOutage, 'submitted after the endpoint came back');
  await waitFor(() => scanner.next > result.blockNumber + 1, 'scanner caught up', 60_000);
  await scanner.stop();
  assert.deepEqual(
    numbers,
    Array.from({ length: numbers.length }, (_, i) => from + i),
    'every block exactly once, in order',
  );
  assert.ok(numbers.includes(headDuringOutage));
  assert.equal(ours, 1, 'the remark was included exactly once');
});

test('paused block production keeps a submitted extrinsic in the pool until a block is built', async () => {
  const head = await chain.pauseBlocks();
  try {
    const submitted = pc.submit(alice, { kind: 'remark', remark: Uint8Array.of(7, 7, 7) });
    await waitFor(
      async () => (await pc.api.rpc.author.pendingExtrinsics()).length === 1,
      'the extrinsic in the pool',
      30_000,
      100,
    );
    assert.equal((await pc.finalizedHead()).number, head, 'no block was built while paused');
    assert.equal(await chain.newBlock(), head + 1);
    const r = await submitted;
    assert.equal(r.blockNumber, head + 1);
    assert.equal((await pc.api.rpc.author.pendingExtrinsics()).length, 0);
  } finally {
    await chain.resumeBlocks();
  }
  await waitFor(async () => (await pc.finalizedHead()).number > head + 1, 'blocks on the timer again', 30_000, 100);
});
