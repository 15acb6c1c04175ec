// Real libp2p nodes in one process over loopback TCP. Conditions are polled (waitFor); where a test
// must show that something does NOT happen, it sends a later "barrier" message over the same path and
// waits for that instead of sleeping.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { tcp } from '@libp2p/tcp';
import { lpStream } from '@libp2p/utils';
import { multiaddr } from '@multiformats/multiaddr';
import { createLibp2p } from 'libp2p';
import { createLogger } from '../../src/node/logger.ts';
import { BAN_THRESHOLD, DEFAULT_LIMITS, PENALTY_POINTS, createNetwork } from '../../src/p2p/network.ts';
import type { ChainStatus, GossipKind, Network, NetworkLimits, Validation } from '../../src/p2p/network.ts';
import {
  PROTOCOL_BLOCKS_BY_HASH,
  PROTOCOL_BLOCKS_BY_RANGE,
  PROTOCOL_STATUS,
  ResponseCode,
  encodeRangeRequest,
} from '../../src/p2p/codec.ts';
import { peerKeyPath } from '../../src/p2p/peer-key.ts';
import type { P2pNode } from '../../src/p2p/factory.ts';
import { codeOf } from '../../src/protocol/errors.ts';

const SHARD = new Uint8Array(32).fill(0xab);
const LIMITS: NetworkLimits = { ...DEFAULT_LIMITS, requestTimeoutMs: 3_000 };
const logger = createLogger({ level: process.env.P2P_TEST_LOG ?? 'silent' });
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
const sha = (b: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(b).digest());
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

interface TestNode {
  net: Network;
  id: string;
  addr: string;
  blocks: { text: string; from: string }[];
  calls: string[];
  gossip: { kind: GossipKind; result: string }[];
  penalties: { peer: string; reason: string }[];
  statuses: Map<string, ChainStatus>;
}

interface NodeOptions {
  limits?: Partial<NetworkLimits>;
  /** Verdict on a gossiped block (text); probes are always accepted. */
  verdict?: (text: string) => Validation;
  /** Blocks by number; served by range and by hash (sha256 of the bytes stands in for the header hash). */
  chain?: Uint8Array[];
  head?: number;
  dataDir?: string;
}

