import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { TrustedCallSigned, decodeExact } from '../../src/codec/wire.ts';
import { codeOf } from '../helpers/errors.ts';

const signed = TrustedCallSigned.enc({
  call: { tag: 'transfer', value: { from: randomBytes(32), to: randomBytes(32), amount: 5n, memo: 'hi' } },
  nonce: 3, shard: randomBytes(32), signature: randomBytes(64),
});

test('decodeExact reads a view into a larger buffer at its offset', () => {
  const big = new Uint8Array(signed.length + 20);
  big.set(signed, 7);
  const v = decodeExact(TrustedCallSigned, big.subarray(7, 7 + signed.length), 'call');
  assert.deepEqual(v, TrustedCallSigned.dec(signed));
});

test('decodeExact refuses truncated fixed-size fields, trailing bytes and non-canonical encodings', () => {
  // scale-ts alone decodes a 63-byte signature and re-encodes it identically
  assert.equal(codeOf(() => decodeExact(TrustedCallSigned, signed.slice(0, signed.length - 1), 'call')), 'DECODE_FAILED');
  assert.equal(codeOf(() => decodeExact(TrustedCallSigned, signed.slice(0, 40), 'call')), 'DECODE_FAILED');
  assert.equal(codeOf(() => decodeExact(TrustedCallSigned, new Uint8Array([...signed, 0]), 'call')), 'DECODE_FAILED');
  const optionTag = 1 + 32 + 32 + 16; // transfer tag, from, to, amount, then Option tag
  const badOption = new Uint8Array(signed);
  badOption[optionTag] = 2;
  assert.equal(codeOf(() => decodeExact(TrustedCallSigned, badOption, 'call')), 'DECODE_FAILED');
});
