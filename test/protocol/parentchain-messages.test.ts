import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeMessage,
  encodeMessage,
  isOurRemark,
  tryDecodeMessage,
  MESSAGE_MAGIC,
  MESSAGE_VERSION,
  type ParentchainMessage,
} from '../../src/protocol/parentchain-messages.ts';
import { codeOf } from '../helpers/errors.ts';

const b32 = (n: number) => new Uint8Array(32).fill(n);
const te = new TextEncoder();

const samples: ParentchainMessage[] = [
  {
    tag: 'register',
    value: {
      shard: b32(1),
      quote: Uint8Array.of(1, 2, 3, 4),
      signingKey: b32(2),
      p2pAddresses: ['/ip4/127.0.0.1/tcp/2001', '/dns/x.example/tcp/1/ws'],
      peerId: '12D3KooWpeer',
      encryptionKey: b32(3),
    },
  },
  { tag: 'unregister', value: { shard: b32(1), signingKey: b32(2) } },
  { tag: 'invoke', value: { shard: b32(3), request: new Uint8Array(300).fill(9) } },
  { tag: 'shield', value: { shard: b32(3), recipient: new Uint8Array(0) } },
  {
    tag: 'anchor',
    value: {
      shard: b32(4),
      sidechainNumber: 2n ** 63n + 5n,
      sidechainHash: b32(5),
      previousAnchor: b32(0),
      parentchainProcessed: { number: 4_000_000_000, hash: b32(6) },
      authoritySetAt: 3_999_999_999,
      votes: [
        { index: 0, signature: new Uint8Array(64).fill(7) },
        { index: 65535, signature: new Uint8Array(64).fill(8) },
      ],
    },
  },
  { tag: 'vault', value: { shard: b32(7) } },
  { tag: 'reserve', value: { shard: b32(7) } },
  { tag: 'payout', value: { shard: b32(7), withdrawal: 3n } },
  { tag: 'proxy', value: { shard: b32(7), delegate: b32(8) } },
  { tag: 'unproxy', value: { shard: b32(7), delegate: b32(8) } },
];
/** One past the last tag of the enum: no message has it. */
const UNKNOWN_TAG = 10;

test('every message kind round-trips and starts with magic + version', () => {
  assert.equal(new Set(samples.map((m) => m.tag)).size, UNKNOWN_TAG, 'a sample of every kind');
  for (const m of samples) {
    const bytes = encodeMessage(m);
    assert.deepEqual(bytes.subarray(0, 5), MESSAGE_MAGIC);
    assert.equal(bytes[5], MESSAGE_VERSION);
    assert.ok(isOurRemark(bytes));
    assert.deepEqual(decodeMessage(bytes), m);
    // a view into a larger buffer decodes the same
    const big = new Uint8Array(bytes.length + 10);
    big.set(bytes, 7);
    assert.deepEqual(decodeMessage(big.subarray(7, 7 + bytes.length)), m);
  }
});

test('foreign remarks are ignored (null), not errors', () => {
  for (const r of [
    new Uint8Array(0),
    te.encode('hello'),
    te.encode('vldt'),
    te.encode('VLDTR\x01'),
    Uint8Array.of(0x76),
  ]) {
    assert.equal(decodeMessage(r), null);
    assert.deepEqual(tryDecodeMessage(r), { message: null });
  }
});

test('our magic with bad encoding is PARENTCHAIN_MESSAGE_MALFORMED; unknown version is PARENTCHAIN_MESSAGE_VERSION', () => {
  const good = encodeMessage(samples[0]);
  const cases: Uint8Array[] = [
    MESSAGE_MAGIC, // no version
    good.subarray(0, 6), // no body
    good.subarray(0, good.length - 1), // truncated
    Uint8Array.from([...good, 0]), // trailing byte
    Uint8Array.from([...MESSAGE_MAGIC, MESSAGE_VERSION, UNKNOWN_TAG, ...b32(1), ...b32(2)]), // unknown tag
    Uint8Array.from([...MESSAGE_MAGIC, MESSAGE_VERSION, 1, ...b32(1)]), // unregister without key
  ];
  // invalid UTF-8 in peerId: replace the last peerId byte (before the 32-byte encryption key) with 0xff
  const badUtf8 = Uint8Array.from(good);
  badUtf8[badUtf8.length - 33] = 0xff;
  cases.push(badUtf8);
  for (const c of cases) {
    assert.equal(
      codeOf(() => decodeMessage(c)),
      'PARENTCHAIN_MESSAGE_MALFORMED',
      `case ${Buffer.from(c).toString('hex').slice(0, 40)}`,
    );
    assert.equal(tryDecodeMessage(c).error?.code, 'PARENTCHAIN_MESSAGE_MALFORMED');
  }
  const v2 = Uint8Array.from(good);
  v2[5] = MESSAGE_VERSION + 1;
  assert.equal(
    codeOf(() => decodeMessage(v2)),
    'PARENTCHAIN_MESSAGE_VERSION',
  );
});

test('encoding is fixed: an anchor has a stable byte layout', () => {
  const bytes = encodeMessage(samples[4]);
  // magic(5) + version(1) + tag(1) + shard(32) + u64(8) + hash(32) + prev(32) + u32(4) + hash(32) + u32(4)
  // + compact length(1) + 2 votes of u16(2) + signature(64)
  assert.equal(bytes.length, 5 + 1 + 1 + 32 + 8 + 32 + 32 + 4 + 32 + 4 + 1 + 2 * (2 + 64));
  assert.equal(bytes[6], 4);
  assert.deepEqual(bytes.subarray(39, 47), Uint8Array.of(5, 0, 0, 0, 0, 0, 0, 0x80));
  assert.deepEqual(bytes.subarray(147, 152), Uint8Array.of(0xff, 0x27, 0x6b, 0xee, 2 << 2), 'set block, 2 votes');
  assert.deepEqual(bytes.subarray(152, 154), Uint8Array.of(0, 0), 'vote index 0');
  assert.deepEqual(bytes.subarray(218, 220), Uint8Array.of(0xff, 0xff), 'vote index 65535');
});
