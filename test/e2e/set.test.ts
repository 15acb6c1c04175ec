// End to end, a validateer set without a parentchain (authorities from config): three real processes
// over libp2p take turns by Aura, gossip blocks and calls, import each other's blocks, and a node
// that was killed catches up by blocks-by-range. (The parentchain set is in set-parentchain.test.ts.)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ValidateerClient } from '../../src/client/client.ts';
import { devAccount } from '../../src/client/accounts.ts';
import { cleanupTempDirs, restartNode, runCli, scrapeMetrics, startNode, tempDir, waitFor, type NodeHandle } from './harness.ts';

const SLOT_MS = 300;
const nodes: NodeHandle[] = [];
const clients: ValidateerClient[] = [];
const keys: string[] = [];
const dataDirs: string[] = [];

function config(i: number, bootstrap: string[]) {
  return {
    slotMs: SLOT_MS,
    dataDir: dataDirs[i],
    extraConfig: { authorities: keys, enclave: { devShardSecrets: true }, p2p: { bootstrap }, sidechain: { snapshotInterval: 20 } },
  };
}

async function network(c: ValidateerClient): Promise<{ peerId: string; addresses: string[]; peers: string[] }> {
  return c.rpc.request('system_network');
}

before(async () => {
  const root = tempDir();
  for (let i = 0; i < 3; i++) {
    dataDirs.push(join(root, `v${i + 1}`));
    const r = await runCli(['keys', '--data-dir', dataDirs[i]], { env: { VALIDATEER_ENCLAVE__DEV_SHARD_SECRETS: 'true' } });
    assert.equal(r.code, 0, r.stderr);
    keys.push((JSON.parse(r.stdout) as { signingKey: string }).signingKey);
  }
  // The first authority creates block 0; the others fetch it from the network.
  nodes.push(await startNode(config(0, [])));
  clients.push(await ValidateerClient.connect(nodes[0].rpcUrl));
  const first = (await network(clients[0])).addresses;
  for (let i = 1; i < 3; i++) {
    nodes.push(await startNode(config(i, first)));
    clients.push(await ValidateerClient.connect(nodes[i].rpcUrl));
  }
});

after(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  await Promise.all(nodes.map((n) => n.stop()));
  cleanupTempDirs();
});

async function sameHead(timeoutMs = 30_000): Promise<void> {
  await waitFor(async () => {
    const heads = await Promise.all(clients.map((c) => c.head()));
    const n = Math.min(...heads.map((h) => h.number));
    // Heads move every slot: compare the block at a common height.
    const hashes = await Promise.all(clients.map((c) => c.rpc.request<string>('chain_getBlockHash', [n])));
    return n > 0 && hashes.every((h) => h === hashes[0]);
  }, 'the same chain on all validateers', timeoutMs, 100);
}

test('three validateers take turns, import each other\'s blocks and agree on the chain', async () => {
  await sameHead();
  const h0 = (await clients[0].head()).number;
  await waitFor(async () => (await clients[0].head()).number >= h0 + 9, 'nine more blocks', 30_000, 100);
  // Every authority authored some of the last blocks (Aura round robin).
  const authors = new Set<string>();
  const head = await clients[0].head();
  for (let n = head.number; n > head.number - 9; n--) {
    const h = await clients[0].rpc.request<{ author: string }>('chain_getHeader', [n]);
    authors.add(h.author);
  }
  assert.deepEqual([...authors].sort(), [...keys].sort());
  await sameHead();
  for (const n of nodes) {
    const m = await scrapeMetrics(n.metricsUrl);
    assert.ok((m.get('validateer_p2p_peers') ?? 0) >= 1, 'peers');
    assert.ok((m.get('validateer_sidechain_blocks_imported_total{result="imported"}') ?? 0) > 0, 'imports');
  }
});

test('calls submitted round-robin to all validateers are each included exactly once', async () => {
  const alice = await devAccount('//Alice');
  const bob = await devAccount('//Bob');
  const before = await clients[1].balance(bob);
  const nonce0 = await clients[0].nonce(alice);
  const results = await Promise.all(Array.from({ length: 12 }, (_, i) => clients[i % 3].transfer(alice, bob.publicKey, 1n, { nonce: nonce0 + i, timeoutMs: 60_000 })));
  assert.equal(new Set(results.map((r) => r.hash)).size, 12);
  await sameHead();
  await waitFor(async () => {
    const b = await Promise.all(clients.map((c) => c.balance(bob)));
    return b.every((x) => x === before + 12n);
  }, 'bob credited 12 on every validateer', 30_000, 200);
  assert.equal(await clients[2].nonce(alice), nonce0 + 12);
});

test('a killed validateer leaves the others producing; restarted, it catches up', async () => {
  await nodes[2].kill('SIGKILL');
  const h = (await clients[0].head()).number;
  await waitFor(async () => (await clients[0].head()).number >= h + 6, 'the other two go on', 30_000, 100);
  await clients[2].close().catch(() => undefined);
  nodes[2] = await restartNode(nodes[2], config(2, (await network(clients[0])).addresses));
  clients[2] = await ValidateerClient.connect(nodes[2].rpcUrl);
  await sameHead(60_000);
  const a = await clients[0].head();
  await waitFor(async () => (await clients[2].head()).number >= a.number, 'the restarted node at the head', 30_000, 100);
});
