// Minimal JSON-RPC 2.0 client over one WebSocket: requests, batches and subscription notifications.
import { WebSocket } from 'ws';

/** Thrown for JSON-RPC error replies. */
export class RpcClientError extends Error {
  code: number;
  data?: unknown;
  constructor(code: number, message: string, data?: unknown) {
    super(message);
    this.name = 'RpcClientError';
    this.code = code;
    this.data = data;
  }
}

export type BatchEntry = { result: unknown } | { error: { code: number; message: string; data?: unknown } };

export interface RpcClient {
  request<T = unknown>(method: string, params?: unknown, timeoutMs?: number): Promise<T>;
  batch(calls: { method: string; params?: unknown }[], timeoutMs?: number): Promise<BatchEntry[]>;
  /**
   * call a subscribe method; returns the subscription id; onNotification receives each `result` whose
   * params.subscription matches
   */
  subscribe(method: string, params: unknown, onNotification: (result: unknown) => void): Promise<string>;
  sendRaw(text: string): void;
  /** Resolves with the reason once the connection is gone (closed by either side or lost). */
  readonly closed: Promise<Error>;
  close(): Promise<void>;
}

const DEFAULT_TIMEOUT_MS = 30_000;
// Notifications can overtake the subscribe reply's processing; keep them this long for a late subscriber.
const EARLY_NOTIFICATION_TTL_MS = 5_000;
const EARLY_NOTIFICATION_MAX = 1_000;

interface Reply {
  id?: unknown;
  result?: unknown;
  error?: { code: number; message: string; data?: unknown };
  method?: unknown;
  params?: { subscription?: unknown; result?: unknown };
}

interface Pending {
  settle(reply: Reply): void;
  fail(err: Error): void;
}

