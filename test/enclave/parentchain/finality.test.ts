// Finality against a malicious host (issue 19, acceptance 1), in process through the enclave API: the host rewinds
// and restarts its enclave, puts back sealed files, withholds blocks, and forges, replays, duplicates and reorders
// votes and anchor remarks. What must hold: one host gets no finality for a branch of its own, an enclave never
// votes twice at one number, two conflicting branches never both become final, and a vote that is not a member's
// real vote for the exact payload never counts (neither in the enclave that builds an anchor nor in any registry).
// Also two ways around the majority: a branch longer than the enclave's recent blocks (its enclaves took an anchor
// that old for final on any chain, for votes and for the payer's payouts; found and closed here, chain/head.ts), and
// a fork from a block of the first member's time alone (its set of one is a majority of itself after others joined;
// closed on main by the second majority, of the members now).
// Hand-made remarks "sent by a member's account" are the worst case: on a real chain only the member's enclave signs
// for that account, and only calls it built; the fake chain checks no extrinsic signature.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ed25519PublicFromSeed, ed25519Sign, sha256 } from '../../../src/crypto/primitives.ts';
import { decodeMessage } from '../../../src/protocol/parentchain-messages.ts';
import { registrationUserData, type Observation } from '../../../src/enclave/parentchain/registry.ts';
import { simulatedProvider } from '../../../src/enclave/keys/attestation.ts';
import { computeMeasurement } from '../../../src/enclave/keys/measurement.ts';
import { SIM_SIGNER_ID } from '../../../src/enclave/keys/sealing.ts';
import { voteMessage, type IndexedVote, type VotePayload } from '../../../src/protocol/finality.ts';
import { concatBytes, same } from '../../../src/protocol/bytes.ts';
import { RECENT_BLOCKS_KEPT } from '../../../src/enclave/chain/head.ts';
import { codeOf } from '../../helpers/errors.ts';
import { HpkeSuite } from '../../../src/crypto/hpke.ts';
import { HPKE_INFO_SHIELD } from '../../../src/protocol/wire.ts';
import { shield, signCall } from '../../../src/client/calls.ts';
import { devAccount } from '../../../src/client/accounts.ts';
import {
  ADDRS,
  FakeChain,
  Host,
  PEER,
  SHARD,
  authored,
  batch,
  decodeCall,
  importInto,
  memberSet,
  msg,
  removeTempDirs,
  transfer,
  type Call,
} from '../../helpers/fake-parentchain.ts';

after(removeTempDirs);
const te = new TextEncoder();
const key32 = (label: string) => sha256(te.encode(label));
/** Sidechain amounts, above the parentchain's existential deposit like real payouts. */
const UNIT = 10_000_000n;
const shieldSuite = new HpkeSuite(HPKE_INFO_SHIELD);

// ---------- helpers ----------

/** A vote as the host hands it to anchorCall. */
type Vote = { signer: Uint8Array; signature: Uint8Array };

/** The anchor remark a host makes by hand: the payload's fields and whatever votes it likes. */
function anchorRemark(p: VotePayload, votes: IndexedVote[]): Call {
  const { shard, number, hash, previousAnchor, parentchainProcessed, authoritySetAt } = p;
  return msg({
    tag: 'anchor',
    value: {
      shard,
      sidechainNumber: number,
      sidechainHash: hash,
      previousAnchor,
      parentchainProcessed,
      authoritySetAt,
      votes,
    },
  });
}

/**
 * A parentchain block holding `call` sent by `sender`'s account (at the nonce its enclave expects: nothing else about
 * it is odd), imported by every host. Returns each host's observations. The fake chain checks no extrinsic signature:
 * this is the worst case, a host that got its enclave's account to send anything.
 */
function land(chain: FakeChain, hosts: Host[], call: Call, sender: Host | Uint8Array): Observation[][] {
  const signer = sender instanceof Host ? sender.key : sender;
  const nonce = sender instanceof Host ? sender.info().accountNonce : 0;
  const blk = chain.block([{ signer, call, nonce }]);
  return hosts.map((h) => h.import(blk).observations);
}

/** Every host saw exactly one observation of `kind` (its detail matching `detail`); `what` names the case. */
function allSaw(obs: Observation[][], kind: string, detail?: RegExp, what = ''): void {
  for (const o of obs) {
    assert.deepEqual(
      o.map((x) => x.kind),
      [kind],
      `${what} ${JSON.stringify(o)}`,
    );
    if (detail) assert.match(o[0].detail, detail, what);
  }
}

/** The enclave's anchor for block `number` with `votes`, signed by its host and landed on every host's chain. */
function anchorWith(chain: FakeChain, hosts: Host[], submitter: Host, number: number, votes: Vote[]) {
  const { callData } = submitter.core.anchorCall(number, votes);
  return land(chain, hosts, decodeCall(callData), submitter);
}

/** The votes an anchor call carries, as (index, signature). */
function votesIn(callData: Uint8Array): IndexedVote[] {
  const c = decodeCall(callData).call;
  const m = c.kind === 'remark' ? decodeMessage(c.remark) : null;
  assert.equal(m?.tag, 'anchor');
  return m?.tag === 'anchor' ? m.value.votes : [];
}

const indexed = (index: number, v: { signature: Uint8Array }): IndexedVote => ({ index, signature: v.signature });
const hashAt = (h: Host, n: number) => h.core['head'].recentBlocks.get(BigInt(n))?.hash;
const head = (h: Host) => h.core.status();
const finalNumber = (h: Host) => Number(h.core['finalNumber']());

/** `author` authors its next block (past the slots of `importers` and `away`); each of `importers` imports it. */
function shared(author: Host, importers: Host[], away: Host[] = []) {
  const p = authored(author, ...importers, ...away);
  for (const o of importers) importInto(o, p.block);
  return p;
}

