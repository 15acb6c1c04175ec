import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { Bytes, Struct, Vector, u8, u32 } from 'scale-ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Sealer, writeFileAtomic, type AtomicWriteFs } from '../../../src/enclave/keys/sealing.ts';
import { loadOrCreateKeys } from '../../../src/enclave/keys/keys.ts';
import {
  ed25519PublicFromSeed,
  ed25519Sign,
  ed25519Verify,
  x25519PublicFromSecret,
} from '../../../src/crypto/primitives.ts';
import { codeOf } from '../../helpers/errors.ts';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'validateer-seal-'));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const te = new TextEncoder();
const measurementA = new Uint8Array(randomBytes(32));
const measurementB = new Uint8Array(randomBytes(32));

test('seal/unseal round trip under both policies, across Sealer instances of the same platform', () => {
  const dir = tempDir();
  const s1 = Sealer.simulated(dir, measurementA);
  const pt = te.encode('top secret state');
  for (const policy of ['signer', 'measurement'] as const) {
    const sealed = s1.seal(policy, 'label', pt);
    assert.ok(!Buffer.from(sealed).includes(Buffer.from(pt)), 'plaintext not visible in sealed blob');
    assert.deepEqual(s1.unseal('label', sealed), pt);
    // a second Sealer loading the same platform secret file opens it too
    assert.deepEqual(Sealer.simulated(dir, measurementA).unseal('label', sealed), pt);
  }
  // two seals of the same plaintext differ (fresh nonce)
  assert.notDeepEqual(s1.seal('signer', 'label', pt), s1.seal('signer', 'label', pt));
  // empty plaintext
  assert.deepEqual(s1.unseal('e', s1.seal('signer', 'e', new Uint8Array(0))), new Uint8Array(0));
});

test('sealParts: parts sealed one at a time open as their concatenation; pauses between parts; tampering fails', async () => {
  const s = Sealer.simulated(tempDir(), measurementA);
  const parts = [randomBytes(3), new Uint8Array(0), randomBytes(200_000), randomBytes(70)];
  let pauses = 0;
  const sealed = await s.sealParts('signer', 'snapshot', parts, async () => {
    pauses++;
  });
  assert.equal(pauses, parts.length - 1);
  assert.deepEqual(Buffer.from(s.unseal('snapshot', sealed)), Buffer.concat(parts));
  assert.equal(sealed.length, s.seal('signer', 'snapshot', Buffer.concat(parts)).length, 'the same envelope as seal()');
  assert.equal(
    codeOf(() => s.unseal('other label', sealed)),
    'UNSEAL_FAILED',
  );
  const flipped = sealed.slice();
  flipped[flipped.length - 20] ^= 1;
  assert.equal(
    codeOf(() => s.unseal('snapshot', flipped)),
    'UNSEAL_FAILED',
  );
  assert.equal(s.unseal('empty', await s.sealParts('signer', 'empty', [], async () => undefined)).length, 0);
});

test('signer policy survives a measurement change; measurement policy does not', () => {
  const dir = tempDir();
  const a = Sealer.simulated(dir, measurementA);
  const b = Sealer.simulated(dir, measurementB);
  const pt = te.encode('keys');
  assert.deepEqual(b.unseal('k', a.seal('signer', 'k', pt)), pt);
  assert.equal(
    codeOf(() => b.unseal('k', a.seal('measurement', 'k', pt))),
    'UNSEAL_FAILED',
  );
});

test('unseal with another platform secret (another data dir) fails with UNSEAL_FAILED', () => {
  const a = Sealer.simulated(tempDir(), measurementA);
  const b = Sealer.simulated(tempDir(), measurementA);
  const sealed = a.seal('signer', 'keys', te.encode('secret'));
  assert.throws(
    () => b.unseal('keys', sealed),
    (e: Error & { code?: string }) => e.name === 'EnclaveError' && e.code === 'UNSEAL_FAILED',
  );
});

test('unseal under another label fails with UNSEAL_FAILED', () => {
  const a = Sealer.simulated(tempDir(), measurementA);
  const sealed = a.seal('signer', 'keys', te.encode('secret'));
  assert.equal(
    codeOf(() => a.unseal('snapshot', sealed)),
    'UNSEAL_FAILED',
  );
});

