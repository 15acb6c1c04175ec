// The untrusted side of the enclave boundary: starts the enclave thread and exchanges validated
// messages with it. This is the only enclave module the rest of the node imports.
import { Worker } from 'node:worker_threads';
import { enclaveApi, type EnclaveInit, type EnclaveReply, type Method, type Params, type Result } from './api.ts';
import { EnclaveError } from './errors.ts';
import { errorCode } from '../../protocol/errors.ts';

export { EnclaveError } from './errors.ts';
export type { EnclaveInit } from './api.ts';

export class Enclave {
  private readonly worker: Worker;
  private readonly pending = new Map<
    number,
    { method: Method; resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();
  private nextId = 1;
  private closed = false;

  private constructor(worker: Worker) {
    this.worker = worker;
    worker.on('message', (m: EnclaveReply) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      // A code outside the lists (a Node system error's, e.g. ENOENT) is an internal failure of the enclave,
      // not a malformed reply: the reply itself was well formed.
      if (!m.ok) return p.reject(new EnclaveError(errorCode(m.error.code, 'INTERNAL'), m.error.message));
      const parsed = enclaveApi[p.method].result.safeParse(m.result);
      if (parsed.success) p.resolve(parsed.data);
      else p.reject(new EnclaveError('BAD_REPLY', `enclave reply to ${p.method} failed validation`));
    });
    worker.on('error', (err) => this.failAll(err));
    worker.on('exit', (code) =>
      this.failAll(new EnclaveError('ENCLAVE_EXITED', `enclave thread exited with code ${code}`)),
    );
  }

  static async start(init: EnclaveInit): Promise<Enclave> {
    // A bounded young generation: V8's default semi-spaces kept ~350 MB of RSS as headroom after
    // replaying 100k accounts. Not too small either: pooled calls live for a slot or two, and with
    // 6 MB each enclave of a 4-validateer set under load paid ~190 scavenges and 1.4-1.7 s of pauses
    // copying them; 32 MB: ~20 scavenges, 0.4 s (RSS after replay unchanged, 283-288 MB).
    const worker = new Worker(new URL('./worker.ts', import.meta.url), {
      workerData: init,
      resourceLimits: { maxYoungGenerationSizeMb: 32 },
    });
    const ready = await new Promise<{ ready: boolean; error?: { code: string; message: string } }>(
      (resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
        worker.once('exit', (code) =>
          reject(new EnclaveError('ENCLAVE_EXITED', `enclave thread exited with code ${code} during start`)),
        );
      },
    );
    if (!ready.ready)
      throw new EnclaveError(
        errorCode(ready.error?.code, 'ENCLAVE_START'),
        `enclave failed to start: ${ready.error?.message}`,
      );
    return new Enclave(worker);
  }

  /** `transfer`: buffers handed to the enclave thread instead of copied (the caller must not use them after). */
  call<M extends Method>(method: M, params: Params<M>, transfer?: ArrayBuffer[]): Promise<Result<M>> {
    if (this.closed) return Promise.reject(new EnclaveError('ENCLAVE_CLOSED', 'enclave is closed'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { method, resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ id, method, params }, transfer);
    });
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 5000);
      this.worker.on('message', (m: { closed?: boolean }) => {
        if (m.closed) {
          clearTimeout(t);
          resolve();
        }
      });
      this.worker.postMessage({ close: true });
    });
    await this.worker.terminate();
  }
}