// =============================================================================================
// a. One host, its enclave rewound, a private branch

test('a host that rewinds its enclave and anchors a private branch gets no finality; the honest members keep authoring and anchor their own chain', async () => {
  const chain = new FakeChain();
  const { hosts, genesis } = await memberSet(chain, 3);
  const [a, b, c] = hosts;
  // The shared chain's blocks, by number.
  const honest = [genesis.block];
  const share = (author: Host, importers: Host[], away: Host[] = []) => {
    const p = shared(author, importers, away);
    honest.push(p.block);
    return p;
  };
  try {
    const first = share(a, [b, c]);
    share(b, [a, c]);
    share(c, [a, b]);
    assert.equal(head(a).headNumber, 3);
    // B's real vote for the shared block 3 (B's own chain): the host of A will pass it off for its branch.
    const bShared = b.core.finalityVote(3);

    // A's host rewinds A to block 1 and builds a branch of its own in A's slots, withheld from B and C.
    a.core.rewind(1, first.hash);
    authored(a, b, c);
    const private3 = authored(a, b, c);
    assert.equal(private3.number, 3);
    const aVote = a.core.finalityVote(3); // A's enclave votes: the block is on its (rewound) chain
    assert.ok(same(aVote.payload.hash, private3.hash));

    // A's enclave builds no anchor without a majority of the three, whatever the host hands it.
    const noQuorum = (votes: Vote[]) => codeOf(() => a.core.anchorCall(3, votes));
    assert.equal(noQuorum([aVote]), 'ANCHOR_NO_QUORUM', "A's vote alone");
    assert.equal(noQuorum([aVote, aVote, aVote]), 'ANCHOR_NO_QUORUM', "A's vote counted three times");
    assert.equal(noQuorum([aVote, bShared]), 'ANCHOR_NO_QUORUM', "B's signature over another block's payload");
    assert.equal(
      noQuorum([aVote, { signer: b.key, signature: aVote.signature }, { signer: c.key, signature: aVote.signature }]),
      'ANCHOR_NO_QUORUM',
      "A's signature passed off as B's and C's",
    );

    // Hand-made remarks, sent by A's own account: every member's registry ignores them.
    const tries: [IndexedVote[], RegExp][] = [
      [[indexed(0, aVote)], /1 of 3 votes: no majority/],
      [[indexed(0, aVote), indexed(0, aVote)], /not in increasing index order/],
      [[indexed(0, aVote), indexed(1, aVote)], /member 1 has a bad signature/],
      [[indexed(0, aVote), indexed(1, bShared)], /member 1 has a bad signature/],
      [[indexed(0, aVote), indexed(2, bShared)], /member 2 has a bad signature/],
    ];
    for (const [votes, why] of tries) {
      const remark = anchorRemark(aVote.payload, votes);
      // (A's enclave would not even sign it: it signs only calls it built.)
      assert.equal(
        codeOf(() => a.sign(remark.bytes)),
        'SIGNING_REFUSED',
      );
      allSaw(land(chain, hosts, remark, a), 'anchorIgnored', why);
    }
    for (const h of hosts) assert.equal(h.info().lastAnchor, null, 'nothing is final');
    assert.equal(finalNumber(a), -1);

    // B and C go on without A (its slots stay empty): they author and import each other's blocks,
    for (let i = 0; i < 2; i++) {
      share(b, [c], [a]);
      share(c, [b], [a]);
    }
    assert.equal(head(b).headNumber, 7);
    assert.deepEqual(head(b).headHash, head(c).headHash);
    // and their two votes are a majority: B's enclave builds the anchor and every registry, A's too, accepts it.
    const votes5 = [b.core.finalityVote(5), c.core.finalityVote(5)];
    allSaw(anchorWith(chain, hosts, b, 5, votes5), 'anchor', /^5$/);
    for (const h of hosts) assert.deepEqual(h.info().lastAnchor?.hash, hashAt(b, 5));
    assert.deepEqual([finalNumber(b), finalNumber(c), finalNumber(a)], [5, 5, -1]);

    // A's enclave will not vote on its branch any more: it does not descend from the anchored block.
    authored(a, b, c);
    authored(a, b, c);
    authored(a, b, c);
    assert.equal(head(a).headNumber, 6);
    assert.equal(
      codeOf(() => a.core.finalityVote(6)),
      'ANCHOR_NOT_DESCENDANT',
    );
    // B and C keep authoring after the anchor, and A's host, taking A back to the shared block 1, follows them.
    share(b, [c], [a]);
    share(c, [b], [a]);
    a.core.rewind(1, first.hash);
    for (const blk of honest.slice(2)) importInto(a, blk);
    assert.deepEqual(head(a).headHash, head(b).headHash);
    assert.equal(finalNumber(a), 5);
  } finally {
    for (const h of hosts) await h.close();
  }
});

// =============================================================================================
// b. One number, one vote; one slot, one block: across rewinds and restarts

/** A member alone in its set (its vote is the majority) with blocks 1..n of its own; returns the blocks by number. */
async function alone(chain: FakeChain, n: number) {
  const { hosts, genesis } = await memberSet(chain, 1);
  const blocks = [genesis.block];
  for (let i = 0; i < n; i++) blocks.push(hosts[0].produce().block);
  return { host: hosts[0], blocks };
}

/** The host closes its enclave, opens it again on the same data directory and replays `blocks` into it. */
async function restart(host: Host, blocks: Uint8Array[]): Promise<Host> {
  await host.close();
  const again = new Host(host.chain, host.dataDir);
  again.slot = host.slot;
  again.init();
  again.core.beginReplay(undefined, false);
  again.core.replayBlocks(blocks);
  await again.core.finishReplay();
  return again;
}

