// The block store and event log on LevelDB (classic-level). Buckets are one-byte key prefixes with
// big-endian numbers, so ranges iterate in chain order. A block, its indexes and the head pointer are
// written in one atomic batch: a kill -9 leaves either all of them or none. The batch is synced to disk
// unless the caller says the block has another durable home (see append).
import { ClassicLevel } from 'classic-level';
import { ValidateerError } from '../protocol/errors.ts';
import { decodeExact } from '../protocol/wire.ts';
import { SignedBlock, headerHash } from '../protocol/block.ts';
import { bytesView } from '../protocol/bytes.ts';

function blockIndexes(bytes: Uint8Array): { hash: Uint8Array; callHashes: Uint8Array[] } {
  const b = decodeExact(SignedBlock, bytes, 'stored block');
  return { hash: headerHash(b.header), callHashes: b.body.calls };
}

const BLOCK = 0x42; // 'B' + u64 number -> signed block bytes (canonical chain: the event log)
const HASH = 0x48; // 'H' + block hash -> u64 number
const CALL = 0x43; // 'C' + call hash -> u64 block number
const SNAPSHOT = 0x53; // 'S' + u64 number -> sealed snapshot
const META_HEAD = Uint8Array.of(0x4d, 0x01); // 'M' head -> u64 number ++ hash
const META_FORMAT = Uint8Array.of(0x4d, 0x02); // 'M' block format -> u8
/**
 * The block format this store holds, written when it is created: 2 = headers with effectsRoot. A store of blocks in
 * another format (1: an older build's, which never wrote this key) is refused at open rather than misread.
 */
const BLOCK_FORMAT = 2;

function key(bucket: number, suffix: Uint8Array): Uint8Array {
  const k = new Uint8Array(1 + suffix.length);
  k[0] = bucket;
  k.set(suffix, 1);
  return k;
}
function u64be(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n));
  return b;
}
function readU64(b: Uint8Array, offset = 0): number {
  return Number(new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(offset));
}

export interface Head {
  number: number;
  hash: Uint8Array;
}
export interface StoredBlock {
  number: number;
  hash: Uint8Array;
  bytes: Uint8Array;
  callHashes: Uint8Array[];
}

export class BlockStore {
  private readonly db: ClassicLevel<Uint8Array, Uint8Array>;
  private headCache: Head | null = null;

  private constructor(db: ClassicLevel<Uint8Array, Uint8Array>) {
    this.db = db;
  }

  static async open(path: string): Promise<BlockStore> {
    // No compression: the payloads are ciphertext, and plaintext scans of the files stay meaningful.
    const db = new ClassicLevel<Uint8Array, Uint8Array>(path, {
      keyEncoding: 'view',
      valueEncoding: 'view',
      compression: false,
    });
    try {
      await db.open();
    } catch (err) {
      throw new ValidateerError(
        'STORE_OPEN_FAILED',
        `cannot open block store at ${path}: ${(err as Error).cause ?? (err as Error).message}`,
      );
    }
    const store = new BlockStore(db);
    const head = await db.get(META_HEAD);
    const format = await db.get(META_FORMAT);
    if (head && format?.[0] !== BLOCK_FORMAT) {
      await db.close();
      throw new ValidateerError(
        'STORE_FORMAT_UNSUPPORTED',
        `the block store at ${path} holds blocks of format ${format?.[0] ?? 1}, this build reads format ` +
          `${BLOCK_FORMAT}: remove the data directory and sync again`,
      );
    }
    if (!format) await db.put(META_FORMAT, Uint8Array.of(BLOCK_FORMAT), { sync: true });
    if (head) store.headCache = { number: readU64(head), hash: head.slice(8) };
    return store;
  }

  head(): Head | null {
    return this.headCache;
  }

