// BlockStore on a real classic-level database: append, ranges, and reorg (the atomic swap of the
// canonical blocks above a common ancestor, with their indexes, the head and the snapshots).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { ClassicLevel } from 'classic-level';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlockStore, type StoredBlock } from '../../src/sidechain/store.ts';
import { SignedBlock, headerHash } from '../../src/protocol/block.ts';
import { sha256 } from '../../src/crypto/primitives.ts';
import { codeOf } from '../../src/protocol/errors.ts';

const SHARD = new Uint8Array(32).fill(0x55);
const ZERO32 = new Uint8Array(32);
const enc = new TextEncoder();
// LevelDB hands back Buffers: compare bytes as hex
const hex = (b: Uint8Array | undefined): string | undefined =>
  b === undefined ? undefined : Buffer.from(b).toString('hex');
const hexes = (bs: Uint8Array[]): (string | undefined)[] => bs.map(hex);
const bytesOf = (bs: StoredBlock[]): (string | undefined)[] => bs.map((b) => hex(b.bytes));
const headOf = (s: BlockStore) => {
  const h = s.head();
  return h && { number: h.number, hash: hex(h.hash) };
};
const tip = (b: StoredBlock) => ({ number: b.number, hash: hex(b.hash) });

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'validateer-store-'));
  dirs.push(d);
  return d;
}

/** A call hash named by a label. */
const call = (label: string): Uint8Array => sha256(enc.encode(`call ${label}`));

/**
 * A decodable block (the store only decodes blocks to index them): `fork` tells apart blocks at
 * the same height on different branches.
 */
function makeBlock(number: number, parentHash: Uint8Array, fork: string, calls: Uint8Array[]): StoredBlock {
  const header = {
    parentHash,
    number: BigInt(number),
    shard: SHARD,
    slot: BigInt(number * 2 + (fork === 'main' ? 0 : 1)),
    author: sha256(enc.encode(`author ${fork}`)),
    stateCommitment: sha256(enc.encode(`state ${fork} ${number}`)),
    transitionsRoot: ZERO32,
    parentchainNumber: 0,
    parentchainHash: ZERO32,
    effectsRoot: ZERO32,
    timestampMs: 1000n * BigInt(number),
    parentSignatureHash: ZERO32,
  };
  const bytes = SignedBlock.enc({
    header,
    body: {
      transitions: { keyId: 1, nonce: new Uint8Array(12), ciphertext: enc.encode(`${fork} ${number}`) },
      calls,
      rotation: undefined,
    },
    signature: new Uint8Array(64).fill(number),
  });
  return { number, hash: headerHash(header), bytes, callHashes: calls };
}

/** Blocks `from`..`to` of branch `fork` above `parent`; block n includes call `${fork}${n}` (and any extras). */
function chain(
  from: number,
  to: number,
  parent: Uint8Array,
  fork: string,
  extra: Record<number, Uint8Array[]> = {},
): StoredBlock[] {
  const out: StoredBlock[] = [];
  for (let n = from; n <= to; n++) {
    const b = makeBlock(n, out.at(-1)?.hash ?? parent, fork, [call(`${fork}${n}`), ...(extra[n] ?? [])]);
    out.push(b);
  }
  return out;
}

async function collect(it: AsyncIterable<Uint8Array[]>): Promise<(string | undefined)[][]> {
  const out: (string | undefined)[][] = [];
  for await (const batch of it) out.push(hexes(batch));
  return out;
}

/** A store with main blocks 0..5 (block 4 also includes call 'shared') and snapshots at 2 and 4. */
async function mainStore(path = tempDir()) {
  const store = await BlockStore.open(path);
  const main = chain(0, 5, ZERO32, 'main', { 4: [call('shared')] });
  for (const b of main) await store.append(b);
  await store.putSnapshot(2, enc.encode('snap 2'), 10);
  await store.putSnapshot(4, enc.encode('snap 4'), 10);
  return { store, main, path };
}

