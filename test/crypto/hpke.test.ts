import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CipherSuite, DhkemX25519HkdfSha256, HkdfSha256, Aes128Gcm, Aes256Gcm } from '@hpke/core';
import { createHmac } from 'node:crypto';
import { HpkeSuite } from '../../src/crypto/hpke.ts';
import { hmacSha256, x25519Generate } from '../../src/crypto/primitives.ts';

const te = new TextEncoder();
const ab = (u: Uint8Array): ArrayBuffer => u.buffer.slice(u.byteOffset, u.byteOffset + u.byteLength) as ArrayBuffer;

test('hmacSha256 matches node createHmac for short and long keys', () => {
  for (const keyLen of [0, 16, 32, 64, 65, 100]) {
    const key = new Uint8Array(keyLen).fill(7);
    const msg = te.encode('message ' + keyLen);
    assert.deepEqual(
      Buffer.from(hmacSha256(key, msg.subarray(0, 3), msg.subarray(3))),
      createHmac('sha256', key).update(msg).digest(),
    );
  }
});

for (const [aeadId, Aead] of [
  [0x0001, Aes128Gcm],
  [0x0002, Aes256Gcm],
] as const) {
  const lib = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aead() });
  const info = te.encode('validateer/test');
  const ours = new HpkeSuite(info, aeadId);

  test(`HPKE aead ${aeadId}: our seal opens with @hpke/core`, async () => {
    const kp = x25519Generate();
    const recipientKey = await lib.kem.deserializePrivateKey(ab(kp.secretKey));
    const { enc, ciphertext } = ours.seal(kp.publicKey, te.encode('hello enclave'), te.encode('aad'));
    const pt = await lib.open({ recipientKey, enc: ab(enc), info: ab(info) }, ab(ciphertext), ab(te.encode('aad')));
    assert.equal(new TextDecoder().decode(pt), 'hello enclave');
  });

  test(`HPKE aead ${aeadId}: @hpke/core seal opens with ours; tampering fails`, async () => {
    const kp = x25519Generate();
    const recipientPublicKey = await lib.kem.deserializePublicKey(ab(kp.publicKey));
    const { enc, ct } = await lib.seal({ recipientPublicKey, info: ab(info) }, ab(te.encode('from the client')));
    const opened = ours.open(kp, new Uint8Array(enc), new Uint8Array(ct));
    assert.equal(new TextDecoder().decode(opened!), 'from the client');
    const bad = new Uint8Array(ct);
    bad[0] ^= 1;
    assert.equal(ours.open(kp, new Uint8Array(enc), bad), null);
    assert.equal(ours.open(kp, new Uint8Array(31), new Uint8Array(ct)), null);
    assert.equal(ours.open(kp, new Uint8Array(32), new Uint8Array(ct)), null, 'all-zero (low order) enc is refused');
    const other = new HpkeSuite(te.encode('other info'), aeadId);
    assert.equal(other.open(kp, new Uint8Array(enc), new Uint8Array(ct)), null, 'info is bound');
  });
}
