// Untrusted relay between RPC, peers and the enclave for calls: batches submissions (one enclave round
// trip per event-loop turn instead of per call), tracks who watches which call hash, hands calls
// accepted from local clients to the network (one gossip message per batch), and keeps the encrypted
// requests of recent calls so that calls of abandoned blocks can be submitted again after a reorg.
import type { Enclave } from '../enclave/host.ts';

export type SubmitOutcome = { hash?: string; status: 'ready' | 'future' | 'invalid'; code?: string; message?: string };
export type CallUpdate =
  | { status: 'ready' | 'future' }
  | { status: 'inBlock'; blockHash: string; blockNumber: number }
  | { status: 'invalid'; code: string; message: string };

const MAX_BATCH = 4096;
/** Encrypted requests kept for re-submission after a reorg (newest win; ~300 B each). */
const KEPT_REQUESTS = 65_536;

export class CallRelay {
  private readonly enclave: Enclave;
  private queue: { request: Uint8Array; local: boolean; resolve: (o: SubmitOutcome) => void; reject: (e: Error) => void }[] = [];
  private scheduled = false;
  private readonly watchers = new Map<string, Set<(u: CallUpdate) => void>>();
  private readonly requests = new Map<string, Uint8Array>();
  /** Receives the requests of each batch that the enclave accepted from local clients. */
  onAccepted: ((requests: Uint8Array[]) => void) | null = null;

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

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    if (batch.length === 0) return;
    this.queue = [];
    this.enclave.call('submit', { requests: batch.map((b) => b.request) }).then(
      ({ results }) => {
        const accepted: Uint8Array[] = [];
        batch.forEach((b, i) => {
          const r = results[i];
          if (r.hash && r.status !== 'invalid') {
            this.keep(r.hash, b.request);
            if (b.local) accepted.push(b.request);
          }
          b.resolve(r);
        });
        if (accepted.length > 0) this.onAccepted?.(accepted);
      },
      (err: Error) => batch.forEach((b) => b.reject(err)),
    );
  }

  private keep(hash: string, request: Uint8Array): void {
    this.requests.delete(hash);
    this.requests.set(hash, request);
    if (this.requests.size > KEPT_REQUESTS) this.requests.delete(this.requests.keys().next().value!);
  }

  /** Submits again the kept requests of these call hashes (calls of abandoned blocks); returns how many were kept. */
  resubmit(hashes: string[]): number {
    let n = 0;
    for (const h of hashes) {
      const request = this.requests.get(h);
      if (!request) continue;
      n++;
      this.submit(request, false).catch(() => undefined); // the enclave decides; an invalid call stays out
    }
    return n;
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
