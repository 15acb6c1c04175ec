// Block import between enclaves of one shard (no parentchain): the authorities are the configured
// signing keys, authorities[0] creates genesis, and slot s belongs to authorities[s mod n].
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { EnclaveCore } from '../../../src/enclave/core.ts';
import { buildGetter, buildTransfer, type ShieldingKey } from '../../../src/client/calls.ts';
import { devAccount, type Account } from '../../../src/client/accounts.ts';
import { SignedBlock, bodyRoot, headerHash, headerSigningPayload, type Header } from '../../../src/protocol/block.ts';
import { ed25519Generate, ed25519PrivateKey, ed25519Sign, type KeyPair } from '../../../src/crypto/primitives.ts';
import { sealForwarded } from '../../../src/enclave/calls/forwarding.ts';
import { slotAt } from '../../../src/protocol/aura.ts';
import { codeOf } from '../../helpers/errors.ts';
import { TEST_POOL, enclaveSet } from '../../helpers/enclave-set.ts';
import { hexKey } from '../../../src/protocol/bytes.ts';
import type { KeyObject } from 'node:crypto';
import { codeOf as codeOfError } from '../../../src/protocol/errors.ts';
import { testShard } from '../../helpers/shard.ts';

const TEST_SHARD = testShard('import test shard');
const SHARD = TEST_SHARD.shard;
const OTHER = testShard('another shard');
const OTHER_SHARD = OTHER.shard;
const SLOT_MS = 1000; // the default slot duration (and drift) of EnclaveCore

let alice: Account;
let bob: Account;
const { tempDir, openCore, openSet, adopt, close } = enclaveSet(TEST_SHARD, 'import');
before(async () => {
  alice = await devAccount('//Alice');
  bob = await devAccount('//Bob');
});
after(close);

const signingKey = (core: EnclaveCore): KeyObject => core['keys'].signingKey;
const commitment = (core: EnclaveCore): Uint8Array => core['state'].commitment();

function keyOf(core: EnclaveCore): ShieldingKey {
  const i = core.info();
  return { keyId: i.shieldingKeyId, publicKey: i.shieldingKey };
}

const ALICE_START = 1000n;
const BOB_START = 500n;
const ENDOWMENTS = () => [
  { account: alice.publicKey, amount: ALICE_START },
  { account: bob.publicKey, amount: BOB_START },
];

function balance(core: EnclaveCore, a: Account): bigint {
  const g = buildGetter(a, { tag: 'balance', value: a.publicKey }, keyOf(core), SHARD);
  const r = g.open(core.executeGetter(g.request, Date.now()));
  assert.equal(r.tag, 'balance');
  return r.value as bigint;
}
function nonce(core: EnclaveCore, a: Account): number {
  const g = buildGetter(a, { tag: 'nonce', value: a.publicKey }, keyOf(core), SHARD);
  const r = g.open(core.executeGetter(g.request, Date.now()));
  assert.equal(r.tag, 'nonce');
  return r.value as number;
}

/** Everything observable about a core's chain and state. */
function view(core: EnclaveCore) {
  const { headNumber, headHash, accounts } = core.status();
  return {
    headNumber,
    headHash: hexKey(headHash),
    accounts,
    commitment: hexKey(commitment(core)),
    balances: [balance(core, alice), balance(core, bob)],
    nonces: [nonce(core, alice), nonce(core, bob)],
  };
}

/** The smallest slot above `after` that belongs to authority `index` of `n`. */
function slotOf(index: number, n: number, after: bigint): bigint {
  let s = after + 1n;
  while (s % BigInt(n) !== BigInt(index)) s++;
  return s;
}

const signerKeys = (k: KeyPair) => ({ publicKey: k.publicKey, signingKey: ed25519PrivateKey(k.secretKey) });

/** Re-encodes a block with a changed header (and/or body), signed by `key`. */
function forge(
  bytes: Uint8Array,
  key: KeyObject | Uint8Array,
  change: (h: Header) => Header,
  changeBody?: (b: SignedBlock['body']) => SignedBlock['body'],
): Uint8Array {
  const b = SignedBlock.dec(bytes);
  const body = changeBody ? changeBody(b.body) : b.body;
  const header = change({ ...b.header, transitionsRoot: changeBody ? bodyRoot(body) : b.header.transitionsRoot });
  return SignedBlock.enc({ header, body, signature: ed25519Sign(key, headerSigningPayload(header)) });
}

function flip(b: Uint8Array, i: number): Uint8Array {
  const out = new Uint8Array(b);
  out[i < 0 ? out.length + i : i] ^= 0x01;
  return out;
}

