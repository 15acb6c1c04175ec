import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { MAX_MEMO_BYTES, type TrustedCall } from '../../../src/protocol/wire.ts';
import { RejectCode } from '../../../src/protocol/errors.ts';
import { CallPool, type PoolEntry } from '../../../src/enclave/calls/pool.ts';
import { Overlay, State, decodeItem } from '../../../src/enclave/state/state.ts';
import { execute, precheck } from '../../../src/enclave/state/stf.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const alice = new Uint8Array(randomBytes(32));
const bob = new Uint8Array(randomBytes(32));
const carol = new Uint8Array(randomBytes(32));

function transfer(from: Uint8Array, to: Uint8Array, amount: bigint, memo?: string): TrustedCall {
  return { tag: 'transfer', value: { from, to, amount, memo } };
}

function stateWith(balances: [Uint8Array, bigint][]): State {
  const s = new State();
  const o = new Overlay(s);
  for (const [id, b] of balances) o.setAccount(id, { balance: b, nonce: 0, memoCount: 0 });
  const w = o.items();
  s.apply(w, s.preview(w));
  return s;
}

test('transfer moves balance, increments sender nonce, leaves recipient nonce', () => {
  const s = stateWith([
    [alice, 100n],
    [bob, 5n],
  ]);
  const o = new Overlay(s);
  assert.deepEqual(execute(o, transfer(alice, bob, 30n), 0, 1n), { ok: true });
  assert.deepEqual(o.account(alice), { balance: 70n, nonce: 1, memoCount: 0 });
  assert.equal(o.account(bob).balance, 35n);
  assert.equal(o.account(bob).nonce, 0);
  assert.equal(o.account(bob).memoCount, 0);
  assert.equal(
    o
      .items()
      .map(decodeItem)
      .filter((x) => x.tag === 'memo').length,
    0,
  );
  // second transfer with the next nonce
  assert.deepEqual(execute(o, transfer(alice, carol, 70n), 1, 1n), { ok: true });
  assert.equal(o.account(alice).balance, 0n);
  assert.equal(o.account(alice).nonce, 2);
  assert.equal(o.account(carol).balance, 70n);
  // the base state is untouched until applied
  assert.equal(s.account(alice).balance, 100n);
});

test('transfer with memo stores it at the recipient under the next memo index', () => {
  const s = stateWith([[alice, 100n]]);
  const o = new Overlay(s);
  assert.equal(execute(o, transfer(alice, bob, 1n, 'first'), 0, 7n).ok, true);
  assert.equal(execute(o, transfer(alice, bob, 2n, 'second'), 1, 7n).ok, true);
  assert.equal(execute(o, transfer(alice, bob, 3n), 2, 7n).ok, true);
  assert.equal(o.account(bob).memoCount, 2);
  assert.equal(o.account(alice).memoCount, 0);
  const w = o.items();
  s.apply(w, s.preview(w));
  const m0 = s.memo(bob, 0)!;
  const m1 = s.memo(bob, 1)!;
  assert.equal(m0.text, 'first');
  assert.equal(m0.amount, 1n);
  assert.equal(hex(m0.from), hex(alice));
  assert.equal(m0.block, 7n);
  assert.equal(m1.text, 'second');
  assert.equal(s.memo(bob, 2), undefined);
  assert.equal(s.account(bob).balance, 6n);
});

test('self-transfer keeps the balance, increments nonce and stores the memo', () => {
  const s = stateWith([[alice, 50n]]);
  const o = new Overlay(s);
  assert.equal(execute(o, transfer(alice, alice, 20n, 'note to self'), 0, 1n).ok, true);
  const a = o.account(alice);
  assert.deepEqual([a.balance, a.nonce, a.memoCount], [50n, 1, 1]);
  const w = o.items();
  assert.equal(w.map(decodeItem).filter((x) => x.tag === 'account').length, 1);
  s.apply(w, s.preview(w));
  assert.equal(s.memo(alice, 0)?.text, 'note to self');
  // a self-transfer of the whole balance is allowed; more than it is not
  const o2 = new Overlay(s);
  assert.equal(execute(o2, transfer(alice, alice, 50n), 1, 2n).ok, true);
  const r = execute(o2, transfer(alice, alice, 51n), 2, 2n);
  assert.equal(r.ok, false);
});

