// /validateer/provision/1 between real libp2p nodes over loopback TCP: opaque bytes both ways, refusals
// (P2P_REFUSED from the handler, carrying e.g. the enclave's PROVISION_* code) reach the requester as P2P_REFUSED with
// the server's reason, anything else the
// handler throws is a server error that costs only that request.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { tcp } from '@libp2p/tcp';
import { lpStream } from '@libp2p/utils';
import { multiaddr } from '@multiformats/multiaddr';
import { createLibp2p } from 'libp2p';
import { ValidateerError } from '../../src/protocol/errors.ts';
import { createLogger } from '../../src/node/logger.ts';
import { DEFAULT_LIMITS, createNetwork } from '../../src/p2p/network.ts';
import type { Network, NetworkHandlers, NetworkLimits } from '../../src/p2p/network.ts';
import {
  PROTOCOL_PROVISION,
  PROVISION_MAX_REQUEST_BYTES,
  PROVISION_MAX_RESPONSE_BYTES,
  ResponseCode,
  decodeHeader,
} from '../../src/p2p/codec.ts';

const SHARD = new Uint8Array(32).fill(0xcd);
const LIMITS: NetworkLimits = { ...DEFAULT_LIMITS, requestTimeoutMs: 3_000 };
const logger = createLogger({ level: process.env.P2P_TEST_LOG ?? 'silent' });
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

interface TestNode {
  net: Network;
  id: string;
  addr: string;
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

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'validateer-p2p-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function startNode(
  t: TestContext,
  o: { provision?: NetworkHandlers['provision']; limits?: Partial<NetworkLimits> } = {},
): Promise<TestNode> {
  const net = await createNetwork({
    dataDir: tempDir(t),
    shard: SHARD,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: [],
    limits: { ...LIMITS, ...o.limits },
    logger,
  });
  t.after(() => net.stop());
  await net.start({
    onBlock: async () => 'accept',
    onCall: async () => 'accept',
    status: () => ({
      headNumber: 0,
      headHash: new Uint8Array(32),
      finalizedNumber: 0,
      finalizedHash: new Uint8Array(32),
    }),
    onPeerStatus: () => undefined,
    blocksByRange: async () => [],
    blocksByHash: async () => [],
    ...(o.provision === undefined ? {} : { provision: o.provision }),
  });
  return { net, id: net.peerId, addr: net.addresses()[0] };
}

async function connect(client: TestNode, server: TestNode): Promise<void> {
  client.net.setPeers([server.addr]);
  await waitFor('connected', () => client.net.connectedPeers().includes(server.id));
}

async function errorOf(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await p;
  } catch (err) {
    return err as { code?: string; message: string };
  }
  assert.fail('expected the request to fail');
}

test('provision round trip: the handler sees the bytes and the requester; bounds are 16 KiB / 64 KiB, not maxRequestBytes', async (t) => {
  const seen: { request: string; from: string }[] = [];
  const big = new Uint8Array(PROVISION_MAX_RESPONSE_BYTES).fill(0x5a);
  const server = await startNode(t, {
    provision: async (request, from) => {
      seen.push({ request: dec(request), from });
      return request.length === PROVISION_MAX_REQUEST_BYTES ? big : enc(`sealed for ${dec(request)}`);
    },
  });
  const client = await startNode(t);
  await connect(client, server);

  assert.equal(dec(await client.net.requestProvision(server.id, enc('attestation'))), 'sealed for attestation');
  assert.deepEqual(seen, [{ request: 'attestation', from: client.id }]);
  // Both bounds exactly: the request is above maxRequestBytes (4 KiB), which does not apply here.
  assert.ok(PROVISION_MAX_REQUEST_BYTES > LIMITS.maxRequestBytes);
  const answer = await client.net.requestProvision(server.id, new Uint8Array(PROVISION_MAX_REQUEST_BYTES).fill(0x61));
  assert.deepEqual(answer, big);
  // An empty request is still a request.
  assert.equal(dec(await client.net.requestProvision(server.id, new Uint8Array(0))), 'sealed for ');
  assert.equal(seen.length, 3);
  // Never dials.
  const stranger = await startNode(t);
  assert.equal((await errorOf(stranger.net.requestProvision(server.id, enc('x')))).code, 'P2P_NO_PEER');
  assert.equal(seen.length, 3);
});