test('append, head, lookups and ranges', async () => {
  const { store, main } = await mainStore();
  try {
    assert.deepEqual(headOf(store), { number: 5, hash: hex(main[5].hash) });
    await assert.rejects(store.append(main[5]), { code: 'STORE_NOT_NEXT' });
    await assert.rejects(store.append(makeBlock(7, main[5].hash, 'main', [])), { code: 'STORE_NOT_NEXT' });
    for (const b of main) {
      assert.equal(await store.numberOf(b.hash), b.number);
      assert.equal(await store.callBlock(call(`main${b.number}`)), b.number);
      assert.equal(hex(await store.blockByNumber(b.number)), hex(b.bytes));
    }
    assert.equal(await store.callBlock(call('shared')), 4);
    assert.equal(await store.numberOf(new Uint8Array(32).fill(9)), undefined);
    assert.equal(await store.blockByNumber(6), undefined);
    for (const b of main) assert.equal(await store.isCanonical(b.number, b.hash), true, `block ${b.number}`);
    assert.equal(await store.isCanonical(4, main[5].hash), false, 'the head under another number');
    assert.equal(await store.isCanonical(6, main[5].hash), false, 'above the head');
    const side = makeBlock(5, main[4].hash, 'side', []);
    assert.equal(await store.isCanonical(5, side.hash), false, 'a sibling of the head');

    assert.deepEqual(hexes(await store.blockRange(2, 3)), bytesOf(main.slice(2, 5)));
    assert.deepEqual(hexes(await store.blockRange(4, 10)), bytesOf(main.slice(4)), 'stops at the head');
    assert.deepEqual(await store.blockRange(6, 3), []);
    assert.deepEqual(await store.blockRange(0, 0), []);
    assert.deepEqual(await store.blockRange(0, -1), []);

    assert.deepEqual(await collect(store.blocksFrom(0, 4)), [bytesOf(main.slice(0, 4)), bytesOf(main.slice(4))]);
    assert.deepEqual(await collect(store.blocksFrom(1, 2, 4)), [bytesOf(main.slice(1, 3)), bytesOf(main.slice(3, 5))]);
    assert.deepEqual(await collect(store.blocksFrom(3, 512, 3)), [bytesOf([main[3]])]);
    assert.deepEqual(await collect(store.blocksFrom(6)), []);

    assert.deepEqual(
      (await store.snapshots()).map((s) => s.number),
      [4, 2],
      'newest first',
    );
    assert.equal(await store.newestSnapshotNumber(), 4);
  } finally {
    await store.close();
  }
});

test("reorg(2, [b3', b4']): blocks, indexes, head and snapshots above 2 are swapped; durable", async () => {
  const { store, main, path } = await mainStore();
  // the fork re-includes call 'main4' (in b3') and 'shared' (in b4'): their index must point at the fork
  const fork = chain(3, 4, main[2].hash, 'fork', { 3: [call('main4')], 4: [call('shared')] });
  let abandoned: Uint8Array[];
  try {
    abandoned = await store.reorg(2, fork);
    assert.deepEqual(hexes(abandoned), bytesOf(main.slice(3)), 'the abandoned blocks b3..b5, in order');
    assert.deepEqual(headOf(store), { number: 4, hash: hex(fork[1].hash) });
    assert.equal(await store.isCanonical(4, fork[1].hash), true, 'the new head');
    assert.equal(await store.numberOf(main[5].hash), undefined, 'the old head');
    assert.equal(await store.isCanonical(4, main[4].hash), false);
  } finally {
    await store.close();
  }

  // everything below is read back from a reopened store: the swap is durable
  const reopened = await BlockStore.open(path);
  try {
    assert.deepEqual(headOf(reopened), { number: 4, hash: hex(fork[1].hash) });
    for (const b of main.slice(0, 3)) assert.equal(await reopened.numberOf(b.hash), b.number, `main ${b.number} kept`);
    for (const b of main.slice(3))
      assert.equal(await reopened.numberOf(b.hash), undefined, `main ${b.number} no longer canonical`);
    for (const b of fork) assert.equal(await reopened.numberOf(b.hash), b.number);
    assert.equal(hex(await reopened.blockByNumber(3)), hex(fork[0].bytes));
    assert.equal(hex(await reopened.blockByNumber(4)), hex(fork[1].bytes));
    assert.equal(await reopened.blockByNumber(5), undefined, 'the old block 5 is gone');

    for (const n of [0, 1, 2]) assert.equal(await reopened.callBlock(call(`main${n}`)), n);
    assert.equal(await reopened.callBlock(call('main3')), undefined, 'only in an abandoned block');
    assert.equal(await reopened.callBlock(call('main5')), undefined, 'only in an abandoned block');
    assert.equal(await reopened.callBlock(call('main4')), 3, "abandoned in b4, included again in b3'");
    assert.equal(await reopened.callBlock(call('shared')), 4, "abandoned in b4, included again in b4'");
    assert.equal(await reopened.callBlock(call('fork3')), 3);
    assert.equal(await reopened.callBlock(call('fork4')), 4);

    assert.deepEqual(
      (await reopened.snapshots()).map((s) => [s.number, Buffer.from(s.sealed).toString()]),
      [[2, 'snap 2']],
      'the snapshot at 4 was of the abandoned chain',
    );
    assert.equal(await reopened.newestSnapshotNumber(), 2);
    assert.deepEqual(hexes(await reopened.blockRange(0, 10)), bytesOf([...main.slice(0, 3), ...fork]));
    assert.deepEqual((await collect(reopened.blocksFrom(2, 512))).flat(), bytesOf([main[2], ...fork]));

    // the chain goes on from the new head (the store checks numbers only: linkage is the enclave's job);
    // a reorg back to the old branch restores its indexes
    const next = makeBlock(5, fork[1].hash, 'fork', [call('fork5')]);
    await reopened.append(next);
    assert.deepEqual(headOf(reopened), { number: 5, hash: hex(next.hash) });
    const back = await reopened.reorg(2, main.slice(3));
    assert.deepEqual(hexes(back), bytesOf([...fork, next]));
    assert.deepEqual(headOf(reopened), { number: 5, hash: hex(main[5].hash) });
    for (const b of main) assert.equal(await reopened.numberOf(b.hash), b.number);
    for (const b of [...fork, next]) assert.equal(await reopened.numberOf(b.hash), undefined);
    assert.equal(await reopened.callBlock(call('main4')), 4);
    assert.equal(await reopened.callBlock(call('shared')), 4);
    assert.equal(await reopened.callBlock(call('fork3')), undefined);
    assert.equal(await reopened.callBlock(call('fork5')), undefined);
  } finally {
    await reopened.close();
  }
});