const proposeAt = (h: Host, slot: bigint) => h.core.propose({ slot, timestampMs: Date.now(), maxCalls: 10 });

test('a host gets one vote per number out of its enclave: not for another block at that number after a rewind or a restart, nor below it; the same vote again is the same signature', async () => {
  const chain = new FakeChain();
  const start = await alone(chain, 3);
  const blocks = start.blocks;
  let host = start.host;
  try {
    const first = host.core.finalityVote(3);
    assert.deepEqual(first.payload.hash, hashAt(host, 3));
    assert.deepEqual(host.info().lastVote, { number: 3, hash: first.payload.hash });

    // Rewound to block 2, the enclave authors another block 3 (a later slot: the slot of the first is burned).
    const slot3 = host.core['head'].recentBlocks.get(3n)!.slot;
    host.core.rewind(2, hashAt(host, 2)!);
    assert.equal(
      codeOf(() => proposeAt(host, slot3)),
      'SLOT_ALREADY_SIGNED',
    );
    const other3 = host.produce();
    assert.equal(other3.number, 3);
    const otherSlot3 = host.core['head'].recentBlocks.get(3n)!.slot;
    assert.notDeepEqual(other3.hash, first.payload.hash);
    assert.equal(
      codeOf(() => host.core.finalityVote(3)),
      'VOTE_ALREADY_SIGNED',
      'another hash at a number voted at',
    );
    assert.equal(
      codeOf(() => host.core.finalityVote(2)),
      'VOTE_ALREADY_SIGNED',
      'a number below',
    );

    // Restarted on the same data directory (the sealed record intact) with the other block 3: still refused.
    const otherChain = [...blocks.slice(0, 3), other3.block];
    host = await restart(host, otherChain);
    assert.deepEqual(host.core.status().headHash, other3.hash);
    assert.deepEqual(host.info().lastVote, { number: 3, hash: first.payload.hash });
    for (const n of [3, 2, 1])
      assert.equal(
        codeOf(() => host.core.finalityVote(n)),
        'VOTE_ALREADY_SIGNED',
        `at ${n}`,
      );
    // Nor two blocks for one slot: restarted with block 2 as its head, neither block 3's slot is signed again.
    host = await restart(host, blocks.slice(0, 3));
    for (const slot of [slot3, otherSlot3])
      assert.equal(
        codeOf(() => proposeAt(host, slot)),
        'SLOT_ALREADY_SIGNED',
        `slot ${slot}`,
      );

    // The same vote again, on the first block 3 (replayed after another restart): the same bytes (ed25519 is
    // deterministic), so a replayed vote is the vote the set already has, never a second one.
    host = await restart(host, blocks);
    const again = host.core.finalityVote(3);
    assert.deepEqual(again, first);
    // And a vote above is a new vote: from then on 3 is below the last vote.
    host.core.commit(proposeAt(host, host.slot++).hash);
    host.core.finalityVote(4);
    assert.equal(
      codeOf(() => host.core.finalityVote(3)),
      'VOTE_ALREADY_SIGNED',
    );
  } finally {
    await host.close();
  }
});

test('a signing guard put back to before a vote is detected by the parentchain view sealed after it, which carries the vote: the vote stays refused', async () => {
  const chain = new FakeChain();
  const start = await alone(chain, 3);
  const blocks = start.blocks;
  let host = start.host;
  const guardPath = join(host.dataDir, 'enclave', 'signing-guard.sealed');
  try {
    const before = readFileSync(guardPath); // no vote yet
    const first = host.core.finalityVote(3);
    host.import(chain.block()); // the view, sealed after the vote, carries a copy of the guard's record
    assert.equal(host.info().sealedRollback.rollbacks, 0);

    // The host puts the old guard back, restarts the enclave and shows it another block 3 (a fresh slot).
    writeFileSync(guardPath, before);
    host = await restart(host, blocks.slice(0, 3));
    const status = host.info().sealedRollback;
    assert.equal(status.rollbacks, 1, 'the guard rollback is detected');
    assert.match(status.lastRollback ?? '', /signing guard .* is older than parentchain view/);
    assert.deepEqual(
      host.info().lastVote,
      { number: 3, hash: first.payload.hash },
      "the view's copy restored the vote",
    );
    const other3 = host.produce();
    assert.notDeepEqual(other3.hash, first.payload.hash);
    assert.equal(
      codeOf(() => host.core.finalityVote(3)),
      'VOTE_ALREADY_SIGNED',
    );
    // A restart does not forget it: the merged record was sealed.
    host = await restart(host, [...blocks.slice(0, 3), other3.block]);
    assert.equal(host.info().sealedRollback.rollbacks, 1);
    assert.equal(
      codeOf(() => host.core.finalityVote(3)),
      'VOTE_ALREADY_SIGNED',
    );
  } finally {
    await host.close();
  }
});

test('a parentchain view put back to before a vote is detected, and the guard still refuses a second vote', async () => {
  const chain = new FakeChain();
  const start = await alone(chain, 3);
  const blocks = start.blocks;
  let host = start.host;
  const viewPath = join(host.dataDir, 'enclave', 'parentchain.sealed');
  try {
    host.import(chain.block());
    const before = readFileSync(viewPath); // its guard copy has no vote
    const first = host.core.finalityVote(3);
    host.import(chain.block());
    writeFileSync(viewPath, before);
    host = await restart(host, blocks.slice(0, 3));
    assert.equal(host.info().sealedRollback.rollbacks, 1);
    assert.match(host.info().sealedRollback.lastRollback ?? '', /older than the sealed/);
    host.produce();
    assert.equal(
      codeOf(() => host.core.finalityVote(3)),
      'VOTE_ALREADY_SIGNED',
    );
    assert.deepEqual(host.info().lastVote, { number: 3, hash: first.payload.hash });
  } finally {
    await host.close();
  }
});

