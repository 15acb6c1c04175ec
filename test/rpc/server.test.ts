import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { z } from 'zod';
import { startRpcServer, RpcError } from '../../src/rpc/server.ts';
import type { RpcServer, RpcContext } from '../../src/rpc/server.ts';
import { connectRpc, RpcClientError } from '../../src/client/rpc.ts';
import type { RpcClient } from '../../src/client/rpc.ts';

const MAX_FRAME = 1024;
const warnings: { obj: object; msg: string }[] = [];
const outcomes: string[] = [];
const cleanedUp: number[] = [];
let cleanupSignal: () => void = () => {};

let server: RpcServer;
let client: RpcClient;

before(async () => {
  server = await startRpcServer({
    host: '127.0.0.1',
    port: 0,
    maxFrameBytes: MAX_FRAME,
    maxBatch: 5,
    maxConnections: 4,
    logger: { warn: (obj, msg) => warnings.push({ obj, msg }) },
    onRequest: (method, outcome) => outcomes.push(`${method}:${outcome}`),
    methods: {
      echo: (params) => params,
      add: (params) => {
        const [a, b] = z.tuple([z.number(), z.number()]).parse(params);
        return a + b;
      },
      transfer: async (params) => z.object({ to: z.string(), amount: z.number().int().positive() }).parse(params),
      fail: () => {
        throw new RpcError(-32001, 'nonce too low', { expected: 7 });
      },
      boom: () => {
        throw new Error('secret internal detail');
      },
      subscribeTicks: (params, ctx: RpcContext) => {
        const { count } = z.object({ count: z.number().int() }).parse(params);
        const sub = `tick-${ctx.connectionId}`;
        // First notification goes out before the subscribe reply: the client must buffer it.
        ctx.notify('ticks', sub, 0);
        let n = 1;
        const timer = setInterval(() => {
          if (n >= count) return clearInterval(timer);
          ctx.notify('ticks', sub, n++);
        }, 5);
        // A cleanup dropped before the close (its subscription ended) must not run.
        const drop = ctx.onClose(() => cleanedUp.push(-ctx.connectionId));
        drop();
        ctx.onClose(() => {
          clearInterval(timer);
          cleanedUp.push(ctx.connectionId);
          cleanupSignal();
        });
        return sub;
      },
    },
  });
  client = await connectRpc(server.url, { timeoutMs: 5_000 });
});

after(async () => {
  await client?.close();
  await server?.close();
});

interface RawSocket {
  ws: WebSocket;
  next(): Promise<unknown>;
  closed: Promise<{ code: number; reason: string }>;
}

/** A bare socket, for frames the client would never send. */
async function rawSocket(): Promise<RawSocket> {
  const ws = new WebSocket(server.url);
  const queue: unknown[] = [];
  const waiters: { resolve(m: unknown): void; reject(e: Error): void }[] = [];
  let isClosed = false;
  ws.on('message', (data) => {
    const msg: unknown = JSON.parse(String(data));
    const w = waiters.shift();
    if (w) w.resolve(msg);
    else queue.push(msg);
  });
  // A reply that never comes fails the test instead of hanging it.
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code, reason) => {
      isClosed = true;
      for (const w of waiters.splice(0)) w.reject(new Error(`closed (${code}) with no reply`));
      resolve({ code, reason: String(reason) });
    }),
  );
  ws.on('error', () => {});
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const next = (): Promise<unknown> => {
    if (queue.length > 0) return Promise.resolve(queue.shift());
    if (isClosed) return Promise.reject(new Error('closed with no reply'));
    return new Promise((resolve, reject) => waiters.push({ resolve, reject }));
  };
  return { ws, closed, next };
}

test('normal call', async () => {
  assert.deepEqual(await client.request('echo', { hello: 'world' }), { hello: 'world' });
  assert.equal(await client.request('add', [2, 3]), 5);
  assert.ok(outcomes.includes('add:ok'));
  assert.match(server.url, /^ws:\/\/127\.0\.0\.1:\d+$/);
  assert.notEqual(server.port, 0);
});

test('batch', async () => {
  const replies = await client.batch([
    { method: 'add', params: [1, 1] },
    { method: 'nope' },
    { method: 'echo', params: ['x'] },
  ]);
  assert.deepEqual(replies[0], { result: 2 });
  assert.equal('error' in replies[1] && replies[1].error.code, -32601);
  assert.deepEqual(replies[2], { result: ['x'] });
});

