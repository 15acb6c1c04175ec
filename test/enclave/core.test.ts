import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { EnclaveCore } from '../../src/enclave/core.ts';
import { buildGetter, buildTransfer, shield, signCall, type ShieldingKey } from '../../src/client/calls.ts';
import { devAccount, type Account } from '../../src/client/accounts.ts';
import {
  ShieldedRequest,
  TrustedCallSigned,
  MAX_MEMO_BYTES,
  type GetterReply,
  type TrustedCall,
  type TrustedGetter,
} from '../../src/protocol/wire.ts';
import { SignedBlock } from '../../src/protocol/block.ts';
import { x25519Generate } from '../../src/crypto/primitives.ts';
import { codeOf } from '../helpers/errors.ts';
import { testShard } from '../helpers/shard.ts';

const { shard: SHARD, shardPolicy: POLICY } = testShard('core test shard');
const OTHER_SHARD = new Uint8Array(32).fill(0x22);
const POOL = { maxPending: 1000, maxNonceAhead: 16, futureTtlMs: 30000 };
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

let alice: Account;
let bob: Account;
let charlie: Account;
const dirs: string[] = [];
before(async () => {
  alice = await devAccount('//Alice');
  bob = await devAccount('//Bob');
  charlie = await devAccount('//Charlie');
});
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'validateer-core-'));
  dirs.push(d);
  return d;
}

function open(dataDir: string): EnclaveCore {
  return EnclaveCore.open({ dataDir, shard: SHARD, shardPolicy: POLICY, workers: 1, pool: POOL, authorities: [] });
}

function keyOf(core: EnclaveCore): ShieldingKey {
  const i = core.info();
  return { keyId: i.shieldingKeyId, publicKey: i.shieldingKey };
}

const ALICE_START = 1000n;
const BOB_START = 500n;

/** A started chain: core with genesis of //Alice and //Bob; `blocks` collects every committed block. */
interface Chain {
  core: EnclaveCore;
  key: ShieldingKey;
  blocks: Uint8Array[];
  dataDir: string;
  slot: bigint;
}

function startChain(dataDir = tempDir()): Chain {
  const core = open(dataDir);
  const g = core.genesis(
    [
      { account: alice.publicKey, amount: ALICE_START },
      { account: bob.publicKey, amount: BOB_START },
    ],
    Date.now(),
  );
  return { core, key: keyOf(core), blocks: [g.block], dataDir, slot: 1n };
}

async function withChain(fn: (c: Chain) => Promise<void>): Promise<void> {
  const c = startChain();
  try {
    await fn(c);
  } finally {
    await c.core.close();
  }
}

function produce(c: Chain, maxCalls = 1000) {
  const p = c.core.propose({ slot: c.slot++, timestampMs: Date.now(), maxCalls });
  c.core.commit(p.hash);
  c.blocks.push(p.block);
  return p;
}

function transfer(c: Chain, from: Account, to: Account, amount: bigint, nonce: number, memo?: string) {
  return buildTransfer(from, { to: to.publicKey, amount, nonce, memo }, c.key, SHARD);
}

function query(core: EnclaveCore, signer: Account, getter: TrustedGetter, nowMs = Date.now()): GetterReply {
  const g = buildGetter(signer, getter, keyOf(core), SHARD, nowMs);
  return g.open(core.executeGetter(g.request, nowMs));
}
function balance(core: EnclaveCore, a: Account): bigint {
  const r = query(core, a, { tag: 'balance', value: a.publicKey });
  assert.equal(r.tag, 'balance');
  return r.value as bigint;
}
function nonce(core: EnclaveCore, a: Account): number {
  const r = query(core, a, { tag: 'nonce', value: a.publicKey });
  assert.equal(r.tag, 'nonce');
  return r.value as number;
}
function memos(core: EnclaveCore, a: Account, offset = 0, limit = 50) {
  const r = query(core, a, { tag: 'memos', value: { account: a.publicKey, offset, limit } });
  assert.equal(r.tag, 'memos');
  return r.value as { total: number; items: { from: Uint8Array; amount: bigint; text: string; block: bigint }[] };
}
function snapshotOf(core: EnclaveCore, accounts: Account[]) {
  return accounts.map((a) => ({ balance: balance(core, a), nonce: nonce(core, a) }));
}

/** Produces a block and checks it included nothing and the listed accounts are exactly as before. */
function assertStateUnchanged(c: Chain, before: { balance: bigint; nonce: number }[], accounts: Account[]) {
  const p = produce(c);
  assert.deepEqual(p.included, [], 'nothing included');
  assert.deepEqual(snapshotOf(c.core, accounts), before);
}

function flip(b: Uint8Array, i: number): Uint8Array {
  const out = new Uint8Array(b);
  out[i < 0 ? out.length + i : i] ^= 0x01;
  return out;
}

// ---------------------------------------------------------------------------------------------

