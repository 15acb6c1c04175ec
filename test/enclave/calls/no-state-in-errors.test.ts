// Rejections leave the enclave (to the host, and over RPC to anyone): they carry a stable code and a message
// naming no account data. Each test uses distinctive balances and nonces and looks for them in what comes out.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EnclaveCore } from '../../../src/enclave/core.ts';
import { buildTransfer, type ShieldingKey } from '../../../src/client/calls.ts';
import { devAccount, type Account } from '../../../src/client/accounts.ts';
import { Overlay, State } from '../../../src/enclave/state/state.ts';
import { execute } from '../../../src/enclave/state/stf.ts';
import { testShard } from '../../helpers/shard.ts';

const { shard: SHARD, shardPolicy: POLICY } = testShard('no state in errors test shard');
const POOL = { maxPending: 1000, maxNonceAhead: 16, futureTtlMs: 30000 };
const ALICE_START = 7_654_321n;
const OVERDRAFT = 7_654_329n;

let alice: Account;
let bob: Account;
const dirs: string[] = [];
before(async () => {
  alice = await devAccount('//Alice');
  bob = await devAccount('//Bob');
});
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function startCore(): { core: EnclaveCore; key: ShieldingKey; slot: bigint } {
  const dataDir = mkdtempSync(join(tmpdir(), 'validateer-noleak-'));
  dirs.push(dataDir);
  const core = EnclaveCore.open({
    dataDir,
    shard: SHARD,
    shardPolicy: POLICY,
    workers: 1,
    pool: POOL,
    authorities: [],
  });
  core.genesis([{ account: alice.publicKey, amount: ALICE_START }], Date.now());
  const i = core.info();
  return { core, key: { keyId: i.shieldingKeyId, publicKey: i.shieldingKey }, slot: 1n };
}

/** Asserts that neither the code nor the message names any of `values` or the accounts involved. */
function assertNoState(r: { code?: string; message?: string }, values: (bigint | number)[]): void {
  const text = `${r.code ?? ''} ${r.message ?? ''}`;
  assert.ok(r.code, 'a rejection has a code');
  for (const v of values) assert.doesNotMatch(text, new RegExp(`\\b${v}\\b`), `${text} names ${v}`);
  for (const a of [alice, bob]) {
    const hex = Buffer.from(a.publicKey).toString('hex');
    assert.ok(!text.toLowerCase().includes(hex.slice(0, 16)), `${text} names an account key`);
    assert.ok(!text.includes(a.address), `${text} names an account address`);
  }
}

test('submission rejections (overdraft, stale nonce, nonce too far, duplicate nonce) name no balance or nonce', async () => {
  const c = startCore();
  try {
    const transfer = (amount: bigint, nonce: number) =>
      buildTransfer(alice, { to: bob.publicKey, amount, nonce }, c.key, SHARD);
    // Five transfers make the account nonce 5 and the balance ALICE_START - 5 * 11.
    const first = [0, 1, 2, 3, 4].map((n) => transfer(11n, n));
    await c.core.submit(
      first.map((t) => t.request),
      Date.now(),
    );
    const p = c.core.propose({ slot: c.slot++, timestampMs: Date.now(), maxCalls: 100 });
    c.core.commit(p.hash);
    assert.equal(p.included.length, 5);
    const balance = ALICE_START - 55n;
    const pending = transfer(13n, 6);
    assert.equal((await c.core.submit([pending.request], Date.now()))[0].status, 'future');

    const cases = [
      { t: transfer(OVERDRAFT, 5), code: 'INSUFFICIENT_BALANCE', values: [balance, OVERDRAFT, 5] },
      { t: transfer(17n, 2), code: 'STALE_NONCE', values: [balance, 17, 2, 5] },
      { t: transfer(19n, 5 + POOL.maxNonceAhead + 1), code: 'NONCE_TOO_FAR', values: [balance, 19, 22, 5] },
      { t: transfer(23n, 6), code: 'DUPLICATE', values: [balance, 23, 6, 5] },
    ];
    const res = await c.core.submit(
      cases.map((x) => x.t.request),
      Date.now(),
    );
    cases.forEach((x, i) => {
      assert.equal(res[i].status, 'invalid');
      assert.equal(res[i].code, x.code);
      assertNoState(res[i], x.values);
    });
  } finally {
    await c.core.close();
  }
});

test('block-time rejections (overdraft at execution, expired nonce gap) name no balance or nonce', async () => {
  const c = startCore();
  try {
    const t0 = Date.now();
    const a = buildTransfer(alice, { to: bob.publicKey, amount: 7_000_003n, nonce: 0 }, c.key, SHARD);
    const b = buildTransfer(alice, { to: bob.publicKey, amount: 7_000_007n, nonce: 1 }, c.key, SHARD);
    const gap = buildTransfer(alice, { to: bob.publicKey, amount: 29n, nonce: 9 }, c.key, SHARD);
    await c.core.submit([a.request, b.request, gap.request], t0);
    let p = c.core.propose({ slot: c.slot++, timestampMs: t0, maxCalls: 100 });
    c.core.commit(p.hash);
    assert.deepEqual(
      p.rejected.map((r) => r.code),
      ['INSUFFICIENT_BALANCE'],
    );
    assertNoState(p.rejected[0], [ALICE_START - 7_000_003n, 7_000_007n, 1]);
    p = c.core.propose({ slot: c.slot++, timestampMs: t0 + POOL.futureTtlMs + 5000, maxCalls: 100 });
    c.core.commit(p.hash);
    assert.deepEqual(
      p.rejected.map((r) => r.code),
      ['NONCE_GAP_EXPIRED'],
    );
    assertNoState(p.rejected[0], [9, 29]);
  } finally {
    await c.core.close();
  }
});

test('the STF names no nonce, balance or shielded supply in its rejections', () => {
  const s = new State();
  const o = new Overlay(s);
  o.setAccount(alice.publicKey, { balance: 4_321n, nonce: 37, memoCount: 0 });
  o.setShard({ shieldedSupply: 3_999n, nextWithdrawal: 0n });
  const unshield = (amount: bigint) =>
    ({ tag: 'unshield', value: { from: alice.publicKey, beneficiary: bob.publicKey, amount } }) as const;
  const stale = execute(
    o,
    { tag: 'transfer', value: { from: alice.publicKey, to: bob.publicKey, amount: 1n, memo: undefined } },
    35,
    1n,
  );
  assert.equal(stale.ok, false);
  assertNoState(stale as { code: string; message: string }, [37, 35]);
  const supply = execute(o, unshield(4_000n), 37, 1n, { vault: true });
  assert.equal(!supply.ok && supply.code, 'EXCEEDS_SHIELDED_SUPPLY');
  assertNoState(supply as { code: string; message: string }, [3_999, 4_000, 4_321]);
});