export async function connectRpc(url: string, opts: { timeoutMs?: number } = {}): Promise<RpcClient> {
  const defaultTimeout = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const socket = new WebSocket(url, { perMessageDeflate: false });
  const pending = new Map<number, Pending>();
  const subscribers = new Map<string, (result: unknown) => void>();
  const early = new Map<string, unknown[]>();
  let nextId = 1;
  let lastError: Error | undefined;
  let resolveClosed!: (e: Error) => void;
  const closed = new Promise<Error>((r) => (resolveClosed = r));
  let closedError: Error | undefined;

  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.terminate();
      reject(new Error(`cannot connect to ${url}: timed out after ${defaultTimeout} ms`));
    }, defaultTimeout);
    socket.once('open', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot connect to ${url}: ${err.message}`));
    });
  });

  socket.on('error', (err) => {
    lastError = err; // a 'close' always follows; it reports the failure
  });
  socket.on('close', (code, reason) => {
    const why = lastError ? lastError.message : `code ${code}${reason.length > 0 ? ` ${reason.toString()}` : ''}`;
    closedError = new Error(`connection to ${url} closed (${why})`);
    resolveClosed(closedError);
    for (const p of [...pending.values()]) p.fail(closedError);
    pending.clear();
  });
  socket.on('message', (data, isBinary) => {
    if (isBinary) return;
    let msg: unknown;
    try {
      msg = JSON.parse((data as Buffer).toString('utf8'));
    } catch {
      return; // not ours to interpret; pending requests will time out
    }
    if (Array.isArray(msg)) for (const m of msg) onReply(m as Reply);
    else if (typeof msg === 'object' && msg !== null) onReply(msg as Reply);
  });

  function onReply(msg: Reply): void {
    if (typeof msg.id === 'number') {
      const p = pending.get(msg.id);
      if (p) {
        pending.delete(msg.id);
        p.settle(msg);
      }
      return;
    }
    // Replies with id null (parse errors, oversized frames) cannot be matched to a request.
    if (msg.id === undefined && typeof msg.method === 'string' && msg.params) notification(msg.params);
  }

  function notification(params: NonNullable<Reply['params']>): void {
    const sub = String(params.subscription);
    const fn = subscribers.get(sub);
    if (fn) return deliver(fn, params.result);
    let buffered = early.get(sub);
    if (!buffered) {
      buffered = [];
      early.set(sub, buffered);
      setTimeout(() => early.delete(sub), EARLY_NOTIFICATION_TTL_MS).unref();
    }
    if (buffered.length < EARLY_NOTIFICATION_MAX) buffered.push(params.result);
  }

  function deliver(fn: (result: unknown) => void, result: unknown): void {
    try {
      fn(result);
    } catch (err) {
      // Surface callback bugs like any listener error, without breaking this message loop.
      queueMicrotask(() => {
        throw err;
      });
    }
  }

  function ensureOpen(): void {
    if (closedError) throw closedError;
    if (socket.readyState !== WebSocket.OPEN) throw new Error(`connection to ${url} is closing`);
  }

  /** Registers ids, sends the frame, and rejects everything on timeout or send failure. */
  function call<T>(
    ids: number[],
    frame: string,
    label: string,
    timeoutMs: number,
    onReplies: (replies: Reply[]) => T,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      ensureOpen();
      const replies = new Map<number, Reply>();
      let done = false;
      const finish = (err?: Error) => {
        if (done) return; // a batch shares one entry across its ids, so it can be failed repeatedly
        done = true;
        clearTimeout(timer);
        for (const id of ids) pending.delete(id);
        if (err) return reject(err);
        try {
          resolve(onReplies(ids.map((id) => replies.get(id) as Reply)));
        } catch (e) {
          reject(e as Error);
        }
      };
      const timer = setTimeout(
        () => finish(new Error(`${label} to ${url} timed out after ${timeoutMs} ms`)),
        timeoutMs,
      );
      const entry: Pending = {
        settle(reply) {
          replies.set(reply.id as number, reply);
          if (replies.size === ids.length) finish();
        },
        fail: finish,
      };
      for (const id of ids) pending.set(id, entry);
      socket.send(frame, (err) => {
        if (err) finish(new Error(`${label} to ${url} failed: ${err.message}`));
      });
    });
  }

  function request<T = unknown>(method: string, params?: unknown, timeoutMs = defaultTimeout): Promise<T> {
    const id = nextId++;
    const frame = JSON.stringify({ jsonrpc: '2.0', id, method, params });
    return call([id], frame, `request ${method}`, timeoutMs, ([reply]) => {
      if (reply.error) throw new RpcClientError(reply.error.code, reply.error.message, reply.error.data);
      return reply.result as T;
    });
  }

  return {
    closed,
    request,
    batch(calls, timeoutMs = defaultTimeout) {
      if (calls.length === 0) return Promise.resolve([]);
      const ids = calls.map(() => nextId++);
      const frame = JSON.stringify(
        calls.map((c, i) => ({ jsonrpc: '2.0', id: ids[i], method: c.method, params: c.params })),
      );
      return call(ids, frame, `batch of ${calls.length}`, timeoutMs, (replies) =>
        replies.map((r): BatchEntry => (r.error ? { error: r.error } : { result: r.result })),
      );
    },
    async subscribe(method, params, onNotification) {
      const raw = await request<unknown>(method, params);
      if (typeof raw !== 'string' && typeof raw !== 'number') {
        throw new Error(`${method} on ${url} returned no subscription id (got ${JSON.stringify(raw)})`);
      }
      const sub = String(raw);
      subscribers.set(sub, onNotification);
      const buffered = early.get(sub);
      early.delete(sub);
      for (const result of buffered ?? []) deliver(onNotification, result);
      return sub;
    },
    sendRaw(text) {
      ensureOpen();
      socket.send(text);
    },
    close() {
      if (socket.readyState === WebSocket.CLOSED) return Promise.resolve();
      return new Promise<void>((resolve) => {
        socket.once('close', () => resolve());
        socket.close(1000);
      });
    },
  };
}
