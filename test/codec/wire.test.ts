import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { TrustedCallSigned, decodeAuthenticated, decodeExact, fromHex, parseHex } from '../../src/codec/wire.ts';
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

test('decodeAuthenticated (enclave-written bytes) decodes views at any offset, and fails with DECODE_FAILED on garbage', () => {
  const big = new Uint8Array(signed.length + 20);
  big.set(signed, 7);
  assert.deepEqual(decodeAuthenticated(TrustedCallSigned, big.subarray(7, 7 + signed.length), 'call'), TrustedCallSigned.dec(signed));
  assert.deepEqual(decodeAuthenticated(TrustedCallSigned, new Uint8Array(signed), 'call'), TrustedCallSigned.dec(signed));
  const badTag = new Uint8Array(signed);
  badTag[0] = 9; // no such call variant
  assert.equal(codeOf(() => decodeAuthenticated(TrustedCallSigned, badTag, 'call')), 'DECODE_FAILED');
});

test('parseHex / fromHex: even hex digits only, with or without 0x', () => {
  assert.deepEqual(fromHex('0x00ff10'), Uint8Array.of(0, 255, 16));
  assert.deepEqual(fromHex('00FF'), Uint8Array.of(0, 255));
  assert.deepEqual(fromHex('0x'), new Uint8Array(0));
  for (const bad of ['0x0', '0xzz', '0x00zz00', '0x0g', 'x00', '0x00 ']) {
    assert.equal(parseHex(bad.startsWith('0x') ? bad.slice(2) : bad), null, bad);
    assert.throws(() => fromHex(bad), TypeError, bad);
  }
});
