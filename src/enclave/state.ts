// Plaintext shard state (accounts and memos) and its commitment. Only ever lives inside the enclave.
// A state transition is a StateWrite: the full new value of one item. A block's transitions are the
// final values of the items it touched, so replay is "set each item", and state = fold(log).
import { Enum, Struct, Vector, u32, u128, Bytes } from 'scale-ts';
import { AccountId, Memo } from '../codec/wire.ts';
import { LtHash, LTHASH_BYTES } from './lthash.ts';

export interface Account { balance: bigint; nonce: number; memoCount: number }
export const StateWrite = Enum({
  account: Struct({ id: AccountId, balance: u128, nonce: u32, memoCount: u32 }),
  memo: Struct({ id: AccountId, index: u32, memo: Memo }),
});
export type StateWrite = ReturnType<typeof StateWrite.dec>;
export const Transitions = Vector(StateWrite);

const EMPTY: Account = Object.freeze({ balance: 0n, nonce: 0, memoCount: 0 });
export const hexKey = (id: Uint8Array): string => Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('hex');
const writeKey = (w: StateWrite): string => (w.tag === 'account' ? hexKey(w.value.id) : `${hexKey(w.value.id)}:${w.value.index}`);

export class State {
  readonly accounts = new Map<string, Account>();
  readonly memos = new Map<string, Memo>();
  lthash = new LtHash();

  account(id: Uint8Array): Account {
    return this.accounts.get(hexKey(id)) ?? EMPTY;
  }

  memo(id: Uint8Array, index: number): Memo | undefined {
    return this.memos.get(`${hexKey(id)}:${index}`);
  }

  /** The current item for a write's key, as a write (for the commitment), or undefined. */
  private current(w: StateWrite): StateWrite | undefined {
    if (w.tag === 'account') {
      const a = this.accounts.get(hexKey(w.value.id));
      return a && { tag: 'account', value: { id: w.value.id, ...a } };
    }
    const m = this.memos.get(writeKey(w));
    return m && { tag: 'memo', value: { id: w.value.id, index: w.value.index, memo: m } };
  }

  /** The commitment hash the state would have after `writes`, without applying them: O(writes). */
  preview(writes: StateWrite[]): LtHash {
    const lt = this.lthash.clone();
    for (const w of writes) {
      const old = this.current(w);
      if (old) lt.remove(StateWrite.enc(old));
      lt.add(StateWrite.enc(w));
    }
    return lt;
  }

  /** Applies writes; `lthash` is their preview (or omitted when loading items whose hash is known). */
  apply(writes: StateWrite[], lthash?: LtHash): void {
    for (const w of writes) this.set(w);
    if (lthash) this.lthash = lthash;
  }

  private set(w: StateWrite): void {
    if (w.tag === 'account') this.accounts.set(hexKey(w.value.id), { balance: w.value.balance, nonce: w.value.nonce, memoCount: w.value.memoCount });
    else this.memos.set(writeKey(w), w.value.memo);
  }

  /**
   * Replays many blocks' writes, updating the commitment once per distinct item at the end instead of
   * once per write: replay cost follows the number of items touched, not the length of the log.
   */
  replay(): { apply(writes: StateWrite[]): void; finish(): void } {
    const before = new Map<string, StateWrite | null>();
    const latest = new Map<string, StateWrite>();
    // From an empty state (genesis replay) nothing existed before: skip that bookkeeping entirely.
    const fromEmpty = this.accounts.size === 0 && this.memos.size === 0;
    return {
      apply: (writes) => {
        for (const w of writes) {
          const k = w.tag + writeKey(w);
          if (!fromEmpty && !before.has(k)) before.set(k, this.current(w) ?? null);
          latest.set(k, w);
          this.set(w);
        }
      },
      finish: () => {
        for (const [k, w] of latest) {
          const old = fromEmpty ? undefined : before.get(k);
          if (old) this.lthash.remove(StateWrite.enc(old));
          this.lthash.add(StateWrite.enc(w));
        }
      },
    };
  }

  commitment(): Uint8Array {
    return this.lthash.digest();
  }

  /** Snapshot encoding: every item plus the lthash, so loading needs no re-hashing. */
  encodeSnapshot(): Uint8Array {
    const writes: StateWrite[] = [];
    for (const [k, a] of this.accounts) writes.push({ tag: 'account', value: { id: Buffer.from(k, 'hex'), ...a } });
    for (const [k, m] of this.memos) {
      const [id, index] = k.split(':');
      writes.push({ tag: 'memo', value: { id: Buffer.from(id, 'hex'), index: Number(index), memo: m } });
    }
    return Snapshot.enc({ lthash: this.lthash.bytes(), writes });
  }

  static fromSnapshot(bytes: Uint8Array): State {
    const s = Snapshot.dec(bytes);
    const state = new State();
    state.apply(s.writes);
    state.lthash = new LtHash(s.lthash);
    return state;
  }
}

const Snapshot = Struct({ lthash: Bytes(LTHASH_BYTES), writes: Vector(StateWrite) });

/**
 * Copy-on-write view used while building a block: reads fall through to the state, writes collect
 * per item so the block carries each touched item's final value once.
 */
export class Overlay {
  readonly accounts = new Map<string, StateWrite & { tag: 'account' }>();
  readonly memos = new Map<string, StateWrite & { tag: 'memo' }>();
  private readonly base: State;

  constructor(base: State) {
    this.base = base;
  }

  account(id: Uint8Array): Account {
    const w = this.accounts.get(hexKey(id));
    return w ? w.value : this.base.account(id);
  }

  setAccount(id: Uint8Array, a: Account): void {
    this.accounts.set(hexKey(id), { tag: 'account', value: { id, balance: a.balance, nonce: a.nonce, memoCount: a.memoCount } });
  }

  addMemo(id: Uint8Array, index: number, memo: Memo): void {
    this.memos.set(`${hexKey(id)}:${index}`, { tag: 'memo', value: { id, index, memo } });
  }

  writes(): StateWrite[] {
    return [...this.accounts.values(), ...this.memos.values()];
  }
}
