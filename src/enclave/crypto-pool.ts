// A fixed set of crypto worker threads; a batch is split evenly across them. Workers are part of the
// enclave (they hold the shielding key), so this module is only used by the enclave thread.
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import type { Verified, VerifyFailure } from './verifier.ts';

type Result = Verified | VerifyFailure;
interface Pending { resolve: (r: Result[]) => void; reject: (e: Error) => void }

export class CryptoPool {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private next = 0;

  private readonly key: { keyId: number; secret: Uint8Array; publicKey: Uint8Array };
  private readonly size: number;

  /** Threads start on first use: a replay-only process (e.g. `validateer replay`) never pays for them. */
  constructor(key: { keyId: number; secret: Uint8Array; publicKey: Uint8Array }, threads: number) {
    this.key = key;
    this.size = threads > 0 ? threads : availableParallelism();
  }

  private spawn(): void {
    const key = this.key;
    for (let i = 0; i < this.size; i++) {
      const w = new Worker(new URL('./crypto-worker.ts', import.meta.url), { workerData: key });
      w.on('message', (m: { id: number; results: Result[] }) => {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        p?.resolve(m.results);
      });
      w.on('error', (err) => {
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
      });
      w.unref();
      this.workers.push(w);
    }
  }

  get threads(): number {
    return this.size;
  }

  async verify(requests: Uint8Array[]): Promise<Result[]> {
    if (requests.length === 0) return [];
    if (this.workers.length === 0) this.spawn();
    const n = Math.min(this.workers.length, Math.ceil(requests.length / 16));
    const size = Math.ceil(requests.length / n);
    const parts: Promise<Result[]>[] = [];
    for (let i = 0; i < requests.length; i += size) {
      const id = this.nextId++;
      const w = this.workers[this.next++ % this.workers.length];
      parts.push(new Promise((resolve, reject) => {
        this.pending.set(id, { resolve, reject });
        w.postMessage({ id, requests: requests.slice(i, i + size) });
      }));
    }
    return (await Promise.all(parts)).flat();
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