async function waitFor(
  what: string,
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  everyMs = 25,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Asserts `cond` holds at every check for `ms` (for "stays disconnected while the other side keeps redialling"). */
async function holds(what: string, cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    assert.ok(cond(), what);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'validateer-p2p-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function startNode(t: TestContext, o: NodeOptions = {}): Promise<TestNode> {
  const chain = o.chain ?? [];
  const byHash = new Map(chain.map((b) => [hex(sha(b)), b]));
  const n: Partial<TestNode> & Pick<TestNode, 'blocks' | 'calls' | 'gossip' | 'penalties' | 'statuses'> = {
    blocks: [],
    calls: [],
    gossip: [],
    penalties: [],
    statuses: new Map(),
  };
  const net = await createNetwork({
    dataDir: o.dataDir ?? tempDir(t),
    shard: SHARD,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: [],
    limits: { ...LIMITS, ...o.limits },
    logger,
    hooks: {
      onGossip: (kind, result) => n.gossip.push({ kind, result }),
      onPenalty: (peer, reason) => n.penalties.push({ peer, reason }),
    },
  });
  t.after(() => net.stop());
  const head = o.head ?? Math.max(0, chain.length - 1);
  await net.start({
    onBlock: async (bytes, from) => {
      const text = dec(bytes);
      n.blocks.push({ text, from });
      return text.startsWith('probe ') ? 'accept' : (o.verdict?.(text) ?? 'accept');
    },
    onCall: async (bytes) => {
      n.calls.push(dec(bytes));
      return 'accept';
    },
    status: () => ({
      headNumber: head,
      headHash: new Uint8Array(32).fill(head % 256),
      finalizedNumber: Math.max(0, head - 2),
      finalizedHash: new Uint8Array(32).fill(1),
    }),
    onPeerStatus: (peer, status) => n.statuses.set(peer, status),
    blocksByRange: async (from, count) => {
      const out: Uint8Array[] = [];
      for (let i = from; i < from + count && i < chain.length; i++) out.push(chain[i]);
      return out;
    },
    blocksByHash: async (hashes) => hashes.flatMap((h) => byHash.get(hex(h)) ?? []),
  });
  return Object.assign(n, { net, id: net.peerId, addr: net.addresses()[0] }) as TestNode;
}

function connectedTo(a: TestNode, b: TestNode): boolean {
  return a.net.connectedPeers().includes(b.id);
}

function received(n: TestNode, text: string): number {
  return n.blocks.filter((b) => b.text === text).length;
}

/** Publishes probes from `from` until every node in `to` has received one: the gossip path is up. */
async function gossipReady(from: TestNode, to: TestNode[]): Promise<void> {
  let i = 0;
  const prefix = `probe ${from.id} `;
  await waitFor(
    `gossip from ${from.id} to reach ${to.length} peers`,
    async () => {
      await from.net.publishBlock(enc(prefix + i++));
      return to.every((n) => n.blocks.some((b) => b.text.startsWith(prefix)));
    },
    10_000,
    100,
  );
}

async function fullMesh(nodes: TestNode[]): Promise<void> {
  const addrs = nodes.map((n) => n.addr);
  for (const n of nodes) n.net.setPeers(addrs); // includes its own address, which must be skipped
  await waitFor('full mesh', () => nodes.every((a) => nodes.every((b) => a === b || connectedTo(a, b))));
}

/** Test-only peek at gossipsub's score of `peer` as seen by `n` (not part of the Network interface). */
function gossipScore(n: TestNode, peer: TestNode): number {
  const pubsub = (n.net as unknown as { node: P2pNode }).node.services.pubsub as unknown as {
    getScore(id: string): number;
  };
  return pubsub.getScore(peer.id);
}

async function codeOfAsync(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (err) {
    return codeOf(err);
  }
  return undefined;
}

test('peer key: persisted with mode 0600, same peer id after restart; a corrupt file is an error and kept', async (t) => {
  const dataDir = tempDir(t);
  const first = await createNetwork({
    dataDir,
    shard: SHARD,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: [],
    limits: LIMITS,
    logger,
  });
  await first.stop();
  const path = peerKeyPath(dataDir);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  const second = await createNetwork({
    dataDir,
    shard: SHARD,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: [],
    limits: LIMITS,
    logger,
  });
  await second.stop();
  assert.equal(second.peerId, first.peerId);

  writeFileSync(path, 'not a key');
  const code = await codeOfAsync(
    createNetwork({ dataDir, shard: SHARD, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], limits: LIMITS, logger }),
  );
  assert.equal(code, 'P2P_PEER_KEY_CORRUPT');
  assert.equal(readFileSync(path, 'utf8'), 'not a key');
});

