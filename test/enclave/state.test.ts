import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { LtHash } from '../../src/enclave/lthash.ts';
import { Overlay, State, StateWrite } from '../../src/enclave/state.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const ids = Array.from({ length: 12 }, () => new Uint8Array(randomBytes(32)));

/** The commitment recomputed from scratch over every item in the state. */
function fullCommitment(s: State): string {
  const lt = new LtHash();
  for (const [k, a] of s.accounts) lt.add(StateWrite.enc({ tag: 'account', value: { id: Buffer.from(k, 'hex'), ...a } }));
  for (const [k, m] of s.memos) {
    const [id, index] = k.split(':');
    lt.add(StateWrite.enc({ tag: 'memo', value: { id: Buffer.from(id, 'hex'), index: Number(index), memo: m } }));
  }
  return hex(lt.digest());
}

let seq = 0;
/** A block of writes built through an Overlay (so each item appears once, as in real blocks). */
function randomBlock(base: State, n: number): StateWrite[] {
  const o = new Overlay(base);
  for (let i = 0; i < n; i++) {
    seq++;
    const id = ids[(seq * 7 + i) % ids.length];
    const a = o.account(id);
    if (seq % 3 === 0) {
      o.addMemo(id, a.memoCount, { from: ids[seq % ids.length], amount: BigInt(seq), text: `memo ${seq}`, block: BigInt(seq) });
      o.setAccount(id, { ...a, memoCount: a.memoCount + 1 });
    } else {
      o.setAccount(id, { balance: a.balance + BigInt(seq * 1000), nonce: a.nonce + 1, memoCount: a.memoCount });
    }
  }
  return o.writes();
}

function blocks(count: number): StateWrite[][] {
  // Generated against a scratch state so both paths under test see identical writes.
  const scratch = new State();
  const out: StateWrite[][] = [];
  for (let i = 0; i < count; i++) {
    const w = randomBlock(scratch, 1 + (i % 6));
    scratch.apply(w, scratch.preview(w));
    out.push(w);
  }
  return out;
}

test('preview + apply equals a full recomputation of the commitment after every block', () => {
  const s = new State();
  assert.equal(hex(s.commitment()), fullCommitment(s));
  for (const w of blocks(40)) {
    const before = hex(s.commitment());
    const lt = s.preview(w);
    // preview does not mutate the state
    assert.equal(hex(s.commitment()), before);
    s.apply(w, lt);
    assert.equal(hex(s.commitment()), fullCommitment(s));
  }
  assert.ok(s.accounts.size > 5 && s.memos.size > 3);
});

test('preview of overwriting an item replaces it in the commitment (not adds)', () => {
  const s = new State();
  const id = ids[0];
  const w1: StateWrite[] = [{ tag: 'account', value: { id, balance: 5n, nonce: 0, memoCount: 0 } }];
  s.apply(w1, s.preview(w1));
  const w2: StateWrite[] = [{ tag: 'account', value: { id, balance: 7n, nonce: 1, memoCount: 0 } }];
  s.apply(w2, s.preview(w2));
  const fresh = new State();
  fresh.apply(w2, fresh.preview(w2));
  assert.equal(hex(s.commitment()), hex(fresh.commitment()));
  assert.deepEqual(s.account(id), { balance: 7n, nonce: 1, memoCount: 0 });
});

test('replay accumulator over many blocks then finish == block-by-block application', () => {
  const bs = blocks(60);
  const stepwise = new State();
  for (const w of bs) stepwise.apply(w, stepwise.preview(w));

  const replayed = new State();
  const acc = replayed.replay();
  for (const w of bs) acc.apply(w);
  acc.finish();
  assert.equal(hex(replayed.commitment()), hex(stepwise.commitment()));
  assert.equal(hex(replayed.commitment()), fullCommitment(replayed));
  assert.deepEqual([...replayed.accounts.entries()].sort(), [...stepwise.accounts.entries()].sort());
  assert.deepEqual([...replayed.memos.entries()].sort(), [...stepwise.memos.entries()].sort());
});

test('replay accumulator on top of an existing state (tail replay)', () => {
  const bs = blocks(30);
  const stepwise = new State();
  for (const w of bs) stepwise.apply(w, stepwise.preview(w));

  const tail = new State();
  for (const w of bs.slice(0, 10)) tail.apply(w, tail.preview(w));
  const acc = tail.replay();
  for (const w of bs.slice(10)) acc.apply(w);
  acc.finish();
  assert.equal(hex(tail.commitment()), hex(stepwise.commitment()));
});

test('snapshot round trip keeps accounts, memos and commitment', () => {
  const s = new State();
  for (const w of blocks(25)) s.apply(w, s.preview(w));
  const bytes = s.encodeSnapshot();
  const t = State.fromSnapshot(bytes);
  assert.equal(hex(t.commitment()), hex(s.commitment()));
  assert.equal(t.accounts.size, s.accounts.size);
  assert.equal(t.memos.size, s.memos.size);
  for (const [k, a] of s.accounts) assert.deepEqual(t.accounts.get(k), a);
  for (const [k, m] of s.memos) {
    const tm = t.memos.get(k)!;
    assert.equal(hex(tm.from), hex(m.from));
    assert.equal(tm.amount, m.amount);
    assert.equal(tm.text, m.text);
    assert.equal(tm.block, m.block);
  }
  // the restored commitment is consistent with its items and keeps following changes
  assert.equal(hex(t.commitment()), fullCommitment(t));
  const more = blocks(3)[2];
  s.apply(more, s.preview(more));
  t.apply(more, t.preview(more));
  assert.equal(hex(t.commitment()), hex(s.commitment()));
});

test('empty state snapshot round trip', () => {
  const t = State.fromSnapshot(new State().encodeSnapshot());
  assert.equal(t.accounts.size, 0);
  assert.equal(hex(t.commitment()), hex(new State().commitment()));
});

test('overlay reads fall through, writes stay in the overlay until applied', () => {
  const s = new State();
  const id = ids[3];
  const w: StateWrite[] = [{ tag: 'account', value: { id, balance: 10n, nonce: 2, memoCount: 0 } }];
  s.apply(w, s.preview(w));
  const o = new Overlay(s);
  assert.equal(o.account(id).balance, 10n);
  o.setAccount(id, { balance: 3n, nonce: 3, memoCount: 0 });
  o.setAccount(id, { balance: 4n, nonce: 4, memoCount: 0 });
  assert.equal(o.account(id).balance, 4n);
  assert.equal(s.account(id).balance, 10n);
  assert.equal(o.writes().length, 1, 'one write per touched item');
  // unknown account reads as empty
  assert.deepEqual(s.account(new Uint8Array(32)), { balance: 0n, nonce: 0, memoCount: 0 });
});