test('a refusal by the handler (P2P_REFUSED carrying a PROVISION_* code) reaches the requester as P2P_REFUSED with the code and reason', async (t) => {
  const server = await startNode(t, {
    provision: async () => {
      throw new ValidateerError('P2P_REFUSED', 'PROVISION_REPLAYED: nonce 7 already used');
    },
  });
  const client = await startNode(t);
  await connect(client, server);
  const err = await errorOf(client.net.requestProvision(server.id, enc('again')));
  assert.equal(err.code, 'P2P_REFUSED');
  assert.match(err.message, /PROVISION_REPLAYED: nonce 7 already used/);
});

test('any other handler failure is a server error that costs only that request', async (t) => {
  let calls = 0;
  const server = await startNode(t, {
    provision: async (request) => {
      calls++;
      const text = dec(request);
      if (text === 'boom') throw new Error('database on fire');
      // A ValidateerError with another code is no refusal either.
      if (text === 'other') throw new ValidateerError('UNSEAL_FAILED', 'sealing key unavailable');
      // p2p/ knows no enclave codes: a raw PROVISION_* error is a handler failure, not a refusal.
      if (text === 'raw') throw new ValidateerError('PROVISION_REPLAYED', 'nonce 7 already used');
      if (text === 'huge') return new Uint8Array(PROVISION_MAX_RESPONSE_BYTES + 1);
      return enc(`ok ${text}`);
    },
  });
  const client = await startNode(t);
  await connect(client, server);
  for (const bad of ['boom', 'other', 'raw', 'huge']) {
    const err = await errorOf(client.net.requestProvision(server.id, enc(bad)));
    assert.equal(err.code, 'P2P_SERVER_ERROR', bad);
    assert.match(err.message, /internal error/);
    assert.doesNotMatch(err.message, /database on fire|sealing key|nonce 7/, 'internal details stay on the server');
  }
  assert.equal(dec(await client.net.requestProvision(server.id, enc('fine'))), 'ok fine');
  assert.equal(calls, 5);
});

test('a request above 16 KiB is refused before the handler: locally by the client, by the server on the wire', async (t) => {
  let calls = 0;
  const server = await startNode(t, {
    provision: async () => {
      calls++;
      return enc('never');
    },
  });
  const client = await startNode(t);
  await connect(client, server);
  const tooBig = new Uint8Array(PROVISION_MAX_REQUEST_BYTES + 1);
  assert.equal((await errorOf(client.net.requestProvision(server.id, tooBig))).code, 'P2P_INVALID_ARGUMENT');

  // A peer that skips the client-side check.
  const raw = await createLibp2p({ transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] });
  t.after(() => raw.stop());
  const stream = await raw.dialProtocol(multiaddr(server.addr), PROTOCOL_PROVISION);
  const lp = lpStream(stream);
  await lp.write(tooBig);
  const header = decodeHeader((await lp.read()).subarray());
  await stream.close();
  assert.deepEqual(header, { code: ResponseCode.invalidRequest, reason: 'request too large' });
  assert.equal(calls, 0);
  assert.equal(dec(await client.net.requestProvision(server.id, enc('small'))), 'never');
  assert.equal(calls, 1);
});

test('a node without a provision handler answers with a server error', async (t) => {
  const server = await startNode(t);
  const client = await startNode(t);
  await connect(client, server);
  const err = await errorOf(client.net.requestProvision(server.id, enc('hello')));
  assert.equal(err.code, 'P2P_SERVER_ERROR');
  assert.match(err.message, /provisioning not served/);
  // The other protocols are unaffected.
  assert.equal((await client.net.requestStatus(server.id)).headNumber, 0);
});

test('provision requests are rate-limited per peer in their own bucket', async (t) => {
  const server = await startNode(t, { provision: async () => enc('ok'), limits: { requestsPerSecond: 1 } }); // burst 2
  const client = await startNode(t);
  await connect(client, server);
  const codes: (string | undefined)[] = [];
  for (let i = 0; i < 4; i++)
    codes.push(
      await client.net.requestProvision(server.id, enc('x')).then(
        () => undefined,
        (err: ValidateerError) => err.code,
      ),
    );
  assert.equal(codes[0], undefined, `first request served: ${codes}`);
  assert.ok(codes.includes('P2P_RATE_LIMITED'), `later requests limited: ${codes}`);
  assert.equal((await client.net.requestStatus(server.id)).headNumber, 0, 'status has its own bucket');
});
