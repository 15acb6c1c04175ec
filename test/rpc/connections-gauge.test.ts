// validateer_rpc_connections follows the open JSON-RPC connections both ways: up as clients connect,
// back down as they close (cleanly or by a dropped socket), and a connection refused over the limit
// never counts. The server is wired to the gauge as the node wires it (src/node/validateer.ts).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { startRpcServer, type RpcServer } from '../../src/rpc/server.ts';
import { createMetrics } from '../../src/metrics/metrics.ts';
import { startMetricsServer, type MetricsServer } from '../../src/metrics/server.ts';
import { scrapeMetrics } from '../../src/metrics/scrape.ts';
import { connectRpc, type RpcClient } from '../../src/client/rpc.ts';

const MAX_CONNECTIONS = 3;
const metrics = createMetrics();
let rpc: RpcServer;
let metricsServer: MetricsServer;

before(async () => {
  rpc = await startRpcServer({
    host: '127.0.0.1',
    port: 0,
    maxFrameBytes: 1024,
    maxBatch: 5,
    maxConnections: MAX_CONNECTIONS,
    methods: { echo: (params) => params },
    onConnections: (open) => metrics.rpcConnections.set(open),
  });
  metricsServer = await startMetricsServer({
    host: '127.0.0.1',
    port: 0,
    registry: metrics.registry,
    isReady: () => true,
  });
});

after(async () => {
  await rpc.close();
  await metricsServer.close();
});

async function gauge(): Promise<number | undefined> {
  return (await scrapeMetrics(metricsServer.url)).get('validateer_rpc_connections');
}

/** Polls /metrics until the gauge shows `expected` (the server learns of a close asynchronously). */
async function gaugeReaches(expected: number, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  let last: number | undefined;
  while (Date.now() < deadline) {
    last = await gauge();
    if (last === expected) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`validateer_rpc_connections stayed at ${last}, expected ${expected} (${what})`);
}

test('the gauge rises with each open connection and falls back to 0 when they close', async () => {
  assert.equal(await gauge(), 0, 'no connection yet');
  const clients: RpcClient[] = [];
  for (let i = 1; i <= MAX_CONNECTIONS; i++) {
    clients.push(await connectRpc(rpc.url));
    await gaugeReaches(i, `${i} open`);
  }
  // A connection that works, and is counted while it does.
  assert.deepEqual(await clients[0].request('echo', ['x']), ['x']);
  await clients.pop()!.close();
  await gaugeReaches(MAX_CONNECTIONS - 1, 'one closed');
  await Promise.all(clients.map((c) => c.close()));
  await gaugeReaches(0, 'all closed');
});

test('a dropped socket (no close handshake) is uncounted too', async () => {
  const ws = new WebSocket(rpc.url);
  ws.on('error', () => {});
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  await gaugeReaches(1, 'one open');
  ws.terminate();
  await gaugeReaches(0, 'the dropped socket gone');
});

test('a connection refused over maxConnections is never counted', async () => {
  const clients = await Promise.all(Array.from({ length: MAX_CONNECTIONS }, () => connectRpc(rpc.url)));
  await gaugeReaches(MAX_CONNECTIONS, 'the limit reached');
  const over = new WebSocket(rpc.url);
  over.on('error', () => {});
  assert.equal(await new Promise<number>((resolve) => over.on('close', (code) => resolve(code))), 1013);
  assert.equal(await gauge(), MAX_CONNECTIONS, 'still the limit, not one more');
  await Promise.all(clients.map((c) => c.close()));
  await gaugeReaches(0, 'all closed');
});
