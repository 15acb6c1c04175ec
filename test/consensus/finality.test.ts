// The host's finality voting (consensus/finality.ts) against in-memory fakes (finality-fakes.ts): gossip validation
// of votes, the voting cadence, and who submits an anchor when. The enclave fake signs real ed25519 votes, keeps the
// signing guard's rule and builds anchors only from a quorum it checks, so a vote or an anchor the host gets wrong
// shows here as a refusal or a missing submission.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { VotePayload, payloadKey } from '../../src/protocol/finality.ts';
import { hexKey } from '../../src/protocol/bytes.ts';
import type { Params } from '../../src/enclave/boundary/api.ts';
import {
  KEYS,
  OUTSIDER,
  SET_AT,
  ZERO,
  harness,
  hashOf,
  key,
  payload,
  until,
  voteBytes,
  type Harness,
} from './finality-fakes.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const votedAt = (h: Harness) => h.enclave.callsOf('finalityVote').map((p) => (p as Params<'finalityVote'>).number);
const anchorCalls = (h: Harness) => h.enclave.callsOf('anchorCall') as Params<'anchorCall'>[];
const submittedAt = (h: Harness) => h.pc.submitted.map((s) => s.number);
/** Processes parentchain blocks up to `n` and lets the service act on it. */
const processed = async (h: Harness, n: number) => {
  h.pc.processedNumber = n;
  await h.step();
};

test('gossip validation rejects malformed, foreign, non-member and forged votes; ignores stale and unknown ones', async () => {
  const h = harness();
  h.chain.extend(25);
  h.pc.lastAnchor = { number: 10, hash: hashOf(10) };
  const after = (n: number, over = {}) => payload(n, { previousAnchor: hashOf(10), hash: hashOf(n, 'b'), ...over });
  const ok = voteBytes(KEYS[1], after(20));

  assert.equal(await h.gossip(new Uint8Array(10)), 'reject');
  assert.equal(await h.gossip(new Uint8Array([...ok, 0])), 'reject');
  assert.equal(await h.gossip(new Uint8Array(randomBytes(ok.length))), 'reject');
  assert.equal(await h.gossip(voteBytes(KEYS[1], after(20, { shard: new Uint8Array(32).fill(1) }))), 'reject');
  assert.equal(await h.gossip(voteBytes(OUTSIDER, after(20))), 'reject');
  const forged = ok.slice();
  forged[forged.length - 20] ^= 1; // inside the signature
  assert.equal(await h.gossip(forged), 'reject');
  // A member registered after the block's authority set was taken is no authority of it.
  const late = key(4);
  h.pc.members = [...h.pc.members, { registeredAt: SET_AT + 2, signingKey: late.pub }];
  assert.equal(await h.gossip(voteBytes(late, after(20))), 'reject');

  assert.equal(await h.gossip(voteBytes(KEYS[1], after(10))), 'ignore'); // at the last anchor
  assert.equal(await h.gossip(voteBytes(KEYS[1], after(9))), 'ignore');
  assert.equal(await h.gossip(voteBytes(KEYS[1], after(100_000))), 'ignore'); // absurdly far ahead
  assert.equal(await h.gossip(voteBytes(KEYS[1], after(20, { authoritySetAt: 11 }))), 'ignore'); // beyond processed 10

  assert.equal(await h.gossip(ok), 'accept');
  assert.equal(await h.gossip(voteBytes(late, after(20, { authoritySetAt: SET_AT + 2 }))), 'accept');
  const votes = await h.votes();
  assert.deepEqual(
    [votes.invalid, votes.stale, votes.unknown, votes.accepted, votes.duplicate, votes.cast],
    [7, 3, 1, 2, 0, 0],
  );
  assert.deepEqual(votedAt(h), [], 'no vote of ours: our chain has another block at 20');
});

