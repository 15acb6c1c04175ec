import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Enclave, EnclaveError, type EnclaveInit } from '../../../src/enclave/boundary/host.ts';
import { buildGetter, buildTransfer, type ShieldingKey } from '../../../src/client/calls.ts';
import { devAccount, type Account } from '../../../src/client/accounts.ts';
import { SignedBlock } from '../../../src/protocol/block.ts';
import { DEV_AUTHORITY_PUBLIC, verifySimulatedQuote } from '../../../src/enclave/keys/attestation.ts';
import { computeMeasurement } from '../../../src/enclave/keys/measurement.ts';
import { sha256 } from '../../../src/crypto/primitives.ts';
import { testShard } from '../../helpers/shard.ts';

const { shard: SHARD, shardPolicy: POLICY } = testShard('host test shard');
const POOL = { maxPending: 1000, maxNonceAhead: 16, futureTtlMs: 30000 };
const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'validateer-host-'));
  dirs.push(d);
  return d;
}
function init(dataDir: string): EnclaveInit {
  return { dataDir, shard: SHARD, shardPolicy: POLICY, workers: 1, pool: POOL, authorities: [] };
}

let alice: Account;
let bob: Account;
let enclave: Enclave | undefined;
let dataDir: string;
let key: ShieldingKey;
const blocks: Uint8Array[] = [];