test('reorg to a shorter chain, to nothing above the ancestor, and at the head (an append)', async () => {
  const { store, main } = await mainStore();
  try {
    // a fork of one block above 1 replaces 2..5 (the caller decides it is better; the store just swaps)
    const fork = chain(2, 2, main[1].hash, 'short');
    assert.deepEqual(hexes(await store.reorg(1, fork)), bytesOf(main.slice(2)));
    assert.deepEqual(headOf(store), { number: 2, hash: hex(fork[0].hash) });
    assert.deepEqual(hexes(await store.blockRange(0, 10)), bytesOf([main[0], main[1], fork[0]]));
    assert.deepEqual(await store.snapshots(), [], 'snapshots at 2 and 4 are above the ancestor 1');
    assert.equal(await store.newestSnapshotNumber(), undefined);

    // no blocks: the chain is cut back to the ancestor, which becomes the head
    assert.deepEqual(hexes(await store.reorg(0, [])), bytesOf([main[1], fork[0]]));
    assert.deepEqual(headOf(store), { number: 0, hash: hex(main[0].hash) });
    assert.equal(await store.numberOf(main[1].hash), undefined);
    assert.equal(await store.callBlock(call('main1')), undefined);
    assert.deepEqual(hexes(await store.blockRange(0, 10)), bytesOf([main[0]]));

    // at the head: nothing abandoned, the blocks are appended
    const ext = chain(1, 2, main[0].hash, 'ext');
    assert.deepEqual(await store.reorg(0, ext), []);
    assert.deepEqual(headOf(store), { number: 2, hash: hex(ext[1].hash) });
    assert.equal(await store.callBlock(call('ext2')), 2);
    await store.append(makeBlock(3, ext[1].hash, 'ext', []));
    assert.equal(store.head()?.number, 3);

    // a new branch that keeps the first block above the ancestor: its indexes stay (deleted, then put)
    const ext3 = makeBlock(3, ext[1].hash, 'ext', []);
    const other4 = makeBlock(4, ext3.hash, 'other', [call('other4')]);
    assert.deepEqual(hexes(await store.reorg(2, [ext3, other4])), bytesOf([ext3]));
    assert.equal(await store.numberOf(ext3.hash), 3);
    assert.equal(await store.numberOf(other4.hash), 4);
    assert.equal(await store.callBlock(call('other4')), 4);
    assert.deepEqual(headOf(store), tip(other4));
  } finally {
    await store.close();
  }
});

