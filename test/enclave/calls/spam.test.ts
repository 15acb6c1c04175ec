// Free spam (issue 20): a transfer of nothing, and calls parked behind a nonce gap, cost their sender nothing. The
// enclave refuses both at admission with a typed code, as a client submitting them sees it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EnclaveCore } from '../../../src/enclave/core.ts';
import { CallPool } from '../../../src/enclave/calls/pool.ts';
import { RejectCode } from '../../../src/protocol/errors.ts';
import { buildTransfer, type ShieldingKey } from '../../../src/client/calls.ts';
import { devAccount, type Account } from '../../../src/client/accounts.ts';
import { Overlay, State } from '../../../src/enclave/state/state.ts';
import { execute } from '../../../src/enclave/state/stf.ts';
import { configSchema } from '../../../src/config/schema.ts';
import { testShard } from '../../helpers/shard.ts';

const { shard: SHARD, shardPolicy: POLICY } = testShard('spam test shard');
// As a node's config: a far nonce window, the default cap on calls behind a gap.
const POOL = { maxPending: 200_000, maxNonceAhead: 1024, futureTtlMs: 30_000 };
const CAP = 16;

let alice: Account;
let bob: Account;
let mallory: Account;
const dirs: string[] = [];
before(async () => {
  alice = await devAccount('//Alice');
  bob = await devAccount('//Bob');
  mallory = await devAccount('//Mallory');
});
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function startCore(): { core: EnclaveCore; key: ShieldingKey } {
  const dataDir = mkdtempSync(join(tmpdir(), 'validateer-spam-'));
  dirs.push(dataDir);
  const core = EnclaveCore.open({
    dataDir,
    shard: SHARD,
    shardPolicy: POLICY,
    workers: 1,
    pool: POOL,
    authorities: [],
  });
  core.genesis([{ account: alice.publicKey, amount: 1_000n }], Date.now());
  const i = core.info();
  return { core, key: { keyId: i.shieldingKeyId, publicKey: i.shieldingKey } };
}

test('a zero-value transfer, even from an empty account, is refused with ZERO_AMOUNT and never executes', async () => {
  const c = startCore();
  try {
    const empty = buildTransfer(
      mallory,
      { to: bob.publicKey, amount: 0n, nonce: 0, memo: 'x'.repeat(256) },
      c.key,
      SHARD,
    );
    const funded = buildTransfer(alice, { to: bob.publicKey, amount: 0n, nonce: 0 }, c.key, SHARD);
    const res = await c.core.submit([empty.request, funded.request], Date.now());
    for (const r of res) {
      assert.equal(r.status, 'invalid');
      assert.equal(r.code, RejectCode.ZERO_AMOUNT);
      assert.ok(r.message);
    }
    assert.equal(c.core.status().poolSize, 0);
    // Nor does the author's block builder execute one (precheck runs again at execution).
    const o = new Overlay(new State());
    const r = execute(
      o,
      { tag: 'transfer', value: { from: mallory.publicKey, to: bob.publicKey, amount: 0n, memo: undefined } },
      0,
      1n,
    );
    assert.equal(!r.ok && r.code, RejectCode.ZERO_AMOUNT);
    assert.equal(o.items().length, 0, 'creates no account');
  } finally {
    await c.core.close();
  }
});

test(`a sender may park at most ${CAP} calls behind a nonce gap; more are refused with TOO_MANY_FUTURE`, async () => {
  const c = startCore();
  try {
    const t = (nonce: number) => buildTransfer(alice, { to: bob.publicKey, amount: 1n, nonce }, c.key, SHARD).request;
    // Nonces 1..CAP+5 with 0 missing: the first CAP park, the rest are refused.
    const parked = Array.from({ length: CAP + 5 }, (_, i) => t(i + 1));
    const res = await c.core.submit(parked, Date.now());
    assert.deepEqual(
      res.slice(0, CAP).map((r) => r.status),
      new Array(CAP).fill('future'),
    );
    for (const r of res.slice(CAP)) {
      assert.equal(r.status, 'invalid');
      assert.equal(r.code, RejectCode.TOO_MANY_FUTURE);
      assert.match(r.message!, /waiting for an earlier nonce/);
    }
    assert.equal(c.core.status().poolSize, CAP);
    // Filling the gap makes the parked calls ready: the sender may then send on, in order, past the cap.
    assert.equal((await c.core.submit([t(0)], Date.now()))[0].status, 'ready');
    const more = await c.core.submit(
      Array.from({ length: 2 * CAP }, (_, i) => t(CAP + 1 + i)),
      Date.now(),
    );
    assert.ok(more.every((r) => r.status === 'ready'));
  } finally {
    await c.core.close();
  }
});

test('the cap is per sender and a pool option; the config carries it with a small default', () => {
  const p = new CallPool({ ...POOL, maxFuturePerSender: 2 });
  const entry = (sender: string, nonce: number) => ({
    hash: `${sender}${nonce}`,
    sender,
    nonce,
    call: {
      tag: 'transfer' as const,
      value: { from: new Uint8Array(32), to: new Uint8Array(32), amount: 1n, memo: undefined },
    },
    addedAtMs: 0,
  });
  assert.equal(p.add(entry('a', 5), 0).status, 'future');
  assert.equal(p.add(entry('a', 9), 0).status, 'future');
  const over = p.add(entry('a', 7), 0);
  assert.equal(over.status === 'invalid' && over.code, RejectCode.TOO_MANY_FUTURE);
  // Another sender has its own allowance; ready calls never count.
  assert.equal(p.add(entry('b', 3), 0).status, 'future');
  assert.equal(p.add(entry('a', 0), 0).status, 'ready');
  assert.equal(configSchema.parse({}).pool.maxFuturePerSender, CAP);
});