test('three nodes via setPeers: each gets a block once, duplicates are dropped, status exchanged on connect', async (t) => {
  const [a, b, c] = await Promise.all([
    startNode(t, { head: 10 }),
    startNode(t, { head: 20 }),
    startNode(t, { head: 30 }),
  ]);
  // Unparsable and id-less addresses are skipped with a warning, not fatal.
  a.net.setPeers(['not a multiaddr', '/ip4/127.0.0.1/tcp/1']);
  await fullMesh([a, b, c]);
  await waitFor(
    'status on connect',
    () => a.statuses.get(c.id)?.headNumber === 30 && c.statuses.get(a.id)?.headNumber === 10 && b.statuses.size === 2,
  );
  assert.equal(a.statuses.get(b.id)?.finalizedNumber, 18);
  await gossipReady(a, [b, c]);
  await gossipReady(b, [a, c]);

  await a.net.publishBlock(enc('block 1'));
  await waitFor('block 1 everywhere', () => received(b, 'block 1') === 1 && received(c, 'block 1') === 1);
  assert.equal(b.blocks.find((x) => x.text === 'block 1')?.from, a.id);
  // Same bytes again, from the author and from a node that already has them: both dropped.
  const again = [await a.net.publishBlock(enc('block 1')), await b.net.publishBlock(enc('block 1'))];
  assert.deepEqual(again, ['duplicate', 'duplicate']);
  await a.net.publishCall(enc('call 1'));
  await a.net.publishBlock(enc('block 2')); // barrier: sent after the duplicates on the same streams
  await waitFor('block 2 everywhere', () => received(b, 'block 2') === 1 && received(c, 'block 2') === 1);
  await waitFor('call 1 everywhere', () => b.calls.includes('call 1') && c.calls.includes('call 1'));
  for (const n of [a, b, c]) assert.equal(received(n, 'block 1'), n === a ? 0 : 1, 'handler called once per node');
  // In a full mesh B and C also forward to each other; those copies are counted, not handled.
  assert.ok([b, c].some((n) => n.gossip.some((g) => g.result === 'duplicate')));
  assert.ok(b.gossip.some((g) => g.kind === 'calls' && g.result === 'accept'));
});

test('publishing without peers does not throw; an oversized publish does', async (t) => {
  const a = await startNode(t);
  assert.equal(await a.net.publishBlock(enc('lonely')), 'no_peers');
  assert.equal(await codeOfAsync(a.net.publishBlock(new Uint8Array(LIMITS.maxGossipBytes + 1))), 'P2P_TOO_LARGE');
});

test('a publish after stop() is a rejected promise, never a synchronous throw (a block stored as the node stops)', async (t) => {
  const a = await startNode(t);
  await a.net.stop();
  let block: Promise<unknown> | undefined;
  let call: Promise<unknown> | undefined;
  assert.doesNotThrow(() => {
    block = a.net.publishBlock(enc('late block'));
    call = a.net.publishCall(enc('late call'));
  });
  assert.equal(await codeOfAsync(block!), 'P2P_NOT_STARTED');
  assert.equal(await codeOfAsync(call!), 'P2P_NOT_STARTED');
});

test('line A-B-C: a block B rejects is not forwarded to C; B counts it and its gossipsub score of A drops', async (t) => {
  const [a, c] = await Promise.all([startNode(t), startNode(t)]);
  const b = await startNode(t, { verdict: (text) => (text === 'bad block' ? 'reject' : 'accept') });
  a.net.setPeers([b.addr]);
  c.net.setPeers([b.addr]);
  await waitFor('line connected', () => connectedTo(a, b) && connectedTo(c, b));
  await gossipReady(a, [b, c]); // through B
  assert.ok(!connectedTo(a, c));

  await a.net.publishBlock(enc('bad block'));
  await waitFor('B saw the bad block', () => received(b, 'bad block') === 1);
  await a.net.publishBlock(enc('good block'));
  await waitFor('good block reached C', () => received(c, 'good block') === 1);
  assert.equal(received(c, 'bad block'), 0);
  assert.equal(b.gossip.filter((g) => g.result === 'reject').length, 1);
  // Gossipsub scores the reject (P4); the application score is the node's call (penalize).
  await waitFor("B's gossipsub score of A below zero (scores are cached for a moment)", () => gossipScore(b, a) < 0);
  assert.ok(gossipScore(b, c) >= 0);
  assert.deepEqual(b.penalties, []);
  assert.ok(connectedTo(a, b), 'one reject does not disconnect');
});

test('gossip above the receiver maxGossipBytes is rejected before the handler', async (t) => {
  const a = await startNode(t, { limits: { maxGossipBytes: 64 * 1024 } });
  const b = await startNode(t, { limits: { maxGossipBytes: 16 * 1024 } });
  a.net.setPeers([b.addr]);
  await waitFor('connected', () => connectedTo(a, b));
  await gossipReady(a, [b]);
  const big = new Uint8Array(32 * 1024).fill(0x41);
  await a.net.publishBlock(big);
  await a.net.publishBlock(enc('after big'));
  await waitFor('barrier', () => received(b, 'after big') === 1);
  assert.ok(!b.blocks.some((x) => x.text.length === big.length), 'handler never saw the big block');
  assert.equal(b.gossip.filter((g) => g.result === 'too_large').length, 1);
  assert.deepEqual(b.penalties, [{ peer: a.id, reason: 'oversized blocks gossip' }]);
});