// =============================================================================================
// c. Two conflicting branches, voted by different members at different heights

/**
 * Members A, B, C share block 1, then fork: A and B build branch X (2x, 3x; later B alone 4x..6x), C builds branch Y
 * (2y..5y) in its own slots. The hosts move their enclaves between the branches (rewinds) to collect every vote the
 * signing guard allows, before any anchor is seen: A and B for 3x, A and C for 5y, A and B for 6x, all naming no
 * previous anchor. Returns the three anchor calls, built by B's (X) and C's (Y) enclaves, none landed yet.
 */
async function conflictingBranches() {
  const chain = new FakeChain();
  const { hosts } = await memberSet(chain, 3);
  const [a, b, c] = hosts;
  const first = shared(a, [b, c]);
  const x = [shared(a, [b], [c]), shared(b, [a], [c])];
  const y = [0, 1, 2, 3].map(() => authored(c, a, b));
  assert.deepEqual(
    y.map((p) => p.number),
    [2, 3, 4, 5],
  );
  const xVotes3 = [a.core.finalityVote(3), b.core.finalityVote(3)];

  // B cannot vote for Y at 3, where it voted for X, nor below.
  b.core.rewind(1, first.hash);
  for (const p of y.slice(0, 2)) importInto(b, p.block);
  for (const n of [3, 2])
    assert.equal(
      codeOf(() => b.core.finalityVote(n)),
      'VOTE_ALREADY_SIGNED',
      `B for Y at ${n}`,
    );
  b.core.rewind(1, first.hash);
  for (const p of x) importInto(b, p.block);

  // A's host takes A over to Y: A votes 5y with C (higher than its vote at 3, so the guard allows it).
  a.core.rewind(1, first.hash);
  for (const p of y) importInto(a, p.block);
  const yVotes5 = [a.core.finalityVote(5), c.core.finalityVote(5)];

  // B extends X alone; A's host takes A back to X, and A and B vote 6x.
  x.push(...[0, 1, 2].map(() => authored(b, a, c)));
  a.core.rewind(1, first.hash);
  for (const p of x) importInto(a, p.block);
  const xVotes6 = [a.core.finalityVote(6), b.core.finalityVote(6)];
  for (const v of [...xVotes3, ...yVotes5, ...xVotes6]) assert.deepEqual(v.payload.previousAnchor, new Uint8Array(32));

  const calls = {
    x3: decodeCall(b.core.anchorCall(3, xVotes3).callData),
    y5: decodeCall(c.core.anchorCall(5, yVotes5).callData),
    x6: decodeCall(b.core.anchorCall(6, xVotes6).callData),
  };
  return { chain, hosts, a, b, c, calls, xVotes6, yVotes5, x, y };
}

const lastAnchors = (hosts: Host[]) => hosts.map((h) => h.info().lastAnchor?.hash);

test("conflicting branches, the lower one's anchor first: the other branch's anchor does not follow it and is ignored everywhere; the enclaves on that branch vote no more", async () => {
  const { chain, hosts, a, b, c, calls, yVotes5, x, y } = await conflictingBranches();
  try {
    allSaw(land(chain, hosts, calls.x3, b), 'anchor', /^3$/);
    // C's enclave, on Y (its block 3 is not the anchored one), neither votes again for 5y naming the anchor nor builds
    // Y's anchor from the votes it has.
    assert.equal(
      codeOf(() => c.core.finalityVote(5)),
      'ANCHOR_NOT_DESCENDANT',
    );
    assert.equal(
      codeOf(() => c.core.anchorCall(5, yVotes5)),
      'ANCHOR_NOT_DESCENDANT',
    );
    // The anchor it built before is ignored by every registry.
    allSaw(land(chain, hosts, calls.y5, c), 'anchorIgnored', /anchor 5 does not follow the last anchor/);
    // Not even sent again by another member, nor with the last anchor named by a host (the votes do not sign that).
    allSaw(land(chain, hosts, calls.y5, a), 'anchorIgnored', /does not follow/);
    const [ya, yc] = yVotes5;
    const relinked = anchorRemark({ ...ya.payload, previousAnchor: x[1].hash }, [indexed(0, ya), indexed(2, yc)]);
    allSaw(land(chain, hosts, relinked, c), 'anchorIgnored', /member 0 has a bad signature/);
    for (const h of lastAnchors(hosts)) assert.deepEqual(h, x[1].hash);
    // X's 6 voted before the anchor names none: ignored too; votes for it naming the anchor make it final.
    allSaw(land(chain, hosts, calls.x6, b), 'anchorIgnored', /anchor 6 does not follow/);
    const again = [a.core.finalityVote(6), b.core.finalityVote(6)];
    for (const v of again) assert.deepEqual(v.payload.previousAnchor, x[1].hash);
    allSaw(anchorWith(chain, hosts, b, 6, again), 'anchor', /^6$/);
    for (const h of lastAnchors(hosts)) assert.deepEqual(h, x[4].hash);
    // C's enclave, on Y, neither votes nor builds an anchor there any more: Y does not descend from the anchor.
    assert.deepEqual(c.core.status().headHash, y[3].hash);
    assert.equal(
      codeOf(() => c.core.finalityVote(5)),
      'ANCHOR_NOT_DESCENDANT',
    );
    authored(c, a, b);
    assert.equal(
      codeOf(() => c.core.finalityVote(6)),
      'ANCHOR_NOT_DESCENDANT',
    );
    assert.deepEqual([finalNumber(a), finalNumber(b), finalNumber(c)], [6, 6, -1]);
  } finally {
    for (const h of hosts) await h.close();
  }
});