/** `author` proposes in `slot` and commits; `others` import and commit the block; returns it. */
function produce(author: EnclaveCore, others: EnclaveCore[], slot: bigint) {
  const p = author.propose({ slot, timestampMs: Date.now(), maxCalls: 100 });
  author.commit(p.hash);
  for (const o of others) {
    const r = o.importBlock(p.block, Date.now());
    assert.deepEqual(r.hash, p.hash);
    assert.equal(r.number, p.number);
    assert.equal(r.slot, slot);
    assert.deepEqual(r.author, author.info().signingKey);
    assert.deepEqual(r.calls, p.included);
    o.commit(r.hash);
  }
  return p;
}

// ---------------------------------------------------------------------------------------------

test('genesis: by the first authority only; the others import it and end in the same state', async () => {
  const [a, b, c] = await openSet(3);
  const keys = [a, b, c].map((x) => x.info().signingKey);
  assert.deepEqual(
    c.slotAuthor(5n),
    { author: null, genesisAuthor: keys[0] },
    'no head: only the genesis author is known',
  );
  // the dev shard secrets are shared, the signing keys are not
  assert.deepEqual(a.info().shieldingKey, b.info().shieldingKey);
  assert.deepEqual(a.info().stateKeyId, c.info().stateKeyId);
  assert.notDeepEqual(keys[0], keys[1]);

  // B creates a genesis of its own: C refuses it, B being the second authority
  const rogue = b.genesis(ENDOWMENTS(), Date.now());
  assert.equal(
    codeOf(() => c.importBlock(rogue.block, Date.now())),
    'BLOCK_WRONG_AUTHOR',
  );
  assert.equal(c.status().headNumber, -1);

  const g = a.genesis(ENDOWMENTS(), Date.now());
  // forged geneses by the right author are refused too
  const ak = signingKey(a);
  assert.equal(
    codeOf(() =>
      c.importBlock(
        forge(g.block, ak, (h) => ({ ...h, slot: 1n })),
        Date.now(),
      ),
    ),
    'BLOCK_BAD_GENESIS',
  );
  assert.equal(
    codeOf(() =>
      c.importBlock(
        forge(g.block, ak, (h) => ({ ...h, parentHash: new Uint8Array(32).fill(1) })),
        Date.now(),
      ),
    ),
    'BLOCK_BAD_GENESIS',
  );
  assert.equal(
    codeOf(() =>
      c.importBlock(
        forge(g.block, ak, (h) => ({ ...h, stateCommitment: new Uint8Array(32) })),
        Date.now(),
      ),
    ),
    'BLOCK_BAD_COMMITMENT',
  );
  assert.equal(
    codeOf(() =>
      c.importBlock(
        forge(g.block, ak, (h) => ({ ...h, effectsRoot: new Uint8Array(32) })),
        Date.now(),
      ),
    ),
    'EFFECTS_MISMATCH',
    'genesis executes no parentchain effects',
  );
  assert.equal(
    codeOf(() => c.importBlock(flip(g.block, -1), Date.now())),
    'BLOCK_BAD_SIGNATURE',
  );
  const stranger = ed25519Generate();
  assert.equal(
    codeOf(() =>
      c.importBlock(
        forge(g.block, stranger.secretKey, (h) => ({ ...h, author: stranger.publicKey })),
        Date.now(),
      ),
    ),
    'BLOCK_WRONG_AUTHOR',
  );
  assert.equal(c.status().headNumber, -1);

  // a block above genesis cannot come first
  const p1 = a.propose({ slot: 3n, timestampMs: Date.now(), maxCalls: 10 });
  assert.equal(
    codeOf(() => c.importBlock(p1.block, Date.now())),
    'NOT_INITIALISED',
  );

  const r = c.importBlock(g.block, Date.now());
  assert.deepEqual(r.hash, g.hash);
  assert.equal(r.number, 0);
  assert.equal(c.status().headNumber, -1, 'staged, not applied before commit');
  c.commit(r.hash);
  assert.deepEqual(view(c), view(a));
  assert.equal(view(c).balances[0], ALICE_START);
  // B is on its own genesis: A's is not a child of it
  assert.equal(
    codeOf(() => b.importBlock(g.block, Date.now())),
    'BLOCK_NOT_CHILD',
  );
  // genesis again on C: not a child either
  assert.equal(
    codeOf(() => c.importBlock(g.block, Date.now())),
    'BLOCK_NOT_CHILD',
  );

  // slot authors on top of the head: authorities[slot mod 3]
  for (const s of [1n, 2n, 3n, 4n, 5n, 6n])
    assert.deepEqual(c.slotAuthor(s), { author: keys[Number(s % 3n)], genesisAuthor: keys[0] });

  // A's block 1 (slot 3 is A's) imports on C
  a.commit(p1.hash);
  const r1 = c.importBlock(p1.block, Date.now());
  c.commit(r1.hash);
  assert.deepEqual(view(c), view(a));
  assert.equal(c.status().headNumber, 1);
});

