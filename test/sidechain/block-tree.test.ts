// BlockTree (side branches and blocks waiting for their parent, bounded), describeBlock, and the
// fork-choice rule isBetter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockTree, describeBlock, type TreeBlock } from '../../src/sidechain/block-tree.ts';
import { isBetter } from '../../src/chain/fork-choice.ts';
import { SignedBlock, headerHash } from '../../src/protocol/block.ts';
import { sha256 } from '../../src/crypto/primitives.ts';
import { codeOf } from '../helpers/errors.ts';

const ZERO32 = new Uint8Array(32);
const enc = new TextEncoder();
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** A block of branch `tag` at `number` on `parent` (hex), as a TreeBlock (built through describeBlock). */
function block(number: number, parent: string, tag: string): TreeBlock {
  const header = {
    parentHash: Buffer.from(parent, 'hex'),
    number: BigInt(number),
    shard: ZERO32,
    slot: BigInt(number * 10 + tag.length),
    author: sha256(enc.encode(tag)),
    stateCommitment: sha256(enc.encode(`${tag}${number}`)),
    transitionsRoot: ZERO32,
    parentchainNumber: 0,
    parentchainHash: ZERO32,
    effectsRoot: ZERO32,
    timestampMs: 0n,
    parentSignatureHash: ZERO32,
  };
  const bytes = SignedBlock.enc({
    header,
    body: {
      transitions: { keyId: 1, nonce: new Uint8Array(12), ciphertext: enc.encode(tag) },
      calls: [sha256(enc.encode(`call ${tag}${number}`))],
      rotation: undefined,
    },
    signature: new Uint8Array(64),
  });
  return describeBlock(bytes, `peer-${tag}`, null).block;
}

/** A branch of `length` blocks from `from` on `parent`. */
function branch(from: number, length: number, parent: string, tag: string): TreeBlock[] {
  const out: TreeBlock[] = [];
  for (let i = 0; i < length; i++) out.push(block(from + i, out.at(-1)?.hash ?? parent, tag));
  return out;
}

const hashes = (bs: TreeBlock[]): string[] => bs.map((b) => b.hash).sort();

test('describeBlock: hash, parent, number, slot, author, calls, origin', () => {
  const parent = hex(sha256(enc.encode('parent')));
  const b = block(7, parent, 'x');
  const signed = SignedBlock.dec(b.bytes);
  assert.equal(b.hash, hex(headerHash(signed.header)));
  assert.deepEqual(b.hashBytes, headerHash(signed.header));
  assert.equal(b.parent, parent);
  assert.equal(b.number, 7);
  assert.equal(b.slot, 71n);
  assert.equal(b.author, hex(sha256(enc.encode('x'))));
  assert.deepEqual(b.callHashes, [sha256(enc.encode('call x7'))]);
  assert.equal(b.from, 'peer-x');
  assert.equal(b.gossipAtMs, null);
  const d = describeBlock(b.bytes, null, 1234);
  assert.equal(d.block.from, null);
  assert.equal(d.block.gossipAtMs, 1234);
  assert.deepEqual(d.signed.header.number, 7n);
  assert.equal(
    codeOf(() => describeBlock(new Uint8Array([...b.bytes, 0]), null, null)),
    'DECODE_FAILED',
  );
  assert.equal(
    codeOf(() => describeBlock(b.bytes.subarray(0, 100), null, null)),
    'DECODE_FAILED',
  );
  // Received bytes are often views into a bigger buffer (a Buffer's slice is one too): same result.
  const inside = Buffer.concat([Buffer.from('prefix'), b.bytes, Buffer.from('suffix')]).subarray(6, 6 + b.bytes.length);
  const v = describeBlock(inside, null, null);
  assert.deepEqual([v.block.hash, v.block.number, v.block.author], [b.hash, b.number, b.author]);
  assert.deepEqual(v.signed.signature, signed.signature);
  assert.deepEqual(v.block.callHashes, b.callHashes);
});

test('add, has, get, size, leaves; adding twice is a no-op', () => {
  const tree = new BlockTree(100);
  const root = hex(sha256(enc.encode('canonical 2')));
  const a = branch(3, 3, root, 'a'); // 3,4,5 on the canonical block 2
  const b = branch(5, 2, a[1].hash, 'b'); // 5,6 forking off a4
  const orphan = block(9, hex(sha256(enc.encode('unknown 8'))), 'o'); // parent not here yet
  for (const x of [...a, ...b, orphan]) tree.add(x);
  assert.equal(tree.size, 6);
  tree.add(a[0]);
  tree.add(block(3, root, 'a')); // the same block decoded again
  assert.equal(tree.size, 6);
  for (const x of [...a, ...b, orphan]) {
    assert.ok(tree.has(x.hash));
    assert.equal(tree.get(x.hash), x);
  }
  assert.equal(tree.has(root), false);
  assert.equal(tree.get(root), undefined);
  assert.deepEqual(hashes(tree.leaves()), hashes([a[2], b[1], orphan]));

  // a block's children arriving before it: the child is a leaf, the parent is not
  const t2 = new BlockTree(10);
  const c = branch(1, 2, root, 'c');
  t2.add(c[1]);
  assert.deepEqual(hashes(t2.leaves()), hashes([c[1]]));
  t2.add(c[0]);
  assert.deepEqual(hashes(t2.leaves()), hashes([c[1]]));
});