test("conflicting branches, the higher one's anchor first: the lower one's is not above it, the later one does not follow it; X's enclaves vote no more", async () => {
  const { chain, hosts, a, b, c, calls, xVotes6, y } = await conflictingBranches();
  try {
    allSaw(land(chain, hosts, calls.y5, c), 'anchor', /^5$/);
    allSaw(land(chain, hosts, calls.x3, b), 'anchorIgnored', /anchor 3 is not above 5/);
    allSaw(land(chain, hosts, calls.x6, b), 'anchorIgnored', /anchor 6 does not follow the last anchor/);
    for (const h of lastAnchors(hosts)) assert.deepEqual(h, y[3].hash);
    // A and B (on X) give no vote at 6 naming Y's anchor, and B's enclave builds no anchor from their old votes.
    for (const h of [a, b])
      assert.equal(
        codeOf(() => h.core.finalityVote(6)),
        'ANCHOR_NOT_DESCENDANT',
      );
    assert.equal(
      codeOf(() => b.core.anchorCall(6, xVotes6)),
      'ANCHOR_NOT_DESCENDANT',
    );
    assert.deepEqual([finalNumber(a), finalNumber(b), finalNumber(c)], [-1, -1, 5]);
  } finally {
    for (const h of hosts) await h.close();
  }
});

// =============================================================================================
// d. Forged, duplicated, replayed and non-member votes

/** A key outside any enclave, registered as a member by a hand-made remark (the dev quote provider is trusted). */
function registerKey(chain: FakeChain, hosts: Host[], seed: Uint8Array): Uint8Array {
  const signingKey = ed25519PublicFromSeed(seed);
  const encryptionKey = key32('encryption key of a hand-made member');
  const quote = simulatedProvider(computeMeasurement(), SIM_SIGNER_ID).quote(
    concatBytes(signingKey, registrationUserData(SHARD, PEER, ADDRS, encryptionKey)),
  );
  const register = msg({
    tag: 'register',
    value: { shard: SHARD, quote, signingKey, p2pAddresses: ADDRS, peerId: PEER, encryptionKey },
  });
  allSaw(land(chain, hosts, register, signingKey), 'registered');
  return signingKey;
}