test('overdraft is rejected with INSUFFICIENT_BALANCE and writes nothing', () => {
  const s = stateWith([[alice, 10n]]);
  const o = new Overlay(s);
  const r = execute(o, transfer(alice, bob, 11n, 'too much'), 0, 1n);
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.code, RejectCode.INSUFFICIENT_BALANCE);
  assert.deepEqual(o.items(), []);
  assert.equal(precheck(transfer(alice, bob, 11n), s.account(alice)).ok, false);
  assert.equal(precheck(transfer(alice, bob, 10n), s.account(alice)).ok, true);
  // unknown sender has balance 0
  const r2 = execute(o, transfer(carol, bob, 1n), 0, 1n);
  assert.equal(!r2.ok && r2.code, RejectCode.INSUFFICIENT_BALANCE);
  assert.deepEqual(o.items(), []);
});

test('wrong nonce at execution is rejected with no writes', () => {
  const s = stateWith([[alice, 10n]]);
  const o = new Overlay(s);
  for (const n of [1, 5]) {
    const r = execute(o, transfer(alice, bob, 1n), n, 1n);
    assert.equal(!r.ok && r.code, RejectCode.STALE_NONCE);
  }
  assert.deepEqual(o.items(), []);
});

test('memo longer than MAX_MEMO_BYTES (in UTF-8 bytes) is rejected', () => {
  const s = stateWith([[alice, 10n]]);
  const o = new Overlay(s);
  const okMemo = 'x'.repeat(MAX_MEMO_BYTES);
  assert.equal(precheck(transfer(alice, bob, 1n, okMemo), s.account(alice)).ok, true);
  const long = execute(o, transfer(alice, bob, 1n, 'x'.repeat(MAX_MEMO_BYTES + 1)), 0, 1n);
  assert.equal(!long.ok && long.code, RejectCode.MEMO_TOO_LONG);
  // 129 two-byte characters = 258 bytes
  const multi = execute(o, transfer(alice, bob, 1n, 'é'.repeat(129)), 0, 1n);
  assert.equal(!multi.ok && multi.code, RejectCode.MEMO_TOO_LONG);
  assert.deepEqual(o.items(), []);
});

// ---------------- CallPool ----------------

const limits = { maxPending: 100, maxNonceAhead: 4, futureTtlMs: 1000 };
let hashSeq = 0;
function entry(sender: Uint8Array, nonce: number, addedAtMs = 0, hash?: string): PoolEntry {
  return { hash: hash ?? `h${++hashSeq}`, sender: hex(sender), nonce, call: transfer(sender, bob, 1n), addedAtMs };
}

test('pool: ready vs future status', () => {
  const p = new CallPool(limits);
  assert.deepEqual(p.add(entry(alice, 3), 3), { status: 'ready' });
  assert.deepEqual(p.add(entry(alice, 5), 3), { status: 'future' });
  assert.deepEqual(p.add(entry(alice, 4), 3), { status: 'ready' });
  assert.deepEqual(p.add(entry(bob, 1), 0), { status: 'future' });
  assert.deepEqual(p.add(entry(bob, 0), 0), { status: 'ready' });
  assert.equal(p.size, 5);
  const senders = [...p.senders()].map(([s]) => s);
  assert.deepEqual(senders, [hex(alice), hex(bob)], 'senders in arrival order');
});

test('pool: DUPLICATE for same hash and for same sender+nonce', () => {
  const p = new CallPool(limits);
  const e = entry(alice, 0);
  assert.equal(p.add(e, 0).status, 'ready');
  const dupHash = p.add({ ...e }, 0);
  assert.equal(dupHash.status, 'invalid');
  assert.equal(dupHash.status === 'invalid' && dupHash.code, RejectCode.DUPLICATE);
  const dupNonce = p.add(entry(alice, 0), 0);
  assert.equal(dupNonce.status === 'invalid' && dupNonce.code, RejectCode.DUPLICATE);
  assert.equal(p.size, 1);
  // same nonce from another sender is fine
  assert.equal(p.add(entry(carol, 0), 0).status, 'ready');
});

