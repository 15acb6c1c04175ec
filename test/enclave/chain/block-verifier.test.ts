// The block verifier's refusals when the host is the adversary: runs handed to importBlocks out of
// order, again, with a forged block inside or bytes that do not decode; imports during a replay; and
// a block that writes a state key epoch record nobody rotated to. Each is refused with its code and
// leaves the head where it was (or after the last good block of a run).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { EnclaveCore } from '../../../src/enclave/core.ts';
import { SignedBlock, bodyRoot, headerSigningPayload, transitionsAad } from '../../../src/protocol/block.ts';
import { aesGcmOpen, aesGcmSeal, ed25519Sign, randomNonce } from '../../../src/crypto/primitives.ts';
import { epochItem, joinItems, splitItems } from '../../../src/enclave/state/state.ts';
import { codeOf } from '../../helpers/errors.ts';
import { enclaveSet } from '../../helpers/enclave-set.ts';
import { testShard } from '../../helpers/shard.ts';

const TEST_SHARD = testShard('verifier test shard');
const SHARD = TEST_SHARD.shard;
const { openSet, close } = enclaveSet(TEST_SHARD, 'verifier');
after(close);

/** Author A (authority 0 of 2) with blocks 0..3 built and committed, and B, which imported genesis only. */
async function chainOf3() {
  const [a, b] = await openSet(2);
  const g = a.genesis([], Date.now());
  b.commit(b.importBlock(g.block, Date.now()).hash);
  const blocks: Uint8Array[] = [];
  for (const slot of [2n, 4n, 6n]) {
    const p = a.propose({ slot, timestampMs: Date.now(), maxCalls: 10 });
    a.commit(p.hash);
    blocks.push(p.block);
  }
  return { a, b, blocks };
}

const headOf = (c: EnclaveCore) => c.status().headNumber;

test('a run out of order is refused at its first block; nothing is applied', async () => {
  const { b, blocks } = await chainOf3();
  const r = await b.importBlocks([blocks[1], blocks[0], blocks[2]], Date.now());
  assert.deepEqual(r.imported, []);
  assert.equal(r.failure?.index, 0);
  assert.equal(r.failure?.code, 'BLOCK_NOT_CHILD');
  assert.equal(headOf(b), 0);
});

test('a run imported again is refused as not extending the head, which stays', async () => {
  const { b, blocks } = await chainOf3();
  const first = await b.importBlocks(blocks, Date.now());
  assert.equal(first.failure, undefined);
  assert.deepEqual(
    first.imported.map((i) => i.number),
    [1, 2, 3],
  );
  const again = await b.importBlocks(blocks, Date.now());
  assert.deepEqual(again.imported, []);
  assert.deepEqual(again.failure && [again.failure.index, again.failure.code], [0, 'BLOCK_NOT_CHILD']);
  assert.equal(headOf(b), 3);
});

test('a forged signature inside a run: the blocks before it are applied, it is refused, the rest left', async () => {
  const { b, blocks } = await chainOf3();
  const forged = SignedBlock.dec(blocks[1]);
  const signature = new Uint8Array(forged.signature);
  signature[0] ^= 1;
  const r = await b.importBlocks([blocks[0], SignedBlock.enc({ ...forged, signature }), blocks[2]], Date.now());
  assert.deepEqual(
    r.imported.map((i) => i.number),
    [1],
  );
  assert.deepEqual(r.failure && [r.failure.index, r.failure.code], [1, 'BLOCK_BAD_SIGNATURE']);
  assert.equal(headOf(b), 1);
  assert.equal(r.status.headNumber, 1, "the reply's status is the head after the run");
});

test('bytes that do not decode end the run where they are; the blocks before them are applied', async () => {
  const { b, blocks } = await chainOf3();
  const r = await b.importBlocks([blocks[0], new Uint8Array([1, 2, 3]), blocks[2]], Date.now());
  assert.deepEqual(
    r.imported.map((i) => i.number),
    [1],
  );
  assert.deepEqual(r.failure && [r.failure.index, r.failure.code], [1, 'DECODE_FAILED']);
  assert.equal(headOf(b), 1);
});

test('no import during a replay: one block or a run is refused with REPLAYING', async () => {
  const { b, blocks } = await chainOf3();
  b.beginReplay(undefined, true);
  assert.equal(
    codeOf(() => b.importBlock(blocks[0], Date.now())),
    'REPLAYING',
  );
  await assert.rejects(
    b.importBlocks(blocks, Date.now()),
    (err: Error & { code?: string }) => err.code === 'REPLAYING',
  );
});

test('a block that writes an epoch record no rotation began is refused with BLOCK_BAD_EPOCH', async () => {
  const { a, b, blocks } = await chainOf3();
  const signed = SignedBlock.dec(blocks[0]);
  const h = signed.header;
  const t = signed.body.transitions;
  // The author's own enclave re-seals block 1 with an extra epoch record and signs it: only the epoch rule is broken.
  const stateKey = (a as unknown as { keys: { stateKeys: Map<number, Uint8Array> } }).keys.stateKeys.get(t.keyId)!;
  const items = splitItems(aesGcmOpen(stateKey, t.nonce, t.ciphertext, transitionsAad(SHARD, h.number))!);
  items.push(epochItem({ epoch: 1, keyId: t.keyId, startNumber: h.number, membersHash: new Uint8Array(32) }));
  const nonce = randomNonce();
  const body = {
    ...signed.body,
    transitions: {
      keyId: t.keyId,
      nonce,
      ciphertext: aesGcmSeal(stateKey, nonce, joinItems(items), transitionsAad(SHARD, h.number)),
    },
  };
  const header = { ...h, transitionsRoot: bodyRoot(body) };
  const signingKey = (a as unknown as { keys: { signingKey: Parameters<typeof ed25519Sign>[0] } }).keys.signingKey;
  const forged = SignedBlock.enc({ header, body, signature: ed25519Sign(signingKey, headerSigningPayload(header)) });
  assert.equal(
    codeOf(() => b.importBlock(forged, Date.now())),
    'BLOCK_BAD_EPOCH',
  );
  assert.equal(headOf(b), 0);
  // The block as built imports.
  assert.equal(b.importBlock(blocks[0], Date.now()).number, 1);
});