  /**
   * Appends the next canonical block; only the successor of the head is accepted. fsync: false for a
   * block imported from its author, which wrote it synced before it published it: the write
   * is in the OS once this resolves (a kill -9 keeps it), and a power cut can only shorten the log,
   * which the node fetches again from the set. It keeps an fsync off every import's path.
   */
  async append(b: StoredBlock, opts: { fsync: boolean } = { fsync: true }): Promise<void> {
    const expected = this.headCache ? this.headCache.number + 1 : 0;
    if (b.number !== expected)
      throw new ValidateerError('STORE_NOT_NEXT', `block ${b.number} is not the next block (${expected})`);
    const n = u64be(b.number);
    const batch = this.db
      .batch()
      .put(key(BLOCK, n), b.bytes)
      .put(key(HASH, b.hash), n)
      .put(META_HEAD, new Uint8Array([...n, ...b.hash]));
    for (const c of b.callHashes) batch.put(key(CALL, c), n);
    await batch.write({ sync: opts.fsync });
    this.headCache = { number: b.number, hash: b.hash };
  }

  /** Appends consecutive successors of the head in one atomic batch (onboarding sync). */
  async appendMany(blocks: StoredBlock[]): Promise<void> {
    if (blocks.length === 0) return;
    const head = this.headCache;
    if (!head) {
      await this.append(blocks[0]);
      await this.appendMany(blocks.slice(1));
      return;
    }
    await this.reorg(head.number, blocks);
  }

  /**
   * Replaces the canonical blocks above `ancestor` with `blocks` (its descendants, in order) in one
   * atomic, synced batch, with their indexes and the head; snapshots above the ancestor go too.
   * Returns the replaced blocks' bytes.
   */
  async reorg(ancestor: number, blocks: StoredBlock[]): Promise<Uint8Array[]> {
    const head = this.headCache;
    // Block 0 is never replaced: a set has one genesis (and -1 would wrap in the key encoding).
    if (!head || !Number.isInteger(ancestor) || ancestor < 0 || ancestor > head.number)
      throw new ValidateerError('STORE_BAD_REORG', `ancestor ${ancestor} is not in the chain`);
    blocks.forEach((b, i) => {
      if (b.number !== ancestor + 1 + i)
        throw new ValidateerError('STORE_BAD_REORG', `block ${b.number} is not at height ${ancestor + 1 + i}`);
    });
    const batch = this.db.batch();
    const abandoned: Uint8Array[] = [];
    for (let n = ancestor + 1; n <= head.number; n++) {
      const bytes = await this.blockByNumber(n);
      if (!bytes) continue;
      abandoned.push(bytes);
      const { hash, callHashes } = blockIndexes(bytes);
      batch.del(key(BLOCK, u64be(n))).del(key(HASH, hash));
      for (const c of callHashes) batch.del(key(CALL, c));
    }
    for await (const k of this.db.keys({
      gt: key(SNAPSHOT, u64be(ancestor)),
      lt: key(SNAPSHOT + 1, new Uint8Array(0)),
    }))
      batch.del(k);
    for (const b of blocks) {
      const n = u64be(b.number);
      batch.put(key(BLOCK, n), b.bytes).put(key(HASH, b.hash), n);
      for (const c of b.callHashes) batch.put(key(CALL, c), n);
    }
    const last = blocks.at(-1);
    const newHead = last
      ? { number: last.number, hash: last.hash }
      : { number: ancestor, hash: (await this.hashAt(ancestor))! };
    batch.put(META_HEAD, new Uint8Array([...u64be(newHead.number), ...newHead.hash]));
    await batch.write({ sync: true });
    this.headCache = newHead;
    return abandoned;
  }

  /** Canonical blocks from..from+count-1, stopping at the first missing one. */
  async blockRange(from: number, count: number): Promise<Uint8Array[]> {
    const out: Uint8Array[] = [];
    if (count <= 0) return out;
    for await (const value of this.db.values({ gte: key(BLOCK, u64be(from)), lt: key(BLOCK, u64be(from + count)) }))
      out.push(value);
    return out;
  }

