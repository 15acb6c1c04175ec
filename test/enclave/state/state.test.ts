import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { LTHASH_BYTES, LtHash } from '../../../src/enclave/state/lthash.ts';
import { ltHashThreads } from '../../../src/enclave/state/lthash-threads.ts';
import {
  Overlay,
  State,
  StateWrite,
  accountItem,
  decodeItem,
  joinItems,
  readAccount,
  splitItems,
  type Item,
} from '../../../src/enclave/state/state.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const ids = Array.from({ length: 12 }, () => new Uint8Array(randomBytes(32)));

/** The commitment recomputed from scratch over every item, each re-encoded with the scale-ts codec. */
function fullCommitment(s: State): string {
  const lt = new LtHash();
  for (const item of [...s.accounts.values(), ...s.memos.values()]) lt.add(StateWrite.enc(decodeItem(item)));
  return hex(lt.digest());
}

let seq = 0;
/** A block of items built through an Overlay (so each item appears once, as in real blocks). */
function randomBlock(base: State, n: number): Item[] {
  const o = new Overlay(base);
  for (let i = 0; i < n; i++) {
    seq++;
    const id = ids[(seq * 7 + i) % ids.length];
    const a = o.account(id);
    if (seq % 3 === 0) {
      o.addMemo(id, a.memoCount, {
        from: ids[seq % ids.length],
        amount: BigInt(seq),
        text: `memo ${seq} ${'é'.repeat(seq % 40)}`,
        block: BigInt(seq),
      });
      o.setAccount(id, { ...a, memoCount: a.memoCount + 1 });
    } else {
      o.setAccount(id, { balance: a.balance + BigInt(seq) * 10n ** 30n, nonce: a.nonce + 1, memoCount: a.memoCount });
    }
  }
  return o.items();
}

function blocks(count: number): Item[][] {
  // Generated against a scratch state so both paths under test see identical items.
  const scratch = new State();
  const out: Item[][] = [];
  for (let i = 0; i < count; i++) {
    const w = randomBlock(scratch, 1 + (i % 6));
    scratch.apply(w, scratch.preview(w));
    out.push(w);
  }
  return out;
}

test('hand-encoded account items equal the scale-ts encoding and read back (u128 balances)', () => {
  for (const balance of [
    0n,
    1n,
    (1n << 32n) - 1n,
    1n << 32n,
    (1n << 53n) - 1n,
    1n << 53n,
    (1n << 53n) + 1n,
    (1n << 64n) - 1n,
    1n << 64n,
    (1n << 96n) + 3n,
    (1n << 64n) + (1n << 32n),
    (1n << 128n) - 1n,
  ]) {
    const a = { balance, nonce: 4294967295, memoCount: 7 };
    const item = accountItem(ids[0], a);
    assert.equal(hex(item), hex(StateWrite.enc({ tag: 'account', value: { id: ids[0], ...a } })));
    assert.deepEqual(readAccount(item), a);
  }
});

test('joinItems/splitItems round trip equals the Vector(StateWrite) codec; malformed input is refused', () => {
  const items = blocks(30).flat();
  const joined = joinItems(items);
  const split = splitItems(joined);
  assert.deepEqual(split.map(hex), items.map(hex));
  assert.deepEqual(
    split.map((i) => decodeItem(i)),
    items.map((i) => decodeItem(i)),
  );
  assert.throws(() => splitItems(joined.subarray(0, joined.length - 1)), RangeError);
  assert.throws(() => splitItems(Buffer.concat([joined, Buffer.from([0])])), RangeError);
  const badTag = Buffer.from(joined);
  badTag[joined[0] & 3 ? 2 : 1] = 9;
  assert.throws(() => splitItems(badTag), RangeError);
  assert.throws(() => splitItems(new Uint8Array(0)), RangeError);
  assert.equal(splitItems(joinItems([])).length, 0);
});

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