before(async () => {
  alice = await devAccount('//Alice');
  bob = await devAccount('//Bob');
  dataDir = tempDir();
  enclave = await Enclave.start(init(dataDir));
});
after(async () => {
  await enclave?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function rejection(p: Promise<unknown>): Promise<EnclaveError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof EnclaveError, `expected an EnclaveError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the call to reject');
}

async function balanceOf(e: Enclave, a: Account): Promise<bigint> {
  const g = buildGetter(a, { tag: 'balance', value: a.publicKey }, key, SHARD);
  const r = g.open((await e.call('getter', { request: g.request })).reply);
  assert.equal(r.tag, 'balance');
  return r.value as bigint;
}

test('info through the enclave thread', async () => {
  const e = enclave!;
  const info = await e.call('info', {});
  assert.equal(info.shieldingKey.length, 32);
  assert.equal(info.signingKey.length, 32);
  assert.equal(info.cryptoThreads, 1);
  assert.equal(info.attestation, 'simulated');
  assert.deepEqual(Buffer.from(info.measurement), Buffer.from(computeMeasurement()));
  key = { keyId: info.shieldingKeyId, publicKey: info.shieldingKey };
  const st = await e.call('status', {});
  assert.equal(st.headNumber, -1);
  assert.equal(st.poolSize, 0);
});

test('genesis, submit, propose, commit and getters end to end', async () => {
  const e = enclave!;
  const g = await e.call('genesis', {
    balances: [
      { account: alice.publicKey, amount: 1000n },
      { account: bob.publicKey, amount: 10n },
    ],
    timestampMs: Date.now(),
  });
  assert.equal(SignedBlock.dec(g.block).header.number, 0n);
  assert.equal(g.hash.length, 32);
  blocks.push(g.block);

  const t1 = buildTransfer(alice, { to: bob.publicKey, amount: 250n, nonce: 0, memo: 'hi bob' }, key, SHARD);
  const t2 = buildTransfer(alice, { to: bob.publicKey, amount: 5000n, nonce: 1 }, key, SHARD);
  const { results } = await e.call('submit', { requests: [t1.request, t2.request, Buffer.from('junk')] });
  assert.deepEqual(
    results.map((r) => [r.hash, r.status, r.code]),
    [
      [t1.hash, 'ready', undefined],
      [t2.hash, 'invalid', 'INSUFFICIENT_BALANCE'],
      [undefined, 'invalid', 'DECODE_FAILED'],
    ],
  );

  const p = await e.call('propose', { slot: 1n, timestampMs: Date.now(), maxCalls: 10 });
  assert.equal(p.number, 1);
  assert.deepEqual(p.included, [t1.hash]);
  assert.deepEqual(p.rejected, []);
  assert.deepEqual(SignedBlock.dec(p.block).header.parentHash, g.hash);
  const st = await e.call('commit', { hash: p.hash });
  blocks.push(p.block);
  assert.equal(st.headNumber, 1);
  assert.deepEqual(st.headHash, p.hash);
  assert.equal(st.poolSize, 0);

  assert.equal(await balanceOf(e, alice), 750n);
  assert.equal(await balanceOf(e, bob), 260n);
  const mg = buildGetter(bob, { tag: 'memos', value: { account: bob.publicKey, offset: 0, limit: 5 } }, key, SHARD);
  const m = mg.open((await e.call('getter', { request: mg.request })).reply);
  assert.equal(m.tag, 'memos');
  assert.deepEqual(
    (m.value as { items: { text: string }[] }).items.map((x) => x.text),
    ['hi bob'],
  );

  // enclave-side errors keep their codes across the thread boundary
  assert.equal((await rejection(e.call('commit', { hash: p.hash }))).code, 'NO_SUCH_PROPOSAL');
  assert.equal((await rejection(e.call('genesis', { balances: [], timestampMs: 0 }))).code, 'ALREADY_INITIALISED');
  const other = buildGetter(bob, { tag: 'balance', value: alice.publicKey }, key, SHARD);
  assert.equal((await rejection(e.call('getter', { request: other.request }))).code, 'BAD_SIGNATURE');
});

test('a batch through the crypto worker inside the enclave thread', async () => {
  const e = enclave!;
  const ts = Array.from({ length: 10 }, (_, n) =>
    buildTransfer(alice, { to: bob.publicKey, amount: 1n, nonce: 1 + n }, key, SHARD),
  );
  const { results } = await e.call('submit', { requests: ts.map((t) => t.request) });
  assert.deepEqual(
    results.map((r) => r.status),
    Array(10).fill('ready'),
  );
  const p = await e.call('propose', { slot: 2n, timestampMs: Date.now(), maxCalls: 100 });
  assert.deepEqual(
    p.included,
    ts.map((t) => t.hash),
  );
  await e.call('commit', { hash: p.hash });
  blocks.push(p.block);
  assert.equal(await balanceOf(e, bob), 270n);
});

test('no quote over host-chosen data: the boundary has no quote method; keysQuote binds only enclave keys', async () => {
  const e = enclave!;
  const info = await e.call('info', {});
  const anyCall = e.call.bind(e) as (method: string, params: unknown) => Promise<unknown>;
  for (const method of ['quote', 'attest', 'report']) {
    const err = await rejection(anyCall(method, { userData: new Uint8Array(32).fill(5) }));
    assert.equal(err.code, 'UNKNOWN_METHOD', method);
  }
  const { quote } = await e.call('keysQuote', {});
  const v = verifySimulatedQuote(quote, {
    trustedAuthorities: [DEV_AUTHORITY_PUBLIC],
    allowedMeasurements: [info.measurement],
  });
  const binding = sha256(
    Buffer.concat([Buffer.from('validateer/keys-quote/v1'), SHARD, info.shieldingKey, info.encryptionKey]),
  );
  assert.deepEqual(Buffer.from(v.reportData), Buffer.concat([info.signingKey, binding]));
  // params are ignored, not attested: the same keys give the same report data
  const again = await anyCall('keysQuote', { userData: new Uint8Array(32).fill(5) });
  assert.deepEqual(
    Buffer.from(
      verifySimulatedQuote((again as { quote: Uint8Array }).quote, { trustedAuthorities: [DEV_AUTHORITY_PUBLIC] })
        .reportData,
    ),
    Buffer.from(v.reportData),
  );
});

test('snapshot through the enclave thread', async () => {
  const snap = await enclave!.call('snapshot', {});
  assert.equal(snap.number, 2);
  assert.ok(snap.sealed.length > 0);
});

test('invalid params reject with BAD_REQUEST', async () => {
  const e = enclave!;
  const bad: [string, unknown][] = [
    ['submit', { requests: 'x' }],
    ['submit', { requests: ['not bytes'] }],
    ['submit', {}],
    ['submit', { requests: [new Uint8Array(64 * 1024 + 1)] }],
    ['propose', { slot: 1, timestampMs: Date.now(), maxCalls: 1 }],
    ['propose', { slot: 1n, timestampMs: Date.now(), maxCalls: 0 }],
    ['commit', { hash: new Uint8Array(31) }],
    ['genesis', { balances: [{ account: alice.publicKey, amount: -1n }], timestampMs: 0 }],
    ['getter', { request: 42 }],
    ['beginReplay', { verifyEach: 'yes' }],
  ];
  for (const [method, params] of bad) {
    const err = await rejection(e.call(method as 'submit', params as never));
    assert.equal(
      err.code,
      'BAD_REQUEST',
      `${method} ${String(JSON.stringify(params, (_, v) => (typeof v === 'bigint' ? String(v) : v)))?.slice(0, 60)}: ${err.code} ${err.message}`,
    );
  }
  // the enclave keeps serving after bad requests
  assert.equal((await e.call('status', {})).headNumber, 2);
});

test('an unknown method rejects with UNKNOWN_METHOD', async () => {
  const e = enclave!;
  for (const m of ['noSuchMethod', 'Info', '']) {
    assert.equal((await rejection(e.call(m as never, {} as never))).code, 'UNKNOWN_METHOD', m);
  }
});

test('method names inherited from Object.prototype are unknown methods too (UNKNOWN_METHOD, not INTERNAL)', async () => {
  const e = enclave!;
  for (const m of ['toString', 'constructor', 'hasOwnProperty', '__proto__']) {
    const err = await rejection(e.call(m as never, {} as never));
    assert.equal(err.code, 'UNKNOWN_METHOD', `${m}: got ${err.code}`);
  }
  assert.equal((await e.call('status', {})).headNumber, 2);
});

test('start failures: bad init -> BAD_REQUEST; corrupt platform secret -> PLATFORM_SECRET_CORRUPT', async () => {
  const err = await rejection(Enclave.start({ ...init(tempDir()), shard: new Uint8Array(31) }));
  assert.equal(err.code, 'BAD_REQUEST');
  const dir = tempDir();
  mkdirSync(join(dir, 'enclave'), { recursive: true });
  writeFileSync(join(dir, 'enclave', 'sim-platform-secret'), 'not a secret\n');
  assert.equal((await rejection(Enclave.start(init(dir)))).code, 'PLATFORM_SECRET_CORRUPT');
});

test('a restarted enclave on the same data dir has the same keys and replays the chain; closed enclave rejects calls', async () => {
  const before = await enclave!.call('info', {});
  await enclave!.close();
  const closed = enclave!;
  enclave = undefined;
  assert.equal((await rejection(closed.call('status', {}))).code, 'ENCLAVE_CLOSED');
  await closed.close(); // idempotent

  const e2 = await Enclave.start(init(dataDir));
  enclave = e2;
  const info = await e2.call('info', {});
  assert.deepEqual(info.signingKey, before.signingKey);
  assert.deepEqual(info.shieldingKey, before.shieldingKey);
  assert.equal((await e2.call('status', {})).headNumber, -1, 'state comes back only through replay');
  assert.deepEqual(await e2.call('beginReplay', { verifyEach: true }), { fromNumber: -1 });
  assert.deepEqual(await e2.call('replayBlocks', { blocks }), { headNumber: 2 });
  const fin = await e2.call('finishReplay', {});
  assert.equal(fin.blocks, 3);
  assert.deepEqual(fin.commitment, SignedBlock.dec(blocks[2]).header.stateCommitment);
  assert.equal(await balanceOf(e2, alice), 740n);
  assert.equal(await balanceOf(e2, bob), 270n);
  // a tampered block is refused across the boundary with its code
  await e2.call('beginReplay', { verifyEach: false });
  const b = SignedBlock.dec(blocks[1]);
  const ct = new Uint8Array(b.body.transitions.ciphertext);
  ct[0] ^= 1;
  const tampered = SignedBlock.enc({
    ...b,
    body: { ...b.body, transitions: { ...b.body.transitions, ciphertext: ct } },
  });
  assert.equal((await rejection(e2.call('replayBlocks', { blocks: [blocks[0], tampered] }))).code, 'BLOCK_BAD_BODY');
});
