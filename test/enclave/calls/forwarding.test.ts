// Forwarded call batches: what one enclave seals, another of the shard opens, whichever way each
// call's bytes were produced; other keys, shards and tampering are refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { TrustedCall, type TrustedCall as TrustedCallT } from '../../../src/protocol/wire.ts';
import { forwardKey, openForwarded, sealForwarded, type ForwardedCall } from '../../../src/enclave/calls/forwarding.ts';

const SHARD = new Uint8Array(32).fill(7);
const key = { id: 3, key: forwardKey(new Uint8Array(randomBytes(32))) };
const keyFor = (id: number) => (id === key.id ? key.key : undefined);

const transfer = (memo?: string): TrustedCallT => ({
  tag: 'transfer',
  value: { from: randomBytes(32), to: randomBytes(32), amount: 12345678901234567890n, memo },
});
const unshield: TrustedCallT = {
  tag: 'unshield',
  value: { from: randomBytes(32), beneficiary: randomBytes(32), amount: 5n },
};

test("a batch opens to the sealed calls, with or without the calls' own bytes at hand", () => {
  const calls: ForwardedCall[] = [transfer('hi'), transfer(), unshield].map((call, i) => ({
    hash: randomBytes(32),
    nonce: 2 ** 32 - 1 - i,
    call,
  }));
  const withBytes = calls.map((c, i) => (i === 1 ? c : { ...c, callBytes: TrustedCall.enc(c.call) }));
  for (const batch of [calls, withBytes, []]) {
    const opened = openForwarded(sealForwarded(key, SHARD, batch), SHARD, keyFor);
    assert.ok(opened.ok);
    assert.deepEqual(
      opened.calls.map((c) => [
        Buffer.from(c.hash).toString('hex'),
        c.nonce,
        Buffer.from(TrustedCall.enc(c.call)).toString('hex'),
      ]),
      batch.map((c) => [
        Buffer.from(c.hash).toString('hex'),
        c.nonce,
        Buffer.from(TrustedCall.enc(c.call)).toString('hex'),
      ]),
    );
  }
});

test('another shard, an unknown key id or a flipped byte is refused with its code', () => {
  const sealed = sealForwarded(key, SHARD, [{ hash: randomBytes(32), nonce: 1, call: transfer() }]);
  assert.equal((openForwarded(sealed, new Uint8Array(32).fill(8), keyFor) as { code: string }).code, 'DECRYPT_FAILED');
  assert.equal((openForwarded(sealed, SHARD, () => undefined) as { code: string }).code, 'UNKNOWN_STATE_KEY');
  const flipped = sealed.slice();
  flipped[flipped.length - 1] ^= 1;
  assert.equal((openForwarded(flipped, SHARD, keyFor) as { code: string }).code, 'DECRYPT_FAILED');
  assert.equal((openForwarded(sealed.subarray(0, 5), SHARD, keyFor) as { code: string }).code, 'DECODE_FAILED');
});