test('blocks by range and by hash: round trip, clamping, gaps and response bounds', async (t) => {
  const chain = Array.from({ length: 100 }, (_, i) => enc(`block #${i} `.padEnd(300, '.')));
  const server = await startNode(t, { chain, limits: { maxBlocksPerRequest: 16 } });
  const client = await startNode(t);
  const small = await startNode(t, { limits: { maxResponseBytes: 1024 } });
  client.net.setPeers([server.addr]);
  small.net.setPeers([server.addr]);
  await waitFor('connected', () => connectedTo(client, server) && connectedTo(small, server));

  const range = await client.net.requestBlocksByRange(server.id, 10, 5);
  assert.deepEqual(range.map(dec), chain.slice(10, 15).map(dec));
  // Above the server's maxBlocksPerRequest: clamped (not refused), the client continues from there.
  assert.equal((await client.net.requestBlocksByRange(server.id, 0, 100)).length, 16);
  // The end of the chain: fewer blocks, not an error.
  assert.deepEqual((await client.net.requestBlocksByRange(server.id, 97, 10)).map(dec), chain.slice(97).map(dec));
  assert.deepEqual(await client.net.requestBlocksByRange(server.id, 500, 10), []);

  const unknown = new Uint8Array(32).fill(9);
  const byHash = await client.net.requestBlocksByHash(server.id, [sha(chain[7]), unknown, sha(chain[3])]);
  assert.deepEqual(byHash.map(dec), [dec(chain[7]), dec(chain[3])]);
  // 4 KiB requests hold at most 128 hashes: more is refused locally.
  assert.equal(
    await codeOfAsync(
      client.net.requestBlocksByHash(
        server.id,
        Array.from({ length: 129 }, () => unknown),
      ),
    ),
    'P2P_INVALID_ARGUMENT',
  );
  // A response above the client's maxResponseBytes (10 x 300 bytes > 1 KiB) is a bad response.
  assert.equal(await codeOfAsync(small.net.requestBlocksByRange(server.id, 0, 10)), 'P2P_BAD_RESPONSE');
  assert.equal((await small.net.requestBlocksByRange(server.id, 0, 3)).length, 3);
  // Not connected / not a peer id.
  assert.equal(await codeOfAsync(small.net.requestBlocksByRange(client.id, 0, 1)), 'P2P_NO_PEER');
  assert.equal(await codeOfAsync(client.net.requestStatus('nonsense')), 'P2P_BAD_PEER_ID');
});

test('rate limiting per peer and protocol yields P2P_RATE_LIMITED, and recovers', async (t) => {
  const server = await startNode(t, { limits: { requestsPerSecond: 2 } }); // burst 4
  const client = await startNode(t);
  client.net.setPeers([server.addr]);
  await waitFor('connected', () => connectedTo(client, server));
  const codes: (string | undefined)[] = [];
  for (let i = 0; i < 8; i++) codes.push(await codeOfAsync(client.net.requestBlocksByRange(server.id, 0, 1)));
  assert.ok(
    codes.slice(0, 3).every((c) => c === undefined),
    `first requests served: ${codes}`,
  );
  assert.ok(codes.includes('P2P_RATE_LIMITED'), `later requests limited: ${codes}`);
  // Another protocol has its own bucket.
  assert.equal((await client.net.requestStatus(server.id)).headNumber, 0);
  await waitFor(
    'bucket refilled',
    async () => (await codeOfAsync(client.net.requestBlocksByRange(server.id, 0, 1))) === undefined,
    5_000,
    200,
  );
});

