// The vote pool: equal payloads aggregate, a member's vote counts once per number, and what it holds stays bounded
// (a member's latest MAX_NUMBERS_PER_SIGNER numbers, nothing at or below the last anchor).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_NUMBERS_PER_SIGNER, VotePool } from '../../src/consensus/vote-pool.ts';
import { hexKey } from '../../src/protocol/bytes.ts';
import { KEYS, hashOf, payload, signedVote } from './finality-fakes.ts';

const holding = (pool: VotePool, signer: Uint8Array) =>
  pool
    .all()
    .filter((c) => c.votes.has(hexKey(signer)))
    .map((c) => Number(c.payload.number))
    .sort((a, b) => a - b);

test('equal payloads aggregate; the same vote again is a duplicate, another payload at its number an equivocation', () => {
  const pool = new VotePool();
  const first = pool.add(signedVote(KEYS[1], payload(20)));
  assert.equal(first.result, 'added');
  const second = pool.add(signedVote(KEYS[2], payload(20)));
  assert.equal(second.candidate, first.candidate);
  assert.equal(first.candidate!.votes.size, 2);
  assert.equal(pool.add(signedVote(KEYS[1], payload(20))).result, 'duplicate');
  const other = payload(20, { hash: hashOf(20, 'b') });
  assert.equal(pool.check(KEYS[1].pub, other), 'equivocation');
  assert.deepEqual(pool.add(signedVote(KEYS[1], other)), { result: 'equivocation' });
  assert.equal(pool.all().length, 1);
});

for (const order of ['ascending', 'descending'] as const) {
  test(`a member's votes are kept at its latest ${MAX_NUMBERS_PER_SIGNER} numbers (arriving ${order})`, () => {
    const pool = new VotePool();
    const numbers = Array.from({ length: 20 }, (_, i) => i + 1);
    if (order === 'descending') numbers.reverse();
    pool.add(signedVote(KEYS[2], payload(1)));
    for (const n of numbers) pool.add(signedVote(KEYS[1], payload(n)));
    const latest = Array.from({ length: MAX_NUMBERS_PER_SIGNER }, (_, i) => 20 - MAX_NUMBERS_PER_SIGNER + 1 + i);
    assert.deepEqual(holding(pool, KEYS[1].pub), latest);
    // What was dropped is forgotten whole: its candidate keeps only the others' votes, and no payload there is
    // an equivocation any more (a vote there would be dropped again at once).
    assert.deepEqual(holding(pool, KEYS[2].pub), [1]);
    assert.equal(pool.check(KEYS[1].pub, payload(1, { hash: hashOf(1, 'b') })), 'added');
    assert.equal(pool.all().length, MAX_NUMBERS_PER_SIGNER + 1);
  });
}

test('prune drops every candidate and record at or below the anchor', () => {
  const pool = new VotePool();
  for (const n of [10, 20, 30]) for (const k of [KEYS[1], KEYS[2]]) pool.add(signedVote(k, payload(n)));
  pool.prune(20n);
  assert.deepEqual(
    pool.all().map((c) => Number(c.payload.number)),
    [30],
  );
  assert.equal(pool.check(KEYS[1].pub, payload(20, { hash: hashOf(20, 'b') })), 'added');
  assert.equal(pool.check(KEYS[1].pub, payload(30, { hash: hashOf(30, 'b') })), 'equivocation');
  pool.prune(30n);
  assert.deepEqual(pool.all(), []);
  assert.equal(pool.check(KEYS[1].pub, payload(30)), 'added');
});

test("a member's vote for the same block over a new previous anchor replaces its older one; it is no equivocation", () => {
  const pool = new VotePool();
  const before = pool.add(signedVote(KEYS[1], payload(20))).candidate!;
  pool.add(signedVote(KEYS[2], payload(20)));
  // A lower anchor landed: the member's enclave signs block 20 again, now naming that anchor.
  const moved = payload(20, { previousAnchor: hashOf(10, 'a') });
  assert.equal(pool.check(KEYS[1].pub, moved), 'updated');
  const after = pool.add(signedVote(KEYS[1], moved));
  assert.equal(after.result, 'updated');
  assert.deepEqual([...after.candidate!.votes.keys()], [hexKey(KEYS[1].pub)]);
  assert.deepEqual([...before.votes.keys()], [hexKey(KEYS[2].pub)], 'the older payload lost its vote');
  assert.equal(pool.add(signedVote(KEYS[1], moved)).result, 'duplicate');
  assert.equal(pool.check(KEYS[1].pub, payload(20, { hash: hashOf(20, 'b') })), 'equivocation');
});