test('batch reply is an array even with one response, and notifications get no reply', async () => {
  const raw = await rawSocket();
  try {
    raw.ws.send(
      JSON.stringify([
        { jsonrpc: '2.0', method: 'echo', params: [1] },
        { jsonrpc: '2.0', id: 9, method: 'echo', params: [2] },
      ]),
    );
    assert.deepEqual(await raw.next(), [{ jsonrpc: '2.0', id: 9, result: [2] }]);
    raw.ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'echo', params: [3] }));
    raw.ws.send(JSON.stringify({ jsonrpc: '2.0', id: 10, method: 'echo', params: [4] }));
    assert.deepEqual(await raw.next(), { jsonrpc: '2.0', id: 10, result: [4] });
  } finally {
    raw.ws.close();
  }
});

test('malformed JSON gives -32700 and the connection keeps serving', async () => {
  const raw = await rawSocket();
  try {
    raw.ws.send('{"jsonrpc":"2.0", "id": 1, "method": ');
    assert.deepEqual(await raw.next(), { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } });
    raw.ws.send(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'add', params: [40, 2] }));
    assert.deepEqual(await raw.next(), { jsonrpc: '2.0', id: 2, result: 42 });
  } finally {
    raw.ws.close();
  }
});

test('non-object payloads and bad entries give -32600', async () => {
  const raw = await rawSocket();
  try {
    for (const text of ['null', '42', '"x"', '[]']) {
      raw.ws.send(text);
      const reply = (await raw.next()) as { id: unknown; error: { code: number } };
      assert.equal(reply.error.code, -32600, text);
      assert.equal(reply.id, null);
    }
    raw.ws.send(
      JSON.stringify([
        null,
        { jsonrpc: '2.0', id: 3, method: 7 },
        { jsonrpc: '2.0', id: 4, method: 'echo', params: 'no' },
      ]),
    );
    const replies = (await raw.next()) as { id: unknown; error: { code: number } }[];
    assert.deepEqual(
      replies.map((r) => [r.id, r.error.code]),
      [
        [null, -32600],
        [3, -32600],
        [4, -32600],
      ],
    );
    raw.ws.send(Buffer.from('{}'), { binary: true });
    assert.equal(((await raw.next()) as { error: { code: number } }).error.code, -32600);
  } finally {
    raw.ws.close();
  }
});

test('unknown method gives -32601', async () => {
  await assert.rejects(client.request('no_such_method'), (err: unknown) => {
    assert.ok(err instanceof RpcClientError);
    assert.equal(err.code, -32601);
    return true;
  });
  assert.ok(outcomes.includes('<unknown>:error'));
});

test('zod validation failure gives -32602 naming the bad path', async () => {
  await assert.rejects(client.request('add', [1, 'two']), (err: unknown) => {
    assert.ok(err instanceof RpcClientError);
    assert.equal(err.code, -32602);
    assert.match(err.message, /params\[1\]/);
    return true;
  });
  await assert.rejects(client.request('transfer', { to: 'bob', amount: -1 }), (err: unknown) => {
    assert.ok(err instanceof RpcClientError);
    assert.equal(err.code, -32602);
    assert.match(err.message, /params\.amount/);
    return true;
  });
});

test('RpcError passes through; other errors become a generic -32603', async () => {
  await assert.rejects(client.request('fail'), (err: unknown) => {
    assert.ok(err instanceof RpcClientError);
    assert.deepEqual([err.code, err.message, err.data], [-32001, 'nonce too low', { expected: 7 }]);
    return true;
  });
  await assert.rejects(client.request('boom'), (err: unknown) => {
    assert.ok(err instanceof RpcClientError);
    assert.equal(err.code, -32603);
    assert.equal(err.message, 'Internal error');
    assert.equal(err.data, undefined);
    return true;
  });
  assert.ok(
    warnings.some((w) => w.msg.includes('boom')),
    'unexpected errors are logged',
  );
  assert.ok(!warnings.some((w) => w.msg.includes('"fail"')), 'RpcError is not logged');
});

test('oversized frame gives -32600 and the connection keeps serving', async () => {
  const raw = await rawSocket();
  try {
    const big = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'echo', params: ['x'.repeat(MAX_FRAME)] });
    raw.ws.send(big);
    const reply = (await raw.next()) as { id: unknown; error: { code: number; message: string } };
    assert.equal(reply.id, null);
    assert.equal(reply.error.code, -32600);
    assert.equal(reply.error.message, `request too large (${Buffer.byteLength(big)} bytes > ${MAX_FRAME})`);
    raw.ws.send(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'echo', params: ['ok'] }));
    assert.deepEqual(await raw.next(), { jsonrpc: '2.0', id: 2, result: ['ok'] });
  } finally {
    raw.ws.close();
  }
});