test("a block builder's reads (Overlay.changes) give preview and apply what lookups would", () => {
  // Layered states, as a validateer keeps them: apply counts new accounts per layer.
  const viaKnown = new State(3);
  const viaLookup = new State(3);
  const fresh = Array.from({ length: 40 }, () => new Uint8Array(randomBytes(32)));
  for (let b = 0; b < 40; b++) {
    const o = new Overlay(viaKnown);
    o.account(fresh[(b + 7) % fresh.length]); // read, never written: not in the block
    for (const id of [ids[b % ids.length], fresh[b], ids[(b * 5) % ids.length]]) {
      const a = o.account(id);
      o.setAccount(id, { ...a, balance: a.balance + 1000n, nonce: a.nonce + 1 });
      if (b % 4 === 0) {
        o.addMemo(id, a.memoCount, { from: ids[0], amount: 5n, text: `m${b}`, block: BigInt(b) });
        o.setAccount(id, { ...o.account(id), memoCount: a.memoCount + 1 });
      }
    }
    const { items, known } = o.changes();
    assert.ok(known.keys.length < items.length || b % 4 !== 0, 'memos are left to the state to look up');
    const lt = viaKnown.preview(items, known);
    const ltLookup = viaLookup.preview(items);
    assert.equal(hex(lt.digest()), hex(ltLookup.digest()));
    viaKnown.apply(items, lt, known);
    const imported = viaLookup.previewKnowing(items);
    assert.equal(hex(imported.lthash.digest()), hex(ltLookup.digest()));
    viaLookup.apply(items, imported.lthash, imported.known);
    assert.equal(viaKnown.accountCount, viaLookup.accountCount);
  }
  assert.equal(viaKnown.accountCount, ids.length + fresh.length, 'each account counted once, the read-only one never');
  assert.equal(hex(viaKnown.commitment()), hex(viaLookup.commitment()));
  const folded = State.fromSnapshot(viaKnown.encodeSnapshot());
  assert.equal(fullCommitment(folded), hex(viaKnown.commitment()));
});

test('preview of overwriting an item replaces it in the commitment (not adds)', () => {
  const s = new State();
  const id = ids[0];
  const w1 = [accountItem(id, { balance: 5n, nonce: 0, memoCount: 0 })];
  s.apply(w1, s.preview(w1));
  const w2 = [accountItem(id, { balance: 7n, nonce: 1, memoCount: 0 })];
  s.apply(w2, s.preview(w2));
  const fresh = new State();
  fresh.apply(w2, fresh.preview(w2));
  assert.equal(hex(s.commitment()), hex(fresh.commitment()));
  assert.deepEqual(s.account(id), { balance: 7n, nonce: 1, memoCount: 0 });
});

const sortedHex = (m: Map<string, Item>) => [...m.entries()].map(([k, v]) => [k, hex(v)]).sort();

test('replay accumulator over many blocks then finish == block-by-block application', async () => {
  const bs = blocks(60);
  const stepwise = new State();
  for (const w of bs) stepwise.apply(w, stepwise.preview(w));

  const replayed = new State();
  const acc = replayed.replay();
  for (const w of bs) acc.apply(w);
  await acc.finish();
  assert.equal(hex(replayed.commitment()), hex(stepwise.commitment()));
  assert.equal(hex(replayed.commitment()), fullCommitment(replayed));
  assert.deepEqual(sortedHex(replayed.accounts), sortedHex(stepwise.accounts));
  assert.deepEqual(sortedHex(replayed.memos), sortedHex(stepwise.memos));
});

test('replay accumulator on top of an existing state (tail replay)', async () => {
  const bs = blocks(30);
  const stepwise = new State();
  for (const w of bs) stepwise.apply(w, stepwise.preview(w));

  const tail = new State();
  for (const w of bs.slice(0, 10)) tail.apply(w, tail.preview(w));
  const acc = tail.replay();
  for (const w of bs.slice(10)) acc.apply(w);
  await acc.finish();
  assert.equal(hex(tail.commitment()), hex(stepwise.commitment()));
});

test('the parallel hasher (worker threads) gives the same sum as the local one', async () => {
  const items = Array.from({ length: 25_000 }, (_, i) =>
    accountItem(randomBytes(32), { balance: BigInt(i), nonce: i, memoCount: 0 }),
  );
  const local = new LtHash();
  for (const item of items) local.add(item);
  const threads = ltHashThreads(2, 10_000);
  // two sums at once on the same threads (a tail replay hashes added and removed items together)
  const [parallel, firstHalf] = await Promise.all([threads.hasher(items), threads.hasher(items.slice(0, 20_000))]);
  await threads.close();
  const localHalf = new LtHash();
  for (const item of items.slice(0, 20_000)) localHalf.add(item);
  assert.equal(hex(firstHalf.bytes()), hex(localHalf.bytes()));
  assert.equal(hex(parallel.bytes()), hex(local.bytes()));
  // and a sum can be taken back out
  parallel.subSum(local);
  assert.equal(hex(parallel.bytes()), hex(new LtHash().bytes()));
});

test('snapshot round trip keeps accounts, memos and commitment', () => {
  const s = new State();
  for (const w of blocks(25)) s.apply(w, s.preview(w));
  const bytes = s.encodeSnapshot();
  const t = State.fromSnapshot(bytes);
  assert.equal(hex(t.commitment()), hex(s.commitment()));
  assert.deepEqual(sortedHex(t.accounts), sortedHex(s.accounts));
  assert.deepEqual(sortedHex(t.memos), sortedHex(s.memos));
  const [k] = s.memos.keys();
  const [id, index] = k.split(':');
  assert.deepEqual(t.memo(Buffer.from(id, 'hex'), Number(index)), s.memo(Buffer.from(id, 'hex'), Number(index)));
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
  const w = [accountItem(id, { balance: 10n, nonce: 2, memoCount: 0 })];
  s.apply(w, s.preview(w));
  const o = new Overlay(s);
  assert.equal(o.account(id).balance, 10n);
  o.setAccount(id, { balance: 3n, nonce: 3, memoCount: 0 });
  o.setAccount(id, { balance: 4n, nonce: 4, memoCount: 0 });
  assert.equal(o.account(id).balance, 4n);
  assert.equal(s.account(id).balance, 10n);
  assert.equal(o.items().length, 1, 'one item per touched account');
  // unknown account reads as empty
  assert.deepEqual(s.account(new Uint8Array(32)), { balance: 0n, nonce: 0, memoCount: 0 });
});