test('malformed and over-limit requests get an error code, and the server keeps serving', async (t) => {
  const server = await startNode(t, { chain: [enc('genesis')] });
  const raw = await createLibp2p({ transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] });
  t.after(() => raw.stop());
  const ask = async (protocol: string, frame: Uint8Array): Promise<number> => {
    const stream = await raw.dialProtocol(multiaddr(server.addr), protocol);
    const lp = lpStream(stream);
    await lp.write(frame);
    const header = (await lp.read()).subarray();
    await stream.close();
    return header[0];
  };
  assert.equal(await ask(PROTOCOL_BLOCKS_BY_RANGE, enc('garbage')), ResponseCode.invalidRequest);
  assert.equal(
    await ask(PROTOCOL_BLOCKS_BY_RANGE, encodeRangeRequest({ from: 0, count: 0 })),
    ResponseCode.invalidRequest,
  );
  assert.equal(await ask(PROTOCOL_BLOCKS_BY_HASH, new Uint8Array(33)), ResponseCode.invalidRequest);
  assert.equal(await ask(PROTOCOL_STATUS, enc('x')), ResponseCode.invalidRequest);
  assert.equal(
    await ask(PROTOCOL_BLOCKS_BY_HASH, new Uint8Array(LIMITS.maxRequestBytes + 32)),
    ResponseCode.invalidRequest,
  );
  assert.equal(await ask(PROTOCOL_BLOCKS_BY_RANGE, encodeRangeRequest({ from: 0, count: 1 })), ResponseCode.ok);
  // A stream that sends nothing and stalls only costs its own timeout; others are served meanwhile.
  const stalled = await raw.dialProtocol(multiaddr(server.addr), PROTOCOL_STATUS);
  const client = await startNode(t);
  client.net.setPeers([server.addr]);
  await waitFor('connected', () => connectedTo(client, server));
  assert.deepEqual((await client.net.requestBlocksByRange(server.id, 0, 5)).map(dec), ['genesis']);
  stalled.abort(new Error('done'));
});

test('client errors are typed: a peer that never answers times out, a lying one is a bad response', async (t) => {
  const raw = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
  });
  t.after(() => raw.stop());
  await raw.handle(PROTOCOL_STATUS, () => undefined); // reads nothing, writes nothing
  await raw.handle(PROTOCOL_BLOCKS_BY_RANGE, async (stream) => {
    const lp = lpStream(stream);
    await lp.read();
    await lp.write(Uint8Array.of(ResponseCode.ok, 5, 0, 0, 0)); // announces 5 blocks, 1 was asked for
    await stream.close();
  });
  await raw.handle(PROTOCOL_BLOCKS_BY_HASH, async (stream) => {
    const lp = lpStream(stream);
    await lp.read();
    await lp.write(Uint8Array.of(42)); // no such response code
    await stream.close();
  });
  const client = await startNode(t, { limits: { requestTimeoutMs: 300 } });
  client.net.setPeers([raw.getMultiaddrs()[0].toString()]);
  const rawId = raw.peerId.toString();
  await waitFor('connected', () => client.net.connectedPeers().includes(rawId));
  assert.equal(await codeOfAsync(client.net.requestStatus(rawId)), 'P2P_TIMEOUT');
  assert.equal(await codeOfAsync(client.net.requestBlocksByRange(rawId, 0, 1)), 'P2P_BAD_RESPONSE');
  assert.equal(await codeOfAsync(client.net.requestBlocksByHash(rawId, [new Uint8Array(32)])), 'P2P_BAD_RESPONSE');
});