test('a forged, duplicated, replayed or non-member vote does not count: the enclave drops it and builds no anchor without the real majority; every registry ignores it in a hand-made anchor', async () => {
  const chain = new FakeChain();
  const { hosts } = await memberSet(chain, 3);
  const [a, b, c] = hosts;
  try {
    shared(a, [b, c]);
    const two = shared(b, [a, c]);
    const three = shared(c, [a, b]);
    // Votes the host keeps for later: B's for block 1, and B's for block 3 made before block 1's anchor landed.
    const b1 = b.core.finalityVote(1);
    const stale = b.core.finalityVote(3);
    allSaw(anchorWith(chain, hosts, a, 1, [a.core.finalityVote(1), b1]), 'anchor', /^1$/);
    // C's vote for another block 3 (its host rewound it and had it author one; then took it back to the shared 3).
    c.core.rewind(2, two.hash);
    authored(c, a, b);
    const fork3 = c.core.finalityVote(3);
    c.core.rewind(2, two.hash);
    importInto(c, three.block);

    const a3 = a.core.finalityVote(3);
    const p = a3.payload;
    assert.deepEqual(p.previousAnchor, hashAt(a, 1));
    // A key that never was a member, and one registered after block 3's authority set was taken: both sign p exactly.
    const outsiderSeed = key32('not a member');
    const outsider = {
      signer: ed25519PublicFromSeed(outsiderSeed),
      signature: ed25519Sign(outsiderSeed, voteMessage(p)),
    };
    const lateSeed = key32('registered after block 3');
    const late = { signer: registerKey(chain, hosts, lateSeed), signature: ed25519Sign(lateSeed, voteMessage(p)) };
    assert.equal(a.info().members.length, 4);

    const bad: [string, Vote][] = [
      ["a forged signature in B's name", { signer: b.key, signature: new Uint8Array(64).fill(7) }],
      ["A's signature in B's name", { signer: b.key, signature: a3.signature }],
      ["A's vote again", a3],
      ['a key that is not a member', outsider],
      ['a member registered after the authority set', late],
      ["B's vote for block 1", b1],
      ["C's vote for another block 3", fork3],
      ["B's vote for block 3 before the anchor of block 1", stale],
    ];
    for (const [what, v] of bad)
      assert.equal(
        codeOf(() => a.core.anchorCall(3, [a3, v])),
        'ANCHOR_NO_QUORUM',
        what,
      );
    assert.equal(
      codeOf(() =>
        a.core.anchorCall(
          3,
          bad.map(([, v]) => v),
        ),
      ),
      'ANCHOR_NO_QUORUM',
      'all of them',
    );
    assert.equal(
      codeOf(() => a.core.anchorCall(3, [a3, ...bad.map(([, v]) => v)])),
      'ANCHOR_NO_QUORUM',
      "A's vote and all of them",
    );

    // Registry side: hand-made anchors sent by A's account (a member: its votes are checked), none counts.
    const b3 = b.core.finalityVote(3); // B votes 3 again, now naming the anchor: a new payload, the same block
    assert.deepEqual(b3.payload, p);
    const lateAt = a.info().number; // the parentchain block where the late member is in the set
    // With the late member active (a majority of the members now is then 3): its vote by index, and the set moved to
    // one where it counts (every real vote signed the real set).
    const withLate: [string, Call, RegExp][] = [
      ['the late member', anchorRemark(p, [indexed(0, a3), indexed(3, late)]), /vote index 3 outside a set of 3/],
      [
        'the set moved to include the late member',
        anchorRemark({ ...p, authoritySetAt: lateAt }, [
          indexed(0, a3),
          indexed(1, b3),
          { index: 3, signature: ed25519Sign(lateSeed, voteMessage({ ...p, authoritySetAt: lateAt })) },
        ]),
        /member 0 has a bad signature/,
      ],
      ['A and B while 3 are needed', anchorRemark(p, [indexed(0, a3), indexed(1, b3)]), /2 votes of members now, of 4/],
    ];
    for (const [what, remark, why] of withLate) allSaw(land(chain, hosts, remark, a), 'anchorIgnored', why, what);
    // (C spent its vote at 3 on another block: without the late member leaving, block 3 is never anchored.)
    assert.equal(
      codeOf(() => a.core.anchorCall(3, [a3, b3])),
      'ANCHOR_NO_QUORUM',
    );
    const leave = msg({ tag: 'unregister', value: { shard: SHARD, signingKey: late.signer } });
    allSaw(land(chain, hosts, leave, late.signer), 'unregistered');

    // The set now and block 3's are A, B, C again: each of these fails on what it forged.
    const remarks: [string, Call, RegExp][] = [
      ['A alone', anchorRemark(p, [indexed(0, a3)]), /1 of 3 votes: no majority/],
      ['A twice', anchorRemark(p, [indexed(0, a3), indexed(0, a3)]), /not in increasing index order/],
      ['A and B reordered', anchorRemark(p, [indexed(1, b3), indexed(0, a3)]), /not in increasing index order/],
      ["A's signature as B's", anchorRemark(p, [indexed(0, a3), indexed(1, a3)]), /member 1 has a bad signature/],
      ['forged', anchorRemark(p, [indexed(0, a3), indexed(1, bad[0][1])]), /member 1 has a bad signature/],
      ['an outsider as B', anchorRemark(p, [indexed(0, a3), indexed(1, outsider)]), /member 1 has a bad signature/],
      ["B's vote for 1", anchorRemark(p, [indexed(0, a3), indexed(1, b1)]), /member 1 has a bad signature/],
      ["B's stale vote", anchorRemark(p, [indexed(0, a3), indexed(1, stale)]), /member 1 has a bad signature/],
      ["C's fork vote", anchorRemark(p, [indexed(0, a3), indexed(2, fork3)]), /member 2 has a bad signature/],
      [
        'four votes for a set of three',
        anchorRemark(p, [indexed(0, a3), indexed(1, b3), indexed(2, b3), indexed(3, b3)]),
        /4 votes for a set of 3/,
      ],
    ];
    for (const [what, remark, why] of remarks) allSaw(land(chain, hosts, remark, a), 'anchorIgnored', why, what);
    for (const h of hosts) assert.equal(h.info().lastAnchor?.number, 1, 'still block 1');
    // The real majority, sent by anyone but a member's account, costs nothing and counts for nothing.
    const real = anchorRemark(p, [indexed(0, a3), indexed(1, b3)]);
    allSaw(land(chain, hosts, real, key32('an outsider account')), 'anchorIgnored', /anchor by a non-member/);
    for (const h of hosts) assert.equal(h.info().lastAnchor?.number, 1, 'still block 1');
    // With the real majority among them, before or after, the bad votes are dropped: the anchor carries A's and B's.
    const badVotes = bad.map(([, v]) => v);
    const first = a.core.anchorCall(3, [b3, a3, ...badVotes]);
    const { callData } = a.core.anchorCall(3, [...badVotes, b3, a3]);
    for (const c of [first.callData, callData])
      assert.deepEqual(
        votesIn(c).map((v) => [v.index, v.signature]),
        [
          [0, a3.signature],
          [1, b3.signature],
        ],
      );
    allSaw(land(chain, hosts, decodeCall(callData), a), 'anchor', /^3$/);
    for (const h of hosts) assert.deepEqual(h.info().lastAnchor?.hash, hashAt(a, 3));
  } finally {
    for (const h of hosts) await h.close();
  }
});

test('a branch forked below the anchored block and longer than the blocks an enclave keeps gets no vote from the enclaves taken to it; an honest member far past the anchor still votes', async () => {
  const chain = new FakeChain();
  const { hosts } = await memberSet(chain, 3);
  const [a, b, c] = hosts;
  try {
    const first = shared(a, [b, c]);
    for (const author of [b, c, a, b])
      shared(
        author,
        hosts.filter((h) => h !== author),
      );
    const votes5 = [b.core.finalityVote(5), c.core.finalityVote(5)];
    // A's and B's hosts (two of three) take their enclaves to a branch of A's from block 1 (built on the same
    // parentchain block as the shared chain, so no effects differ), longer than the blocks an enclave keeps.
    a.core.rewind(1, first.hash);
    const branch = Array.from({ length: RECENT_BLOCKS_KEPT + 5 }, () => authored(a, b, c));
    b.core.rewind(1, first.hash);
    for (const p of branch) importInto(b, p.block);
    // B's and C's votes for the shared block 5 land as an anchor (C submits): block 5 is final.
    allSaw(anchorWith(chain, hosts, c, 5, votes5), 'anchor', /^5$/);
    const tip = Number(branch[branch.length - 1].number);
    assert.ok(tip > 5 + RECENT_BLOCKS_KEPT && hashAt(a, 5) === undefined, 'block 5 is out of their recent blocks');
    // The branch does not hold the anchored block 5: its enclaves must not vote for it naming that anchor.
    for (const h of [a, b])
      assert.equal(
        codeOf(() => h.core.finalityVote(tip)),
        'ANCHOR_NOT_DESCENDANT',
      );
    assert.deepEqual([finalNumber(a), finalNumber(b)], [-1, -1]);

    // C, alone on the shared chain, authors as far past the anchor: its own chain holds block 5, and it votes.
    for (let i = 0; i < RECENT_BLOCKS_KEPT + 5; i++) authored(c, a, b);
    const far = c.core.status().headNumber;
    assert.ok(far > 5 + RECENT_BLOCKS_KEPT && hashAt(c, 5) === undefined);
    assert.equal(finalNumber(c), 5);
    const vote = c.core.finalityVote(far);
    assert.deepEqual(vote.payload.previousAnchor, c.info().lastAnchor?.hash);
    // Restarted from a snapshot of its head, it still knows its chain holds block 5 (the snapshot carries it).
    const snap = await c.core.snapshot();
    await c.close();
    const restarted = new Host(chain, c.dataDir);
    hosts[2] = restarted;
    restarted.init();
    restarted.core.beginReplay(snap.sealed, false);
    await restarted.core.finishReplay();
    assert.equal(restarted.core.status().headNumber, far);
    assert.equal(finalNumber(restarted), 5);
    authored(restarted, a, b);
    assert.deepEqual(restarted.core.finalityVote(far + 1).payload.previousAnchor, vote.payload.previousAnchor);
  } finally {
    for (const h of hosts) await h.close();
  }
});