test('info and genesis: keys, endowments, block 0', async () => {
  await withChain(async (c) => {
    const i = c.core.info();
    assert.equal(i.shieldingKey.length, 32);
    assert.equal(i.signingKey.length, 32);
    assert.equal(i.measurement.length, 32);
    assert.equal(i.cryptoThreads, 1);
    assert.equal(i.attestation, 'simulated');
    const st = c.core.status();
    assert.equal(st.headNumber, 0);
    assert.equal(st.accounts, 2);
    const g = SignedBlock.dec(c.blocks[0]);
    assert.equal(g.header.number, 0n);
    assert.deepEqual(g.header.shard, SHARD);
    assert.deepEqual(g.header.author, i.signingKey);
    assert.equal(balance(c.core, alice), ALICE_START);
    assert.equal(balance(c.core, bob), BOB_START);
    assert.equal(balance(c.core, charlie), 0n);
    assert.equal(nonce(c.core, alice), 0);
    assert.equal(
      codeOf(() => c.core.genesis([], Date.now())),
      'ALREADY_INITIALISED',
    );
  });
});

test('propose before genesis fails NOT_INITIALISED; commit of an unknown hash fails NO_SUCH_PROPOSAL', async () => {
  const core = open(tempDir());
  try {
    assert.equal(
      codeOf(() => core.propose({ slot: 1n, timestampMs: Date.now(), maxCalls: 10 })),
      'NOT_INITIALISED',
    );
    core.genesis([{ account: alice.publicKey, amount: 1n }], Date.now());
    assert.equal(
      codeOf(() => core.commit(new Uint8Array(32))),
      'NO_SUCH_PROPOSAL',
    );
    const p = core.propose({ slot: 1n, timestampMs: Date.now(), maxCalls: 10 });
    assert.equal(
      codeOf(() => core.commit(new Uint8Array(32))),
      'NO_SUCH_PROPOSAL',
    );
    core.commit(p.hash);
    assert.equal(
      codeOf(() => core.commit(p.hash)),
      'NO_SUCH_PROPOSAL',
      'a proposal commits once',
    );
  } finally {
    await core.close();
  }
});

test('transfers are submitted, proposed, committed; getters read balance, nonce and memos', async () => {
  await withChain(async (c) => {
    const t1 = transfer(c, alice, bob, 100n, 0, 'm1');
    const t2 = transfer(c, alice, bob, 50n, 1, 'm2');
    const t3 = transfer(c, bob, charlie, 25n, 0);
    const res = await c.core.submit([t1.request, t2.request, t3.request], Date.now());
    assert.deepEqual(res, [
      { hash: t1.hash, status: 'ready' },
      { hash: t2.hash, status: 'ready' },
      { hash: t3.hash, status: 'ready' },
    ]);
    assert.equal(c.core.status().poolSize, 3);

    // not applied before commit
    const p = c.core.propose({ slot: c.slot++, timestampMs: Date.now(), maxCalls: 100 });
    assert.equal(balance(c.core, alice), ALICE_START);
    assert.deepEqual([...p.included].sort(), [t1.hash, t2.hash, t3.hash].sort());
    assert.deepEqual(p.rejected, []);
    assert.equal(p.number, 1);
    const st = c.core.commit(p.hash);
    c.blocks.push(p.block);
    assert.equal(st.headNumber, 1);
    assert.equal(st.poolSize, 0);
    assert.deepEqual(st.headHash, p.hash);
    // the block body lists the included call hashes
    assert.deepEqual(SignedBlock.dec(p.block).body.calls.map(hex).sort(), [t1.hash, t2.hash, t3.hash].sort());

    assert.equal(balance(c.core, alice), ALICE_START - 150n);
    assert.equal(balance(c.core, bob), BOB_START + 150n - 25n);
    assert.equal(balance(c.core, charlie), 25n);
    assert.equal(nonce(c.core, alice), 2);
    assert.equal(nonce(c.core, bob), 1);
    assert.equal(nonce(c.core, charlie), 0);

    // third memo in the next block; memos come newest first
    await c.core.submit([transfer(c, alice, bob, 7n, 2, 'm3').request], Date.now());
    produce(c);
    const m = memos(c.core, bob);
    assert.equal(m.total, 3);
    assert.deepEqual(
      m.items.map((x) => x.text),
      ['m3', 'm2', 'm1'],
    );
    assert.deepEqual(
      m.items.map((x) => x.amount),
      [7n, 50n, 100n],
    );
    assert.deepEqual(
      m.items.map((x) => x.block),
      [2n, 1n, 1n],
    );
    assert.ok(m.items.every((x) => hex(x.from) === hex(alice.publicKey)));
    assert.deepEqual(
      memos(c.core, bob, 1, 1).items.map((x) => x.text),
      ['m2'],
    );
    assert.deepEqual(
      memos(c.core, bob, 2, 5).items.map((x) => x.text),
      ['m1'],
    );
    assert.deepEqual(memos(c.core, bob, 3, 5).items, []);
    assert.equal(memos(c.core, alice).total, 0);
    assert.equal(memos(c.core, charlie).total, 0, 'a transfer without memo stores none');
  });
});

test('self-transfer with memo via the enclave', async () => {
  await withChain(async (c) => {
    await c.core.submit([transfer(c, alice, alice, 300n, 0, 'self').request], Date.now());
    assert.equal(produce(c).included.length, 1);
    assert.equal(balance(c.core, alice), ALICE_START);
    assert.equal(nonce(c.core, alice), 1);
    assert.deepEqual(
      memos(c.core, alice).items.map((x) => x.text),
      ['self'],
    );
  });
});

