// Plaintext shard state (accounts and memos) and its commitment. Only ever lives inside the enclave.
// A state item is kept as its SCALE encoding (a StateWrite: the full value of one account or memo).
// The same bytes are the element of the LtHash commitment, the entry of a block's transitions and
// the entry of a snapshot, so replay slices decrypted transitions into items and never re-encodes.
import { Bytes, Enum, Struct, bool, u32, u64, u128 } from 'scale-ts';
import { AccountId, Memo, decodeExact } from '../../protocol/wire.ts';
import { LtHash, LTHASH_BYTES } from './lthash.ts';
import { bytesView } from '../../protocol/bytes.ts';

export interface Account { balance: bigint; nonce: number; memoCount: number }
export interface ShardRecord { shieldedSupply: bigint; nextWithdrawal: bigint }
export interface Withdrawal { id: bigint; from: Uint8Array; beneficiary: Uint8Array; amount: bigint; paid: boolean }
/** The state key epoch: its key id, the block that began it, and the hash of the members it was sealed to (key-rotation.ts). */
export interface EpochRecord { epoch: number; keyId: number; startNumber: bigint; membersHash: Uint8Array }
export const StateWrite = Enum({
  account: Struct({ id: AccountId, balance: u128, nonce: u32, memoCount: u32 }),
  memo: Struct({ id: AccountId, index: u32, memo: Memo }),
  /** The one shard-wide record: funds shielded from the parentchain and not yet unshielded, and the next withdrawal id. */
  shard: Struct({ shieldedSupply: u128, nextWithdrawal: u64 }),
  /** An unshield: burned here, paid from the vault on the parentchain (paid once the payout is seen there). */
  withdrawal: Struct({ id: u64, from: AccountId, beneficiary: AccountId, amount: u128, paid: bool }),
  /** The current state key epoch; absent until the first rotation (epoch 0: the key of genesis). */
  epoch: Struct({ epoch: u32, keyId: u32, startNumber: u64, membersHash: Bytes(32) }),
});
export type StateWrite = ReturnType<typeof StateWrite.dec>;
/** One state item: the SCALE encoding of a StateWrite. */
export type Item = Uint8Array;

const TAG_ACCOUNT = 0;
const TAG_MEMO = 1;
const TAG_SHARD = 2;
const TAG_WITHDRAWAL = 3;
export const TAG_EPOCH = 4;
const ACCOUNT_ITEM_BYTES = 57; // tag, id 32, balance u128, nonce u32, memoCount u32
const MEMO_FIXED_BYTES = 85; // tag, id 32, index u32, from 32, amount u128 (then text, block u64)
const FIXED_BYTES: Record<number, number> = { [TAG_ACCOUNT]: ACCOUNT_ITEM_BYTES, [TAG_SHARD]: 25, [TAG_WITHDRAWAL]: 90, [TAG_EPOCH]: 49 };
const SHARD_KEY = 'shard';
const EPOCH_KEY = 'epoch';
const EMPTY_SHARD: ShardRecord = Object.freeze({ shieldedSupply: 0n, nextWithdrawal: 0n });
const U64 = (1n << 64n) - 1n;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

const EMPTY: Account = Object.freeze({ balance: 0n, nonce: 0, memoCount: 0 });
/** An account's map key: its 32 bytes as a latin1 string (half the length of hex, and no hex encoding per read). */
export const accountKey = (id: Uint8Array): string => bytesView(id).toString('latin1');
const memoKey = (id: string, index: number): string => `${id}:${index}`; // an id key is 32 characters: unambiguous

export function accountItem(id: Uint8Array, a: Account): Item {
  const b = Buffer.allocUnsafe(ACCOUNT_ITEM_BYTES);
  b[0] = TAG_ACCOUNT;
  b.set(id, 1);
  // Balances above 2^53 are legal (u128) but rare: the common case goes through a double, exact
  // below 2^53, with no intermediate BigInts (this runs for every account a block writes).
  if (a.balance <= MAX_SAFE) {
    const n = Number(a.balance);
    b.writeUInt32LE(n % 0x1_0000_0000, 33);
    b.writeUInt32LE(Math.floor(n / 0x1_0000_0000), 37);
    b.writeUInt32LE(0, 41);
    b.writeUInt32LE(0, 45);
  } else {
    b.writeBigUInt64LE(a.balance & U64, 33);
    b.writeBigUInt64LE(a.balance >> 64n, 41);
  }
  b.writeUInt32LE(a.nonce, 49);
  b.writeUInt32LE(a.memoCount, 53);
  return b;
}

