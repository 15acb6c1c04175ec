// The JSON-RPC connection of the Substrate adapter: which failures are connection loss (retried:
// WsProvider reconnects by itself) and the retry loop every read and the submission share.
import type { WsProvider } from '@polkadot/api';
import { ValidateerError } from '../../protocol/errors.ts';

const CONNECTION_ERROR =
  /disconnected|not connected|Abnormal Closure|ECONNREFUSED|ECONNRESET|socket hang up|No response received|WebSocket is closed|timeout/i;

export function isConnectionError(err: unknown): boolean {
  return CONNECTION_ERROR.test((err as Error)?.message ?? String(err));
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Raw RPCs and other calls retried across connection loss until `retryMs` passes or the adapter closes. */
export class RpcConnection {
  readonly provider: WsProvider;
  readonly warn: (message: string) => void;
  readonly #retryMs: number;
  #closed = false;

  constructor(provider: WsProvider, retryMs: number, warn: (message: string) => void) {
    this.provider = provider;
    this.#retryMs = retryMs;
    this.warn = warn;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** From now on every retry fails with PARENTCHAIN_CLOSED. */
  markClosed(): void {
    this.#closed = true;
  }

  /** A raw JSON-RPC call, retried across connection loss for up to retryMs. */
  rpc<T>(method: string, params: unknown[]): Promise<T> {
    return this.retry(method, () => this.provider.send<T>(method, params));
  }

  async retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.#retryMs;
    for (let attempt = 0; ; attempt++) {
      if (this.#closed) throw new ValidateerError('PARENTCHAIN_CLOSED', 'parentchain connection is closed');
      try {
        return await fn();
      } catch (err) {
        if (!isConnectionError(err)) throw err;
        if (Date.now() > deadline) {
          throw new ValidateerError(
            'PARENTCHAIN_UNAVAILABLE',
            `${what}: parentchain unreachable for ${this.#retryMs} ms: ${(err as Error).message}`,
          );
        }
        if (attempt === 0) this.warn(`${what}: ${(err as Error).message}; retrying`);
        await sleep(Math.min(2000, 100 * 2 ** Math.min(attempt, 5)));
      }
    }
  }
}