test('future calls wait for the gap to be filled', async () => {
  await withChain(async (c) => {
    const later = transfer(c, alice, bob, 1n, 1);
    assert.equal((await c.core.submit([later.request], Date.now()))[0].status, 'future');
    assert.deepEqual(produce(c).included, []);
    assert.equal(nonce(c.core, alice), 0);
    const first = transfer(c, alice, bob, 1n, 0);
    assert.equal((await c.core.submit([first.request], Date.now()))[0].status, 'ready');
    assert.deepEqual(produce(c).included, [first.hash, later.hash]);
    assert.equal(nonce(c.core, alice), 2);
  });
});

test('maxCalls limits the calls per block; the rest stays pending', async () => {
  await withChain(async (c) => {
    const ts = [0, 1, 2, 3].map((n) => transfer(c, alice, bob, 1n, n));
    await c.core.submit(
      ts.map((t) => t.request),
      Date.now(),
    );
    assert.deepEqual(
      produce(c, 3).included,
      ts.slice(0, 3).map((t) => t.hash),
    );
    assert.equal(c.core.status().poolSize, 1);
    assert.deepEqual(produce(c, 3).included, [ts[3].hash]);
    assert.equal(nonce(c.core, alice), 4);
  });
});

test('a contiguous run of ready calls is not dropped as NONCE_GAP_EXPIRED when blocks lag behind', async () => {
  await withChain(async (c) => {
    const t0 = Date.now();
    const ts = [0, 1, 2].map((n) => transfer(c, alice, bob, 1n, n));
    const res = await c.core.submit(
      ts.map((t) => t.request),
      t0,
    );
    assert.deepEqual(
      res.map((r) => r.status),
      ['ready', 'ready', 'ready'],
    );
    // the next block comes later than futureTtlMs (e.g. a slow slot or a backlog): nothing has a gap
    const p = c.core.propose({ slot: c.slot++, timestampMs: t0 + POOL.futureTtlMs + 1, maxCalls: 100 });
    c.core.commit(p.hash);
    assert.deepEqual(
      p.rejected.map((r) => r.code),
      [],
    );
    assert.deepEqual(
      p.included,
      ts.map((t) => t.hash),
    );
    assert.equal(nonce(c.core, alice), 3);
  });
});

test('a future call whose gap is not filled within futureTtlMs is dropped with NONCE_GAP_EXPIRED', async () => {
  await withChain(async (c) => {
    const t0 = Date.now();
    const gap = transfer(c, alice, bob, 1n, 2);
    assert.equal((await c.core.submit([gap.request], t0))[0].status, 'future');
    let p = c.core.propose({ slot: c.slot++, timestampMs: t0 + POOL.futureTtlMs, maxCalls: 100 });
    c.core.commit(p.hash);
    assert.deepEqual(p.rejected, []);
    assert.equal(c.core.status().poolSize, 1);
    // Expired now, but proposing prunes at most once a second: not yet dropped 1 ms later, dropped a second later.
    p = c.core.propose({ slot: c.slot++, timestampMs: t0 + POOL.futureTtlMs + 1, maxCalls: 100 });
    c.core.commit(p.hash);
    assert.deepEqual(p.rejected, []);
    p = c.core.propose({ slot: c.slot++, timestampMs: t0 + POOL.futureTtlMs + 1000, maxCalls: 100 });
    c.core.commit(p.hash);
    assert.deepEqual(
      p.rejected.map((r) => [r.hash, r.code]),
      [[gap.hash, 'NONCE_GAP_EXPIRED']],
    );
    assert.equal(c.core.status().poolSize, 0);
    assert.equal(nonce(c.core, alice), 0);
  });
});

// ---------------- rejections: each is 'invalid' with its code, and changes nothing ----------------

test('rejection: bad signature (flipped signature byte, or call altered after signing)', async () => {
  await withChain(async (c) => {
    const before = snapshotOf(c.core, [alice, bob]);
    const call: TrustedCall = {
      tag: 'transfer',
      value: { from: alice.publicKey, to: bob.publicKey, amount: 10n, memo: undefined },
    };
    const signed = signCall(alice, call, 0, SHARD);
    const badSig = shield(flip(signed, -1), c.key, SHARD);
    const badSig2 = shield(flip(signed, signed.length - 40), c.key, SHARD);
    // same signature over a larger amount
    const dec = TrustedCallSigned.dec(signed);
    const altered = TrustedCallSigned.enc({ ...dec, call: { ...call, value: { ...call.value, amount: 999n } } });
    // a call claiming to be from bob signed by alice
    const impostor = signCall(alice, { tag: 'transfer', value: { ...call.value, from: bob.publicKey } }, 0, SHARD);
    const res = await c.core.submit(
      [badSig, badSig2, shield(altered, c.key, SHARD), shield(impostor, c.key, SHARD)],
      Date.now(),
    );
    for (const r of res) {
      assert.equal(r.status, 'invalid');
      assert.equal(r.code, 'BAD_SIGNATURE');
    }
    assert.equal(c.core.status().poolSize, 0);
    assertStateUnchanged(c, before, [alice, bob]);
  });
});

