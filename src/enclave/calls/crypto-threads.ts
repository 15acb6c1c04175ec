// A fixed set of crypto worker threads; a batch is split evenly across them. Workers are part of the
// enclave (they hold the shielding key), so this module is only used by the enclave thread.
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import type { Verified, VerifyFailure } from './call-verifier.ts';

type Result = Verified | VerifyFailure;
interface Pending {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- one table for both kinds of batch
  resolve: (r: any[]) => void;
  reject: (e: Error) => void;
}
export interface SignedMessage {
  publicKey: Uint8Array;
  message: Uint8Array;
  signature: Uint8Array;
}

export class CryptoThreads {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private next = 0;

  private readonly key: { keyId: number; secret: Uint8Array; publicKey: Uint8Array };
  private readonly size: number;
  private readonly nice: number;

  /**
   * Threads start on first use: a replay-only process (e.g. `validateer replay`) never pays for them.
   * `nice`: their niceness, so that under load the node's other threads (block production and
   * import) get the CPU first.
   */
  constructor(key: { keyId: number; secret: Uint8Array; publicKey: Uint8Array }, threads: number, nice = 0) {
    this.key = key;
    this.size = threads > 0 ? threads : availableParallelism();
    this.nice = nice;
  }

  private spawn(): void {
    const workerData = { ...this.key, nice: this.nice };
    for (let i = 0; i < this.size; i++) {
      const w = new Worker(new URL('./crypto-worker.ts', import.meta.url), { workerData });
      w.on('message', (m: { id: number; results: unknown[] }) => {
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

  verify(requests: Uint8Array[]): Promise<Result[]> {
    return this.spread(requests, (part) => ({ requests: part }));
  }

  /** ed25519 signatures checked in parallel (block headers during onboarding). */
  verifySignatures(items: SignedMessage[]): Promise<boolean[]> {
    return this.spread(items, (part) => ({ signatures: part }));
  }

  private async spread<T, R>(items: T[], message: (part: T[]) => object): Promise<R[]> {
    if (items.length === 0) return [];
    if (this.workers.length === 0) this.spawn();
    const n = Math.min(this.workers.length, Math.ceil(items.length / 16));
    const size = Math.ceil(items.length / n);
    const parts: Promise<R[]>[] = [];
    for (let i = 0; i < items.length; i += size) {
      const id = this.nextId++;
      const w = this.workers[this.next++ % this.workers.length];
      parts.push(
        new Promise((resolve, reject) => {
          this.pending.set(id, { resolve, reject });
          w.postMessage({ id, ...message(items.slice(i, i + size)) });
        }),
      );
    }
    return (await Promise.all(parts)).flat();
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
