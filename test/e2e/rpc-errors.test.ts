// The node's JSON-RPC error surface over a raw WebSocket: protocol errors, oversized frames, garbage
// and replayed calls. Every error leaves the connection (and the node, and all balances) intact.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { WebSocket } from 'ws';
import { ValidateerClient } from '../../src/client/client.ts';
import { devAccount, type Account } from '../../src/client/accounts.ts';
import { buildTransfer } from '../../src/client/calls.ts';
import { ShieldedRequest } from '../../src/protocol/wire.ts';
import {
  GENESIS_AMOUNT,
  cleanupTempDirs,
  scrapeMetrics,
  startNode,
  waitFor,
  type NodeHandle,
  OWN_NODES,
} from './harness.ts';
import { fromHex, toHex } from '../../src/protocol/bytes.ts';

interface Reply {
  jsonrpc: string;
  id: number | string | null;
  result?: unknown;
  error?: { code: number; message: string; data?: unknown };
}

/** One raw WebSocket with its replies queued, so each test can wait for the one it expects. */
class RawConn {
  readonly ws: WebSocket;
  private readonly inbox: Reply[] = [];
  private readonly waiters = new Set<() => void>();
  closed = false;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data) => {
      const parsed = JSON.parse(String(data)) as Reply | Reply[];
      for (const r of Array.isArray(parsed) ? parsed : [parsed]) this.inbox.push(r);
      for (const w of this.waiters) w();
    });
    ws.on('close', () => {
      this.closed = true;
      for (const w of this.waiters) w();
    });
  }

  static open(url: string): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      ws.once('open', () => resolve(new RawConn(ws)));
      ws.once('error', reject);
    });
  }

  /** Waits for (and removes) the first reply matching `match`. */
  next(match: (r: Reply) => boolean, timeoutMs = 15_000): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const i = this.inbox.findIndex(match);
        if (i >= 0) {
          done();
          resolve(this.inbox.splice(i, 1)[0]);
        } else if (this.closed) {
          done();
          reject(new Error('connection closed while waiting for a reply'));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(`no matching reply within ${timeoutMs} ms; inbox: ${JSON.stringify(this.inbox).slice(0, 500)}`),
        );
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  sendText(text: string): void {
    this.ws.send(text);
  }

  private id = 1;
  async call(method: string, params?: unknown): Promise<Reply> {
    const id = this.id++;
    this.ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
    return this.next((r) => r.id === id);
  }

  /** The error of a call that must fail. */
  async error(method: string, params?: unknown): Promise<NonNullable<Reply['error']>> {
    const r = await this.call(method, params);
    assert.ok(r.error, `${method} should fail, got ${JSON.stringify(r).slice(0, 300)}`);
    return r.error;
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close();
    });
  }
}

let node: NodeHandle;
let conn: RawConn;
let client: ValidateerClient;
let alice: Account;
let bob: Account;
let shard: string;

before(async () => {
  [alice, bob] = await Promise.all(['//Alice', '//Bob'].map(devAccount));
  node = await startNode();
  conn = await RawConn.open(node.rpcUrl);
  client = await ValidateerClient.connect(node.rpcUrl, OWN_NODES);
  shard = (await client.rpc.request<{ shard: string }>('author_getShieldingKey')).shard;
});

after(async () => {
  await conn?.close();
  await client?.close();
  await node?.stop();
  cleanupTempDirs();
});