test('rejection: stale nonce after inclusion (also an exact replay of the included request)', async () => {
  await withChain(async (c) => {
    const t = transfer(c, alice, bob, 10n, 0);
    await c.core.submit([t.request], Date.now());
    produce(c);
    const before = snapshotOf(c.core, [alice, bob]);
    assert.deepEqual(before[0], { balance: ALICE_START - 10n, nonce: 1 });
    const again = transfer(c, alice, bob, 20n, 0);
    const res = await c.core.submit([again.request, t.request], Date.now());
    assert.deepEqual(
      res.map((r) => [r.status, r.code]),
      [
        ['invalid', 'STALE_NONCE'],
        ['invalid', 'STALE_NONCE'],
      ],
    );
    assert.equal(res[0].hash, again.hash);
    assertStateUnchanged(c, before, [alice, bob]);
  });
});

test('rejection: nonce too far ahead', async () => {
  await withChain(async (c) => {
    const before = snapshotOf(c.core, [alice, bob]);
    const far = transfer(c, alice, bob, 10n, POOL.maxNonceAhead + 1);
    const res = await c.core.submit([far.request], Date.now());
    assert.deepEqual(res, [{ hash: far.hash, status: 'invalid', code: 'NONCE_TOO_FAR', message: res[0].message }]);
    assert.equal(c.core.status().poolSize, 0);
    // the limit itself is accepted (as future) and not executed
    assert.equal(
      (await c.core.submit([transfer(c, alice, bob, 10n, POOL.maxNonceAhead).request], Date.now()))[0].status,
      'future',
    );
    assertStateUnchanged(c, before, [alice, bob]);
  });
});

test('rejection: overdraft at submission (INSUFFICIENT_BALANCE), including an unfunded sender', async () => {
  await withChain(async (c) => {
    const before = snapshotOf(c.core, [alice, bob, charlie]);
    const over = transfer(c, alice, bob, ALICE_START + 1n, 0);
    const unfunded = transfer(c, charlie, bob, 1n, 0);
    const res = await c.core.submit([over.request, unfunded.request], Date.now());
    assert.deepEqual(
      res.map((r) => [r.hash, r.status, r.code]),
      [
        [over.hash, 'invalid', 'INSUFFICIENT_BALANCE'],
        [unfunded.hash, 'invalid', 'INSUFFICIENT_BALANCE'],
      ],
    );
    assertStateUnchanged(c, before, [alice, bob, charlie]);
  });
});

test('rejection: overdraft at execution (two calls each fit, not both): second rejected in propose', async () => {
  await withChain(async (c) => {
    const a = transfer(c, alice, bob, 600n, 0, 'first');
    const b = transfer(c, alice, charlie, 600n, 1, 'second');
    const res = await c.core.submit([a.request, b.request], Date.now());
    assert.deepEqual(
      res.map((r) => r.status),
      ['ready', 'ready'],
    );
    const p = produce(c);
    assert.deepEqual(p.included, [a.hash]);
    assert.equal(p.rejected.length, 1);
    assert.equal(p.rejected[0].hash, b.hash);
    assert.equal(p.rejected[0].code, 'INSUFFICIENT_BALANCE');
    assert.equal(c.core.status().poolSize, 0, 'the rejected call left the pool');
    assert.equal(balance(c.core, alice), ALICE_START - 600n);
    assert.equal(nonce(c.core, alice), 1, 'the rejected call did not consume a nonce');
    assert.equal(balance(c.core, bob), BOB_START + 600n);
    assert.equal(balance(c.core, charlie), 0n);
    assert.equal(memos(c.core, charlie).total, 0);
    assertStateUnchanged(c, snapshotOf(c.core, [alice, bob, charlie]), [alice, bob, charlie]);
    // the nonce is still usable
    await c.core.submit([transfer(c, alice, charlie, 400n, 1).request], Date.now());
    assert.equal(produce(c).included.length, 1);
    assert.equal(balance(c.core, charlie), 400n);
  });
});

test('rejection: memo too long', async () => {
  await withChain(async (c) => {
    const before = snapshotOf(c.core, [alice, bob]);
    const res = await c.core.submit(
      [transfer(c, alice, bob, 1n, 0, 'x'.repeat(MAX_MEMO_BYTES + 1)).request],
      Date.now(),
    );
    assert.equal(res[0].status, 'invalid');
    assert.equal(res[0].code, 'MEMO_TOO_LONG');
    assertStateUnchanged(c, before, [alice, bob]);
  });
});