test('an anchor that lands once its block is older than the recent blocks: the members that voted for it know their chain holds it and vote on; the next anchor brings the others back', async () => {
  const chain = new FakeChain();
  const { hosts } = await memberSet(chain, 3);
  const [a, b, c] = hosts;
  try {
    for (const author of [a, b, c, a, b])
      shared(
        author,
        hosts.filter((h) => h !== author),
      );
    const late = decodeCall(c.core.anchorCall(5, [b.core.finalityVote(5), c.core.finalityVote(5)]).callData);
    // The anchor is late (a slow parentchain): the set authors on past the blocks an enclave keeps.
    for (let i = 0; i < RECENT_BLOCKS_KEPT + 3; i++) {
      const author = hosts[i % 3];
      shared(
        author,
        hosts.filter((h) => h !== author),
      );
    }
    allSaw(land(chain, hosts, late, c), 'anchor', /^5$/);
    const tip = b.core.status().headNumber;
    assert.ok(tip > 5 + RECENT_BLOCKS_KEPT && hashAt(a, 5) === undefined);
    // B and C voted for block 5 on this chain: final for them. A did not: it cannot tell, so it does not vote.
    assert.deepEqual([finalNumber(a), finalNumber(b), finalNumber(c)], [-1, 5, 5]);
    assert.equal(
      codeOf(() => a.core.finalityVote(tip)),
      'ANCHOR_NOT_DESCENDANT',
    );
    // B and C are a majority: the next anchor lands, and it is recent for A too.
    allSaw(anchorWith(chain, hosts, b, tip, [b.core.finalityVote(tip), c.core.finalityVote(tip)]), 'anchor');
    // A keeps that anchored block as it authors and imports on (it did not vote for it): still final for A once older
    // than its recent blocks.
    for (let i = 0; i < RECENT_BLOCKS_KEPT + 3; i++) {
      const author = hosts[i % 3];
      shared(
        author,
        hosts.filter((h) => h !== author),
      );
    }
    const next = a.core.status().headNumber;
    assert.ok(next > tip + RECENT_BLOCKS_KEPT && hashAt(a, tip) === undefined);
    assert.deepEqual([finalNumber(a), finalNumber(b), finalNumber(c)], [tip, tip, tip]);
    assert.deepEqual(a.core.finalityVote(next).payload.previousAnchor, a.info().lastAnchor?.hash);
  } finally {
    for (const h of hosts) await h.close();
  }
});

test('a rewind below the anchored block forgets that the chain held it: a longer branch built from there gets no vote', async () => {
  const chain = new FakeChain();
  const { hosts } = await memberSet(chain, 3);
  const [a, b, c] = hosts;
  try {
    for (const author of [a, b, c, a, b])
      shared(
        author,
        hosts.filter((h) => h !== author),
      );
    allSaw(anchorWith(chain, hosts, c, 5, [b.core.finalityVote(5), c.core.finalityVote(5)]), 'anchor', /^5$/);
    shared(c, [a, b]);
    assert.equal(finalNumber(a), 5, 'A holds block 5 while it is recent');
    // A's host rewinds A below it and builds a branch of A's longer than the recent blocks.
    a.core.rewind(4, hashAt(a, 4)!);
    for (let i = 0; i < RECENT_BLOCKS_KEPT + 2; i++) authored(a, b, c);
    const tip = a.core.status().headNumber;
    assert.ok(tip > 5 + RECENT_BLOCKS_KEPT);
    assert.equal(finalNumber(a), -1);
    assert.equal(
      codeOf(() => a.core.finalityVote(tip)),
      'ANCHOR_NOT_DESCENDANT',
    );
  } finally {
    for (const h of hosts) await h.close();
  }
});

// =============================================================================================
// The set grows: a block of the first member's time alone

/**
 * A registers and authors alone (genesis, blocks 1 and 2: their children's slots are A's alone), B and C then register,
 * are provisioned by A and import its chain; A authors block 3 (a child of 2: still A's slot), B and C blocks 4 and 5
 * (the whole set's). `whileAlone` runs after block 2, before B and C register. Returns the shared blocks by number.
 */