test('a frame up to the hard cap (4 x maxFrameBytes) gets -32600 on an open connection', async () => {
  const raw = await rawSocket();
  try {
    raw.ws.send('x'.repeat(4 * MAX_FRAME));
    assert.equal(((await raw.next()) as { error: { code: number } }).error.code, -32600);
    raw.ws.send(JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'echo', params: ['still open'] }));
    assert.deepEqual(await raw.next(), { jsonrpc: '2.0', id: 3, result: ['still open'] });
  } finally {
    raw.ws.close();
  }
});

const OVER_CAP = {
  jsonrpc: '2.0',
  id: null,
  error: { code: -32600, message: `request too large (> ${4 * MAX_FRAME} bytes); closing the connection` },
};
const OVER_CAP_CLOSE = { code: 1009, reason: `request too large (> ${4 * MAX_FRAME} bytes)` };

test('a frame above the hard cap gets -32600, then a 1009 close with a reason, on that connection only', async () => {
  const raw = await rawSocket();
  raw.ws.send('x'.repeat(4 * MAX_FRAME + 1));
  assert.deepEqual(await raw.next(), OVER_CAP);
  assert.deepEqual(await raw.closed, OVER_CAP_CLOSE);
  assert.equal(await client.request('add', [1, 2]), 3);
});

test('a fragmented message is held to the same cap: -32600, then 1009', async () => {
  const raw = await rawSocket();
  // Fragments of maxFrameBytes each; ws refuses the fifth, which takes the message past the cap, from its header.
  for (let i = 0; i < 5; i++) raw.ws.send('x'.repeat(MAX_FRAME), { fin: false });
  assert.deepEqual(await raw.next(), OVER_CAP);
  assert.deepEqual(await raw.closed, OVER_CAP_CLOSE);
  assert.equal(await client.request('add', [2, 2]), 4);
});

test('batch larger than maxBatch gives a single -32600', async () => {
  const raw = await rawSocket();
  try {
    const calls = Array.from({ length: 6 }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'echo', params: [i] }));
    raw.ws.send(JSON.stringify(calls));
    assert.deepEqual(await raw.next(), {
      jsonrpc: '2.0',
      id: null,
      error: { code: -32600, message: 'batch too large (6 > 5)' },
    });
  } finally {
    raw.ws.close();
  }
  const replies = await client.batch(Array.from({ length: 5 }, (_, i) => ({ method: 'echo', params: [i] })));
  assert.equal(replies.length, 5);
});

test('subscription notifications reach the client, cleanup runs on close', async () => {
  const sub = await connectRpc(server.url);
  const cleaned = new Promise<void>((resolve) => (cleanupSignal = resolve));
  try {
    const got: unknown[] = [];
    const all = new Promise<void>((resolve) => {
      void sub.subscribe('subscribeTicks', { count: 3 }, (n) => {
        got.push(n);
        if (got.length === 3) resolve();
      });
    });
    await all;
    assert.deepEqual(got, [0, 1, 2]);
  } finally {
    await sub.close();
  }
  await cleaned;
  assert.equal(cleanedUp.length, 1, 'the dropped cleanup did not run');
  assert.ok(cleanedUp[0] > 0);
});

test('connections beyond maxConnections are closed with 1013', async () => {
  // Own server, so sockets still closing from other tests do not count against the limit.
  const small = await startRpcServer({
    host: '127.0.0.1',
    port: 0,
    maxFrameBytes: MAX_FRAME,
    maxBatch: 5,
    maxConnections: 2,
    methods: { echo: (params) => params },
  });
  try {
    const a = await connectRpc(small.url);
    const b = await connectRpc(small.url);
    const over = new WebSocket(small.url);
    over.on('error', () => {});
    const code = await new Promise<number>((resolve) => over.on('close', (c) => resolve(c)));
    assert.equal(code, 1013);
    assert.deepEqual(await b.request('echo', [1]), [1]);
    await a.close();
    await b.close();
  } finally {
    await small.close();
  }
});

test('client rejects pending requests when the connection drops, naming the url', async () => {
  const other = await startRpcServer({
    host: '127.0.0.1',
    port: 0,
    maxFrameBytes: MAX_FRAME,
    maxBatch: 5,
    maxConnections: 2,
    methods: { hang: () => new Promise(() => {}) },
  });
  try {
    const c = await connectRpc(other.url);
    const failed = assert.rejects(c.request('hang'), (err: Error) =>
      err.message.includes(`connection to ${other.url} closed`),
    );
    await new Promise((r) => setTimeout(r, 20));
    await other.close();
    await failed;
    await assert.rejects(connectRpc(other.url), (err: Error) => err.message.includes(`cannot connect to ${other.url}`));
  } finally {
    await other.close();
  }
});
