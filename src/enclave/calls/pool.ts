// The enclave's call pool: verified calls waiting for a block, per sender ordered by nonce (like
// Substrate's ready/future pool). Senders are served in order of first arrival for fairness.
// Rejection messages name no nonce: they leave the enclave (stf.ts says why).
import type { TrustedCall } from '../../protocol/wire.ts';
import { RejectCode } from '../../protocol/errors.ts';

export interface PoolEntry {
  hash: string; // hex call hash
  sender: string; // the account's key (state.ts accountKey)
  nonce: number;
  call: TrustedCall;
  addedAtMs: number;
}

/** Default of PoolLimits.maxFuturePerSender (and of the config's pool.maxFuturePerSender). */
export const DEFAULT_MAX_FUTURE_PER_SENDER = 16;

export interface PoolLimits {
  maxPending: number;
  maxNonceAhead: number;
  futureTtlMs: number;
  /**
   * Most calls one sender may park behind a nonce gap. Without it, any fresh key could fill the pool with
   * maxNonceAhead calls that never become executable (they cost nothing until the gap expires).
   */
  maxFuturePerSender?: number;
}
export type AddResult = { status: 'ready' | 'future' } | { status: 'invalid'; code: RejectCode; message: string };

export class CallPool {
  private readonly bySender = new Map<string, Map<number, PoolEntry>>();
  private readonly byHash = new Map<string, PoolEntry>();
  private readonly limits: PoolLimits;

  constructor(limits: PoolLimits) {
    this.limits = limits;
  }

  get size(): number {
    return this.byHash.size;
  }

  has(hash: string): boolean {
    return this.byHash.has(hash);
  }

  /** accountNonce: the sender's nonce in the current state. */
  add(entry: PoolEntry, accountNonce: number): AddResult {
    if (this.byHash.has(entry.hash))
      return { status: 'invalid', code: RejectCode.DUPLICATE, message: 'call is already in the pool' };
    if (entry.nonce < accountNonce)
      return {
        status: 'invalid',
        code: RejectCode.STALE_NONCE,
        message: 'the nonce is already used',
      };
    if (entry.nonce - accountNonce > this.limits.maxNonceAhead) {
      return {
        status: 'invalid',
        code: RejectCode.NONCE_TOO_FAR,
        message: `the nonce is more than ${this.limits.maxNonceAhead} ahead of the account nonce`,
      };
    }
    let calls = this.bySender.get(entry.sender);
    if (calls?.has(entry.nonce))
      return {
        status: 'invalid',
        code: RejectCode.DUPLICATE,
        message: 'a call with this nonce from this account is already pending',
      };
    // The end of the sender's ready run (from the account nonce): the call is future if it lies past a gap.
    let n = accountNonce;
    while (calls?.has(n) && n < entry.nonce) n++;
    const future = n !== entry.nonce;
    if (future && calls && this.futureCount(calls, n) >= this.maxFuture) {
      return {
        status: 'invalid',
        code: RejectCode.TOO_MANY_FUTURE,
        message: `the account already has ${this.maxFuture} calls waiting for an earlier nonce`,
      };
    }
    if (this.byHash.size >= this.limits.maxPending)
      return { status: 'invalid', code: RejectCode.POOL_FULL, message: 'call pool is full' };
    if (!calls) this.bySender.set(entry.sender, (calls = new Map()));
    calls.set(entry.nonce, entry);
    this.byHash.set(entry.hash, entry);
    return { status: future ? 'future' : 'ready' };
  }

  private get maxFuture(): number {
    return this.limits.maxFuturePerSender ?? DEFAULT_MAX_FUTURE_PER_SENDER;
  }

  /** The sender's calls past the gap at `gap` (its ready run ends there). */
  private futureCount(calls: Map<number, PoolEntry>, gap: number): number {
    let count = 0;
    for (const nonce of calls.keys()) if (nonce > gap) count++;
    return count;
  }

  remove(hash: string): PoolEntry | undefined {
    const e = this.byHash.get(hash);
    if (!e) return undefined;
    this.byHash.delete(hash);
    const calls = this.bySender.get(e.sender)!;
    calls.delete(e.nonce);
    if (calls.size === 0) this.bySender.delete(e.sender);
    return e;
  }

  /** Senders in arrival order with their pending calls; iteration is safe against removal. */
  *senders(): Generator<[string, Map<number, PoolEntry>]> {
    for (const s of [...this.bySender.keys()]) {
      const calls = this.bySender.get(s);
      if (calls) yield [s, calls];
    }
  }

  /** Drops calls whose nonce can no longer be used or whose gap was not filled in time. */
  prune(
    nowMs: number,
    accountNonce: (sender: string) => number,
  ): { entry: PoolEntry; code: RejectCode; message: string }[] {
    const dropped: { entry: PoolEntry; code: RejectCode; message: string }[] = [];
    // Walks every pending sender (thousands under load): no copies; the drops are removed after the walk.
    for (const [sender, calls] of this.bySender) {
      const n = accountNonce(sender);
      // Calls in an unbroken run from the account nonce are ready, however long they waited.
      let runEnd = n;
      while (calls.has(runEnd)) runEnd++;
      for (const e of calls.values()) {
        if (e.nonce < n)
          dropped.push({
            entry: e,
            code: RejectCode.STALE_NONCE,
            message: 'the nonce is already used',
          });
        else if (e.nonce > runEnd && nowMs - e.addedAtMs > this.limits.futureTtlMs) {
          dropped.push({
            entry: e,
            code: RejectCode.NONCE_GAP_EXPIRED,
            message: `the nonce gap before the call was not filled within ${this.limits.futureTtlMs} ms`,
          });
        }
      }
    }
    for (const d of dropped) this.remove(d.entry.hash);
    return dropped;
  }
}