test('two enclaves take turns: every block imports and both stay identical; pools follow inclusion', async () => {
  const [a, b] = await openSet(2);
  const g = a.genesis(ENDOWMENTS(), Date.now());
  b.commit(b.importBlock(g.block, Date.now()).hash);
  assert.deepEqual(view(b), view(a));

  // empty blocks, alternating authors in their own slots (slot s is cores[s mod 2]'s)
  const cores = [a, b];
  let slot = 0n;
  for (let i = 0; i < 4; i++) {
    slot = slot + 1n;
    const author = cores[Number(slot % 2n)];
    const other = cores[1 - Number(slot % 2n)];
    produce(author, [other], slot);
    assert.deepEqual(view(b), view(a), `after slot ${slot}`);
  }
  assert.equal(a.status().headNumber, 4);

  // a transfer submitted to both: A includes it in its slot, B's import drops it from B's pool
  const t = buildTransfer(alice, { to: bob.publicKey, amount: 100n, nonce: 0, memo: 'both' }, keyOf(a), SHARD);
  for (const core of [a, b])
    assert.deepEqual(await core.submit([t.request], Date.now()), [{ hash: t.hash, status: 'ready' }]);
  // the next nonce only reaches B (ready there after nonce 0 in its pool)
  const t1 = buildTransfer(alice, { to: bob.publicKey, amount: 1n, nonce: 1 }, keyOf(b), SHARD);
  assert.deepEqual(await b.submit([t1.request], Date.now()), [{ hash: t1.hash, status: 'ready' }]);
  assert.equal(b.status().poolSize, 2);
  slot = slotOf(0, 2, slot);
  const p = produce(a, [b], slot);
  assert.deepEqual(p.included, [t.hash]);
  assert.equal(a.status().poolSize, 0);
  assert.equal(b.status().poolSize, 1, "the imported call left B's pool; the next nonce stays");
  assert.deepEqual(view(b), view(a));
  assert.deepEqual(view(b).balances, [ALICE_START - 100n, BOB_START + 100n]);
  assert.deepEqual(view(b).nonces, [1, 0]);
  // the call B's pool kept is now ready: B includes it in its own slot, A imports
  slot = slotOf(1, 2, slot);
  const q = produce(b, [a], slot);
  assert.deepEqual(q.included, [t1.hash]);
  assert.equal(b.status().poolSize, 0);
  assert.deepEqual(view(a), view(b));
  assert.deepEqual(view(a).nonces, [2, 0]);
  // a resubmission of the included call is stale on both
  for (const core of [a, b]) assert.equal((await core.submit([t.request], Date.now()))[0].code, 'STALE_NONCE');

  // import returns the header's slot and author, and the hashes of the included calls
  assert.deepEqual(SignedBlock.dec(q.block).body.calls.map(hexKey), [t1.hash]);
  assert.deepEqual(headerHash(SignedBlock.dec(q.block).header), q.hash);
});

test("propose only in this enclave's slots, after the head's slot; a non-member cannot propose", async () => {
  const [a, b] = await openSet(2);
  const g = a.genesis(ENDOWMENTS(), Date.now());
  b.commit(b.importBlock(g.block, Date.now()).hash);
  assert.equal(
    codeOf(() => a.propose({ slot: 1n, timestampMs: Date.now(), maxCalls: 10 })),
    'NOT_SLOT_AUTHOR',
  );
  assert.equal(
    codeOf(() => b.propose({ slot: 2n, timestampMs: Date.now(), maxCalls: 10 })),
    'NOT_SLOT_AUTHOR',
  );
  produce(a, [b], 4n);
  assert.equal(
    codeOf(() => a.propose({ slot: 4n, timestampMs: Date.now(), maxCalls: 10 })),
    'SLOT_NOT_AFTER_PARENT',
  );
  assert.equal(
    codeOf(() => a.propose({ slot: 2n, timestampMs: Date.now(), maxCalls: 10 })),
    'SLOT_NOT_AFTER_PARENT',
  );
  assert.equal(
    codeOf(() => b.propose({ slot: 3n, timestampMs: Date.now(), maxCalls: 10 })),
    'SLOT_NOT_AFTER_PARENT',
  );
  assert.equal(
    codeOf(() => b.propose({ slot: 4n, timestampMs: Date.now(), maxCalls: 10 })),
    'NOT_SLOT_AUTHOR',
  );
  produce(b, [a], 5n);
  assert.deepEqual(view(a), view(b));

  // an enclave that follows the shard without being in the set imports, but never proposes
  const d = openCore(tempDir(), [a.info().signingKey, b.info().signingKey]);
  d.commit(d.importBlock(g.block, Date.now()).hash);
  assert.equal(
    codeOf(() => d.propose({ slot: 7n, timestampMs: Date.now(), maxCalls: 10 })),
    'NOT_AUTHORITY',
  );
});

