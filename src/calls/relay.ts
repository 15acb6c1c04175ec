// Untrusted relay between RPC, peers and the enclave for calls: batches submissions (one enclave round
// trip per event-loop turn instead of per call), tracks who watches which call hash, and hands the
// enclave's re-sealed batch of calls accepted from local clients to the network. While the chain
// reorganises, submissions are held back so that they are checked against the new head's state.
import { LRUCache } from 'lru-cache';
import type { Enclave } from '../enclave/boundary/host.ts';
import type { HeadEvent } from '../chain/head-events.ts';
import { toHex } from '../protocol/bytes.ts';

export type SubmitOutcome = { hash?: string; status: 'ready' | 'future' | 'invalid'; code?: string; message?: string };
export type CallUpdate =
  | { status: 'ready' | 'future' }
  | { status: 'inBlock'; blockHash: string; blockNumber: number }
  | { status: 'invalid'; code: string; message: string };

export const MAX_BATCH = 4096;
/**
 * Final updates kept for calls nobody watched yet. The enclave admits a big batch in slices and may put
 * a block in between, so a call can be in a block before its submission is answered and watched.
 * A few seconds of calls at full load.
 */
const UNWATCHED_FINAL_KEPT = 65_536;

export class CallRelay {
  private readonly enclave: Enclave;
  private queue: {
    request: Uint8Array;
    local: boolean;
    resolve: (o: SubmitOutcome) => void;
    reject: (e: Error) => void;
  }[] = [];
  private scheduled = false;
  private readonly watchers = new Map<string, Set<(u: CallUpdate) => void>>();
  private readonly unwatchedFinal = new LRUCache<string, CallUpdate>({ max: UNWATCHED_FINAL_KEPT });
  private holds = 0;
  private released = Promise.withResolvers<void>();
  /** Receives the enclave's sealed batch of the calls it accepted from local clients (for the other validateers). */
  onForward: ((envelope: Uint8Array) => void) | null = null;
  /** Whether a batch would reach anyone now (peers connected): if not, the enclave does not seal one. */
  forwardWanted: () => boolean = () => true;

  constructor(enclave: Enclave) {
    this.enclave = enclave;
  }

  /** Submits an encrypted call; `local` = from our own clients (forwarded to peers once accepted). */
  submit(request: Uint8Array, local = true): Promise<SubmitOutcome> {
    return new Promise((resolve, reject) => {
      this.queue.push({ request, local, resolve, reject });
      if (this.queue.length >= MAX_BATCH) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /**
   * Submits a batch of calls another validateer's enclave verified and forwarded; how many were new and valid, how many
   * not.
   */
  async submitForwarded(envelope: Uint8Array): Promise<{ accepted: number; invalid: number }> {
    while (this.holds > 0) await this.released.promise;
    return this.enclave.call('submitForwarded', { envelope });
  }

  private flush(): void {
    this.scheduled = false;
    if (this.holds > 0) return; // flushed on release
    const batch = this.queue;
    if (batch.length === 0) return;
    this.queue = [];
    const forward = this.onForward && this.forwardWanted() ? batch.flatMap((b, i) => (b.local ? [i] : [])) : [];
    this.enclave.call('submit', { requests: batch.map((b) => b.request), forward }).then(
      ({ results, forwarded }) => {
        batch.forEach((b, i) => b.resolve(results[i]));
        if (forwarded) this.onForward?.(forwarded);
      },
      (err: Error) => batch.forEach((b) => b.reject(err)),
    );
  }

  /** Runs `fn` (a reorg) with submissions held back; they go to the enclave when it is done. */
  async hold<T>(fn: () => Promise<T>): Promise<T> {
    this.holds++;
    try {
      return await fn();
    } finally {
      if (--this.holds === 0) {
        this.released.resolve();
        this.released = Promise.withResolvers<void>();
        this.flush();
      }
    }
  }

  /**
   * Puts the calls of abandoned blocks back into the pool (the enclave keeps recent verified calls); returns how many.
   * Those it does not put back settle as invalid, with the enclave's reason: nothing would ever settle them otherwise.
   */
  async resubmit(hashes: string[]): Promise<number> {
    if (hashes.length === 0) return 0;
    // Their kept 'inBlock' names a block that is no longer on the chain: a later watcher waits for the new one.
    for (const h of hashes) this.unwatchedFinal.delete(h);
    const { requeued, dropped } = await this.enclave.call('requeue', { hashes });
    for (const d of dropped) this.settle(d.hash, { status: 'invalid', code: d.code, message: d.message });
    return requeued;
  }

  /** Calls `fn` with the call's updates; at once (synchronously) if the call was already settled. */
  watch(hash: string, fn: (u: CallUpdate) => void): () => void {
    const final = this.unwatchedFinal.get(hash);
    if (final) {
      this.unwatchedFinal.delete(hash);
      fn(final);
      return () => {};
    }
    let set = this.watchers.get(hash);
    if (!set) this.watchers.set(hash, (set = new Set()));
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0) this.watchers.delete(hash);
    };
  }

  /**
   * Settles a block's calls as included: one update for the whole block (watchers only read it), not an object per
   * call.
   */
  settleInBlock(hashes: Iterable<string>, blockHash: string, blockNumber: number): void {
    const inBlock: CallUpdate = Object.freeze({ status: 'inBlock', blockHash, blockNumber });
    for (const h of hashes) this.settle(h, inBlock);
  }

  /** Head event listener: the calls of the new head block are in a block now. */
  onHead(e: Pick<HeadEvent, 'number' | 'hash' | 'calls'>): void {
    if (e.calls.length > 0) this.settleInBlock(e.calls, toHex(e.hash), e.number);
  }

  /** Delivers a final update (inBlock or invalid) and forgets the watchers of that call. */
  settle(hash: string, update: CallUpdate): void {
    const set = this.watchers.get(hash);
    if (!set) {
      this.unwatchedFinal.set(hash, update);
      return;
    }
    this.watchers.delete(hash);
    for (const fn of set) fn(update);
  }
}