test('rejection: wrong shard (signed for another shard in our envelope; or envelope for another shard)', async () => {
  await withChain(async (c) => {
    const before = snapshotOf(c.core, [alice, bob]);
    const call: TrustedCall = {
      tag: 'transfer',
      value: { from: alice.publicKey, to: bob.publicKey, amount: 10n, memo: undefined },
    };
    const signedOther = signCall(alice, call, 0, OTHER_SHARD);
    const inOurEnvelope = shield(signedOther, c.key, SHARD);
    const otherEnvelope = buildTransfer(alice, { to: bob.publicKey, amount: 10n, nonce: 0 }, c.key, OTHER_SHARD);
    // our call re-routed: envelope shard changed by the host (it is bound as AAD, so it cannot decrypt)
    const ours = transfer(c, alice, bob, 10n, 0);
    const env = ShieldedRequest.dec(ours.request);
    const rerouted = ShieldedRequest.enc({ ...env, shard: OTHER_SHARD });
    const res = await c.core.submit([inOurEnvelope, otherEnvelope.request, rerouted], Date.now());
    assert.deepEqual(
      res.map((r) => [r.status, r.code]),
      [
        ['invalid', 'WRONG_SHARD'],
        ['invalid', 'WRONG_SHARD'],
        ['invalid', 'DECRYPT_FAILED'],
      ],
    );
    assert.equal(res[1].hash, otherEnvelope.hash);
    assertStateUnchanged(c, before, [alice, bob]);
  });
});

test('rejection: undecryptable or malformed payloads', async () => {
  await withChain(async (c) => {
    const before = snapshotOf(c.core, [alice, bob]);
    const randomCt = ShieldedRequest.enc({
      shard: SHARD,
      keyId: c.key.keyId,
      enc: new Uint8Array(randomBytes(32)),
      ciphertext: new Uint8Array(randomBytes(120)),
    });
    const garbage = new Uint8Array(randomBytes(50));
    const trailing = new Uint8Array([...transfer(c, alice, bob, 1n, 0).request, 0]);
    const unknownKey = ShieldedRequest.enc({
      ...ShieldedRequest.dec(transfer(c, alice, bob, 1n, 0).request),
      keyId: c.key.keyId + 7,
    });
    // decrypts fine but is not a trusted call
    const notACall = shield(new Uint8Array(randomBytes(40)), c.key, SHARD);
    // encrypted to another key (same key id)
    const wrongKey = shield(
      signCall(
        alice,
        { tag: 'transfer', value: { from: alice.publicKey, to: bob.publicKey, amount: 1n, memo: undefined } },
        0,
        SHARD,
      ),
      { keyId: c.key.keyId, publicKey: x25519Generate().publicKey },
      SHARD,
    );
    const tamperedCt = flip(transfer(c, alice, bob, 1n, 0).request, -3);
    const res = await c.core.submit(
      [randomCt, garbage, trailing, unknownKey, notACall, wrongKey, tamperedCt, new Uint8Array(0)],
      Date.now(),
    );
    assert.deepEqual(
      res.map((r) => [r.status, r.code]),
      [
        ['invalid', 'DECRYPT_FAILED'],
        ['invalid', 'DECODE_FAILED'],
        ['invalid', 'DECODE_FAILED'],
        ['invalid', 'UNKNOWN_SHIELDING_KEY'],
        ['invalid', 'DECODE_FAILED'],
        ['invalid', 'DECRYPT_FAILED'],
        ['invalid', 'DECRYPT_FAILED'],
        ['invalid', 'DECODE_FAILED'],
      ],
    );
    assert.ok(
      res.every((r) => r.hash === undefined),
      'no call hash for requests that did not open',
    );
    assertStateUnchanged(c, before, [alice, bob]);
  });
});

test('rejection: duplicate submission (separately and within one batch); same nonce different call', async () => {
  await withChain(async (c) => {
    const before = snapshotOf(c.core, [alice, bob]);
    const t = transfer(c, alice, bob, 10n, 0);
    assert.equal((await c.core.submit([t.request], Date.now()))[0].status, 'ready');
    const res = await c.core.submit([t.request, transfer(c, alice, bob, 11n, 0).request], Date.now());
    assert.deepEqual(
      res.map((r) => [r.status, r.code]),
      [
        ['invalid', 'DUPLICATE'],
        ['invalid', 'DUPLICATE'],
      ],
    );
    assert.equal(res[0].hash, t.hash);
    const u = transfer(c, bob, alice, 1n, 0);
    const res2 = await c.core.submit([u.request, u.request], Date.now());
    assert.deepEqual(
      res2.map((r) => [r.status, r.code]),
      [
        ['ready', undefined],
        ['invalid', 'DUPLICATE'],
      ],
    );
    assert.equal(c.core.status().poolSize, 2);
    // the pool holds exactly the two originals; executing them changes the state by exactly them
    const p = produce(c);
    assert.deepEqual([...p.included].sort(), [t.hash, u.hash].sort());
    assert.deepEqual(snapshotOf(c.core, [alice, bob]), [
      { balance: before[0].balance - 10n + 1n, nonce: 1 },
      { balance: before[1].balance + 10n - 1n, nonce: 1 },
    ]);
  });
});