export function readAccount(item: Item): Account {
  const b = bytesView(item);
  const lo = b.readUInt32LE(33), mid = b.readUInt32LE(37);
  // Below 2^53 (as accountItem writes it): one BigInt from an exact double.
  const small = mid < 0x20_0000 && b.readUInt32LE(41) === 0 && b.readUInt32LE(45) === 0;
  const balance = small ? BigInt(lo + mid * 0x1_0000_0000) : b.readBigUInt64LE(33) | (b.readBigUInt64LE(41) << 64n);
  return { balance, nonce: b.readUInt32LE(49), memoCount: b.readUInt32LE(53) };
}

export function memoItem(id: Uint8Array, index: number, memo: Memo): Item {
  return StateWrite.enc({ tag: 'memo', value: { id, index, memo } });
}

export function shardItem(r: ShardRecord): Item {
  return StateWrite.enc({ tag: 'shard', value: r });
}

export function withdrawalItem(w: Withdrawal): Item {
  return StateWrite.enc({ tag: 'withdrawal', value: w });
}

export function epochItem(e: EpochRecord): Item {
  return StateWrite.enc({ tag: 'epoch', value: e });
}

/** The epoch record an item writes, if it is one. */
export function epochOf(item: Item): EpochRecord | undefined {
  if (item[0] !== TAG_EPOCH) return undefined;
  const w = decodeItem(item);
  return w.tag === 'epoch' ? w.value : undefined;
}

/** The id of the withdrawal an item writes unpaid (its creation), if it is one. */
export function unpaidWithdrawalId(item: Item): bigint | undefined {
  if (item[0] !== TAG_WITHDRAWAL || item[item.length - 1] !== 0) return undefined;
  return bytesView(item).readBigUInt64LE(1);
}

/** Decodes any item (tests, snapshot inspection); hot paths read accounts with readAccount. */
export function decodeItem(item: Item): StateWrite {
  return decodeExact(StateWrite, item, 'state item');
}

/** Accounts, memos and shard records (the shard record and withdrawals) live in separate maps. */
const mapOf = (item: Item): 'accounts' | 'memos' | 'records' => (item[0] === TAG_ACCOUNT ? 'accounts' : item[0] === TAG_MEMO ? 'memos' : 'records');
const withdrawalKey = (id: bigint): string => `w:${id}`;
function itemKey(item: Item): string {
  const b = bytesView(item);
  if (item[0] === TAG_SHARD) return SHARD_KEY;
  if (item[0] === TAG_EPOCH) return EPOCH_KEY;
  if (item[0] === TAG_WITHDRAWAL) return withdrawalKey(b.readBigUInt64LE(1));
  const id = b.toString('latin1', 1, 33);
  return item[0] === TAG_ACCOUNT ? id : memoKey(id, b.readUInt32LE(33));
}

/** SCALE compact length prefix (the modes a length below 2^30 can use). */
function readCompact(b: Buffer, at: number): [value: number, size: number] {
  const mode = b[at] & 3;
  if (mode === 0) return [b[at] >> 2, 1];
  if (mode === 1) return [b.readUInt16LE(at) >> 2, 2];
  if (mode === 2) return [b.readUInt32LE(at) >>> 2, 4];
  throw new RangeError('compact length too large');
}

function writeCompact(n: number): Buffer {
  if (n < 1 << 6) return Buffer.from([n << 2]);
  if (n < 1 << 14) { const b = Buffer.allocUnsafe(2); b.writeUInt16LE((n << 2) | 1); return b; }
  if (n < 1 << 30) { const b = Buffer.allocUnsafe(4); b.writeUInt32LE(((n << 2) | 2) >>> 0); return b; }
  throw new RangeError('too many items');
}

/** Encodes items as a Vector(StateWrite): the plaintext of a block's transitions. */
export function joinItems(items: Item[]): Uint8Array {
  return Buffer.concat([writeCompact(items.length), ...items]);
}

/**
 * Splits a Vector(StateWrite) into items without decoding them. Items are copied out, so the state
 * never pins a whole block's plaintext. Throws RangeError on anything that is not well formed.
 */
