import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  Body,
  HEADER_BYTES,
  Header,
  SignedBlock,
  bodyRoot,
  decodeReceivedBlock,
  headerHash,
  headerSigningPayload,
} from '../../src/protocol/block.ts';
import { codeOf } from '../helpers/errors.ts';

const b32 = () => new Uint8Array(randomBytes(32));
const header: Header = {
  parentHash: b32(),
  parentSignatureHash: b32(),
  number: 77n,
  shard: b32(),
  slot: 123456789n,
  author: b32(),
  stateCommitment: b32(),
  transitionsRoot: b32(),
  parentchainNumber: 4242,
  parentchainHash: b32(),
  effectsRoot: b32(),
  timestampMs: 1_700_000_000_000n,
};
const bodies: Body[] = [
  {
    transitions: { keyId: 1, nonce: new Uint8Array(12).fill(3), ciphertext: new Uint8Array(0) },
    calls: [],
    rotation: undefined,
  },
  {
    transitions: { keyId: 9, nonce: new Uint8Array(12), ciphertext: new Uint8Array(randomBytes(70_000)) },
    calls: [b32(), b32()],
    rotation: undefined,
  },
  {
    transitions: { keyId: 5, nonce: new Uint8Array(12), ciphertext: new Uint8Array(randomBytes(100)) },
    calls: Array.from({ length: 70 }, b32),
    rotation: {
      keyId: 0xfffffff0,
      wraps: [
        { member: b32(), enc: b32(), ciphertext: new Uint8Array(48) },
        { member: b32(), enc: b32(), ciphertext: new Uint8Array(300) },
      ],
    },
  },
];

test('a received block decodes to what was encoded; its hashes are those of the re-encoded header and body', () => {
  assert.equal(Header.enc(header).length, HEADER_BYTES);
  for (const body of bodies) {
    const signature = new Uint8Array(randomBytes(64));
    const bytes = SignedBlock.enc({ header, body, signature });
    const r = decodeReceivedBlock(bytes);
    assert.deepEqual(r.block, SignedBlock.dec(bytes));
    assert.deepEqual(
      [r.hash, r.signingPayload, r.bodyRoot],
      [headerHash(header), headerSigningPayload(header), bodyRoot(body)],
    );
  }
});

test('a received block that is truncated, padded or not canonical is DECODE_FAILED', () => {
  const bytes = SignedBlock.enc({ header, body: bodies[2], signature: new Uint8Array(64) });
  assert.equal(
    codeOf(() => decodeReceivedBlock(bytes.subarray(0, bytes.length - 1))),
    'DECODE_FAILED',
  );
  assert.equal(
    codeOf(() => decodeReceivedBlock(Uint8Array.from([...bytes, 0]))),
    'DECODE_FAILED',
  );
  assert.equal(
    codeOf(() => decodeReceivedBlock(bytes.subarray(0, HEADER_BYTES + 10))),
    'DECODE_FAILED',
  );
  // The calls count (70, two-byte compact) written in the four-byte form: same value, other bytes.
  const at = HEADER_BYTES + 4 + 12 + 2 + 100;
  assert.deepEqual([bytes[at], bytes[at + 1]], [((70 << 2) | 1) & 0xff, ((70 << 2) | 1) >> 8]);
  const wide = Uint8Array.from([
    ...bytes.subarray(0, at),
    ...new Uint8Array(new Uint32Array([(70 << 2) | 2]).buffer),
    ...bytes.subarray(at + 2),
  ]);
  assert.equal(
    codeOf(() => decodeReceivedBlock(wide)),
    'DECODE_FAILED',
  );
});
