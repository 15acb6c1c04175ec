// The copy-on-write view a block is built in (proposals and genesis): reads fall through to the
// state, writes collect per item so the block carries each touched item's final value once.
import type { Memo } from '../../protocol/wire.ts';
import {
  EMPTY,
  EMPTY_SHARD,
  EPOCH_KEY,
  SHARD_KEY,
  accountItem,
  accountKey,
  decodeItem,
  epochItem,
  memoItem,
  readAccount,
  shardItem,
  withdrawalItem,
  withdrawalKey,
  type Account,
  type EpochRecord,
  type Item,
  type ShardRecord,
  type Withdrawal,
} from './items.ts';
import type { Known, State } from './state.ts';

export class Overlay {
  /** Accounts read or written, with the item each had in the base state (handed to preview and apply). */
  private readonly accounts = new Map<
    string,
    { id: Uint8Array; account: Account; base: Item | undefined; written: boolean }
  >();
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