test("propose and import agree on block 1's slot: slot 0 (the genesis slot) is refused by both", async () => {
  const [a, b] = await openSet(2);
  const g = a.genesis(ENDOWMENTS(), Date.now());
  b.commit(b.importBlock(g.block, Date.now()).hash);
  // Authoring side: A owns slot 0 (0 mod 2) but may not reuse the genesis slot.
  assert.equal(
    codeOf(() => a.propose({ slot: 0n, timestampMs: Date.now(), maxCalls: 10 })),
    'SLOT_NOT_AFTER_PARENT',
  );
  // Import side: the same block as a misbehaving A would make it (built in A's next slot, then moved
  // to slot 0 and signed with A's own key), so only its slot is wrong.
  const p = a.propose({ slot: 2n, timestampMs: Date.now(), maxCalls: 10 });
  const inSlot0 = forge(p.block, signingKey(a), (h) => ({ ...h, slot: 0n }));
  const before = view(b);
  assert.equal(
    codeOf(() => b.importBlock(inSlot0, Date.now())),
    'BLOCK_SLOT_NOT_INCREASING',
  );
  assert.deepEqual(view(b), before, 'the refused block changed nothing');
  // The unchanged block in slot 2 imports: the refusal was for the slot alone.
  assert.equal(b.importBlock(p.block, Date.now()).number, 1);
});