test('a vote again, even with another send time, is a duplicate; a second payload is an equivocation, the first counts', async () => {
  const h = harness();
  h.chain.extend(25, () => KEYS[0]);
  const b = payload(20, { hash: hashOf(20, 'b') });
  const first = voteBytes(KEYS[1], b, 1n);
  assert.equal(await h.gossip(first), 'accept');
  assert.equal(await h.gossip(voteBytes(KEYS[1], b, 2n)), 'ignore');
  // Known already: not verified again (this copy's signature is broken), just ignored.
  const copy = voteBytes(KEYS[1], b, 3n);
  copy[copy.length - 20] ^= 1;
  assert.equal(await h.gossip(copy), 'ignore');
  // Member 1 also signed our block at 20: a second payload at one number does not count.
  const a = voteBytes(KEYS[1], payload(20));
  assert.equal(await h.gossip(a), 'ignore');
  const forgedA = a.slice();
  forgedA[forgedA.length - 20] ^= 1;
  assert.equal(await h.gossip(forgedA), 'reject', 'a forged second payload is no equivocation but a forgery');

  await h.step(); // we vote for our block at 20: alone, since member 1's vote for it did not count
  assert.deepEqual(votedAt(h), [20]);
  assert.equal(anchorCalls(h).length, 0);
  assert.equal(await h.gossip(voteBytes(KEYS[2], b)), 'accept'); // b has a quorum, but is not our block
  await processed(h, 20);
  assert.deepEqual(submittedAt(h), []);

  // Our chain switches to b at 20: its quorum (member 1's first vote and member 2's) is anchored.
  h.chain.blocks.set(20, { hash: hashOf(20, 'b'), author: KEYS[0].pub });
  await h.step();
  assert.deepEqual(submittedAt(h), [20]);
  const signers = anchorCalls(h)[0]
    .votes.map((v) => hexKey(v.signer))
    .sort();
  assert.deepEqual(signers, [hexKey(KEYS[1].pub), hexKey(KEYS[2].pub)].sort());
  const votes = await h.votes();
  assert.deepEqual([votes.accepted, votes.duplicate, votes.equivocation, votes.invalid, votes.cast], [2, 2, 1, 1, 1]);
});

test('votes once, for the highest multiple of the interval strictly below the head', async () => {
  const h = harness();
  await h.step();
  assert.deepEqual(votedAt(h), [], 'no head, no vote');
  h.chain.extend(20);
  await h.step();
  assert.deepEqual(votedAt(h), [10]);
  assert.equal(h.ours()[0].payload.number, 10n);
  h.chain.extend(29);
  await h.step();
  h.chain.extend(45); // the vote at 10 is open, and voteRetryMs (60 s) has not passed
  await h.step();
  await h.step();
  assert.deepEqual(votedAt(h), [10]);
  assert.equal(h.published.length, 1);
  assert.equal((await h.votes()).cast, 1);
});

test('without a quorum after voteRetryMs, publishes the same vote again, then votes higher once the head moved on', async () => {
  const h = harness({ voteRetryMs: 100 });
  h.chain.extend(25);
  await h.step();
  await until(h, () => h.published.length >= 2);
  const [a, b] = h.ours();
  assert.equal(payloadKey(a.payload), payloadKey(b.payload));
  assert.deepEqual(a.signature, b.signature);
  assert.notEqual(a.sentAtMs, b.sentAtMs, 'a new gossip message');
  assert.notDeepEqual(h.published[0], h.published[1]);
  assert.deepEqual(votedAt(h), [20], 'the same signature: the enclave is not asked again');

  h.chain.extend(35);
  await until(h, () => h.ours().some((v) => v.payload.number === 30n));
  assert.deepEqual(votedAt(h), [20, 30]);
});

test('waits while a quorum anchor may land; votes again once every submitter had its turn', async () => {
  const h = harness({ voteRetryMs: 50 });
  h.chain.extend(25, () => KEYS[1]); // member 1 authored: our turn comes 2 * 3 parentchain blocks after the quorum
  await h.step();
  assert.equal(await h.gossip(voteBytes(KEYS[2], payload(20))), 'accept'); // quorum at processed 10
  await sleep(200);
  await processed(h, 15);
  assert.equal(h.published.length, 1, 'no retry while the anchor may land');
  assert.deepEqual(submittedAt(h), []);
  // Past every submitter's turn (3 members + 1, times 3 blocks) without an anchor: the vote is open again.
  await processed(h, 23);
  assert.equal(h.published.length, 2);
  assert.equal(h.ours()[1].payload.number, 20n);
});

