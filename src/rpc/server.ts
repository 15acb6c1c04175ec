// JSON-RPC 2.0 over WebSocket. Framing, size limits and batch fan-out live here; single-request
// dispatch and the standard error objects come from json-rpc-2.0's JSONRPCServer.
import { WebSocketServer, WebSocket } from 'ws';
import type { RawData } from 'ws';
import type { Duplex } from 'node:stream';
import type { EventEmitter } from 'node:events';
import { JSONRPCServer, JSONRPCErrorCode, JSONRPCErrorException, createJSONRPCErrorResponse } from 'json-rpc-2.0';
import type { JSONRPCID, JSONRPCRequest, JSONRPCResponse } from 'json-rpc-2.0';
import { $ZodError } from 'zod/v4/core';

export interface RpcContext {
  /** id of the connection, for per-connection subscription bookkeeping */
  connectionId: number;
  /**
   * send a JSON-RPC notification {jsonrpc:'2.0', method, params:{subscription, result}} on this connection; returns
   * false if the socket is closed
   */
  notify(method: string, subscription: string, result: unknown): boolean;
  /**
   * register a cleanup callback run when this connection closes; the returned function unregisters it (the subscription
   * ended first)
   */
  onClose(fn: () => void): () => void;
  /**
   * take one of this connection's subscription slots (rpc.maxSubscriptionsPerConnection); throws RpcError
   * TOO_MANY_SUBSCRIPTIONS when none is left. The returned function gives it back (idempotent); a close frees all.
   */
  reserveSubscription(): () => void;
}

export type RpcHandler = (params: unknown, ctx: RpcContext) => unknown | Promise<unknown>;

/** Thrown by handlers to send a specific JSON-RPC error object to the caller. */
export class RpcError extends Error {
  code: number;
  data?: unknown;
  constructor(code: number, message: string, data?: unknown) {
    super(message);
    this.name = 'RpcError';
    this.code = code;
    this.data = data;
  }
}

export interface RpcServerOptions {
  host: string;
  port: number;
  maxFrameBytes: number;
  maxBatch: number;
  maxConnections: number;
  /** Most open connections from one remote address, loopback included (default 32). */
  maxConnectionsPerIp?: number;
  /** Most live subscriptions (watched calls) on one connection (default 1024). */
  maxSubscriptionsPerConnection?: number;
  /** A connection that answers no ping (and sends nothing) for this long is closed (default 120000). */
  idleTimeoutMs?: number;
  methods: Record<string, RpcHandler>;
  logger?: { warn(obj: object, msg: string): void; debug?(obj: object, msg: string): void };
  onRequest?: (method: string, outcome: 'ok' | 'error') => void;
  /** Called with the number of open connections whenever it changes. */
  onConnections?: (open: number) => void;
}