async function joinedLater(chain: FakeChain, whileAlone: (a: Host, blocks: Uint8Array[]) => void = () => {}) {
  const hosts = [new Host(chain), new Host(chain), new Host(chain)];
  const [a, b, c] = hosts;
  const seen = (blk: Parameters<Host['import']>[0], by: Host) => {
    for (const h of hosts) if (h !== by) h.import(blk);
  };
  for (const h of hosts) h.init();
  seen(a.perform('register').block, a);
  seen(a.perform('vault').block, a);
  const blocks = [a.core.genesis([], Date.now()).block, authored(a, b, c).block, authored(a, b, c).block];
  whileAlone(a, blocks);
  for (const h of [b, c]) {
    const [d] = h.duties().filter((x) => x.key === 'register');
    h.sign(d.callData);
    seen(h.include(d.callData).block, h);
  }
  for (const h of [b, c]) {
    const req = h.core.provisionRequest(Date.now());
    const served = a.core.provisionServe(req, Date.now());
    assert.ok(served.ok);
    assert.ok((await h.core.provisionAccept(req, served.response, Date.now())).ok);
    for (const blk of blocks) importInto(h, blk);
  }
  blocks.push(shared(a, [b, c]).block, shared(b, [a, c]).block, shared(c, [a, b]).block);
  assert.equal(c.core.status().headNumber, 5);
  return { hosts, a, b, c, blocks };
}

test("after members join, a block forked from the first member's time alone is not finalized by that member alone: neither an anchor its enclave builds now nor one it prepared while alone", async () => {
  const chain = new FakeChain();
  let prepared: Call | undefined;
  const { hosts, a, b, c } = await joinedLater(chain, (a, blocks) => {
    // While alone, A's host has A author a block 2 of a branch of its own and anchor it (A is the whole set then),
    // keeps the anchor for later and takes A back to the shared block 2.
    a.core.rewind(1, hashAt(a, 1)!);
    assert.equal(authored(a).number, 2);
    prepared = decodeCall(a.core.anchorCall(2, [a.core.finalityVote(2)]).callData);
    a.core.rewind(1, hashAt(a, 1)!);
    importInto(a, blocks[2]);
  });
  try {
    // Now A's host rewinds A to block 2 and has it author another block 3: its slot is A's (the set of block 2's
    // parentchain block is A alone), and so is its authority set.
    a.core.rewind(2, hashAt(a, 2)!);
    authored(a, b, c);
    const v = a.core.finalityVote(3);
    assert.equal(a.core['parentchain']!.registry.activeAt(v.payload.authoritySetAt).length, 1);
    assert.equal(
      codeOf(() => a.core.anchorCall(3, [v])),
      'ANCHOR_NO_QUORUM',
      'a majority of the set of block 3, not of the members now',
    );
    // The same anchor made by hand, and the one prepared while alone, sent by A's account: ignored everywhere.
    allSaw(
      land(chain, hosts, anchorRemark(v.payload, [indexed(0, v)]), a),
      'anchorIgnored',
      /1 votes of members now, of 3/,
    );
    allSaw(land(chain, hosts, prepared!, a), 'anchorIgnored', /1 votes of members now, of 3/);
    for (const h of hosts) assert.equal(h.info().lastAnchor, null);
    // B and C hold the shared chain and are a majority now: block 5 (the whole set's) is anchored with their votes.
    allSaw(anchorWith(chain, hosts, b, 5, [b.core.finalityVote(5), c.core.finalityVote(5)]), 'anchor', /^5$/);
    assert.deepEqual([finalNumber(b), finalNumber(c)], [5, 5]);
  } finally {
    for (const h of hosts) await h.close();
  }
});

test('a payer whose host gives it a branch forked below the anchored block and longer than its recent blocks pays no withdrawal of that branch', async () => {
  const chain = new FakeChain();
  const { hosts, vault } = await memberSet(chain, 3);
  const [a, b, c] = hosts;
  const bob = await devAccount('//Bob');
  try {
    // A, the first member, is the payer: its duties (the reserve, the vault proxies) are done; Bob shields 9 units.
    for (const d of a.duties()) {
      a.sign(d.callData);
      const blk = a.include(d.callData).block;
      for (const h of [b, c]) h.import(blk);
    }
    const sealed = shieldSuite.seal(a.shieldingKey.publicKey, bob.publicKey, SHARD);
    const shieldCall = batch([
      transfer(vault, 9n * UNIT),
      msg({ tag: 'shield', value: { shard: SHARD, recipient: concatBytes(sealed.enc, sealed.ciphertext) } }),
    ]);
    const shielded = chain.block([{ signer: key32('parentchain payer'), call: shieldCall }]);
    for (const h of hosts) h.import(shielded);
    const two = [shared(a, [b, c]), shared(b, [a, c])][1];
    for (const author of [c, a, b])
      shared(
        author,
        hosts.filter((h) => h !== author),
      );
    const votes5 = [b.core.finalityVote(5), c.core.finalityVote(5)];

    // A's host rewinds A to block 2, has it author a block 3 of its own with Bob's unshield of 4 units (withheld from
    // B and C: on their chain Bob keeps all 9), and a branch after it longer than the recent blocks.
    a.core.rewind(2, two.hash);
    const unshield = { from: bob.publicKey, beneficiary: key32('beneficiary'), amount: 4n * UNIT };
    await a.core.submit(
      [shield(signCall(bob, { tag: 'unshield', value: unshield }, 0, SHARD), a.shieldingKey, SHARD)],
      Date.now(),
    );
    assert.deepEqual(authored(a, b, c).included.length, 1);
    assert.equal(a.info().unpaidWithdrawals, 1);
    for (let i = 0; i < RECENT_BLOCKS_KEPT + 3; i++) authored(a, b, c);
    // Block 5 of the shared chain is anchored: withdrawals up to it are final there, and Bob made none.
    allSaw(anchorWith(chain, hosts, c, 5, votes5), 'anchor', /^5$/);
    assert.deepEqual([b.balance(bob), c.balance(bob)], [9n * UNIT, 9n * UNIT]);
    // A's withdrawal in its block 3 is below the anchored number, but A's chain does not hold block 5: not paid.
    assert.deepEqual(a.dutyKeys(), [], 'no payout');
    assert.equal(finalNumber(a), -1);
  } finally {
    for (const h of hosts) await h.close();
  }
});