test('delete and deleteWithDescendants', () => {
  const tree = new BlockTree(100);
  const root = hex(sha256(enc.encode('canonical 0')));
  const a = branch(1, 4, root, 'a'); // 1..4
  const b = branch(3, 2, a[1].hash, 'b'); // 3,4 on a2
  const c = branch(4, 1, b[0].hash, 'c'); // 4 on b3
  const d = branch(1, 2, root, 'd'); // another branch on the root
  for (const x of [...a, ...b, ...c, ...d]) tree.add(x);
  assert.equal(tree.size, 9);

  assert.equal(tree.delete('00'.repeat(32)), undefined);
  assert.deepEqual(tree.deleteWithDescendants('00'.repeat(32)), []);

  // removing a2 removes a3, a4, b3, b4, c4 too; a1 and the d branch stay
  const removed = tree.deleteWithDescendants(a[1].hash);
  assert.deepEqual(hashes(removed), hashes([a[1], a[2], a[3], ...b, ...c]));
  assert.equal(tree.size, 3);
  for (const x of removed) assert.equal(tree.has(x.hash), false);
  assert.deepEqual(hashes(tree.leaves()), hashes([a[0], d[1]]), 'a1 is a leaf again');

  // a removed block's descendants re-added later are just blocks with a missing parent
  tree.add(a[2]);
  assert.deepEqual(hashes(tree.leaves()), hashes([a[0], d[1], a[2]]));
  assert.deepEqual(hashes(tree.deleteWithDescendants(a[0].hash)), hashes([a[0]]), 'a3 is not linked to a1 without a2');

  // delete of one block keeps its children (parent missing), deleteWithDescendants on the rest
  assert.equal(tree.delete(d[0].hash), d[0]);
  assert.ok(tree.has(d[1].hash));
  assert.deepEqual(hashes(tree.deleteWithDescendants(d[1].hash)), hashes([d[1]]));
  tree.add(d[0]); // re-added: no stale children link to d2
  assert.deepEqual(hashes(tree.leaves()), hashes([a[2], d[0]]));
  assert.deepEqual(hashes(tree.deleteWithDescendants(d[0].hash)), hashes([d[0]]));
  assert.equal(tree.size, 1);
});

test('the limit evicts the oldest entries first', () => {
  const tree = new BlockTree(3);
  const root = hex(sha256(enc.encode('canonical 0')));
  const a = branch(1, 5, root, 'a');
  for (const x of a.slice(0, 3)) tree.add(x);
  assert.equal(tree.size, 3);
  tree.add(a[0]); // already there: nothing evicted
  assert.equal(tree.size, 3);
  assert.ok(tree.has(a[0].hash));
  tree.add(a[3]);
  assert.equal(tree.size, 3);
  assert.equal(tree.has(a[0].hash), false, 'the oldest went');
  assert.ok([a[1], a[2], a[3]].every((x) => tree.has(x.hash)));
  tree.add(a[4]);
  assert.deepEqual(hashes(a.filter((x) => tree.has(x.hash))), hashes(a.slice(2)));
  assert.deepEqual(hashes(tree.leaves()), hashes([a[4]]));
  // after an eviction the tree links stay consistent: deleting a3 takes a4 along
  assert.deepEqual(hashes(tree.deleteWithDescendants(a[3].hash)), hashes([a[3], a[4]]));
  assert.deepEqual(hashes(tree.leaves()), hashes([a[2]]));

  const one = new BlockTree(1);
  one.add(a[0]);
  one.add(a[1]);
  assert.equal(one.size, 1);
  assert.ok(one.has(a[1].hash));
});

test('isBetter: the longer chain wins, a tie goes to the lower hash, anything beats no head', () => {
  const low = new Uint8Array(32).fill(0x01);
  const high = new Uint8Array(32).fill(0x02);
  const highFirst = new Uint8Array(32);
  highFirst[0] = 0x02; // a hash that compares above `low` on the first byte only
  assert.equal(isBetter({ number: 5, hash: high }, { number: 4, hash: low }), true, 'longer, despite a higher hash');
  assert.equal(isBetter({ number: 4, hash: low }, { number: 5, hash: high }), false, 'shorter, despite a lower hash');
  assert.equal(isBetter({ number: 5, hash: low }, { number: 5, hash: high }), true);
  assert.equal(isBetter({ number: 5, hash: high }, { number: 5, hash: low }), false);
  assert.equal(isBetter({ number: 5, hash: low }, { number: 5, hash: highFirst }), true);
  assert.equal(
    isBetter({ number: 5, hash: highFirst }, { number: 5, hash: low }),
    false,
    'compared bytewise, first byte first',
  );
  assert.equal(
    isBetter({ number: 5, hash: low }, { number: 5, hash: new Uint8Array(low) }),
    false,
    'the same tip is not better than itself',
  );
  assert.equal(isBetter({ number: 0, hash: high }, null), true);
  // a strict order: of two different tips exactly one is better
  const tips = [
    { number: 3, hash: low },
    { number: 3, hash: high },
    { number: 4, hash: low },
    { number: 4, hash: high },
    { number: 4, hash: highFirst },
    { number: 10, hash: high },
  ];
  for (const x of tips) {
    for (const y of tips) {
      if (x === y) continue;
      assert.notEqual(
        isBetter(x, y),
        isBetter(y, x),
        `${x.number}/${hex(x.hash).slice(0, 2)} vs ${y.number}/${hex(y.hash).slice(0, 2)}`,
      );
    }
  }
  // the best of a set by repeated isBetter does not depend on the order
  const best = (list: typeof tips) =>
    list.reduce<(typeof tips)[number] | null>((acc, t) => (isBetter(t, acc) ? t : acc), null);
  assert.equal(best(tips), tips[5]);
  assert.equal(best([...tips].reverse()), tips[5]);
  assert.equal(best(tips.slice(0, 5)), tips[2]);
  assert.equal(best(tips.slice(0, 5).reverse()), tips[2]);
});
