// Sums the LtHash of many state items on several threads. Extra threads live only for one replay: an
// idle node should not keep extra isolates in memory.
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { LtHash } from './lthash.ts';
import { localHasher, type Item, type ItemHasher } from './state.ts';

/**
 * Below this many items the calling thread hashes alone: an item costs ~5 us, so 100k items take about
 * half a second, which a second thread (~0.15 s to start, ~25 MiB of RSS kept after it ends) does not
 * shorten enough to pay for (replay of 100k accounts measured the same with and without it).
 */
const PARALLEL_MIN_ITEMS = 250_000;

function pack(items: Item[]): { packed: Uint8Array; ends: Uint32Array } {
  const ends = new Uint32Array(items.length);
  let total = 0;
  items.forEach((item, i) => {
    total += item.length;
    ends[i] = total;
  });
  const packed = new Uint8Array(total);
  let at = 0;
  for (const item of items) {
    packed.set(item, at);
    at += item.length;
  }
  return { packed, ends };
}

interface HashThread {
  worker: Worker;
  waiting: { resolve: (lt: LtHash) => void; reject: (e: Error) => void }[];
}

/** A worker answers its messages in order, so replies match the FIFO of waiting sums. */
function startThread(): HashThread {
  const t: HashThread = { worker: new Worker(new URL('./lthash-worker.ts', import.meta.url)), waiting: [] };
  const failAll = (err: Error) => {
    for (const w of t.waiting.splice(0)) w.reject(err);
  };
  t.worker.on('message', (bytes: Uint8Array) => t.waiting.shift()?.resolve(new LtHash(bytes)));
  t.worker.on('error', failAll);
  t.worker.on('exit', (code) => failAll(new Error(`lthash thread exited with ${code}`)));
  return t;
}

function sumOnThread(t: HashThread, items: Item[]): Promise<LtHash> {
  const { packed, ends } = pack(items);
  return new Promise<LtHash>((resolve, reject) => {
    t.waiting.push({ resolve, reject });
    t.worker.postMessage({ packed, ends }, [packed.buffer as ArrayBuffer, ends.buffer as ArrayBuffer]);
  });
}

export interface LtHashThreads {
  hasher: ItemHasher;
  close(): Promise<void>;
}

/**
 * `threads` 0 = one per core. The calling thread takes one share itself (one isolate fewer); the
 * others go to worker threads, started on the first sum of at least `minItems`. Concurrent sums may
 * share the threads.
 */
export function ltHashThreads(threads: number, minItems = PARALLEL_MIN_ITEMS): LtHashThreads {
  const n = threads > 0 ? threads : availableParallelism();
  let workers: HashThread[] = [];
  const spawn = () => {
    if (workers.length === 0) workers = Array.from({ length: n - 1 }, startThread);
    return workers;
  };
  const hasher: ItemHasher = async (items) => {
    if (items.length < minItems || n < 2) return localHasher(items);
    const size = Math.ceil(items.length / n);
    const parts = spawn().map((t, i) => sumOnThread(t, items.slice((i + 1) * size, (i + 2) * size)));
    const sum = await localHasher(items.slice(0, size));
    for (const part of await Promise.all(parts)) sum.addSum(part);
    return sum;
  };
  return {
    hasher,
    close: async () => {
      await Promise.all(workers.map((t) => t.worker.terminate()));
      workers = [];
    },
  };
}