test('getters: signed by another account -> BAD_SIGNATURE; expired; other shard; garbage', async () => {
  await withChain(async (c) => {
    const key = c.key;
    // bob asks for alice's balance
    const g = buildGetter(bob, { tag: 'balance', value: alice.publicKey }, key, SHARD);
    assert.throws(
      () => c.core.executeGetter(g.request, Date.now()),
      (e: Error & { code?: string }) => e.code === 'BAD_SIGNATURE',
    );
    const gm = buildGetter(
      bob,
      { tag: 'memos', value: { account: alice.publicKey, offset: 0, limit: 10 } },
      key,
      SHARD,
    );
    assert.equal(
      codeOf(() => c.core.executeGetter(gm.request, Date.now())),
      'BAD_SIGNATURE',
    );
    // too old / too far in the future
    const now = Date.now();
    const old = buildGetter(alice, { tag: 'balance', value: alice.publicKey }, key, SHARD, now - 10 * 60_000);
    assert.equal(
      codeOf(() => c.core.executeGetter(old.request, now)),
      'GETTER_EXPIRED',
    );
    const future = buildGetter(alice, { tag: 'balance', value: alice.publicKey }, key, SHARD, now + 10 * 60_000);
    assert.equal(
      codeOf(() => c.core.executeGetter(future.request, now)),
      'GETTER_EXPIRED',
    );
    // another shard
    const other = buildGetter(alice, { tag: 'balance', value: alice.publicKey }, key, OTHER_SHARD);
    assert.equal(
      codeOf(() => c.core.executeGetter(other.request, Date.now())),
      'WRONG_SHARD',
    );
    assert.equal(
      codeOf(() => c.core.executeGetter(new Uint8Array(randomBytes(20)), Date.now())),
      'DECODE_FAILED',
    );
    // a shielded call is not a getter (different HPKE info)
    assert.equal(
      codeOf(() => c.core.executeGetter(transfer(c, alice, bob, 1n, 0).request, Date.now())),
      'DECRYPT_FAILED',
    );
    // the reply opens only for the request it answers (the enclave signs it over that request)
    const mine = buildGetter(alice, { tag: 'balance', value: alice.publicKey }, key, SHARD);
    const theirs = buildGetter(alice, { tag: 'balance', value: alice.publicKey }, key, SHARD);
    const reply = c.core.executeGetter(mine.request, Date.now());
    assert.deepEqual(mine.open(reply), { tag: 'balance', value: ALICE_START });
    assert.throws(
      () => theirs.open(reply),
      (e: Error & { code?: string }) => e.code === 'UNTRUSTED_REPLY',
    );
  });
});

// ---------------- crypto worker threads ----------------

test('a batch of 20 requests goes through the crypto worker threads with correct results', async () => {
  await withChain(async (c) => {
    const crypto = (c.core as unknown as { crypto: { verify(r: Uint8Array[]): Promise<unknown[]> } }).crypto;
    const orig = crypto.verify.bind(crypto);
    let batched = 0;
    crypto.verify = async (r) => {
      batched += r.length;
      return orig(r);
    };
    const good = [
      ...Array.from({ length: 9 }, (_, n) => transfer(c, alice, bob, 10n, n, `a${n}`)),
      ...Array.from({ length: 8 }, (_, n) => transfer(c, bob, charlie, 5n, n)),
    ];
    const call: TrustedCall = {
      tag: 'transfer',
      value: { from: alice.publicKey, to: bob.publicKey, amount: 1n, memo: undefined },
    };
    const bad = [
      shield(flip(signCall(alice, call, 9, SHARD), -1), c.key, SHARD),
      new Uint8Array(randomBytes(30)),
      transfer(c, alice, bob, 10n, POOL.maxNonceAhead + 5).request,
    ];
    const requests = [
      ...good.slice(0, 5).map((t) => t.request),
      bad[0],
      ...good.slice(5, 12).map((t) => t.request),
      bad[1],
      ...good.slice(12).map((t) => t.request),
      bad[2],
    ];
    assert.equal(requests.length, 20);
    const res = await c.core.submit(requests, Date.now());
    assert.equal(batched, 20, 'verified by the crypto worker pool');
    assert.equal(res.length, 20);
    assert.deepEqual([res[5].code, res[13].code, res[19].code], ['BAD_SIGNATURE', 'DECODE_FAILED', 'NONCE_TOO_FAR']);
    const goodResults = res.filter((_, i) => ![5, 13, 19].includes(i));
    assert.deepEqual(
      goodResults.map((r) => r.hash),
      good.map((t) => t.hash),
    );
    assert.ok(goodResults.every((r) => r.status === 'ready'));

    // a batch of only duplicates goes through the workers too and is rejected
    const dups = await c.core.submit(
      good.slice(0, 10).map((t) => t.request),
      Date.now(),
    );
    assert.ok(dups.every((r) => r.code === 'DUPLICATE'));

    const p = produce(c);
    assert.equal(p.included.length, 17);
    assert.equal(balance(c.core, alice), ALICE_START - 90n);
    assert.equal(balance(c.core, bob), BOB_START + 90n - 40n);
    assert.equal(balance(c.core, charlie), 40n);
    assert.equal(nonce(c.core, alice), 9);
    assert.equal(nonce(c.core, bob), 8);
    assert.deepEqual(
      memos(c.core, bob, 0, 3).items.map((m) => m.text),
      ['a8', 'a7', 'a6'],
    );
  });
});

// ---------------- replay and snapshots ----------------