test('import rejections: each with its code, the head unchanged, a valid block still imports', async () => {
  const [a, b] = await openSet(2);
  const ak = signingKey(a);
  const g = a.genesis(ENDOWMENTS(), Date.now());
  b.commit(b.importBlock(g.block, Date.now()).hash);
  const first = produce(a, [b], 2n);
  // a block with a call, so body and commitment tampering have something to change
  const t = buildTransfer(alice, { to: bob.publicKey, amount: 7n, nonce: 0 }, keyOf(a), SHARD);
  await a.submit([t.request], Date.now());
  await b.submit([t.request], Date.now());
  const p = a.propose({ slot: 4n, timestampMs: Date.now(), maxCalls: 10 });
  assert.deepEqual(p.included, [t.hash]);
  const before = view(b);
  const poolBefore = b.status().poolSize;
  assert.equal(poolBefore, 1);

  const stranger = ed25519Generate();
  const bKey = b.info().signingKey;
  const nowSlot = slotAt(Date.now(), SLOT_MS);
  const futureSlot = slotOf(0, 2, nowSlot + 100n);
  const cases: [string, Uint8Array, string][] = [
    ['flipped signature byte', flip(p.block, -1), 'BLOCK_BAD_SIGNATURE'],
    [
      'header changed after signing',
      SignedBlock.enc({ ...SignedBlock.dec(p.block), header: { ...SignedBlock.dec(p.block).header, timestampMs: 1n } }),
      'BLOCK_BAD_SIGNATURE',
    ],
    [
      'B named as author, signed by A',
      forge(p.block, ak, (h) => ({ ...h, slot: 5n, author: bKey })),
      'BLOCK_BAD_SIGNATURE',
    ],
    ["A signs for B's slot", forge(p.block, ak, (h) => ({ ...h, slot: 5n })), 'BLOCK_WRONG_AUTHOR'],
    // the slot author is checked before the author's membership: a stranger is a wrong author
    [
      "stranger in A's slot",
      forge(p.block, stranger.secretKey, (h) => ({ ...h, author: stranger.publicKey })),
      'BLOCK_WRONG_AUTHOR',
    ],
    [
      "stranger in B's slot",
      forge(p.block, stranger.secretKey, (h) => ({ ...h, slot: 5n, author: stranger.publicKey })),
      'BLOCK_WRONG_AUTHOR',
    ],
    [
      'wrong state commitment',
      forge(p.block, ak, (h) => ({ ...h, stateCommitment: new Uint8Array(randomBytes(32)) })),
      'BLOCK_BAD_COMMITMENT',
    ],
    [
      "the parent's commitment",
      forge(p.block, ak, (h) => ({ ...h, stateCommitment: SignedBlock.dec(first.block).header.stateCommitment })),
      'BLOCK_BAD_COMMITMENT',
    ],
    [
      'parentchain effects without a parentchain',
      forge(p.block, ak, (h) => ({ ...h, effectsRoot: new Uint8Array(randomBytes(32)) })),
      'EFFECTS_MISMATCH',
    ],
    ["slot equal to the parent's", forge(p.block, ak, (h) => ({ ...h, slot: 2n })), 'BLOCK_SLOT_NOT_INCREASING'],
    ["slot before the parent's", forge(p.block, ak, (h) => ({ ...h, slot: 0n })), 'BLOCK_SLOT_NOT_INCREASING'],
    ['slot far in the future', forge(p.block, ak, (h) => ({ ...h, slot: futureSlot })), 'BLOCK_FROM_FUTURE'],
    [
      'unknown parent',
      forge(p.block, ak, (h) => ({ ...h, parentHash: new Uint8Array(randomBytes(32)) })),
      'BLOCK_NOT_CHILD',
    ],
    ['number skips one', forge(p.block, ak, (h) => ({ ...h, number: h.number + 1n })), 'BLOCK_NOT_CHILD'],
    ['the head again', first.block, 'BLOCK_NOT_CHILD'],
    ['genesis again', g.block, 'BLOCK_NOT_CHILD'],
    ['another shard', forge(p.block, ak, (h) => ({ ...h, shard: OTHER_SHARD })), 'BLOCK_WRONG_SHARD'],
    [
      'parentchain block without a parentchain',
      forge(p.block, ak, (h) => ({ ...h, parentchainNumber: 1 })),
      'BLOCK_BAD_PARENTCHAIN',
    ],
    [
      'included calls changed',
      SignedBlock.enc({ ...SignedBlock.dec(p.block), body: { ...SignedBlock.dec(p.block).body, calls: [] } }),
      'BLOCK_BAD_BODY',
    ],
    [
      'transitions tampered (root and signature redone)',
      forge(
        p.block,
        ak,
        (h) => h,
        (body) => ({ ...body, transitions: { ...body.transitions, ciphertext: flip(body.transitions.ciphertext, 0) } }),
      ),
      'BLOCK_BAD_TRANSITIONS',
    ],
    [
      "transitions under another key than the epoch's",
      forge(
        p.block,
        ak,
        (h) => h,
        (body) => ({ ...body, transitions: { ...body.transitions, keyId: 9 } }),
      ),
      'BLOCK_WRONG_STATE_KEY',
    ],
    ['random bytes', new Uint8Array(randomBytes(200)), 'DECODE_FAILED'],
    ['truncated', p.block.subarray(0, p.block.length - 1), 'DECODE_FAILED'],
    ['trailing byte', new Uint8Array([...p.block, 0]), 'DECODE_FAILED'],
    ['empty', new Uint8Array(0), 'DECODE_FAILED'],
  ];
  for (const [what, bytes, expected] of cases) {
    assert.equal(
      codeOf(() => b.importBlock(bytes, Date.now())),
      expected,
      what,
    );
    assert.deepEqual(view(b), before, `${what}: B's head and state unchanged`);
    assert.equal(b.status().poolSize, poolBefore, `${what}: B's pool unchanged`);
    assert.equal(
      codeOf(() => b.commit(p.hash)),
      'NO_SUCH_PROPOSAL',
      `${what}: nothing staged`,
    );
  }

  // drift: a slot may be at most one slot duration ahead of the clock (default maxDriftMs)
  const slotStart = 4 * SLOT_MS;
  assert.equal(
    codeOf(() => b.importBlock(p.block, slotStart - SLOT_MS - 1)),
    'BLOCK_FROM_FUTURE',
  );
  assert.equal(
    codeOf(() => b.importBlock(p.block, slotStart - SLOT_MS)),
    undefined,
    'exactly at the drift limit',
  );
  assert.deepEqual(view(b), before, 'staged, not applied');

  // the valid block imports after all of that; a failed import meanwhile leaves it staged
  a.commit(p.hash);
  const r = b.importBlock(p.block, Date.now());
  assert.equal(
    codeOf(() => b.importBlock(flip(p.block, -1), Date.now())),
    'BLOCK_BAD_SIGNATURE',
  );
  assert.deepEqual(view(b), before, 'staged, not applied');
  assert.deepEqual(r.calls, [t.hash]);
  b.commit(r.hash);
  assert.deepEqual(view(b), view(a));
  assert.equal(b.status().headNumber, 2);
  assert.equal(b.status().poolSize, 0);
  // and the chain goes on in B's slot
  produce(b, [a], 5n);
  assert.deepEqual(view(a), view(b));
});

