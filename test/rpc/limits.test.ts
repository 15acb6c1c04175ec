// The RPC server's per-client bounds, on a real loopback server with real ws clients and small limits: connections
// per address (refused with 1013 and a reason), live subscriptions per connection (author_submitAndWatchCall over
// the cap gets -32015 TOO_MANY_SUBSCRIPTIONS and submits nothing; the others keep working) and the idle timeout (a
// peer that answers no ping is closed with 1001, one that does stays open).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { startRpcServer, type RpcServer, type RpcServerOptions } from '../../src/rpc/server.ts';
import { createMethods, RpcCodes, type MethodDeps } from '../../src/rpc/methods.ts';
import type { CallUpdate } from '../../src/calls/relay.ts';
import { createMetrics } from '../../src/metrics/metrics.ts';
import { connectRpc, RpcClientError, type RpcClient } from '../../src/client/rpc.ts';

const SHARD = new Uint8Array(32).fill(3);

/** A relay that admits every call as ready and lets the test settle the watched ones. */
function fakeRelay() {
  const submitted: string[] = [];
  const watchers = new Map<string, (u: CallUpdate) => void>();
  return {
    submitted,
    watchers,
    relay: {
      submit: async (request: Uint8Array) => {
        const hash = Buffer.from(request.subarray(32)).toString('hex').padEnd(64, '0');
        submitted.push(hash);
        return { status: 'ready' as const, hash };
      },
      watch: (hash: string, cb: (u: CallUpdate) => void) => {
        watchers.set(hash, cb);
        return () => watchers.delete(hash);
      },
    },
  };
}

async function start(limits: Partial<RpcServerOptions>, relay: unknown = {}): Promise<RpcServer> {
  const methods = createMethods({
    relay,
    shard: SHARD,
    metrics: createMetrics(),
    version: 'test',
    isReady: () => true,
    enclave: {},
    store: {},
  } as unknown as MethodDeps);
  return startRpcServer({
    host: '127.0.0.1',
    port: 0,
    maxFrameBytes: 1 << 16,
    maxBatch: 10,
    maxConnections: 50,
    methods,
    ...limits,
  });
}

/** A call envelope for this shard whose (fake) hash is `n` in hex. */
const call = (n: number) => '0x' + Buffer.from(SHARD).toString('hex') + n.toString(16).padStart(2, '0');

async function until(what: string, cond: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** `p`, or a failure naming `what` if it has not settled in 10 s (so a missing close fails instead of hanging). */
async function within<T>(what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 10_000);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A bare ws socket: `closed` resolves with the server's close code and reason. */
function rawSocket(url: string, opts: { autoPong?: boolean } = {}) {
  const ws = new WebSocket(url, { perMessageDeflate: false, ...opts });
  ws.on('error', () => {});
  const opened = new Promise<void>((resolve) => ws.once('open', () => resolve()));
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })),
  );
  return { ws, opened, closed };
}

test('connections from one address over rpc.maxConnectionsPerIp are refused with 1013 and a reason', async () => {
  const server = await start({ maxConnectionsPerIp: 2 });
  const clients: RpcClient[] = [];
  try {
    for (let i = 0; i < 2; i++) clients.push(await connectRpc(server.url, { timeoutMs: 5_000 }));
    const third = rawSocket(server.url);
    assert.deepEqual(await within('the third connection to be refused', third.closed), {
      code: 1013,
      reason: 'too many connections from this address',
    });
    for (const c of clients) assert.equal(await c.request('system_version'), 'test', 'the admitted ones keep serving');

    // A closed connection frees its address's slot (the server learns of the close asynchronously).
    await clients.shift()!.close();
    await until('a new connection from the address to be admitted', async () => {
      const c = await connectRpc(server.url, { timeoutMs: 5_000 });
      // A refused one is closed right after the handshake: its request fails.
      if (
        await c.request('system_version').then(
          () => true,
          () => false,
        )
      )
        return (clients.push(c), true);
      await c.close();
      return false;
    });
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.close();
  }
});

test('a watch over rpc.maxSubscriptionsPerConnection gets -32015, is not submitted; others keep working', async () => {
  const { relay, submitted, watchers } = fakeRelay();
  const server = await start({ maxSubscriptionsPerConnection: 2 }, relay);
  const client = await connectRpc(server.url, { timeoutMs: 5_000 });
  const other = await connectRpc(server.url, { timeoutMs: 5_000 });
  try {
    const seen = new Map<string, unknown[]>();
    const watch = async (c: RpcClient, n: number) => {
      const updates: unknown[] = [];
      const sub = await c.subscribe('author_submitAndWatchCall', [call(n)], (u) => updates.push(u));
      seen.set(sub, updates);
      return sub;
    };
    const first = await watch(client, 1);
    await watch(client, 2);
    const refused = await watch(client, 3).then(
      () => assert.fail('a third watched call was accepted'),
      (err: unknown) => err,
    );
    assert.ok(refused instanceof RpcClientError);
    assert.equal(refused.code, -32015);
    assert.equal(RpcCodes.TOO_MANY_SUBSCRIPTIONS, -32015);
    assert.deepEqual(refused.data, { code: 'TOO_MANY_SUBSCRIPTIONS', limit: 2 });
    assert.equal(submitted.length, 2, 'the refused call was not submitted');

    // The limit is per connection: another connection still has its own slots.
    await watch(other, 4);

    // The existing subscriptions still get their updates; a final one frees its slot.
    await until('the ready updates', () => seen.get(first)!.length === 1);
    const inBlock: CallUpdate = { status: 'inBlock', blockHash: '0x' + 'cd'.repeat(32), blockNumber: 7 };
    watchers.get(first.slice(2))!(inBlock);
    await until('the final update of the first watched call', () => seen.get(first)!.length === 2);
    assert.deepEqual(seen.get(first), [{ status: 'ready' }, inBlock]);
    await watch(client, 5);
  } finally {
    await client.close();
    await other.close();
    await server.close();
  }
});

test('a connection answering no ping for rpc.idleTimeoutMs is closed with 1001; one that answers stays', async () => {
  const server = await start({ idleTimeoutMs: 200 });
  const live = await connectRpc(server.url, { timeoutMs: 5_000 });
  const silent = rawSocket(server.url, { autoPong: false });
  try {
    await silent.opened;
    assert.deepEqual(await within('the silent connection to be closed', silent.closed), {
      code: 1001,
      reason: 'idle timeout: no pong',
    });
    // The live client connected first and has been pinged as long: ws answers pings by itself.
    assert.equal(await live.request('system_version'), 'test');
  } finally {
    silent.ws.terminate();
    await live.close();
    await server.close();
  }
});
