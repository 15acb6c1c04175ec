// State items: each a SCALE StateWrite (the full value of one account, memo, shard record,
// withdrawal or epoch record), kept as its encoding. The same bytes are the element of the LtHash
// commitment, the entry of a block's transitions and the entry of a snapshot, so replay slices
// decrypted transitions into items (splitItems) and never re-encodes them.
import { Bytes, Enum, Struct, bool, u32, u64, u128 } from 'scale-ts';
import { AccountId, Memo, decodeExact } from '../../protocol/wire.ts';
import { bytesView } from '../../protocol/bytes.ts';

export interface Account {
  balance: bigint;
  nonce: number;
  memoCount: number;
}
export interface ShardRecord {
  shieldedSupply: bigint;
  nextWithdrawal: bigint;
}
export interface Withdrawal {
  id: bigint;
  from: Uint8Array;
  beneficiary: Uint8Array;
  amount: bigint;
  paid: boolean;
}
/**
 * The state key epoch: its key id, the block that began it, and the hash of the members it was sealed to
 * (key-rotation.ts).
 */
export interface EpochRecord {
  epoch: number;
  keyId: number;
  startNumber: bigint;
  membersHash: Uint8Array;
}
export const StateWrite = Enum({
  account: Struct({ id: AccountId, balance: u128, nonce: u32, memoCount: u32 }),
  memo: Struct({ id: AccountId, index: u32, memo: Memo }),
  /**
   * The one shard-wide record: funds shielded from the parentchain and not yet unshielded, and the next withdrawal id.
   */
  shard: Struct({ shieldedSupply: u128, nextWithdrawal: u64 }),
  /** An unshield: burned here, paid from the vault on the parentchain (paid once the payout is seen there). */
  withdrawal: Struct({ id: u64, from: AccountId, beneficiary: AccountId, amount: u128, paid: bool }),
  /** The current state key epoch; absent until the first rotation (epoch 0: the key of genesis). */
  epoch: Struct({ epoch: u32, keyId: u32, startNumber: u64, membersHash: Bytes(32) }),
});
export type StateWrite = ReturnType<typeof StateWrite.dec>;
/** One state item: the SCALE encoding of a StateWrite. */
export type Item = Uint8Array;

export const TAG_ACCOUNT = 0;
const TAG_MEMO = 1;
const TAG_SHARD = 2;
export const TAG_WITHDRAWAL = 3;
export const TAG_EPOCH = 4;
const ACCOUNT_ITEM_BYTES = 57; // tag, id 32, balance u128, nonce u32, memoCount u32
const MEMO_FIXED_BYTES = 85; // tag, id 32, index u32, from 32, amount u128 (then text, block u64)
const FIXED_BYTES: Record<number, number> = {
  [TAG_ACCOUNT]: ACCOUNT_ITEM_BYTES,
  [TAG_SHARD]: 25,
  [TAG_WITHDRAWAL]: 90,
  [TAG_EPOCH]: 49,
};
export const SHARD_KEY = 'shard';
export const EPOCH_KEY = 'epoch';
export const EMPTY_SHARD: ShardRecord = Object.freeze({ shieldedSupply: 0n, nextWithdrawal: 0n });
const U64 = (1n << 64n) - 1n;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

export const EMPTY: Account = Object.freeze({ balance: 0n, nonce: 0, memoCount: 0 });
/** An account's map key: its 32 bytes as a latin1 string (half the length of hex, and no hex encoding per read). */
export const accountKey = (id: Uint8Array): string => bytesView(id).toString('latin1');
// an id key is 32 characters: unambiguous
export const memoKey = (id: string, index: number): string => `${id}:${index}`;

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
  const lo = b.readUInt32LE(33),
    mid = b.readUInt32LE(37);
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
export const mapOf = (item: Item): 'accounts' | 'memos' | 'records' =>
  item[0] === TAG_ACCOUNT ? 'accounts' : item[0] === TAG_MEMO ? 'memos' : 'records';
export const withdrawalKey = (id: bigint): string => `w:${id}`;
export function itemKey(item: Item): string {
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

export function writeCompact(n: number): Buffer {
  if (n < 1 << 6) return Buffer.from([n << 2]);
  if (n < 1 << 14) {
    const b = Buffer.allocUnsafe(2);
    b.writeUInt16LE((n << 2) | 1);
    return b;
  }
  if (n < 1 << 30) {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32LE(((n << 2) | 2) >>> 0);
    return b;
  }
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