test('layers: reads see the newest block, rewind returns to an ancestor exactly, older blocks fold into the base', () => {
  const kept = 4;
  const layered = new State(kept);
  const history: { commitment: string; snapshot: string[]; accounts: number; balances: bigint[] }[] = [];
  const record = () =>
    history.push({
      commitment: hex(layered.commitment()),
      snapshot: contents(layered),
      accounts: layered.accountCount,
      balances: ids.map((id) => layered.account(id).balance),
    });
  record();
  const flat = new State();
  for (const items of blocks(10)) {
    layered.apply(items, layered.preview(items));
    flat.apply(items, flat.preview(items));
    record();
    // the layered state reads, counts and encodes exactly like a flat one
    assert.equal(hex(layered.commitment()), hex(flat.commitment()));
    assert.equal(layered.accountCount, flat.accounts.size);
    assert.deepEqual(
      ids.map((id) => layered.account(id)),
      ids.map((id) => flat.account(id)),
    );
    assert.equal(hex(State.fromSnapshot(layered.encodeSnapshot()).commitment()), hex(flat.commitment()));
  }
  assert.equal(layered.depth, kept);
  // deeper than the layers: refused, nothing changes
  assert.equal(layered.rewind(kept + 1), false);
  assert.equal(hex(layered.commitment()), history[10].commitment);
  // back 3 blocks: the state of block 7, whole (commitment, balances, count, snapshot), and it goes on from there
  assert.equal(layered.rewind(3), true);
  assert.equal(layered.depth, kept - 3);
  const at7 = history[7];
  assert.equal(hex(layered.commitment()), at7.commitment);
  assert.deepEqual(
    ids.map((id) => layered.account(id).balance),
    at7.balances,
  );
  assert.equal(layered.accountCount, at7.accounts);
  assert.deepEqual(contents(layered), at7.snapshot);
  const rebuilt = State.fromSnapshot(layered.encodeSnapshot());
  const items = randomBlock(layered, 5);
  layered.apply(items, layered.preview(items));
  rebuilt.apply(items, rebuilt.preview(items));
  assert.equal(hex(layered.commitment()), hex(rebuilt.commitment()));
});

/** What a state's snapshot holds, order aside: its items as sorted hex. */
function contents(s: State): string[] {
  const loaded = State.fromSnapshot(s.encodeSnapshot());
  return [...loaded.accounts.values(), ...loaded.memos.values(), ...loaded.records.values()].map(hex).sort();
}

test('a snapshot read in pieces is of the state when it began, while blocks go on being applied; layers fold after it', async () => {
  const s = new State(4);
  const many = Array.from({ length: 20_000 }, (_, i) =>
    accountItem(new Uint8Array(randomBytes(32)), { balance: BigInt(i), nonce: 0, memoCount: 0 }),
  );
  s.apply(many, s.preview(many));
  for (let i = 0; i < 6; i++) {
    const b = randomBlock(s, 5);
    s.apply(b, s.preview(b));
  }
  const before = hex(s.commitment());
  const whole = s.encodeSnapshot();
  let pauses = 0;
  const pieces = await s.encodeSnapshotInPieces(async () => {
    pauses++;
    // blocks applied while the snapshot is being read
    for (let i = 0; i < 3; i++) {
      const b = randomBlock(s, 7);
      s.apply(b, s.preview(b));
    }
  }, 1000);
  assert.ok(pauses >= 20);
  assert.ok(pieces.length > 20, 'parts of a piece each, not one buffer');
  const joined = Buffer.concat(pieces);
  assert.deepEqual(joined, whole, 'the same bytes as a snapshot taken at once when it began');
  assert.equal(hex(State.fromSnapshot(joined).commitment()), before);
  assert.notEqual(hex(s.commitment()), before);
  assert.equal(s.depth, 4, 'the layers that piled up meanwhile are folded into the item maps');
  const recomputed = new LtHash();
  for (const item of splitItems(s.encodeSnapshot().subarray(LTHASH_BYTES))) recomputed.add(item);
  assert.equal(
    hex(recomputed.digest()),
    hex(s.commitment()),
    'every item once, newest values: the commitment recomputed from scratch',
  );
});
