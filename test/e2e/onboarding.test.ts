// End to end, onboarding: three validateers (no parentchain; four configured authorities, the fourth
// not running yet) produce over a thousand blocks with transfers; then the fourth starts, fetches the
// chain from all three at once, is killed halfway, resumes from its stored head (not from 0), reaches
// the same head and state commitment, and authors blocks the others import.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ValidateerClient } from '../../src/client/client.ts';
import { devAccount } from '../../src/client/accounts.ts';
import {
  cleanupTempDirs,
  createEnclaveKeys,
  restartNode,
  scrapeMetrics,
  startNode,
  tempDir,
  waitFor,
  type NodeHandle,
  type StartNodeOptions,
  OWN_NODES,
} from './harness.ts';

const SLOT_MS = 50;
const BLOCKS = 1000;
const nodes: NodeHandle[] = [];
const clients: ValidateerClient[] = [];
const keys: string[] = [];
const dataDirs: string[] = [];
let joiner: NodeHandle | undefined;

function options(i: number, bootstrap: string[], extra: Record<string, unknown> = {}): StartNodeOptions {
  return {
    slotMs: SLOT_MS,
    dataDir: dataDirs[i],
    extraConfig: {
      authorities: keys,
      enclave: { devShardSecrets: true },
      sidechain: { snapshotInterval: 200 },
      // The servers answer at most a few requests per second per peer, so that the joiner's sync
      // lasts long enough to be killed halfway.
      p2p: { bootstrap, requestsPerSecond: 4 },
      ...extra,
    },
  };
}

async function network(c: ValidateerClient): Promise<{ addresses: string[] }> {
  return c.rpc.request('system_network');
}

interface HeaderJson {
  hash: string;
  author: string;
  stateCommitment: string;
}
const header = (c: ValidateerClient, n: number) => c.rpc.request<HeaderJson | null>('chain_getHeader', [n]);

before(async () => {
  const root = tempDir();
  for (let i = 0; i < 4; i++) dataDirs.push(join(root, `v${i + 1}`));
  keys.push(...(await createEnclaveKeys(dataDirs, { devShardSecrets: true })));
  nodes.push(await startNode(options(0, [])));
  clients.push(await ValidateerClient.connect(nodes[0].rpcUrl, OWN_NODES));
  const first = (await network(clients[0])).addresses;
  for (let i = 1; i < 3; i++) {
    nodes.push(await startNode(options(i, first)));
    clients.push(await ValidateerClient.connect(nodes[i].rpcUrl, OWN_NODES));
  }
});

after(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  await Promise.all([...nodes, ...(joiner ? [joiner] : [])].map((n) => n.stop()));
  cleanupTempDirs();
});

