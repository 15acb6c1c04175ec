// Untrusted relay between RPC and the enclave for calls: batches submissions (one enclave round trip
// per event-loop turn instead of per call) and tracks who watches which call hash.
import type { Enclave } from '../enclave/host.ts';

export type SubmitOutcome = { hash?: string; status: 'ready' | 'future' | 'invalid'; code?: string; message?: string };
export type CallUpdate =
  | { status: 'ready' | 'future' }
  | { status: 'inBlock'; blockHash: string; blockNumber: number }
  | { status: 'invalid'; code: string; message: string };

const MAX_BATCH = 4096;

export class CallRelay {
  private readonly enclave: Enclave;
  private queue: { request: Uint8Array; resolve: (o: SubmitOutcome) => void; reject: (e: Error) => void }[] = [];
  private scheduled = false;
  private readonly watchers = new Map<string, Set<(u: CallUpdate) => void>>();

  constructor(enclave: Enclave) {
    this.enclave = enclave;
  }

  submit(request: Uint8Array): Promise<SubmitOutcome> {
    return new Promise((resolve, reject) => {
      this.queue.push({ request, resolve, reject });
      if (this.queue.length >= MAX_BATCH) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    if (batch.length === 0) return;
    this.queue = [];
    this.enclave.call('submit', { requests: batch.map((b) => b.request) }).then(
      ({ results }) => batch.forEach((b, i) => b.resolve(results[i])),
      (err: Error) => batch.forEach((b) => b.reject(err)),
    );
  }

  watch(hash: string, fn: (u: CallUpdate) => void): () => void {
    let set = this.watchers.get(hash);
    if (!set) this.watchers.set(hash, (set = new Set()));
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0) this.watchers.delete(hash);
    };
  }

  /** Delivers a final update (inBlock or invalid) and forgets the watchers of that call. */
  settle(hash: string, update: CallUpdate): void {
    const set = this.watchers.get(hash);
    if (!set) return;
    this.watchers.delete(hash);
    for (const fn of set) fn(update);
  }
}