/** The connection (and the node) still answers. */
async function stillServing(c: RawConn = conn): Promise<void> {
  const r = await c.call('system_version');
  assert.match(String(r.result), /^validateer\//);
}

test('malformed JSON -> -32700 (id null), and the connection still answers', async () => {
  conn.sendText('{"jsonrpc":"2.0","id":1,"method":');
  const r = await conn.next((x) => x.id === null);
  assert.equal(r.error?.code, -32700);
  conn.sendText('not json at all');
  assert.equal((await conn.next((x) => x.id === null)).error?.code, -32700);
  await stillServing();
});

test('invalid requests -> -32600: wrong jsonrpc version, empty batch, binary frame', async () => {
  conn.sendText(JSON.stringify({ jsonrpc: '1.0', id: 'v1', method: 'system_version' }));
  assert.equal((await conn.next((x) => x.id === 'v1')).error?.code, -32600);
  conn.sendText('[]');
  assert.equal((await conn.next((x) => x.id === null)).error?.code, -32600);
  conn.ws.send(Buffer.from('{"jsonrpc":"2.0","id":9,"method":"system_version"}'), { binary: true });
  assert.equal((await conn.next((x) => x.id === null)).error?.code, -32600);
  await stillServing();
});

test('unknown method -> -32601', async () => {
  const e = await conn.error('author_doesNotExist', []);
  assert.equal(e.code, -32601);
  await stillServing();
});

test('bad params -> -32602', async () => {
  for (const params of [[123], [], ['0xzz'], ['0x123'], ['abcd'], ['0x00zz00'], { hex: '0x00' }, ['0x00', '0x00']]) {
    const e = await conn.error('author_submitCall', params);
    assert.equal(e.code, -32602, `params ${JSON.stringify(params)}: ${e.message}`);
  }
  assert.equal((await conn.error('chain_getHeader', [-1])).code, -32602);
  assert.equal((await conn.error('author_callBlock', ['0x1234'])).code, -32602);
  await stillServing();
});

test('an oversized frame (> 1 MiB) -> -32600, and the node keeps serving', async () => {
  const big = JSON.stringify({
    jsonrpc: '2.0',
    id: 'big',
    method: 'author_submitCall',
    params: ['0x' + 'ab'.repeat(600 * 1024)],
  });
  assert.ok(Buffer.byteLength(big) > 1 << 20);
  conn.sendText(big);
  const r = await conn.next((x) => x.id === null);
  assert.equal(r.error?.code, -32600);
  assert.match(r.error!.message, /too large/);
  await stillServing();
  // Other connections are unaffected as well.
  const other = await RawConn.open(node.rpcUrl);
  try {
    await stillServing(other);
  } finally {
    await other.close();
  }
  const res = await fetch(`${node.metricsUrl}/health/ready`);
  assert.equal(res.status, 200);
});

test('garbage for our shard -> -32010 DECODE_FAILED / DECRYPT_FAILED; another shard -> -32012 WRONG_SHARD', async () => {
  const shardHex = shard.slice(2);
  // Too short for an envelope: always a decode failure.
  let e = await conn.error('author_submitCall', ['0x' + shardHex + randomBytes(3).toString('hex')]);
  assert.equal(e.code, -32010, e.message);
  assert.deepEqual((e.data as { code: string }).code, 'DECODE_FAILED');
  // Random bytes after the shard id (with the current key id, so the key check passes).
  const { keyId } = await client.shieldingKey();
  const keyIdLe = Buffer.alloc(4);
  keyIdLe.writeUInt32LE(keyId);
  for (const len of [40, 64, 100, 333]) {
    e = await conn.error('author_submitCall', [
      '0x' + shardHex + keyIdLe.toString('hex') + randomBytes(len).toString('hex'),
    ]);
    assert.equal(e.code, -32010, e.message);
    assert.ok(['DECODE_FAILED', 'DECRYPT_FAILED'].includes((e.data as { code: string }).code), JSON.stringify(e));
  }
  // A well-formed envelope whose ciphertext is random: decryption fails.
  const envelope = ShieldedRequest.enc({
    shard: fromHex(shard),
    keyId,
    enc: new Uint8Array(randomBytes(32)),
    ciphertext: new Uint8Array(randomBytes(120)),
  });
  e = await conn.error('author_submitCall', [toHex(envelope)]);
  assert.equal(e.code, -32010, e.message);
  assert.equal((e.data as { code: string }).code, 'DECRYPT_FAILED');
  // Not our shard: rejected before any enclave work.
  e = await conn.error('author_submitCall', ['0x' + randomBytes(80).toString('hex')]);
  assert.equal(e.code, -32012);
  assert.equal((e.data as { code: string }).code, 'WRONG_SHARD');
  // The getter path answers garbage with its own code.
  e = await conn.error('state_executeGetter', ['0x' + shardHex + randomBytes(50).toString('hex')]);
  assert.equal(e.code, -32011);
  await stillServing();
});

test('a replayed call -> -32010 STALE_NONCE or DUPLICATE; it executes exactly once; balances otherwise unchanged', async () => {
  const key = await client.shieldingKey();
  const nonce = await client.nonce(alice);
  const { request, hash } = buildTransfer(
    alice,
    { to: bob.publicKey, amount: 4_242n, memo: 'once', nonce },
    key,
    key.shard,
  );
  const hex = toHex(request);
  const first = await conn.call('author_submitCall', [hex]);
  assert.equal(first.result, '0x' + hash);
  // Straight away again: still pending (DUPLICATE) or already in a block (STALE_NONCE).
  let e = await conn.error('author_submitCall', [hex]);
  assert.equal(e.code, -32010);
  assert.ok(['DUPLICATE', 'STALE_NONCE'].includes((e.data as { code: string }).code), JSON.stringify(e));
  const block = await waitFor(
    async () => {
      const r = await conn.call('author_callBlock', ['0x' + hash]);
      return typeof r.result === 'number' ? r.result : undefined;
    },
    'the call to be included',
    20_000,
  );
  assert.ok(block > 0);
  // After inclusion: the exact same bytes again.
  e = await conn.error('author_submitCall', [hex]);
  assert.equal(e.code, -32010);
  assert.ok(['STALE_NONCE', 'DUPLICATE'].includes((e.data as { code: string }).code), JSON.stringify(e));
  assert.equal((e.data as { hash?: string }).hash, '0x' + hash);
  // Also via the watch method.
  e = await conn.error('author_submitAndWatchCall', [hex]);
  assert.equal(e.code, -32010);

  // Let a few more blocks pass: nothing else may have executed.
  const h = (await client.head()).number;
  await waitFor(async () => (await client.head()).number >= h + 3, 'three more blocks', 20_000);
  assert.equal(await client.nonce(alice), nonce + 1);
  assert.equal(await client.balance(alice), GENESIS_AMOUNT - 4_242n);
  assert.equal(await client.balance(bob), GENESIS_AMOUNT + 4_242n);
  assert.equal((await client.memos(bob)).total, 1);
  const charlie = await devAccount('//Charlie');
  assert.equal(await client.balance(charlie), GENESIS_AMOUNT);
  assert.equal(await client.nonce(charlie), 0);
  await stillServing();
  assert.equal(node.proc.exitCode, null, 'the node is still running');
});

test('the metrics count the rejected calls and failed requests', async () => {
  const m = await scrapeMetrics(node.metricsUrl);
  assert.ok(m.get('validateer_calls_total{result="rejected_rpc"}')! >= 1, 'wrong-shard calls');
  assert.ok(m.get('validateer_calls_total{result="invalid"}')! >= 7, 'garbage and replayed calls');
  assert.equal(m.get('validateer_calls_total{result="included"}'), 1);
  assert.ok(m.get('validateer_rpc_requests_total{method="author_submitCall",outcome="error"}')! >= 10);
  assert.ok(
    m.get('validateer_rpc_requests_total{method="other",outcome="error"}')! >= 1,
    'unknown methods, under a bounded label',
  );
});

test('validateer_rpc_connections counts open connections', async () => {
  const open = async () => (await scrapeMetrics(node.metricsUrl)).get('validateer_rpc_connections');
  // Exactly this test's two (conn and client) once the oversized-frame test's extra connection has closed.
  await waitFor(async () => (await open()) === 2, 'two connections open (conn and client)', 10_000);
  const third = await RawConn.open(node.rpcUrl);
  await waitFor(async () => (await open()) === 3, 'a third connection counted', 10_000);
  await third.close();
  await waitFor(async () => (await open()) === 2, 'the third connection uncounted once closed', 10_000);
});