test("a store of an older build's block format is refused at open (STORE_FORMAT_UNSUPPORTED), not misread", async () => {
  const { store, path } = await mainStore();
  await store.close();
  // What an older build leaves: blocks and a head, no format key ('M' 0x02).
  const db = new ClassicLevel<Uint8Array, Uint8Array>(path, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.del(Uint8Array.of(0x4d, 0x02));
  await db.close();
  await assert.rejects(BlockStore.open(path), { code: 'STORE_FORMAT_UNSUPPORTED', message: /format 1, .*format 2/ });
  await assert.rejects(BlockStore.open(path), { code: 'STORE_FORMAT_UNSUPPORTED' }, 'refused without a change');
});

test('bad reorg arguments fail STORE_BAD_REORG and change nothing', async () => {
  const empty = await BlockStore.open(tempDir());
  try {
    await assert.rejects(empty.reorg(0, []), { code: 'STORE_BAD_REORG' }, 'no chain');
    await assert.rejects(empty.reorg(-1, chain(0, 0, ZERO32, 'x')), { code: 'STORE_BAD_REORG' }, 'no chain');
    assert.equal(empty.head(), null);
  } finally {
    await empty.close();
  }

  const { store, main, path } = await mainStore();
  try {
    const cases: [string, number, StoredBlock[]][] = [
      ['ancestor above the head', 6, chain(7, 7, ZERO32, 'x')],
      ['ancestor above the head, no blocks', 9, []],
      ['first block not right above the ancestor', 2, chain(4, 5, main[3].hash, 'x')],
      ['first block at the ancestor', 2, chain(2, 3, main[1].hash, 'x')],
      ['a gap between blocks', 2, [makeBlock(3, main[2].hash, 'x', []), makeBlock(5, ZERO32, 'x', [])]],
      ['blocks out of order', 2, chain(3, 4, main[2].hash, 'x').reverse()],
    ];
    for (const [what, ancestor, blocks] of cases) {
      await assert.rejects(store.reorg(ancestor, blocks), { code: 'STORE_BAD_REORG' }, what);
      assert.deepEqual(headOf(store), { number: 5, hash: hex(main[5].hash) }, what);
    }
  } finally {
    await store.close();
  }
  const reopened = await BlockStore.open(path);
  try {
    assert.deepEqual(headOf(reopened), { number: 5, hash: hex(main[5].hash) });
    assert.deepEqual(hexes(await reopened.blockRange(0, 10)), bytesOf(main));
    for (const b of main) assert.equal(await reopened.callBlock(call(`main${b.number}`)), b.number);
    assert.deepEqual(
      (await reopened.snapshots()).map((s) => s.number),
      [4, 2],
    );
  } finally {
    await reopened.close();
  }
});

test('reorg above no ancestor (-1, replacing genesis) is refused, or leaves no snapshot of the old chain', async () => {
  const { store, main } = await mainStore();
  try {
    await assert.rejects(store.reorg(-1, []), { code: 'STORE_BAD_REORG' }, 'reorg(-1, [])');
    const other = chain(0, 1, ZERO32, 'other');
    let accepted = true;
    try {
      await store.reorg(-1, other);
    } catch (err) {
      accepted = false;
      assert.equal(codeOf(err), 'STORE_BAD_REORG');
    }
    if (accepted) {
      await store.append(makeBlock(2, other[1].hash, 'other', []));
      assert.deepEqual(await store.snapshots(), [], 'the snapshot at 2 of the abandoned chain must not resurface');
    } else {
      assert.deepEqual(headOf(store), tip(main[5]));
    }
  } finally {
    await store.close();
  }
});

test('unsynced appends (imported blocks) survive a kill -9 of the writing process, with their indexes', async () => {
  const dir = tempDir();
  const blocks = chain(0, 3, ZERO32, 'main');
  // The writer is its own process: it appends with sync false, says so, and waits to be killed.
  const writer = `
    import { BlockStore } from ${JSON.stringify(new URL('../../src/sidechain/store.ts', import.meta.url).href)};
    const blocks = ${JSON.stringify(blocks.map((b) => ({ ...b, hash: hex(b.hash), bytes: hex(b.bytes), callHashes: hexes(b.callHashes) })))};
    const h = (x) => Buffer.from(x, 'hex');
    const store = await BlockStore.open(${JSON.stringify(dir)});
    for (const b of blocks) await store.append({ ...b, hash: h(b.hash), bytes: h(b.bytes), callHashes: b.callHashes.map(h) }, { fsync: b.number === 0 });
    process.stdout.write('appended\\n');
    setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', writer], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        if (d.toString().includes('appended')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`writer exited early (${code})`)));
    });
  } finally {
    child.kill('SIGKILL');
  }
  await new Promise((r) => child.once('exit', r));
  const store = await BlockStore.open(dir);
  try {
    assert.deepEqual(headOf(store), tip(blocks[3]));
    assert.deepEqual(hexes(await store.blockRange(0, 4)), bytesOf(blocks));
    assert.equal(await store.numberOf(blocks[2].hash), 2);
    assert.equal(await store.callBlock(call('main3')), 3);
  } finally {
    await store.close();
  }
});