test('a fourth validateer onboards from three peers at once, resumes after a kill -9 halfway, agrees and then authors', async (t) => {
  // Activity while the chain grows: transfers with memos, sent round-robin.
  const alice = await devAccount('//Alice');
  const bob = await devAccount('//Bob');
  const nonce0 = await clients[0].nonce(alice);
  for (let i = 0; i < 30; i++)
    await clients[i % 3].transfer(alice, bob.publicKey, 1n, {
      nonce: nonce0 + i,
      memo: `onboarding ${i}`,
      timeoutMs: 60_000,
    });
  await waitFor(async () => (await clients[0].head()).number >= BLOCKS, `${BLOCKS} blocks`, 180_000, 500);
  const bootstrap = (await Promise.all(clients.map(network))).flatMap((n) => n.addresses);

  // Start the fourth; kill it once it applied a part of the chain.
  const opts = options(3, bootstrap, { p2p: { bootstrap, maxBlocksPerRequest: 16 } });
  joiner = await startNode({ ...opts, waitReady: false });
  const synced = await waitFor(
    async () => {
      const m = await scrapeMetrics(joiner!.metricsUrl).catch(() => new Map<string, number>());
      const n = m.get('validateer_sync_blocks_total') ?? 0;
      return n >= 150
        ? { n, peers: m.get('validateer_sync_peers') ?? 0, target: m.get('validateer_sync_target_number') ?? 0 }
        : undefined;
    },
    'the joiner to apply 150 blocks',
    60_000,
    20,
  );
  await joiner.kill('SIGKILL');
  t.diagnostic(`killed after ${synced.n} blocks (target #${synced.target}, ${synced.peers} peers)`);
  assert.ok(synced.target >= BLOCKS, "the target is the peers' head");
  assert.equal(synced.peers, 3, 'fetching from all three peers');
  const first = joiner.logs().filter((l) => l.msg === 'onboarding sync started');
  assert.equal(first.length, 1);
  assert.ok((first[0].from as number) <= 1, 'the first run starts at the beginning');

  // Restarted: it continues from its stored head, reaches the others, and authors.
  joiner = await restartNode(joiner, { ...opts, waitReady: false });
  const resumed = await waitFor(
    () => joiner!.logs().find((l) => l.msg === 'onboarding sync started'),
    'the resumed sync',
    60_000,
    50,
  );
  t.diagnostic(`resumed from #${resumed.from as number}`);
  assert.ok((resumed.from as number) >= 150, `resumed from #${resumed.from as number}, not from the start`);
  const c4 = await ValidateerClient.connect(joiner.rpcUrl, OWN_NODES);
  clients.push(c4);
  const progress = await waitFor(
    () => joiner!.logs().find((l) => l.msg === 'onboarding sync done'),
    'the sync to finish',
    120_000,
    100,
  ).catch((err: Error) => {
    // The joiner's own account of the sync (peers dropped, failures) is what tells a stall's cause.
    const lines = (keep: (l: Record<string, unknown>) => boolean, n: number) =>
      joiner!
        .logs()
        .filter(keep)
        .slice(-n)
        .map((l) => JSON.stringify(l))
        .join('\n');
    const sync = lines((l) => String(l.msg).startsWith('onboarding'), 12);
    const warnings = lines((l) => (l.level as number) >= 40 && !String(l.msg).startsWith('onboarding'), 12);
    throw new Error(`${err.message}; the joiner's last sync lines:\n${sync}\nits last other warnings:\n${warnings}`, {
      cause: err,
    });
  });
  t.diagnostic(`done: ${JSON.stringify(progress)}`);
  assert.ok(
    joiner
      .logs()
      .some((l) => l.msg === 'onboarding sync' && typeof l.blocksPerSecond === 'number' && 'etaSeconds' in l),
    'progress lines with rate and ETA',
  );

  // Same chain and state at a common height, then blocks by the fourth that the others imported.
  await waitFor(
    async () => {
      const n = Math.min(...(await Promise.all(clients.map((c) => c.head()))).map((h) => h.number));
      const hs = await Promise.all(clients.map((c) => header(c, n)));
      return hs.every((h) => h !== null && h.hash === hs[0]!.hash && h.stateCommitment === hs[0]!.stateCommitment)
        ? n
        : undefined;
    },
    'the same head and state commitment on all four',
    60_000,
    200,
  ).catch(async (err: Error) => {
    const heads = (await Promise.all(clients.map((c) => c.head()))).map((h) => h.number);
    const recent = joiner!
      .logs()
      .filter((l) => (l.level as number) >= 40)
      .slice(-8)
      .map((l) => JSON.stringify(l))
      .join('\n');
    throw new Error(`${err.message}; heads ${heads.join(' ')}; the joiner's last warnings:\n${recent}`, { cause: err });
  });
  await waitFor(
    async () => {
      const head = (await clients[0].head()).number;
      for (let n = head; n > head - 40; n--) if ((await header(clients[0], n))?.author === keys[3]) return true;
      return false;
    },
    "a block by the fourth in the first validateer's chain",
    60_000,
    250,
  );
  assert.equal(await c4.balance(bob), await clients[0].balance(bob));
});