test("a block A made in B's slot by re-signing its own proposal is refused; B's real block in that slot imports", async () => {
  const [a, b, c] = await openSet(3);
  const g = a.genesis(ENDOWMENTS(), Date.now());
  for (const x of [b, c]) x.commit(x.importBlock(g.block, Date.now()).hash);
  const p = a.propose({ slot: 3n, timestampMs: Date.now(), maxCalls: 10 });
  // slot 4 is B's, slot 5 is C's
  for (const s of [4n, 5n])
    assert.equal(
      codeOf(() =>
        c.importBlock(
          forge(p.block, signingKey(a), (h) => ({ ...h, slot: s })),
          Date.now(),
        ),
      ),
      'BLOCK_WRONG_AUTHOR',
    );
  // B signs A's block as its own in A's slot: wrong author too
  assert.equal(
    codeOf(() =>
      c.importBlock(
        forge(p.block, signingKey(b), (h) => ({ ...h, author: b.info().signingKey })),
        Date.now(),
      ),
    ),
    'BLOCK_WRONG_AUTHOR',
  );
  // B's block in slot 4, with A's proposal abandoned
  const q = b.propose({ slot: 4n, timestampMs: Date.now(), maxCalls: 10 });
  b.commit(q.hash);
  for (const x of [a, c]) x.commit(x.importBlock(q.block, Date.now()).hash);
  assert.equal(
    codeOf(() => a.commit(p.hash)),
    'NO_SUCH_PROPOSAL',
    "the import replaced A's own proposal",
  );
  assert.deepEqual(view(a), view(b));
  assert.deepEqual(view(c), view(b));
  // A's old proposal no longer extends the head
  assert.equal(
    codeOf(() => c.importBlock(p.block, Date.now())),
    'BLOCK_NOT_CHILD',
  );
});

test('forwarded calls: verified once by the receiving enclave, opened by the others of the set; malformed batches refused', async () => {
  const [a, b] = await openSet(2);
  const g = a.genesis(ENDOWMENTS(), Date.now());
  b.commit(b.importBlock(g.block, Date.now()).hash);
  const t0 = buildTransfer(alice, { to: bob.publicKey, amount: 5n, nonce: 0 }, keyOf(a), SHARD);
  const t1 = buildTransfer(alice, { to: bob.publicKey, amount: 7n, nonce: 1 }, keyOf(a), SHARD);
  const bad = buildTransfer(alice, { to: bob.publicKey, amount: 1n, nonce: 2 }, keyOf(a), OTHER_SHARD);
  // only the accepted calls among the ones asked for are forwarded (t1 is not asked for, bad is invalid)
  const r = await a.submitAndForward([t0.request, t1.request, bad.request], Date.now(), new Set([0, 2]));
  assert.deepEqual(
    r.results.map((x) => x.status),
    ['ready', 'ready', 'invalid'],
  );
  assert.ok(r.forwarded);
  assert.deepEqual(await b.submitForwarded(r.forwarded, Date.now()), [{ hash: t0.hash, status: 'ready' }]);
  assert.equal(b.status().poolSize, 1);
  // a second delivery of the same batch is a duplicate, nothing changes
  assert.equal((await b.submitForwarded(r.forwarded, Date.now()))[0].code, 'DUPLICATE');

  // tampered, truncated, or sealed by an enclave of another shard: refused whole with a stable code
  assert.equal(await rejectionCode(b.submitForwarded(flip(r.forwarded, -1), Date.now())), 'FORWARD_BAD_SIGNATURE');
  assert.equal(await rejectionCode(b.submitForwarded(r.forwarded.subarray(0, 10), Date.now())), 'DECODE_FAILED');
  const stranger = adopt(
    EnclaveCore.open({
      dataDir: tempDir(),
      shard: OTHER_SHARD,
      shardPolicy: OTHER.shardPolicy,
      workers: 1,
      pool: TEST_POOL,
      authorities: [],
      devShardSecrets: true,
    }),
  );
  stranger.genesis(ENDOWMENTS(), Date.now());
  const foreign = await stranger.submitAndForward(
    [buildTransfer(alice, { to: bob.publicKey, amount: 1n, nonce: 0 }, keyOf(stranger), OTHER_SHARD).request],
    Date.now(),
    new Set([0]),
  );
  assert.equal(await rejectionCode(b.submitForwarded(foreign.forwarded!, Date.now())), 'FORWARD_NOT_MEMBER');
  assert.equal(b.status().poolSize, 1);

  // B authors the forwarded call; A imports and both agree
  const p = produce(b, [a], slotOf(1, 2, 0n));
  assert.deepEqual(p.included, [t0.hash]);
  assert.deepEqual(view(a), view(b));

  // requeue: a call the enclave verified recently goes back into the pool by hash; the others are dropped with why
  // (their watchers get that as the final update)
  const c = openCore(tempDir(), [a.info().signingKey, b.info().signingKey]);
  c.commit(c.importBlock(g.block, Date.now()).hash);
  await c.submit([t0.request], Date.now());
  c.commit(c.importBlock(p.block, Date.now()).hash);
  assert.equal(c.status().poolSize, 0, 'included: left the pool');
  const unknown = hexKey(randomBytes(32));
  const codes = (r: Awaited<ReturnType<typeof c.requeue>>) => r.dropped.map((d) => [d.hash, d.code]);
  const stale = await c.requeue([t0.hash, unknown], Date.now());
  assert.equal(stale.requeued, 0, 'stale after the block: not requeued');
  assert.deepEqual(codes(stale), [
    [t0.hash, 'STALE_NONCE'],
    [unknown, 'REORG_DROPPED'],
  ]);
  c.beginReplay(undefined, false);
  c.replayBlocks([g.block]);
  await c.finishReplay(); // back at genesis, as a reorg does
  const back = await c.requeue([t0.hash, unknown], Date.now());
  assert.equal(back.requeued, 1);
  assert.deepEqual(codes(back), [[unknown, 'REORG_DROPPED']]);
  assert.equal(c.status().poolSize, 1);
  const again = await c.requeue([t0.hash], Date.now());
  assert.deepEqual([again.requeued, again.dropped], [1, []], 'already pending again: not dropped');
  assert.equal(c.status().poolSize, 1);
});