test('response frames are cut from any chunking of the bytes; an oversized or cut-off frame is a bad response', async (t) => {
  const raw = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
  });
  t.after(() => raw.stop());
  const frame = (b: Uint8Array) =>
    Uint8Array.from([...(b.length < 128 ? [b.length] : [(b.length & 0x7f) | 0x80, b.length >> 7]), ...b]);
  const blocks = [enc('a'), new Uint8Array(300).fill(7), enc('ccc')];
  const answer = Uint8Array.from([
    ...frame(Uint8Array.of(ResponseCode.ok, 3, 0, 0, 0)),
    ...blocks.flatMap((b) => [...frame(b)]),
  ]);
  let mode: 'dribble' | 'oversized' | 'cut' = 'dribble';
  await raw.handle(PROTOCOL_BLOCKS_BY_RANGE, async (stream) => {
    await lpStream(stream).read();
    if (mode === 'dribble') {
      // one byte at a time up into the second block's two-byte prefix, then the rest at once
      for (let i = 0; i < 9; i++) {
        stream.send(answer.subarray(i, i + 1));
        await new Promise((r) => setTimeout(r, 5));
      }
      stream.send(answer.subarray(9));
    } else if (mode === 'oversized') {
      const big = LIMITS.maxResponseBytes + 1;
      stream.send(
        Uint8Array.from([
          ...frame(Uint8Array.of(ResponseCode.ok, 1, 0, 0, 0)),
          0x80 | (big & 0x7f),
          0x80 | ((big >> 7) & 0x7f),
          0x80 | ((big >> 14) & 0x7f),
          big >> 21,
        ]),
      );
    } else {
      stream.send(answer.subarray(0, answer.length - 2));
    }
    await stream.close();
  });
  const client = await startNode(t);
  client.net.setPeers([raw.getMultiaddrs()[0].toString()]);
  const rawId = raw.peerId.toString();
  await waitFor('connected', () => client.net.connectedPeers().includes(rawId));
  assert.deepEqual((await client.net.requestBlocksByRange(rawId, 0, 3)).map(hex), blocks.map(hex));
  mode = 'oversized';
  const oversized = await client.net.requestBlocksByRange(rawId, 0, 3).catch((e: Error & { code?: string }) => e);
  assert.equal(codeOf(oversized), 'P2P_BAD_RESPONSE');
  assert.match((oversized as Error).message, /exceeds the limit/);
  mode = 'cut';
  const cut = await client.net.requestBlocksByRange(rawId, 0, 3).catch((e: Error & { code?: string }) => e);
  assert.equal(codeOf(cut), 'P2P_BAD_RESPONSE');
  assert.match((cut as Error).message, /stream closed/);
});

test('setBlocked drops and refuses a peer while it keeps redialling; [] heals', async (t) => {
  const nodes = await Promise.all([startNode(t), startNode(t), startNode(t)]);
  const [a, b, c] = nodes;
  await fullMesh(nodes);
  a.net.setBlocked([c.id]);
  await waitFor('A and C disconnected', () => !connectedTo(a, c) && !connectedTo(c, a));
  // C's redials complete the handshake on C's side before A's gater drops them, so only A's view is steady.
  await holds('A refuses C while C redials', () => !connectedTo(a, c), 1_500);
  assert.ok(connectedTo(a, b) && connectedTo(b, c), 'the rest of the set is untouched');
  assert.equal(await codeOfAsync(a.net.requestStatus(c.id)), 'P2P_NO_PEER');
  a.net.setBlocked([]);
  await waitFor('A and C reconnected', () => connectedTo(a, c) && connectedTo(c, a));
});

test('penalize: below the threshold the peer is disconnected and refused', async (t) => {
  const [a, b] = await Promise.all([startNode(t), startNode(t)]);
  await fullMesh([a, b]);
  const toBan = Math.ceil(-BAN_THRESHOLD / PENALTY_POINTS);
  for (let i = 1; i < toBan; i++) a.net.penalize(b.id, 'bad block');
  assert.ok(connectedTo(a, b), 'still above the threshold');
  a.net.penalize(b.id, 'bad block');
  assert.equal(a.penalties.length, toBan);
  await waitFor('B disconnected', () => !connectedTo(a, b) && !connectedTo(b, a));
  await holds('B refused while it redials', () => !connectedTo(a, b), 1_500);
});
