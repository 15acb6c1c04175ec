// Plaintext shard state (accounts and memos) and its commitment. Only ever lives inside the enclave.
// Items and their encoding are in items.ts; the copy-on-write view a block is built in, overlay.ts.
import { LtHash, LTHASH_BYTES } from './lthash.ts';
import {
  EMPTY,
  EMPTY_SHARD,
  EPOCH_KEY,
  SHARD_KEY,
  TAG_ACCOUNT,
  TAG_WITHDRAWAL,
  accountKey,
  decodeItem,
  epochOf,
  itemKey,
  joinItems,
  mapOf,
  memoKey,
  readAccount,
  splitItems,
  withdrawalKey,
  writeCompact,
  type Account,
  type EpochRecord,
  type Item,
  type ShardRecord,
  type Withdrawal,
} from './items.ts';
import type { Memo } from '../../protocol/wire.ts';

// What state.ts exported before the split, so that its users keep one import.
export {
  StateWrite,
  TAG_EPOCH,
  accountItem,
  accountKey,
  decodeItem,
  epochItem,
  epochOf,
  joinItems,
  memoItem,
  readAccount,
  shardItem,
  splitItems,
  unpaidWithdrawalId,
  withdrawalItem,
  type Account,
  type EpochRecord,
  type Item,
  type ShardRecord,
  type Withdrawal,
} from './items.ts';
export { Overlay } from './overlay.ts';

/** Sums the LtHash of many items; the enclave passes a parallel implementation for big replays. */
export type ItemHasher = (items: Item[]) => Promise<LtHash>;
export const localHasher: ItemHasher = async (items) => {
  const lt = new LtHash();
  for (const item of items) lt.add(item);
  return lt;
};

/**
 * What a block builder knows of its items, index by index: an item's key and the value it replaces
 * (`bases[i]`, undefined for none), or an undefined key where the state must look it up itself. Each
 * key appears once in such a block (Overlay writes each account once).
 */
export interface Known {
  keys: (string | undefined)[];
  bases: (Item | undefined)[];
}

/** One block's writes; `newAccounts` counts the account keys it wrote that nothing below it held. */
interface Layer {
  items: Map<string, Item>;
  lthashBefore: LtHash;
  newAccounts: number;
}

/**
 * The shard state: item maps plus, when `layersKept` > 0, the newest blocks' writes as layers above
 * them (an in-memory snapshot a few blocks back plus the log's tail on top). Dropping layers is how a
 * shallow reorg returns to a common ancestor without a rebuild from the event log.
 */
export class State {
  readonly accounts = new Map<string, Item>();
  readonly memos = new Map<string, Item>();
  /** The shard record, the epoch record and withdrawals (few; keyed 'shard', 'epoch' and 'w:<id>'). */
  readonly records = new Map<string, Item>();
  lthash = new LtHash();
  private layers: Layer[] = [];
  /** The newest value of each key the layers wrote: a read costs two map lookups, not one per layer. */
  private newest = new Map<string, Item>();
  private readonly layersKept: number;
  private epochMemo: { item: Item; record: EpochRecord } | undefined;
  /** Snapshots being encoded: while any is, layers are not folded into the item maps (which it reads in pieces). */
  private pinned = 0;

  constructor(layersKept = 0) {
    this.layersKept = layersKept;
  }

  /** Blocks that can be rewound. */
  get depth(): number {
    return this.layers.length;
  }

  private lookup(key: string, base: Map<string, Item>): Item | undefined {
    return this.newest.get(key) ?? base.get(key);
  }

  /** Accounts with a balance record, layers included. */
  get accountCount(): number {
    let n = this.accounts.size;
    for (const l of this.layers) n += l.newAccounts;
    return n;
  }

  account(id: Uint8Array): Account {
    return this.accountAt(accountKey(id));
  }

  /** The account under its key (as the pool keeps senders). */
  accountAt(key: string): Account {
    const item = this.accountItemAt(key);
    return item ? readAccount(item) : EMPTY;
  }

  /** The account's item under its key, if it has one. */
  accountItemAt(key: string): Item | undefined {
    return this.lookup(key, this.accounts);
  }