test("forwarded calls execute on a member's signature only: the shard's forward key alone forges nothing; replays add nothing", async () => {
  const [a, b] = await openSet(2);
  const g = a.genesis(ENDOWMENTS(), Date.now());
  b.commit(b.importBlock(g.block, Date.now()).hash);
  const mallory = randomBytes(32);
  const refused = async (batch: Uint8Array, code: string) => {
    assert.equal(await rejectionCode(b.submitForwarded(batch, Date.now())), code);
    assert.equal(b.status().poolSize, 0, 'nothing admitted');
  };

  // An enclave of the same shard outside the set: it holds the same shard secrets, so the same forward key.
  const outsider = openCore(tempDir(), [a.info().signingKey, b.info().signingKey]);
  outsider.commit(outsider.importBlock(g.block, Date.now()).hash);
  const t0 = buildTransfer(alice, { to: bob.publicKey, amount: 5n, nonce: 0 }, keyOf(outsider), SHARD);
  const fromOutsider = await outsider.submitAndForward([t0.request], Date.now(), new Set([0]));
  assert.equal(fromOutsider.results[0].status, 'ready');
  await refused(fromOutsider.forwarded!, 'FORWARD_NOT_MEMBER');

  // A batch forged with the forward key (as a departed member or a leaked key would hold it): alice's funds to
  // mallory without alice's signature, named as a's, signed by someone else.
  const epoch = a.info().stateKeyId;
  const forwardKey = b['keyring'].forwardKey(epoch)!;
  const theft = [
    {
      hash: randomBytes(32),
      nonce: 0,
      call: {
        tag: 'transfer' as const,
        value: { from: alice.publicKey, to: mallory, amount: ALICE_START, memo: undefined },
      },
    },
  ];
  const forger = ed25519Generate();
  const forged = sealForwarded(
    { id: epoch, key: forwardKey },
    SHARD,
    { ...signerKeys(forger), publicKey: a.info().signingKey },
    theft,
  );
  await refused(forged, 'FORWARD_BAD_SIGNATURE');
  // ... or signed with the forger's own key: not a member.
  await refused(sealForwarded({ id: epoch, key: forwardKey }, SHARD, signerKeys(forger), theft), 'FORWARD_NOT_MEMBER');

  // a's own batch, its signature tampered with: refused; as signed: admitted.
  const fromA = await a.submitAndForward([t0.request], Date.now(), new Set([0]));
  for (const at of [-1, -64]) await refused(flip(fromA.forwarded!, at), 'FORWARD_BAD_SIGNATURE');
  assert.deepEqual(await b.submitForwarded(fromA.forwarded!, Date.now()), [{ hash: t0.hash, status: 'ready' }]);

  // Replays: while the call is pending a duplicate; once executed a stale nonce; never a second execution.
  assert.equal((await b.submitForwarded(fromA.forwarded!, Date.now()))[0].code, 'DUPLICATE');
  produce(b, [a], slotOf(1, 2, 0n));
  assert.deepEqual([balance(b, alice), balance(b, bob)], [ALICE_START - 5n, BOB_START + 5n]);
  assert.equal((await b.submitForwarded(fromA.forwarded!, Date.now()))[0].code, 'STALE_NONCE');
  assert.equal(b.status().poolSize, 0);
  assert.deepEqual([balance(b, alice), balance(b, bob)], [ALICE_START - 5n, BOB_START + 5n]);
});

async function rejectionCode(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return codeOfError(err);
  }
}