test('tampered sealed blob fails (every byte position)', () => {
  const a = Sealer.simulated(tempDir(), measurementA);
  const sealed = a.seal('signer', 'x', te.encode('0123456789abcdef'));
  for (let i = 0; i < sealed.length; i++) {
    const bad = new Uint8Array(sealed);
    bad[i] ^= 0x01;
    const code = codeOf(() => a.unseal('x', bad));
    assert.ok(code === 'UNSEAL_FAILED' || code === 'DECODE_FAILED', `byte ${i}: got ${code}`);
  }
  // ciphertext bytes (after the header) specifically fail authentication
  const bad = new Uint8Array(sealed);
  bad[bad.length - 1] ^= 0x80;
  assert.equal(
    codeOf(() => a.unseal('x', bad)),
    'UNSEAL_FAILED',
  );
  // truncated and extended blobs fail too
  assert.notEqual(
    codeOf(() => a.unseal('x', sealed.subarray(0, sealed.length - 1))),
    undefined,
  );
  assert.notEqual(
    codeOf(() => a.unseal('x', new Uint8Array([...sealed, 0]))),
    undefined,
  );
});

test('corrupt simulated platform secret file -> PLATFORM_SECRET_CORRUPT', () => {
  const dir = tempDir();
  Sealer.simulated(dir, measurementA);
  const path = join(dir, 'enclave', 'sim-platform-secret');
  const text = readFileSync(path, 'utf8');
  assert.match(text, /SIMULATION-MODE/);
  assert.equal(statSync(path).mode & 0o077, 0, 'platform secret is not group/world readable');
  const variants = [
    'garbage',
    text.replace(/[0-9a-f]{64}/, 'zz'.repeat(32)),
    text.replace(/[0-9a-f]{64}\n$/, 'abcd\n'),
    text.split('\n')[1], // hex without the header
    '',
  ];
  for (const v of variants) {
    writeFileSync(path, v);
    assert.throws(
      () => Sealer.simulated(dir, measurementA),
      (e: Error & { code?: string }) => e.code === 'PLATFORM_SECRET_CORRUPT',
      JSON.stringify(v.slice(0, 40)),
    );
  }
  writeFileSync(path, text);
  assert.doesNotThrow(() => Sealer.simulated(dir, measurementA));
});

test('writeFileAtomic: data fsynced, renamed into place, then the directory fsynced (a crash keeps the new file)', () => {
  const dir = join(tempDir(), 'enclave');
  const path = join(dir, 'parentchain.sealed');
  const calls: string[] = [];
  const dirFds = new Set<number>();
  // The real file system, with every call written down.
  const recording: AtomicWriteFs = {
    mkdirSync: (p, o) => (calls.push(`mkdir ${p === dir}`), fs.mkdirSync(p, o)),
    writeFileSync: (p, d, o) => {
      calls.push(`write tmp flush=${typeof o === 'object' && o?.flush === true}`);
      fs.writeFileSync(p, d, o);
    },
    renameSync: (from, to) => (calls.push(`rename to ${to === path}`), fs.renameSync(from, to)),
    openSync: (p, flags) => {
      const fd = fs.openSync(p, flags);
      if (p === dir) dirFds.add(fd);
      calls.push(`open ${p === dir ? 'dir' : p}`);
      return fd;
    },
    fsyncSync: (fd) => (calls.push(`fsync ${dirFds.has(fd) ? 'dir' : fd}`), fs.fsyncSync(fd)),
    closeSync: (fd) => (calls.push(`close ${dirFds.has(fd) ? 'dir' : fd}`), fs.closeSync(fd)),
  };
  writeFileAtomic(path, te.encode('sealed bytes'), recording);
  assert.deepEqual(calls, [
    'mkdir true',
    'write tmp flush=true',
    'rename to true',
    'open dir',
    'fsync dir',
    'close dir',
  ]);
  assert.equal(readFileSync(path, 'utf8'), 'sealed bytes');
  assert.deepEqual(fs.readdirSync(dir), ['parentchain.sealed'], 'no temporary file left');
});

function encodings(b: Uint8Array): Buffer[] {
  const buf = Buffer.from(b);
  return [
    buf,
    Buffer.from(buf.toString('hex')),
    Buffer.from(buf.toString('hex').toUpperCase()),
    Buffer.from(buf.toString('base64')),
    Buffer.from(buf.toString('base64url')),
  ];
}

