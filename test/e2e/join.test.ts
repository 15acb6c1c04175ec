// End to end, the README's "Adding a validateer to the devnet": with `validateer devnet` running (a dev
// parentchain and three validateers), a fourth joins with `validateer join --config config/dev.json
// --fund-from //Alice …`: it funds its enclave account, registers, gets the shard secrets from a
// member, onboards the chain, and then authors blocks the others import.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ValidateerClient, type HeaderJson } from '../../src/client/client.ts';
import {
  cleanupTempDirs,
  freePort,
  ROOT,
  scrapeMetrics,
  startDevnet,
  startNode,
  tempDir,
  waitFor,
  type DevnetHandle,
  type NodeHandle,
  OWN_NODES,
} from './harness.ts';

const SLOT_MS = 500;
const BLOCK_MS = 1000;
const DEV_CONFIG = join(ROOT, 'config', 'dev.json');

let devnet: DevnetHandle | undefined;
let joiner: NodeHandle | undefined;
let joinerKey = '';
const members: ValidateerClient[] = [];
let joinerClient: ValidateerClient | undefined;

function blockHash(c: ValidateerClient, n: number): Promise<string | null> {
  return c.rpc.request<string | null>('chain_getBlockHash', [n]);
}

async function metric(metricsUrl: string, name: string): Promise<number> {
  return (await scrapeMetrics(metricsUrl)).get(name) ?? 0;
}

async function activeMembers(c: ValidateerClient): Promise<string[]> {
  return ((await c.shardInfo()).validateers ?? []).filter((v) => v.unregisteredAt === null).map((v) => v.signingKey);
}

before(async () => {
  devnet = await startDevnet({ validateers: 3, slotMs: SLOT_MS, blockMs: BLOCK_MS });
  for (const v of devnet.validateers) members.push(await ValidateerClient.connect(v.rpcUrl, OWN_NODES));
  // As an operator would: join a set that is up, i.e. all three registered and producing.
  for (const c of members)
    await waitFor(async () => (await activeMembers(c)).length === 3, "the devnet's three registered", 120_000, 250);
  await waitFor(async () => (await members[0].head()).number >= 3, 'the devnet producing blocks', 120_000, 250);
});

after(async () => {
  await Promise.all([...members, ...(joinerClient ? [joinerClient] : [])].map((c) => c.close().catch(() => undefined)));
  await joiner?.stop();
  await devnet?.stop();
  cleanupTempDirs();
});

test('validateer join --fund-from //Alice funds its enclave account and registers: the set shows four', async (t) => {
  assert.ok(devnet);
  const root = tempDir('validateer-join-');
  joiner = await startNode({
    command: 'join',
    configFile: DEV_CONFIG,
    root,
    dataDir: join(root, 'validateer-4'),
    slotMs: SLOT_MS,
    waitReady: false,
    args: ['--parentchain', devnet.parentchain, '--p2p-port', String(await freePort()), '--fund-from', '//Alice'],
  });
  joinerClient = await ValidateerClient.connect(joiner.rpcUrl, OWN_NODES);
  const out = joiner.stdout();
  assert.match(out, /^funded the enclave account \S+ with \d+ from \/\/Alice \(parentchain block #\d+\)$/m);
  joinerKey = /^ {2}signing key +(0x[0-9a-f]{64})$/m.exec(out)?.[1] ?? '';
  assert.ok(joinerKey, `the joiner's banner names its signing key:\n${out}`);
  const started = Date.now();
  for (const c of [...members, joinerClient]) {
    const set = await waitFor(
      async () => {
        const active = await activeMembers(c);
        return active.length === 4 ? active : undefined;
      },
      'four registered, as every validateer sees it',
      120_000,
      250,
    );
    assert.ok(set.includes(joinerKey), 'the joiner is one of them');
  }
  t.diagnostic(`registered (seen by all) ${Date.now() - started} ms after the join banner`);
});

test('the joiner gets the shard secrets from a member (attested provisioning)', async () => {
  assert.ok(joiner && joinerClient && devnet);
  // At least once: a joiner asks again if a block names an epoch sealed before its registration counted.
  await waitFor(
    async () => (await metric(joiner!.metricsUrl, 'validateer_provisioning_total{role="requester",result="ok"}')) >= 1,
    'the joiner provisioned',
    120_000,
    250,
  );
  assert.ok(
    (await metric(joiner.metricsUrl, 'validateer_attestation_verifications_total{result="ok"}')) >= 1,
    "it checked its provider's quote",
  );
  // One shielding key for the shard: the joiner made keys of its own, so it holds the shard's only if handed over.
  const keyOf = (c: ValidateerClient) => c.rpc.request<{ publicKey: string }>('author_getShieldingKey');
  const shard = (await keyOf(members[0])).publicKey;
  assert.equal((await waitFor(() => keyOf(joinerClient!), "the joiner's shielding key", 60_000, 250)).publicKey, shard);
  let served = 0;
  for (const v of devnet.validateers)
    served += await metric(v.metricsUrl, 'validateer_provisioning_total{role="provider",result="ok"}');
  // The devnet's second and third members were provisioned by a member too; the joiner's handover comes on top.
  assert.ok(served >= 3, `the members served the secrets ${served} times: two devnet members and the joiner`);
});

test("the joiner onboards: its head reaches the others' and it is on their chain", async () => {
  assert.ok(joinerClient);
  const target = (await members[0].head()).number;
  const n = await waitFor(
    async () => {
      const heads = await Promise.all([...members, joinerClient!].map(async (c) => (await c.head()).number));
      const common = Math.min(...heads);
      if (common < target) return undefined;
      const hashes = await Promise.all([...members, joinerClient!].map((c) => blockHash(c, common)));
      return hashes.every((h) => h !== null && h === hashes[0]) ? common : undefined;
    },
    `the joiner at the devnet's head #${target} or above, on the same chain`,
    120_000,
    250,
  );
  const [ours, theirs] = await Promise.all(
    [joinerClient, members[0]].map((c) => c.rpc.request<HeaderJson>('chain_getHeader', [n])),
  );
  assert.equal(ours.stateCommitment, theirs.stateCommitment, `the same state at #${n}`);
});

test('the joiner authors blocks in its slots, and the others import them', async () => {
  assert.ok(joiner);
  await waitFor(
    async () => (await metric(joiner!.metricsUrl, 'validateer_sidechain_blocks_produced_total')) > 0,
    'a block produced by the joiner',
    120_000,
    250,
  );
  // One of its blocks on the devnet's chain, as the first member serves it.
  const authored = await waitFor(
    async () => {
      const head = (await members[0].head()).number;
      for (let n = head; n > Math.max(0, head - 16); n--) {
        const h = await members[0].rpc.request<HeaderJson | null>('chain_getHeader', [n]);
        if (h?.author === joinerKey) return h;
      }
      return undefined;
    },
    "a block by the joiner on the first member's chain",
    120_000,
    500,
  );
  for (const c of members) {
    await waitFor(
      async () => (await blockHash(c, authored.number)) === authored.hash,
      `the joiner's block #${authored.number} on every member`,
      30_000,
      250,
    );
  }
});