test('does not wait for a quorum that an anchor at a lower height left behind', async () => {
  const h = harness({ voteRetryMs: 50 });
  h.chain.extend(35, () => KEYS[1]);
  await h.step();
  assert.equal(await h.gossip(voteBytes(KEYS[2], payload(30))), 'accept'); // quorum for 30, after no anchor
  // Another quorum's anchor lands at 20: the one for 30 no longer extends the last anchor and can never land.
  h.pc.lastAnchor = { number: 20, hash: hashOf(20) };
  h.chain.extend(45);
  await until(h, () => votedAt(h).includes(40));
  assert.deepEqual(h.ours().at(-1)!.payload.previousAnchor, hashOf(20));
});

test('after the anchor lands, votes for the next target at once', async () => {
  const h = harness();
  h.chain.extend(25);
  await h.step();
  h.pc.lastAnchor = { number: 20, hash: hashOf(20) };
  await h.step();
  assert.deepEqual(votedAt(h), [20], 'nothing above the anchor to vote for yet');
  h.chain.extend(35);
  await h.step();
  assert.deepEqual(votedAt(h), [20, 30]);
  assert.deepEqual(h.ours()[1].payload.previousAnchor, hashOf(20));
});

test('joins a member vote at a higher aligned height only when our chain has that block', async () => {
  const h = harness();
  h.chain.extend(35, () => KEYS[0]);
  assert.equal(await h.gossip(voteBytes(KEYS[1], payload(30, { hash: hashOf(30, 'b') }))), 'accept');
  assert.equal(await h.gossip(voteBytes(KEYS[1], payload(25))), 'accept'); // ours, not aligned
  assert.equal(await h.gossip(voteBytes(KEYS[1], payload(40))), 'accept'); // beyond our head
  assert.deepEqual(votedAt(h), []);
  assert.equal(await h.gossip(voteBytes(KEYS[2], payload(30))), 'accept');
  assert.deepEqual(votedAt(h), [30]);
  assert.equal(h.ours()[0].payload.number, 30n);
  assert.deepEqual(submittedAt(h), [30], 'our vote made the quorum, and we authored block 30');
  assert.equal(await h.gossip(voteBytes(KEYS[2], payload(20))), 'accept');
  assert.deepEqual(votedAt(h), [30], 'not below our own vote');
});

test('does not join a higher vote while its own quorum may still land: a second quorum would pay a second fee', async () => {
  const h = harness();
  h.chain.extend(25, () => KEYS[1]);
  await h.step();
  assert.equal(await h.gossip(voteBytes(KEYS[2], payload(20))), 'accept'); // our 20 has its quorum
  h.chain.extend(45, () => KEYS[1]);
  assert.equal(await h.gossip(voteBytes(KEYS[1], payload(40))), 'accept');
  assert.deepEqual(votedAt(h), [20], 'no vote at 40 while the anchor of 20 may land');
  // The anchor of 20 lands: the next vote names it.
  h.pc.lastAnchor = { number: 20, hash: hashOf(20) };
  await h.step();
  assert.deepEqual(votedAt(h), [20, 40]);
  assert.deepEqual(h.ours().at(-1)!.payload.previousAnchor, hashOf(20));
});

test("the anchored block's author submits at once, with the pooled votes", async () => {
  const h = harness();
  h.chain.extend(25, () => KEYS[0]);
  await h.step();
  assert.deepEqual(submittedAt(h), [], 'one vote is no quorum of three');
  assert.equal(await h.gossip(voteBytes(KEYS[1], payload(20))), 'accept');
  assert.deepEqual(submittedAt(h), [20]);
  const [call] = anchorCalls(h);
  assert.equal(call.number, 20);
  assert.deepEqual(call.votes.map((v) => hexKey(v.signer)).sort(), [hexKey(KEYS[0].pub), hexKey(KEYS[1].pub)].sort());
  // What the enclave built, as it built it (the fake's call data is the payload it checked the votes against).
  assert.equal(VotePayload.dec(h.pc.submitted[0].callData).number, 20n);
});

for (const [author, rank] of [
  [2, 1],
  [1, 2],
] as const) {
  test(`a fallback member of rank ${rank} submits after ${rank} * anchorFallbackBlocks processed blocks`, async () => {
    const h = harness();
    h.chain.extend(25, () => KEYS[author]);
    await h.step();
    assert.equal(await h.gossip(voteBytes(KEYS[author], payload(20))), 'accept'); // quorum at processed 10
    await processed(h, 10 + rank * 3 - 1);
    assert.deepEqual(submittedAt(h), []);
    await processed(h, 10 + rank * 3);
    assert.deepEqual(submittedAt(h), [20]);
  });
}