export function splitItems(bytes: Uint8Array): Item[] {
  const b = bytesView(bytes);
  if (b.length === 0) throw new RangeError('empty transitions');
  const [count, size] = readCompact(b, 0);
  const items: Item[] = new Array(count);
  let at = size;
  for (let i = 0; i < count; i++) {
    let len = FIXED_BYTES[b[at]];
    if (len === undefined && b[at] === TAG_MEMO) {
      if (at + MEMO_FIXED_BYTES >= b.length) throw new RangeError('truncated memo item');
      const [textLen, s] = readCompact(b, at + MEMO_FIXED_BYTES);
      len = MEMO_FIXED_BYTES + s + textLen + 8;
    } else if (len === undefined) throw new RangeError(`unknown item tag ${b[at]}`);
    if (at + len > b.length) throw new RangeError('truncated item');
    items[i] = Buffer.from(b.subarray(at, at + len));
    at += len;
  }
  if (at !== b.length) throw new RangeError('trailing bytes after transitions');
  return items;
}

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
export interface Known { keys: (string | undefined)[]; bases: (Item | undefined)[] }

/** One block's writes; `newAccounts` counts the account keys it wrote that nothing below it held. */
interface Layer { items: Map<string, Item>; lthashBefore: LtHash; newAccounts: number }

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
        if (item[0] === TAG_ACCOUNT && !layer.items.has(k) && !(knownKey === undefined ? this.lookup(k, this.accounts) : known!.bases[i])) layer.newAccounts++;
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

/**
 * Copy-on-write view used while building a block: reads fall through to the state, writes collect
 * per item so the block carries each touched item's final value once.
 */
export class Overlay {
  /** Accounts read or written, with the item each had in the base state (handed to preview and apply). */
  private readonly accounts = new Map<string, { id: Uint8Array; account: Account; base: Item | undefined; written: boolean }>();
  private readonly memos: Item[] = [];
  private readonly records = new Map<string, Item>();
  private readonly base: State;

  constructor(base: State) {
    this.base = base;
  }

  account(id: Uint8Array): Account {
    return this.entry(id).account;
  }

  setAccount(id: Uint8Array, account: Account): void {
    const e = this.entry(id);
    e.account = account;
    e.written = true;
  }

  /** The account's entry; the base state is read once per account and block. */
  private entry(id: Uint8Array) {
    const k = accountKey(id);
    let e = this.accounts.get(k);
    if (!e) {
      const base = this.base.accountItemAt(k);
      e = { id, account: base ? readAccount(base) : EMPTY, base, written: false };
      this.accounts.set(k, e);
    }
    return e;
  }

  /** Memos are append-only (a new index per memo), so each is written once. */
  addMemo(id: Uint8Array, index: number, memo: Memo): void {
    this.memos.push(memoItem(id, index, memo));
  }

  shard(): ShardRecord {
    const item = this.records.get(SHARD_KEY);
    if (!item) return this.base.shard();
    const w = decodeItem(item);
    return w.tag === 'shard' ? w.value : EMPTY_SHARD;
  }

  setShard(r: ShardRecord): void {
    this.records.set(SHARD_KEY, shardItem(r));
  }

  withdrawal(id: bigint): Withdrawal | undefined {
    const item = this.records.get(withdrawalKey(id));
    if (!item) return this.base.withdrawal(id);
    const w = decodeItem(item);
    return w.tag === 'withdrawal' ? w.value : undefined;
  }

  setWithdrawal(w: Withdrawal): void {
    this.records.set(withdrawalKey(w.id), withdrawalItem(w));
  }

  setEpoch(e: EpochRecord): void {
    this.records.set(EPOCH_KEY, epochItem(e));
  }

  items(): Item[] {
    return this.changes().items;
  }

  /** The items to write, with what is known of them for State.preview and State.apply. */
  changes(): { items: Item[]; known: Known } {
    const items: Item[] = [];
    const keys: (string | undefined)[] = [];
    const bases: (Item | undefined)[] = [];
    this.accounts.forEach((e, k) => {
      if (!e.written) return;
      items.push(accountItem(e.id, e.account));
      keys.push(k);
      bases.push(e.base);
    });
    // Memos and records: looked up by the state (few per block).
    for (const item of this.memos) items.push(item);
    for (const item of this.records.values()) items.push(item);
    return { items, known: { keys, bases } };
  }
}
