import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Bytes, Struct, Vector, u32 } from 'scale-ts';
import {
  TrustedCall,
  TrustedCallSigned,
  TrustedCallView,
  decodeAuthenticated,
  decodeExact,
  headBeforeLastBytes,
} from '../../src/protocol/wire.ts';
import { codeOf } from '../helpers/errors.ts';
import { fromHex, parseHex } from '../../src/protocol/bytes.ts';

const signed = TrustedCallSigned.enc({
  call: { tag: 'transfer', value: { from: randomBytes(32), to: randomBytes(32), amount: 5n, memo: 'hi' } },
  nonce: 3,
  shard: randomBytes(32),
  signature: randomBytes(64),
});

test('decodeExact reads a view into a larger buffer at its offset', () => {
  const big = new Uint8Array(signed.length + 20);
  big.set(signed, 7);
  const v = decodeExact(TrustedCallSigned, big.subarray(7, 7 + signed.length), 'call');
  assert.deepEqual(v, TrustedCallSigned.dec(signed));
});

test('decodeExact refuses truncated fixed-size fields, trailing bytes and non-canonical encodings', () => {
  // scale-ts alone decodes a 63-byte signature and re-encodes it identically
  assert.equal(
    codeOf(() => decodeExact(TrustedCallSigned, signed.slice(0, signed.length - 1), 'call')),
    'DECODE_FAILED',
  );
  assert.equal(
    codeOf(() => decodeExact(TrustedCallSigned, signed.slice(0, 40), 'call')),
    'DECODE_FAILED',
  );
  assert.equal(
    codeOf(() => decodeExact(TrustedCallSigned, new Uint8Array([...signed, 0]), 'call')),
    'DECODE_FAILED',
  );
  const optionTag = 1 + 32 + 32 + 16; // transfer tag, from, to, amount, then Option tag
  const badOption = new Uint8Array(signed);
  badOption[optionTag] = 2;
  assert.equal(
    codeOf(() => decodeExact(TrustedCallSigned, badOption, 'call')),
    'DECODE_FAILED',
  );
});

test('decodeAuthenticated (enclave-written bytes) decodes views at any offset, and fails with DECODE_FAILED on garbage', () => {
  const big = new Uint8Array(signed.length + 20);
  big.set(signed, 7);
  assert.deepEqual(
    decodeAuthenticated(TrustedCallSigned, big.subarray(7, 7 + signed.length), 'call'),
    TrustedCallSigned.dec(signed),
  );
  assert.deepEqual(
    decodeAuthenticated(TrustedCallSigned, new Uint8Array(signed), 'call'),
    TrustedCallSigned.dec(signed),
  );
  const badTag = new Uint8Array(signed);
  badTag[0] = 9; // no such call variant
  assert.equal(
    codeOf(() => decodeAuthenticated(TrustedCallSigned, badTag, 'call')),
    'DECODE_FAILED',
  );
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

test('TrustedCallView decodes what TrustedCall does, its account ids as views into the input; past the end throws', () => {
  const calls = [
    {
      tag: 'transfer' as const,
      value: { from: randomBytes(32), to: randomBytes(32), amount: 2n ** 100n, memo: 'memo' },
    },
    { tag: 'unshield' as const, value: { from: randomBytes(32), beneficiary: randomBytes(32), amount: 9n } },
  ];
  const bytes = Vector(TrustedCall).enc(calls);
  assert.deepEqual(Vector(TrustedCallView).enc(calls), bytes, 'one encoding');
  // Inside a larger buffer, as an opened batch can be: decodeAuthenticated copies it out first.
  const big = new Uint8Array(bytes.length + 9);
  big.set(bytes, 5);
  const decoded = decodeAuthenticated(Vector(TrustedCallView), big.subarray(5, 5 + bytes.length), 'calls');
  assert.deepEqual(Vector(TrustedCall).enc(decoded), bytes);
  assert.deepEqual(
    decoded.map((c) => c.tag),
    ['transfer', 'unshield'],
  );
  assert.ok(
    Buffer.from(decoded[0].value.from).equals(calls[0].value.from) &&
      Buffer.from(decoded[1].value.from).equals(calls[1].value.from),
  );
  const from = decoded[0].value.from;
  assert.equal(from.buffer, decoded[1].value.from.buffer, 'views into one buffer, not copies');
  assert.equal(from.length, 32);
  assert.throws(() => Vector(TrustedCallView).dec(bytes.slice(0, 20)));
});

test("headBeforeLastBytes: the head, then the last Bytes() field's content in parts, is the struct's encoding", () => {
  const S = Struct({ id: u32, tag: Bytes(3), content: Bytes() });
  for (const length of [0, 1, 63, 64, 16_383, 16_384, 70_000]) {
    const content = new Uint8Array(randomBytes(length));
    const head = headBeforeLastBytes(
      S.enc({ id: 7, tag: new Uint8Array([1, 2, 3]), content: new Uint8Array(0) }),
      length,
    );
    const parts = [head, content.subarray(0, length >> 1), content.subarray(length >> 1)];
    assert.deepEqual(
      Buffer.concat(parts),
      Buffer.from(S.enc({ id: 7, tag: new Uint8Array([1, 2, 3]), content })),
      `content of ${length} bytes`,
    );
  }
  assert.throws(
    () => headBeforeLastBytes(S.enc({ id: 7, tag: new Uint8Array(3), content: new Uint8Array([9]) }), 1),
    RangeError,
  );
});