/** Builds a chain with several blocks of activity; returns it closed, plus the expected final view. */
async function buildHistory() {
  const c = startChain();
  let snapshot: { sealed: Uint8Array; number: number } | undefined;
  try {
    for (let round = 0; round < 6; round++) {
      const reqs = [
        transfer(c, alice, bob, BigInt(10 + round), round, `round ${round}`).request,
        transfer(c, bob, charlie, 3n, round).request,
      ];
      if (round % 2 === 1) reqs.push(transfer(c, charlie, alice, 1n, (round - 1) / 2, `back ${round}`).request);
      const res = await c.core.submit(reqs, Date.now());
      assert.ok(
        res.every((r) => r.status === 'ready'),
        JSON.stringify(res),
      );
      produce(c);
      if (round === 2) snapshot = await c.core.snapshot();
    }
    produce(c); // an empty block at the end
    const view = {
      balances: [alice, bob, charlie].map((a) => balance(c.core, a)),
      nonces: [alice, bob, charlie].map((a) => nonce(c.core, a)),
      memoTexts: memos(c.core, bob).items.map((m) => m.text),
      aliceMemos: memos(c.core, alice).items.map((m) => m.text),
      status: c.core.status(),
      commitment: SignedBlock.dec(c.blocks[c.blocks.length - 1]).header.stateCommitment,
    };
    return { dataDir: c.dataDir, blocks: c.blocks, snapshot: snapshot!, view };
  } finally {
    await c.core.close();
  }
}

type History = Awaited<ReturnType<typeof buildHistory>>;
let historyPromise: Promise<History> | undefined;
/** Built once (by whichever replay test runs first) and shared read-only by the replay tests. */
const getHistory = (): Promise<History> => (historyPromise ??= buildHistory());
/** Slots for proposals on the shared history's data directory: its enclave signs each slot at most once. */
let historySlot = 100n;

function assertSameView(history: History, core: EnclaveCore, commitment: Uint8Array) {
  const v = history.view;
  assert.deepEqual(commitment, v.commitment);
  assert.deepEqual(
    [alice, bob, charlie].map((a) => balance(core, a)),
    v.balances,
  );
  assert.deepEqual(
    [alice, bob, charlie].map((a) => nonce(core, a)),
    v.nonces,
  );
  assert.deepEqual(
    memos(core, bob).items.map((m) => m.text),
    v.memoTexts,
  );
  assert.deepEqual(
    memos(core, alice).items.map((m) => m.text),
    v.aliceMemos,
  );
  const st = core.status();
  assert.equal(st.headNumber, v.status.headNumber);
  assert.deepEqual(st.headHash, v.status.headHash);
  assert.equal(st.accounts, v.status.accounts);
}

test('replay on the same data dir rebuilds the same state (accumulated and verifyEach)', async () => {
  const history = await getHistory();
  assert.equal(history.blocks.length, 8);
  assert.equal(history.view.status.headNumber, 7);
  for (const verifyEach of [false, true]) {
    const core = open(history.dataDir);
    try {
      assert.deepEqual(core.beginReplay(undefined, verifyEach), { fromNumber: -1 });
      assert.deepEqual(core.replayBlocks(history.blocks.slice(0, 3)), { headNumber: 2 });
      assert.deepEqual(core.replayBlocks(history.blocks.slice(3)), { headNumber: 7 });
      const fin = await core.finishReplay();
      assert.equal(fin.blocks, 8);
      assertSameView(history, core, fin.commitment);
      // the chain continues from the replayed head
      await core.submit(
        [
          buildTransfer(alice, { to: bob.publicKey, amount: 1n, nonce: history.view.nonces[0] }, keyOf(core), SHARD)
            .request,
        ],
        Date.now(),
      );
      const p = core.propose({ slot: historySlot++, timestampMs: Date.now(), maxCalls: 10 });
      assert.equal(p.number, 8);
      assert.equal(p.included.length, 1);
      assert.deepEqual(SignedBlock.dec(p.block).header.parentHash, history.view.status.headHash);
    } finally {
      await core.close();
    }
  }
});

test('replay: a tampered block is refused', async () => {
  const history = await getHistory();
  const core = open(history.dataDir);
  try {
    const target = 3;
    const b = SignedBlock.dec(history.blocks[target]);
    const ct = new Uint8Array(b.body.transitions.ciphertext);
    ct[Math.floor(ct.length / 2)] ^= 0x01;
    const tamperedBody = SignedBlock.enc({
      ...b,
      body: { ...b.body, transitions: { ...b.body.transitions, ciphertext: ct } },
    });
    assert.equal(tamperedBody.length, history.blocks[target].length);
    const cases: [string, Uint8Array, string[]][] = [
      ['transitions ciphertext', tamperedBody, ['BLOCK_BAD_BODY']],
      // Inside a run, the next block no longer names the tampered one (hash or signature hash); last in a run, its own
      // signature fails.
      [
        'header commitment',
        SignedBlock.enc({ ...b, header: { ...b.header, stateCommitment: new Uint8Array(32) } }),
        ['BLOCK_BAD_SIGNATURE', 'REPLAY_BROKEN_CHAIN'],
      ],
      [
        'signature',
        SignedBlock.enc({ ...b, signature: flip(b.signature, 0) }),
        ['BLOCK_BAD_SIGNATURE', 'REPLAY_BROKEN_CHAIN'],
      ],
      ['included call list', SignedBlock.enc({ ...b, body: { ...b.body, calls: [] } }), ['BLOCK_BAD_BODY']],
      ['trailing byte', new Uint8Array([...history.blocks[target], 0]), ['DECODE_FAILED']],
    ];
    for (const verifyEach of [false, true]) {
      for (const [what, bytes, codes] of cases) {
        core.beginReplay(undefined, verifyEach);
        core.replayBlocks(history.blocks.slice(0, target));
        const code = codeOf(() => core.replayBlocks([bytes, ...history.blocks.slice(target + 1)]));
        assert.ok(code !== undefined && codes.includes(code), `${what} (verifyEach=${verifyEach}): got ${code}`);
        core.beginReplay(undefined, verifyEach);
        core.replayBlocks(history.blocks.slice(0, target));
        const last = codeOf(() => core.replayBlocks([bytes]));
        assert.ok(
          last !== undefined && codes.filter((c) => c !== 'REPLAY_BROKEN_CHAIN').includes(last),
          `${what}, last of its run (verifyEach=${verifyEach}): got ${last}`,
        );
      }
    }
    // out of order / missing block
    core.beginReplay(undefined, false);
    assert.equal(
      codeOf(() => core.replayBlocks([history.blocks[0], history.blocks[2]])),
      'REPLAY_BROKEN_CHAIN',
    );
    core.beginReplay(undefined, false);
    assert.equal(
      codeOf(() => core.replayBlocks([history.blocks[1]])),
      'REPLAY_BROKEN_CHAIN',
    );
  } finally {
    await core.close();
  }
});