test('pool: STALE_NONCE and NONCE_TOO_FAR', () => {
  const p = new CallPool(limits);
  const stale = p.add(entry(alice, 2), 3);
  assert.equal(stale.status === 'invalid' && stale.code, RejectCode.STALE_NONCE);
  assert.equal(p.add(entry(alice, 3 + limits.maxNonceAhead), 3).status, 'future');
  const far = p.add(entry(alice, 3 + limits.maxNonceAhead + 1), 3);
  assert.equal(far.status === 'invalid' && far.code, RejectCode.NONCE_TOO_FAR);
  assert.equal(p.size, 1);
});

test('pool: POOL_FULL at maxPending', () => {
  const p = new CallPool({ ...limits, maxPending: 3 });
  for (let i = 0; i < 3; i++) assert.equal(p.add(entry(alice, i), 0).status, 'ready');
  const full = p.add(entry(bob, 0), 0);
  assert.equal(full.status === 'invalid' && full.code, RejectCode.POOL_FULL);
  assert.equal(p.size, 3);
  // removing one makes room again
  const first = [...p.senders()][0][1].get(0)!;
  assert.equal(p.remove(first.hash)?.nonce, 0);
  assert.equal(p.remove(first.hash), undefined);
  assert.equal(p.add(entry(bob, 0), 0).status, 'ready');
});

test('pool: remove cleans up the sender and the hash index', () => {
  const p = new CallPool(limits);
  const e = entry(alice, 0);
  p.add(e, 0);
  p.remove(e.hash);
  assert.equal(p.has(e.hash), false);
  assert.equal([...p.senders()].length, 0);
  // the nonce is free again
  assert.equal(p.add(entry(alice, 0), 0).status, 'ready');
});

test('pool: prune drops stale entries and future entries whose gap expired', () => {
  const p = new CallPool({ ...limits, maxNonceAhead: 10 });
  const s0 = entry(alice, 0, 0);
  const s1 = entry(alice, 1, 0);
  const ready = entry(alice, 2, 0);
  const gapOld = entry(alice, 4, 0); // gap at 3, old
  const gapNew = entry(alice, 5, 1500); // gap at 3, recent
  for (const e of [s0, s1, ready, gapOld, gapNew]) assert.notEqual(p.add(e, 0).status, 'invalid');
  const dropped = p.prune(1500, () => 2);
  const byHash = new Map(dropped.map((d) => [d.entry.hash, d.code]));
  assert.equal(byHash.get(s0.hash), RejectCode.STALE_NONCE);
  assert.equal(byHash.get(s1.hash), RejectCode.STALE_NONCE);
  assert.equal(byHash.get(gapOld.hash), RejectCode.NONCE_GAP_EXPIRED);
  assert.equal(dropped.length, 3);
  assert.ok(p.has(ready.hash), 'the call at the account nonce stays');
  assert.ok(p.has(gapNew.hash), 'a recent future call stays');
  assert.equal(p.size, 2);
  assert.equal(p.has(s0.hash), false);
});

test('pool: prune does not expire calls whose nonce gap is filled (a contiguous ready chain)', () => {
  // Calls 0,1,2 from one sender are all executable in order; none has an unfilled gap, so none may be
  // dropped as NONCE_GAP_EXPIRED just because the pool was backed up for longer than futureTtlMs.
  const p = new CallPool(limits);
  const chain = [entry(alice, 0, 0), entry(alice, 1, 0), entry(alice, 2, 0)];
  for (const e of chain) assert.equal(p.add(e, 0).status, 'ready');
  const dropped = p.prune(limits.futureTtlMs + 1, () => 0);
  assert.deepEqual(
    dropped.map((d) => `${d.entry.nonce}:${d.code}`),
    [],
  );
  assert.equal(p.size, 3);
});
