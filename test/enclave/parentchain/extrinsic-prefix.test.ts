// The signer and nonce the enclave reads from extrinsic bytes and signing payloads itself (the real
// runtime's bytes are checked in test/parentchain/calls.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compact } from 'scale-ts';
import { payloadNonce, readCompactU32, signedPrefix } from '../../../src/enclave/parentchain/extrinsic-prefix.ts';
import { concatBytes, hexKey } from '../../../src/protocol/bytes.ts';

const SIGNER = new Uint8Array(32).fill(0x5a);
const CALL = Uint8Array.of(0, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8);

function extrinsic(o: { nonce: number; era?: Uint8Array; signature?: number; version?: number; address?: number }) {
  const sigLength = o.signature === 2 ? 65 : 64;
  const body = concatBytes(
    Uint8Array.of(o.version ?? 0x84, o.address ?? 0),
    SIGNER,
    Uint8Array.of(o.signature ?? 0),
    new Uint8Array(sigLength).fill(0xee),
    o.era ?? Uint8Array.of(0),
    compact.enc(o.nonce),
    Uint8Array.of(0, 0), // tip 0, asset id None
    CALL,
  );
  return concatBytes(compact.enc(body.length), body);
}

const NONCES = [0, 1, 63, 64, 16_383, 16_384, 2 ** 30 - 1, 2 ** 30, 0xffff_ffff];

test('readCompactU32: every compact mode up to u32::MAX; larger or truncated encodings are refused', () => {
  for (const n of NONCES) {
    const bytes = concatBytes(Uint8Array.of(9), compact.enc(n), Uint8Array.of(9));
    assert.deepEqual(readCompactU32(bytes, 1), { value: n, next: bytes.length - 1 }, String(n));
    assert.equal(readCompactU32(bytes.subarray(0, bytes.length - 2), 1), null, `${n} truncated`);
  }
  assert.equal(readCompactU32(compact.enc(2 ** 32), 0), null, 'above u32');
  assert.equal(readCompactU32(new Uint8Array(0), 0), null);
});

test('signedPrefix: signer and nonce of signed v4 extrinsics, immortal or mortal, any signature kind', () => {
  for (const n of NONCES) {
    for (const era of [Uint8Array.of(0), Uint8Array.of(0xe5, 0x02)]) {
      for (const signature of [0, 1, 2]) {
        const p = signedPrefix(extrinsic({ nonce: n, era, signature }));
        assert.ok(p, `nonce ${n}`);
        assert.deepEqual([hexKey(p.signer), p.nonce], [hexKey(SIGNER), n]);
      }
    }
  }
});

test('signedPrefix: null for unsigned extrinsics, other versions or address kinds, and malformed bytes', () => {
  const inherent = concatBytes(compact.enc(CALL.length + 1), Uint8Array.of(4), CALL);
  assert.equal(signedPrefix(inherent), null, 'unsigned');
  assert.equal(signedPrefix(extrinsic({ nonce: 1, version: 0x85 })), null, 'v5');
  assert.equal(signedPrefix(extrinsic({ nonce: 1, address: 1 })), null, 'MultiAddress::Index');
  assert.equal(signedPrefix(extrinsic({ nonce: 1, signature: 3 })), null, 'unknown signature kind');
  const good = extrinsic({ nonce: 300 });
  assert.equal(signedPrefix(good.subarray(0, good.length - 1)), null, 'shorter than its length prefix');
  assert.equal(signedPrefix(concatBytes(good, Uint8Array.of(0))), null, 'longer than its length prefix');
  // cut inside the nonce, with a length prefix that matches: the nonce cannot be read
  const body = extrinsic({ nonce: 2 ** 20 }).subarray(2, 2 + 1 + 1 + 32 + 1 + 64 + 1 + 2);
  assert.equal(signedPrefix(concatBytes(compact.enc(body.length), body)), null, 'truncated nonce');
});

test('payloadNonce: the nonce after the call and the era of a signing payload', () => {
  for (const n of NONCES) {
    for (const era of [Uint8Array.of(0), Uint8Array.of(0xe5, 0x02)]) {
      const payload = concatBytes(CALL, era, compact.enc(n), Uint8Array.of(0, 0), new Uint8Array(72));
      assert.equal(payloadNonce(payload, CALL.length), n);
    }
  }
  assert.equal(payloadNonce(CALL, CALL.length), null, 'nothing after the call');
  assert.equal(payloadNonce(concatBytes(CALL, Uint8Array.of(0xe5, 0x02)), CALL.length), null, 'no nonce');
});