test('nobody submits a candidate that does not extend the last anchor, or whose block is not ours', async () => {
  const h = harness();
  h.chain.extend(35, () => KEYS[0]);
  h.pc.lastAnchor = { number: 10, hash: hashOf(10) };
  const other = payload(30, { hash: hashOf(30, 'b'), previousAnchor: hashOf(10) });
  const unlinked = payload(20, { previousAnchor: ZERO });
  for (const k of [KEYS[1], KEYS[2]]) assert.equal(await h.gossip(voteBytes(k, other)), 'accept');
  // A vote that does not name the last anchor can never land: not kept nor relayed.
  for (const k of [KEYS[1], KEYS[2]]) assert.equal(await h.gossip(voteBytes(k, unlinked)), 'ignore');
  await processed(h, 100);
  assert.deepEqual(submittedAt(h), []);
  assert.deepEqual(anchorCalls(h), []);
});

test('a failed submission is retried after anchorFallbackBlocks, not before', async () => {
  const h = harness();
  h.chain.extend(25, () => KEYS[0]);
  h.pc.submitOk = false;
  await h.step();
  await h.gossip(voteBytes(KEYS[1], payload(20)));
  assert.deepEqual(submittedAt(h), [20]);
  await processed(h, 12);
  assert.deepEqual(submittedAt(h), [20]);
  await processed(h, 13);
  assert.deepEqual(submittedAt(h), [20, 20]);
  // The enclave refusing to build it counts as a failure too.
  h.enclave.failAnchor = true;
  await processed(h, 16);
  assert.equal(anchorCalls(h).length, 3);
  await processed(h, 18);
  assert.equal(anchorCalls(h).length, 3);
  h.enclave.failAnchor = false;
  h.pc.submitOk = true;
  await processed(h, 19);
  assert.deepEqual(submittedAt(h), [20, 20, 20]);
});

test('an anchor included on the parentchain is not submitted again while it becomes final', async () => {
  const h = harness();
  h.chain.extend(25, () => KEYS[0]);
  await h.step();
  await h.gossip(voteBytes(KEYS[1], payload(20)));
  assert.deepEqual(submittedAt(h), [20]);
  for (let n = 11; n <= 30; n++) await processed(h, n);
  assert.deepEqual(submittedAt(h), [20], 'one fee per anchor');
});

test('a vote sealed before a restart is signed again, or outdone by a higher one', async () => {
  const sealed = { number: 20, hash: hashOf(20) };
  const h = harness({}, (pc) => (pc.lastVote = sealed));
  h.enclave.guard = sealed;
  h.chain.extend(25);
  await h.step();
  assert.deepEqual(votedAt(h), [20]);
  assert.equal(h.ours()[0].payload.number, 20n);

  const higher = harness({}, (pc) => (pc.lastVote = sealed));
  higher.enclave.guard = sealed;
  higher.chain.extend(35);
  await higher.step();
  assert.deepEqual(votedAt(higher), [30]);
});

test('a vote the enclave refuses is counted, published nowhere, and not asked for again at once', async () => {
  const h = harness();
  h.enclave.guard = { number: 30, hash: hashOf(30) }; // sealed, but unknown to the host
  h.chain.extend(25);
  await h.step();
  await h.step();
  assert.deepEqual(votedAt(h), [20]);
  assert.equal(h.published.length, 0);
  const votes = await h.votes();
  assert.deepEqual([votes.refused, votes.cast], [1, 0]);
});

test('validateer_sidechain_finality_lag_blocks is the head minus the last final block', async () => {
  const h = harness();
  h.chain.extend(25);
  await h.step();
  assert.equal((await h.metrics.finalityLag.get()).values[0].value, 25);
  h.pc.finalized = { number: 20 };
  await h.step();
  assert.equal((await h.metrics.finalityLag.get()).values[0].value, 5);
});

test('after stop, neither a kick nor a gossiped vote queues a step (the enclave and the store close next)', async () => {
  const h = harness();
  h.chain.extend(35, () => KEYS[0]);
  await h.fv.stop();
  await h.step();
  assert.equal(await h.gossip(voteBytes(KEYS[1], payload(30))), 'ignore');
  assert.deepEqual(h.enclave.calls, []);
});