test('loadOrCreateKeys: same public keys after reload; key file holds no secret bytes', () => {
  const dir = tempDir();
  const first = loadOrCreateKeys(dir, Sealer.simulated(dir, measurementA));
  assert.equal(first.created, true);
  const k = first.keys;
  assert.equal(k.signingSeed.length, 32);
  assert.deepEqual(k.signingPublic, ed25519PublicFromSeed(k.signingSeed));
  assert.deepEqual(k.shieldingPublic, x25519PublicFromSecret(k.shieldingSecret));
  assert.equal(k.shieldingKeyId, 1);
  assert.equal(k.currentStateKeyId, 1);
  assert.equal(k.stateKeys.get(1)?.length, 32);
  // the signing key object matches the public key
  const msg = te.encode('hello');
  assert.ok(ed25519Verify(k.signingPublic, msg, ed25519Sign(k.signingKey, msg)));

  // reload with a new Sealer (even a new measurement: keys are sealed to the signer)
  const second = loadOrCreateKeys(dir, Sealer.simulated(dir, measurementB));
  assert.equal(second.created, false);
  assert.deepEqual(second.keys.signingPublic, k.signingPublic);
  assert.deepEqual(second.keys.shieldingPublic, k.shieldingPublic);
  assert.equal(second.keys.shieldingKeyId, k.shieldingKeyId);
  assert.deepEqual([...second.keys.stateKeys], [...k.stateKeys]);

  const file = readFileSync(join(dir, 'enclave', 'keys.sealed'));
  const secrets = [k.signingSeed, k.shieldingSecret, ...k.stateKeys.values()];
  for (const s of secrets) {
    for (const e of encodings(s)) assert.equal(file.includes(e), false, 'key file leaks a secret');
    // not even a 16-byte window of it
    assert.equal(file.includes(Buffer.from(s).subarray(0, 16)), false);
  }
  assert.equal(statSync(join(dir, 'enclave', 'keys.sealed')).mode & 0o077, 0);

  // two data dirs get different keys
  const other = tempDir();
  const third = loadOrCreateKeys(other, Sealer.simulated(other, measurementA));
  assert.notDeepEqual(third.keys.signingPublic, k.signingPublic);
  assert.notDeepEqual(third.keys.shieldingPublic, k.shieldingPublic);
});

test('loadOrCreateKeys with another platform secret fails with UNSEAL_FAILED (keys are not silently regenerated)', () => {
  const dir = tempDir();
  loadOrCreateKeys(dir, Sealer.simulated(dir, measurementA));
  const foreign = Sealer.simulated(tempDir(), measurementA);
  assert.equal(
    codeOf(() => loadOrCreateKeys(dir, foreign)),
    'UNSEAL_FAILED',
  );
});

test('the key file names its shard: another shard is refused; a file of an older version is bound on first open', () => {
  const shardX = new Uint8Array(32).fill(1);
  const shardY = new Uint8Array(32).fill(2);
  const dir = tempDir();
  const sealer = Sealer.simulated(dir, measurementA);
  const k = loadOrCreateKeys(dir, sealer, { shard: shardX }).keys;
  assert.deepEqual(k.shard, shardX);
  assert.deepEqual(loadOrCreateKeys(dir, sealer, { shard: shardX }).keys.signingPublic, k.signingPublic);
  assert.equal(
    codeOf(() => loadOrCreateKeys(dir, sealer, { shard: shardY })),
    'POLICY_SHARD_MISMATCH',
  );
  // a v3 file (before shards were policy hashes) takes the shard it is opened for, and keeps it
  const old = tempDir();
  const oldSealer = Sealer.simulated(old, measurementA);
  const seed = new Uint8Array(randomBytes(32));
  const V3 = Struct({
    version: u8,
    signingSeed: Bytes(32),
    encryptionSecret: Bytes(32),
    shieldingKeyId: u32,
    shieldingSecret: Bytes(32),
    stateKeys: Vector(Struct({ id: u32, key: Bytes(32) })),
    currentStateKeyId: u32,
    origin: u8,
    provisionedAt: u32,
  });
  const v3 = V3.enc({
    version: 3,
    signingSeed: seed,
    encryptionSecret: new Uint8Array(randomBytes(32)),
    shieldingKeyId: 1,
    shieldingSecret: new Uint8Array(randomBytes(32)),
    stateKeys: [{ id: 1, key: new Uint8Array(randomBytes(32)) }],
    currentStateKeyId: 1,
    origin: 2,
    provisionedAt: 7,
  });
  mkdirSync(join(old, 'enclave'), { recursive: true });
  writeFileSync(join(old, 'enclave', 'keys.sealed'), oldSealer.seal('signer', 'keys', v3));
  const upgraded = loadOrCreateKeys(old, oldSealer, { shard: shardY });
  assert.equal(upgraded.created, false);
  assert.deepEqual(upgraded.keys.signingPublic, ed25519PublicFromSeed(seed));
  assert.equal(upgraded.keys.secretsOrigin, 'provisioned');
  assert.equal(
    codeOf(() => loadOrCreateKeys(old, oldSealer, { shard: shardX })),
    'POLICY_SHARD_MISMATCH',
  );
});