  memo(id: Uint8Array, index: number): Memo | undefined {
    const item = this.lookup(memoKey(accountKey(id), index), this.memos);
    if (!item) return undefined;
    const w = decodeItem(item);
    return w.tag === 'memo' ? w.value.memo : undefined;
  }

  shard(): ShardRecord {
    const item = this.lookup(SHARD_KEY, this.records);
    const w = item ? decodeItem(item) : undefined;
    return w?.tag === 'shard' ? w.value : EMPTY_SHARD;
  }

  /** The current state key epoch record (undefined before the first rotation). */
  epoch(): EpochRecord | undefined {
    const item = this.lookup(EPOCH_KEY, this.records);
    if (!item) return undefined;
    // Read for every imported block; the record changes once per epoch.
    if (this.epochMemo?.item !== item) this.epochMemo = { item, record: epochOf(item)! };
    return this.epochMemo.record;
  }

  withdrawal(id: bigint): Withdrawal | undefined {
    const item = this.lookup(withdrawalKey(id), this.records);
    const w = item ? decodeItem(item) : undefined;
    return w?.tag === 'withdrawal' ? w.value : undefined;
  }

  /** Withdrawals burned here and not yet seen paid on the parentchain, oldest first. */
  unpaidWithdrawals(): Withdrawal[] {
    const out: Withdrawal[] = [];
    for (const item of this.items()) {
      if (item[0] !== TAG_WITHDRAWAL) continue;
      const w = decodeItem(item);
      if (w.tag === 'withdrawal' && !w.value.paid) out.push(w.value);
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  /** Every item of the state, layers applied (each key once, newest value). */
  private *items(): Generator<Item> {
    // The layers' newest writes, merged once: a snapshot of a big state must not look every key up in every layer.
    const newest = new Map(this.newest);
    for (const base of [this.accounts, this.memos, this.records]) {
      for (const [k, item] of base) {
        const over = newest.get(k);
        if (over) newest.delete(k);
        yield over ?? item;
      }
    }
    yield* newest.values(); // keys no base map has yet
  }

  private current(item: Item): Item | undefined {
    return this.lookup(itemKey(item), this[mapOf(item)]);
  }

  private set(item: Item): void {
    this[mapOf(item)].set(itemKey(item), item);
  }

  /** Drops the newest `blocks` layers (a reorg to an ancestor); false, and nothing changes, if fewer are kept. */
  rewind(blocks: number): boolean {
    if (blocks > this.layers.length) return false;
    if (blocks === 0) return true;
    const removed = this.layers.splice(this.layers.length - blocks, blocks);
    this.lthash = removed[0].lthashBefore;
    this.newest = new Map();
    for (const l of this.layers) for (const [k, item] of l.items) this.newest.set(k, item);
    return true;
  }

  /**
   * The commitment hash the state would have after `items`, without applying them: O(items).
   * `known`: what a block builder already read (Overlay.changes), so the big maps are not searched again.
   */
  preview(items: Item[], known?: Known): LtHash {
    // No change, same hash: an empty block shares it (nothing mutates a hash once a state holds it,
    // except the end of a replay, which runs without layers).
    if (items.length === 0) return this.lthash;
    const lt = this.lthash.clone();
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      const k = known?.keys[i];
      const old = k === undefined ? this.current(item) : known!.bases[i];
      if (old) lt.replace(old, item);
      else lt.add(item);
    }
    return lt;
  }

  /** As preview, for items nothing has read yet (an imported block); what it looked up is for apply. */
  previewKnowing(items: Item[]): { lthash: LtHash; known: Known } {
    const keys = items.map(itemKey);
    const bases = items.map((item, i) => this.lookup(keys[i], this[mapOf(item)]));
    const known = { keys, bases };
    return { lthash: this.preview(items, known), known };
  }

  /** Applies items; `lthash` is their preview (or omitted when loading items whose hash is known). */
  apply(items: Item[], lthash?: LtHash, known?: Known): void {
    if (this.layersKept > 0 && lthash) {
      const layer: Layer = { items: new Map(), lthashBefore: this.lthash, newAccounts: 0 };
      for (let i = 0; i < items.length; i++) {
        const item = items[i];
        const knownKey = known?.keys[i];
        const k = knownKey ?? itemKey(item);
        if (
          item[0] === TAG_ACCOUNT &&
          !layer.items.has(k) &&
          !(knownKey === undefined ? this.lookup(k, this.accounts) : known!.bases[i])
        )
          layer.newAccounts++;
        layer.items.set(k, item);
      }
      // forEach, not for-of: a Map's for-of allocates an entry array per item (per call, on this path).
      layer.items.forEach((item, k) => this.newest.set(k, item));
      this.layers.push(layer);
      this.foldLayers();
    } else {
      for (const item of items) this.set(item);
    }
    if (lthash) this.lthash = lthash;
  }

  /**
   * Replays many blocks' items, updating the commitment once per distinct item at the end instead of
   * once per write: replay cost follows the number of items touched, not the length of the log.
   */
  replay(): { apply(items: Item[]): void; finish(hasher?: ItemHasher): Promise<void> } {
    if (this.layers.length > 0) throw new Error('replay on a state with layers');
    // From an empty state (genesis replay) the final state is exactly what was added: no bookkeeping.
    const fromEmpty = this.accounts.size === 0 && this.memos.size === 0 && this.records.size === 0;
    const before = new Map<string, Item | null>();
    return {
      apply: (items) => {
        for (const item of items) {
          if (!fromEmpty) {
            // Account keys are 32 characters and memo keys longer, so one map holds both kinds.
            const k = itemKey(item);
            if (!before.has(k)) before.set(k, this.current(item) ?? null);
          }
          this.set(item);
        }
      },
      finish: async (hasher = localHasher) => {
        if (fromEmpty) {
          this.lthash = await hasher([...this.accounts.values(), ...this.memos.values(), ...this.records.values()]);
          return;
        }
        const removed: Item[] = [];
        const added: Item[] = [];
        for (const [k, old] of before) {
          if (old) removed.push(old);
          added.push((this.accounts.get(k) ?? this.memos.get(k) ?? this.records.get(k))!);
        }
        const [plus, minus] = await Promise.all([hasher(added), hasher(removed)]);
        this.lthash.addSum(plus);
        this.lthash.subSum(minus);
      },
    };
  }

  commitment(): Uint8Array {
    return this.lthash.digest();
  }

  private foldLayers(): void {
    if (this.pinned > 0) return;
    while (this.layers.length > this.layersKept) {
      this.layers.shift()!.items.forEach((item, k) => {
        this[mapOf(item)].set(k, item); // the layer's key: no need to derive it again
        // Still the newest value: the item maps hold it now.
        if (this.newest.get(k) === item) this.newest.delete(k);
      });
    }
  }

  /** Snapshot encoding: the lthash then every item (as a Vector(StateWrite)), so loading needs no hashing. */
  encodeSnapshot(): Uint8Array {
    return Buffer.concat([this.lthash.bytes(), joinItems([...this.items()])]);
  }

  /**
   * The same encoding, of the state as it is now, read in pieces with `pause()` between them so the
   * thread can go on applying blocks: the item maps stay as they are meanwhile (new blocks stay in
   * layers), and the layers of now are the ones read. Returned as parts to be written one after the
   * other (joined, they are encodeSnapshot()): one big copy of a large state would hold the thread up.
   */
  async encodeSnapshotInPieces(pause: () => Promise<void>, piece = 8192): Promise<Uint8Array[]> {
    this.pinned++;
    try {
      const parts: Uint8Array[] = [this.lthash.bytes(), new Uint8Array(0)]; // [1]: the item count, known at the end
      let items: Item[] = [];
      let count = 0;
      // items() captures the layers of now on its first step, before any pause.
      for (const item of this.items()) {
        items.push(item);
        if (items.length === piece) {
          parts.push(Buffer.concat(items));
          count += items.length;
          items = [];
          await pause();
        }
      }
      parts.push(Buffer.concat(items));
      parts[1] = writeCompact(count + items.length);
      return parts;
    } finally {
      this.pinned--;
      this.foldLayers();
    }
  }

  static fromSnapshot(bytes: Uint8Array, layersKept = 0): State {
    if (bytes.length < LTHASH_BYTES + 1) throw new RangeError('snapshot too short');
    const state = new State(layersKept);
    state.apply(splitItems(bytes.subarray(LTHASH_BYTES)));
    state.lthash = new LtHash(bytes.subarray(0, LTHASH_BYTES));
    return state;
  }
}