export interface RpcServer {
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

/** JSON-RPC error code of a subscription refused over rpc.maxSubscriptionsPerConnection (data.code names it). */
export const TOO_MANY_SUBSCRIPTIONS = -32015;

/** Label passed to onRequest for methods that do not exist, so metric label cardinality stays bounded. */
export const UNKNOWN_METHOD = '<unknown>';

// A peer that does not read its replies/notifications is cut off rather than buffered without bound.
const MAX_BUFFERED_BYTES = 64 * 1024 * 1024;
const MAX_ISSUES_IN_MESSAGE = 3;
// ws assembles a message in memory up to maxPayload = this × maxFrameBytes, and refuses a longer one from its header
// (or from the fragment that crosses it), so a connection never buffers more than that of one request.
const HARD_FRAME_FACTOR = 4;
// ws's error codes for a message over maxPayload (or one whose length does not fit a JS number).
const TOO_LARGE_CODES = new Set(['WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH']);

interface Connection {
  socket: WebSocket;
  ctx: RpcContext;
  closed: Promise<void>;
  /** when it last answered a ping or sent a message (Date.now()) */
  lastSeen: number;
  /** closed here for idleness: the next tick cuts it off if the peer ignores the close */
  idleClosed: boolean;
}

export async function startRpcServer(opts: RpcServerOptions): Promise<RpcServer> {
  const { logger, maxFrameBytes, maxBatch } = opts;
  // The defaults are the config's (src/config/schema.ts).
  const { maxConnectionsPerIp = 32, maxSubscriptionsPerConnection = 1024, idleTimeoutMs = 120_000 } = opts;
  const hardCap = HARD_FRAME_FACTOR * maxFrameBytes;
  const rpc = createDispatcher(opts);
  const connections = new Set<Connection>();
  const perIp = new Map<string, number>();
  let nextConnectionId = 1;

  const wss = new WebSocketServer({
    host: opts.host,
    port: opts.port,
    // Frames between maxFrameBytes and this cap get -32600 on an open connection; above it, see onTooLarge.
    maxPayload: hardCap,
    perMessageDeflate: false,
    // No `path` option: upgrades on any path are accepted.
  });

  await new Promise<void>((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  wss.on('error', (err) => logger?.warn({ err }, 'rpc server error'));

  wss.on('connection', (socket, req) => {
    const remote = req.socket.remoteAddress ?? '';
    const fromRemote = perIp.get(remote) ?? 0;
    // One address (a single client, or a proxy in front of all of them) must not take every slot.
    const refused =
      connections.size >= opts.maxConnections
        ? 'too many connections'
        : fromRemote >= maxConnectionsPerIp
          ? 'too many connections from this address'
          : null;
    if (refused) {
      // debug, not warn: a connection flood must not become a log flood.
      logger?.debug?.({ remote, max: opts.maxConnections, maxConnectionsPerIp }, `rpc connection rejected: ${refused}`);
      socket.on('error', () => {});
      socket.close(1013, refused);
      return;
    }
    const conn = openConnection(nextConnectionId++, socket);
    connections.add(conn);
    perIp.set(remote, fromRemote + 1);
    opts.onConnections?.(connections.size);
    void conn.closed.then(() => {
      connections.delete(conn);
      const left = (perIp.get(remote) ?? 1) - 1;
      if (left > 0) perIp.set(remote, left);
      else perIp.delete(remote);
      opts.onConnections?.(connections.size);
    });
    logger?.debug?.({ connectionId: conn.ctx.connectionId, remote: req.socket.remoteAddress }, 'rpc connection opened');
  });

  function openConnection(connectionId: number, socket: WebSocket): Connection {
    let isClosed = false;
    // A Set: a long-lived connection registers and drops one cleanup per watched call.
    const cleanups = new Set<() => void>();
    let subscriptions = 0;
    const ctx: RpcContext = {
      connectionId,
      notify(method, subscription, result) {
        return send(socket, JSON.stringify({ jsonrpc: '2.0', method, params: { subscription, result } }));
      },
      onClose(fn) {
        // A handler may finish after its connection died: run the cleanup now instead of leaking it.
        if (isClosed) {
          runCleanup(fn, connectionId);
          return () => {};
        }
        const entry = () => fn(); // its own identity: the same fn may be registered twice
        cleanups.add(entry);
        return () => cleanups.delete(entry);
      },
      reserveSubscription() {
        if (subscriptions >= maxSubscriptionsPerConnection) {
          throw new RpcError(TOO_MANY_SUBSCRIPTIONS, `too many subscriptions on this connection (${subscriptions})`, {
            code: 'TOO_MANY_SUBSCRIPTIONS',
            limit: maxSubscriptionsPerConnection,
          });
        }
        subscriptions++;
        let held = true;
        return () => {
          if (held) subscriptions--;
          held = false;
        };
      },
    };
    const closed = new Promise<void>((resolve) => {
      socket.on('close', (code) => {
        isClosed = true;
        const fns = [...cleanups];
        cleanups.clear();
        for (const fn of fns) runCleanup(fn, connectionId);
        logger?.debug?.({ connectionId, code }, 'rpc connection closed');
        resolve();
      });
    });
    // Also covers frames above maxPayload, after onTooLarge has answered and closed.
    socket.on('error', (err) => logger?.debug?.({ err, connectionId }, 'rpc socket error'));
    // ws's receiver is private: should it move, ws still closes with a bare 1009 on its own.
    const receiver = (socket as unknown as { _receiver?: EventEmitter })._receiver;
    receiver?.prependListener('error', (err: Error & { code?: string }) => onTooLarge(socket, err));
    const conn: Connection = { socket, ctx, closed, lastSeen: Date.now(), idleClosed: false };
    socket.on('pong', () => (conn.lastSeen = Date.now()));
    socket.on('message', (data, isBinary) => {
      conn.lastSeen = Date.now();
      onMessage(socket, ctx, data, isBinary);
    });
    return conn;
  }

  // Every half timeout: ping the live, close the silent. A peer that ignores the close too is cut off a tick later.
  const idleTimer = setInterval(
    () => {
      const now = Date.now();
      for (const conn of connections) {
        const { socket } = conn;
        if (conn.idleClosed) socket.terminate();
        else if (socket.readyState !== WebSocket.OPEN) continue;
        else if (now - conn.lastSeen < idleTimeoutMs) socket.ping();
        else {
          logger?.debug?.({ connectionId: conn.ctx.connectionId, idleTimeoutMs }, 'rpc connection idle; closing');
          conn.idleClosed = true;
          socket.close(1001, 'idle timeout: no pong');
        }
      }
    },
    Math.max(1, Math.floor(idleTimeoutMs / 2)),
  );
  idleTimer.unref();

  // ws stops reading once a message passes maxPayload and closes with a bare 1009 right after this listener. Answer it
  // like any oversized request first, then close with a reason; ws's own close is then a no-op.
  function onTooLarge(socket: WebSocket, err: Error & { code?: string }): void {
    if (!TOO_LARGE_CODES.has(err.code ?? '') || socket.readyState !== WebSocket.OPEN) return;
    reply(socket, invalidRequest(null, `request too large (> ${hardCap} bytes); closing the connection`));
    socket.close(1009, `request too large (> ${hardCap} bytes)`);
  }

  function runCleanup(fn: () => void, connectionId: number): void {
    try {
      fn();
    } catch (err) {
      logger?.warn({ err, connectionId }, 'rpc connection cleanup failed');
    }
  }

  // A block that includes thousands of calls notifies them all in one turn. Corking each socket until
  // the next turn hands those frames to the kernel in one write instead of one syscall per frame.
  const corked = new Set<Duplex>();
  const uncorkAll = () => {
    for (const s of corked) s.uncork();
    corked.clear();
  };
  function cork(socket: WebSocket): void {
    // ws keeps the TCP socket in `_socket`; without it (never on a live server socket) frames go out uncorked.
    const raw = (socket as unknown as { _socket?: Duplex })._socket;
    if (!raw || corked.has(raw)) return;
    if (corked.size === 0) setImmediate(uncorkAll);
    raw.cork();
    corked.add(raw);
  }

  function send(socket: WebSocket, text: string): boolean {
    if (socket.readyState !== WebSocket.OPEN) return false;
    if (socket.bufferedAmount > MAX_BUFFERED_BYTES) {
      logger?.warn({ bufferedAmount: socket.bufferedAmount }, 'rpc peer not reading; closing connection');
      socket.terminate();
      return false;
    }
    cork(socket);
    socket.send(text);
    return true;
  }

  function onMessage(socket: WebSocket, ctx: RpcContext, data: RawData, isBinary: boolean): void {
    // With the default binaryType ('nodebuffer') data is always a single Buffer.
    const buf = data as Buffer;
    if (isBinary) return reply(socket, invalidRequest(null, 'binary frames are not supported'));
    if (buf.length > maxFrameBytes) {
      return reply(socket, invalidRequest(null, `request too large (${buf.length} bytes > ${maxFrameBytes})`));
    }
    let payload: unknown;
    try {
      payload = JSON.parse(buf.toString('utf8'));
    } catch {
      return reply(socket, createJSONRPCErrorResponse(null, JSONRPCErrorCode.ParseError, 'Parse error'));
    }
    if (Array.isArray(payload)) {
      if (payload.length === 0) return reply(socket, invalidRequest(null, 'Invalid Request'));
      if (payload.length > maxBatch)
        return reply(socket, invalidRequest(null, `batch too large (${payload.length} > ${maxBatch})`));
      Promise.all(payload.map((entry) => dispatch(entry, ctx))).then(
        (responses) => {
          const replies = responses.filter((r) => r !== null);
          // Spec: a batch gets an array reply, or nothing at all if it held only notifications.
          if (replies.length > 0) reply(socket, replies);
        },
        (err: unknown) => logger?.warn({ err }, 'rpc batch dispatch failed'),
      );
      return;
    }
    dispatch(payload, ctx).then(
      (response) => {
        if (response !== null) reply(socket, response);
      },
      (err: unknown) => logger?.warn({ err }, 'rpc dispatch failed'),
    );
  }

  // The library trusts its input shape (it throws on `null` entries and accepts non-string methods),
  // so each request is checked here before being handed over.
  function dispatch(entry: unknown, ctx: RpcContext): PromiseLike<JSONRPCResponse | null> {
    const invalid = checkRequest(entry);
    if (invalid) return Promise.resolve(invalid);
    return rpc.receive(entry as JSONRPCRequest, ctx);
  }

  function reply(socket: WebSocket, response: JSONRPCResponse | JSONRPCResponse[]): void {
    let text: string;
    try {
      text = JSON.stringify(response);
    } catch (err) {
      // e.g. a handler returned a BigInt or a cyclic object: answer the affected ids with -32603.
      logger?.warn({ err }, 'rpc result not serialisable');
      text = JSON.stringify(Array.isArray(response) ? response.map(serialisable) : serialisable(response));
    }
    send(socket, text);
  }

  function serialisable(response: JSONRPCResponse): JSONRPCResponse {
    try {
      JSON.stringify(response);
      return response;
    } catch {
      return createJSONRPCErrorResponse(response.id, JSONRPCErrorCode.InternalError, 'Internal error');
    }
  }

  const port = (wss.address() as { port: number }).port;
  const url = `ws://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}`;
  return {
    port,
    url,
    async close() {
      clearInterval(idleTimer);
      const waits = [...connections].map((c) => {
        c.socket.terminate();
        return c.closed;
      });
      for (const socket of wss.clients) socket.terminate(); // also sockets rejected with 1013
      await Promise.all([...waits, new Promise<void>((resolve) => wss.close(() => resolve()))]);
    },
  };
}

function createDispatcher(opts: RpcServerOptions): JSONRPCServer<RpcContext> {
  const { logger, onRequest } = opts;
  const rpc = new JSONRPCServer<RpcContext>({
    // Called for every thrown error; only unexpected ones are worth a log line.
    errorListener: (message, err) => {
      if (!isExpectedError(err)) logger?.warn({ err }, message);
    },
  });
  rpc.mapErrorToJSONRPCErrorResponse = mapError;
  if (onRequest) {
    const notFound = rpc.handleMethodNotFound;
    rpc.handleMethodNotFound = (request, serverParams) => {
      onRequest(UNKNOWN_METHOD, 'error');
      return notFound(request, serverParams);
    };
  }
  for (const [name, handler] of Object.entries(opts.methods)) {
    rpc.addMethod(name, onRequest ? counted(name, handler, onRequest) : handler);
  }
  return rpc;
}

// Reports each call's outcome without forcing sync handlers through an extra promise.
function counted(name: string, handler: RpcHandler, onRequest: NonNullable<RpcServerOptions['onRequest']>): RpcHandler {
  return (params, ctx) => {
    let out: unknown;
    try {
      out = handler(params, ctx);
    } catch (err) {
      onRequest(name, 'error');
      throw err;
    }
    if (out instanceof Promise) {
      return out.then(
        (result: unknown) => {
          onRequest(name, 'ok');
          return result;
        },
        (err: unknown) => {
          onRequest(name, 'error');
          throw err;
        },
      );
    }
    onRequest(name, 'ok');
    return out;
  };
}

function isExpectedError(err: unknown): boolean {
  return err instanceof RpcError || err instanceof JSONRPCErrorException || err instanceof $ZodError;
}

function mapError(id: JSONRPCID, err: unknown): ReturnType<typeof createJSONRPCErrorResponse> {
  if (err instanceof RpcError || err instanceof JSONRPCErrorException) {
    return createJSONRPCErrorResponse(id, err.code, err.message, err.data);
  }
  if (err instanceof $ZodError) {
    const issues = err.issues.map((i) => ({ path: formatPath(i.path), message: i.message }));
    const shown = issues.slice(0, MAX_ISSUES_IN_MESSAGE).map((i) => `${i.path}: ${i.message}`);
    if (issues.length > MAX_ISSUES_IN_MESSAGE) shown.push(`and ${issues.length - MAX_ISSUES_IN_MESSAGE} more`);
    return createJSONRPCErrorResponse(
      id,
      JSONRPCErrorCode.InvalidParams,
      `Invalid params: ${shown.join('; ')}`,
      issues,
    );
  }
  // Never echo internal messages or stacks to callers; errorListener has logged it.
  return createJSONRPCErrorResponse(id, JSONRPCErrorCode.InternalError, 'Internal error');
}

function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return 'params';
  return 'params' + path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
}

function invalidRequest(id: JSONRPCID, message: string): JSONRPCResponse {
  return createJSONRPCErrorResponse(id, JSONRPCErrorCode.InvalidRequest, message);
}

/** Returns an error response if `entry` is not a well-formed request object, else null. */
function checkRequest(entry: unknown): JSONRPCResponse | null {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry))
    return invalidRequest(null, 'Invalid Request');
  const r = entry as Record<string, unknown>;
  const idOk = r.id === undefined || r.id === null || typeof r.id === 'string' || typeof r.id === 'number';
  const id = idOk && r.id !== undefined ? (r.id as JSONRPCID) : null;
  if (!idOk || r.jsonrpc !== '2.0' || typeof r.method !== 'string') return invalidRequest(id, 'Invalid Request');
  if (r.params !== undefined && (typeof r.params !== 'object' || r.params === null))
    return invalidRequest(id, 'Invalid Request');
  return null;
}