test('rewind: back to an ancestor within the state layers, then the other branch imports; deeper or unknown ancestors refused', async () => {
  const [a, b] = await openSet(2);
  const g = a.genesis(ENDOWMENTS(), Date.now());
  b.commit(b.importBlock(g.block, Date.now()).hash);
  let slot = 0n;
  for (let i = 0; i < 3; i++) produce(a, [b], (slot = slotOf(0, 2, slot)));
  const ancestor = view(a);
  // A and B each build on block 3: A with a transfer, B empty
  const t = buildTransfer(alice, { to: bob.publicKey, amount: 9n, nonce: 0 }, keyOf(a), SHARD);
  await a.submit([t.request], Date.now());
  const pa = a.propose({ slot: (slot = slotOf(0, 2, slot)), timestampMs: Date.now(), maxCalls: 10 });
  a.commit(pa.hash);
  const pb = b.propose({ slot: slotOf(1, 2, slot), timestampMs: Date.now(), maxCalls: 10 });
  b.commit(pb.hash);
  assert.equal(balance(a, bob), BOB_START + 9n);
  // unknown hash, or a number above the head: refused, nothing changes
  assert.equal(
    codeOf(() => a.rewind(3, new Uint8Array(32))),
    'REWIND_UNAVAILABLE',
  );
  assert.equal(
    codeOf(() => a.rewind(9, pa.hash)),
    'REWIND_UNAVAILABLE',
  );
  assert.equal(a.status().headNumber, 4);
  // A rewinds to block 3 and takes B's branch: the transfer is undone, B's block imports on top
  a.rewind(3, Buffer.from(ancestor.headHash, 'hex'));
  assert.deepEqual(view(a), ancestor);
  a.commit(a.importBlock(pb.block, Date.now()).hash);
  assert.deepEqual(view(a), view(b));
  // more blocks than the layers keep (8): the genesis is out of reach, block 3 too after enough blocks
  slot = slotOf(1, 2, slot);
  for (let i = 0; i < 9; i++) {
    const [author, other] = i % 2 === 0 ? [a, b] : [b, a];
    produce(author, [other], (slot = slotOf(i % 2, 2, slot)));
  }
  assert.equal(
    codeOf(() => a.rewind(0, g.hash)),
    'REWIND_UNAVAILABLE',
  );
  assert.equal(
    codeOf(() => a.rewind(3, Buffer.from(ancestor.headHash, 'hex'))),
    'REWIND_UNAVAILABLE',
  );
});

test('importBlocks: a linked run is authenticated by its last signature; a run with a forged signature or a break stops at the bad block, the prefix applied', async () => {
  const [a, b] = await openSet(2);
  const g = a.genesis(ENDOWMENTS(), Date.now());
  b.commit(b.importBlock(g.block, Date.now()).hash);
  const chain: Uint8Array[] = [g.block];
  let slot = 0n;
  for (let i = 0; i < 40; i++) {
    const author = i % 2 === 0 ? a : b;
    slot = slotOf(i % 2, 2, slot);
    if (i % 5 === 0)
      await author.submit(
        [buildTransfer(alice, { to: bob.publicKey, amount: 1n, nonce: i / 5 }, keyOf(author), SHARD).request],
        Date.now(),
      );
    chain.push(produce(author, [author === a ? b : a], slot).block);
  }
  const joiner = () => openCore(tempDir(), [a.info().signingKey, b.info().signingKey]);

  const j = joiner();
  const all = await j.importBlocks(chain, Date.now());
  assert.equal(all.failure, undefined);
  assert.deepEqual([all.imported.length, all.status.headNumber], [41, 40]);
  assert.deepEqual(view(j), view(a));

  // Block 17's signature bytes replaced: its child no longer names it, the run ends there and the
  // block's own signature is checked (and fails); 0..16 are applied.
  const forged = chain.map((x, i) => (i === 17 ? flip(x, -1) : x));
  const j2 = joiner();
  const r2 = await j2.importBlocks(forged, Date.now());
  assert.deepEqual([r2.imported.length, r2.failure?.index, r2.failure?.code], [17, 17, 'BLOCK_BAD_SIGNATURE']);
  assert.equal(j2.status().headNumber, 16);

  // A block of another chain in the middle (a's block 20 re-signed on another parent): BLOCK_NOT_CHILD after the run
  // before it.
  const stray = forge(chain[20], signingKey(a), (h) => ({ ...h, parentHash: new Uint8Array(32).fill(9) }));
  const j3 = joiner();
  const r3 = await j3.importBlocks([...chain.slice(0, 20), stray, ...chain.slice(21)], Date.now());
  assert.deepEqual([r3.imported.length, r3.failure?.index, r3.failure?.code], [20, 20, 'BLOCK_NOT_CHILD']);
  // the rest imports once the right block is there
  const rest = await j3.importBlocks(chain.slice(20), Date.now());
  assert.equal(rest.failure, undefined);
  assert.deepEqual(view(j3), view(a));
});