test('replay with another enclave identity (another data dir) refuses the blocks', async () => {
  const history = await getHistory();
  const core = open(tempDir());
  try {
    core.beginReplay(undefined, false);
    assert.equal(
      codeOf(() => core.replayBlocks(history.blocks)),
      'BLOCK_UNKNOWN_AUTHOR',
    );
  } finally {
    await core.close();
  }
  // trusting that author, it still cannot decrypt the state without the state key
  const author = SignedBlock.dec(history.blocks[0]).header.author;
  const core2 = EnclaveCore.open({
    dataDir: tempDir(),
    shard: SHARD,
    shardPolicy: POLICY,
    workers: 1,
    pool: POOL,
    authorities: [author],
  });
  try {
    core2.beginReplay(undefined, false);
    const code = codeOf(() => core2.replayBlocks(history.blocks));
    assert.ok(code === 'BLOCK_BAD_TRANSITIONS' || code === 'STATE_KEY_UNKNOWN', `got ${code}`);
  } finally {
    await core2.close();
  }
});

test('a proposal made before beginReplay cannot be committed after the replay', async () => {
  const history = await getHistory();
  // Otherwise the host could rewind the state by replay and then commit a proposal computed against
  // another state: the enclave would adopt that proposal's lthash over items it does not describe.
  const core = open(history.dataDir);
  try {
    core.beginReplay(undefined, false);
    core.replayBlocks(history.blocks);
    await core.finishReplay();
    const p = core.propose({ slot: historySlot++, timestampMs: Date.now(), maxCalls: 10 });
    core.beginReplay(undefined, false);
    core.replayBlocks(history.blocks.slice(0, 3));
    await core.finishReplay();
    assert.equal(
      codeOf(() => core.commit(p.hash)),
      'NO_SUCH_PROPOSAL',
    );
    assert.equal(core.status().headNumber, 2);
  } finally {
    await core.close();
  }
});

test('snapshot + tail replay equals full replay', async () => {
  const history = await getHistory();
  const core = open(history.dataDir);
  try {
    const snap = history.snapshot;
    assert.equal(snap.number, 3);
    assert.deepEqual(core.beginReplay(snap.sealed, false), { fromNumber: 3 });
    assert.deepEqual(core.replayBlocks(history.blocks.slice(snap.number + 1)), { headNumber: 7 });
    const fin = await core.finishReplay();
    assert.equal(fin.blocks, 4);
    assertSameView(history, core, fin.commitment);

    // verifyEach from the snapshot too
    core.beginReplay(snap.sealed, true);
    core.replayBlocks(history.blocks.slice(snap.number + 1));
    assertSameView(history, core, (await core.finishReplay()).commitment);

    // the tail must start right after the snapshot
    core.beginReplay(snap.sealed, false);
    assert.equal(
      codeOf(() => core.replayBlocks(history.blocks.slice(snap.number))),
      'REPLAY_BROKEN_CHAIN',
    );

    // a snapshot taken now equals the replayed state
    core.beginReplay(undefined, false);
    core.replayBlocks(history.blocks);
    await core.finishReplay();
    const now = await core.snapshot();
    assert.equal(now.number, 7);
    core.beginReplay(now.sealed, false);
    assertSameView(history, core, (await core.finishReplay()).commitment);

    // a tampered sealed snapshot is refused
    assert.equal(
      codeOf(() => core.beginReplay(flip(snap.sealed, -1), false)),
      'UNSEAL_FAILED',
    );
  } finally {
    await core.close();
  }
  // and another platform cannot open it
  const foreign = open(tempDir());
  try {
    assert.equal(
      codeOf(() => foreign.beginReplay(history.snapshot.sealed, false)),
      'UNSEAL_FAILED',
    );
  } finally {
    await foreign.close();
  }
});