  /** Hash of the canonical block at `n`, if stored. */
  async hashAt(n: number): Promise<Uint8Array | undefined> {
    const bytes = await this.blockByNumber(n);
    return bytes ? blockIndexes(bytes).hash : undefined;
  }

  async blockByNumber(n: number): Promise<Uint8Array | undefined> {
    return this.db.get(key(BLOCK, u64be(n)));
  }

  async numberOf(hash: Uint8Array): Promise<number | undefined> {
    // The head is asked for on every import (the parent of the next block): no read for it.
    const head = this.headCache;
    if (head && bytesView(head.hash).equals(hash)) return head.number;
    const v = await this.db.get(key(HASH, hash));
    return v ? readU64(v) : undefined;
  }

  /** Whether block `number` with `hash` is canonical; a block above the head costs no read. */
  async isCanonical(number: number, hash: Uint8Array): Promise<boolean> {
    if (number > (this.headCache?.number ?? -1)) return false;
    return (await this.numberOf(hash)) === number;
  }

  /** The block number that included a call, if any. */
  async callBlock(callHash: Uint8Array): Promise<number | undefined> {
    const v = await this.db.get(key(CALL, callHash));
    return v ? readU64(v) : undefined;
  }

  /**
   * Canonical blocks from `from` (inclusive), in chain order, in batches of at most `batchSize` blocks
   * and about `maxBytes` (full blocks are ~200 KiB: a count alone would let a batch reach 100 MiB).
   */
  async *blocksFrom(from: number, batchSize = 512, to?: number, maxBytes = 4 << 20): AsyncGenerator<Uint8Array[]> {
    let batch: Uint8Array[] = [];
    let bytes = 0;
    const end = to === undefined ? key(BLOCK + 1, new Uint8Array(0)) : key(BLOCK, u64be(to + 1));
    for await (const value of this.db.values({ gte: key(BLOCK, u64be(from)), lt: end })) {
      batch.push(value);
      bytes += value.length;
      if (batch.length >= batchSize || bytes >= maxBytes) {
        yield batch;
        batch = [];
        bytes = 0;
      }
    }
    if (batch.length > 0) yield batch;
  }

  async putSnapshot(number: number, sealed: Uint8Array, keep: number): Promise<void> {
    await this.db.put(key(SNAPSHOT, u64be(number)), sealed, { sync: true });
    const numbers: number[] = [];
    for await (const k of this.db.keys({
      gte: key(SNAPSHOT, new Uint8Array(0)),
      lt: key(SNAPSHOT + 1, new Uint8Array(0)),
      reverse: true,
    }))
      numbers.push(readU64(k, 1));
    const stale = numbers.slice(keep);
    if (stale.length > 0)
      await this.db.batch(stale.map((s) => ({ type: 'del' as const, key: key(SNAPSHOT, u64be(s)) })));
  }

  /** Newest snapshots first, at or below the head. */
  async snapshots(): Promise<{ number: number; sealed: Uint8Array }[]> {
    const out: { number: number; sealed: Uint8Array }[] = [];
    const head = this.headCache?.number ?? -1;
    for await (const [k, v] of this.db.iterator({
      gte: key(SNAPSHOT, new Uint8Array(0)),
      lt: key(SNAPSHOT + 1, new Uint8Array(0)),
      reverse: true,
    })) {
      const n = readU64(k, 1);
      if (n <= head) out.push({ number: n, sealed: v });
    }
    return out;
  }

  /** Number of the newest snapshot at or below the head (keys only: the sealed states are not read). */
  async newestSnapshotNumber(): Promise<number | undefined> {
    const head = this.headCache?.number ?? -1;
    for await (const k of this.db.keys({
      gte: key(SNAPSHOT, new Uint8Array(0)),
      lte: key(SNAPSHOT, u64be(Math.max(0, head))),
      reverse: true,
      limit: 1,
    }))
      return readU64(k, 1);
    return undefined;
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
