// End to end on the chopsticks devnet: finality is a property of the set (issue 19, acceptance 2). Three validateers
// finalize; with one stopped (SIGSTOP, then SIGKILL) finality keeps advancing; with a second one stopped it waits
// while the last one still authors; with both back it resumes. Throughout, every node's final block is sampled: no
// final block is ever reverted, all nodes agree on each final number, and every payout is made exactly once.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { startDevChain, type DevChain } from '../../src/parentchain/devchain.ts';
import { connectParentchain, type SubstrateParentchain } from '../../src/parentchain/substrate.ts';
import { keyringSigner } from '../../src/parentchain/signers.ts';
import type { ExtrinsicSigner } from '../../src/parentchain/api.ts';
import { ValidateerClient, type HeaderJson } from '../../src/client/client.ts';
import { devAccount } from '../../src/client/accounts.ts';
import { shieldCall } from '../../src/client/calls.ts';
import { configSchema } from '../../src/config/schema.ts';
import { fromHex } from '../../src/protocol/bytes.ts';
import {
  cleanupTempDirs,
  createEnclaveKeys,
  freePorts,
  restartNode,
  scrapeMetrics,
  sleep,
  startNodes,
  tempDir,
  waitFor,
  type NodeHandle,
  type StartNodeOptions,
  OWN_NODES,
} from './harness.ts';

const N = 3;
const SLOT_MS = 400;
const BLOCK_MS = 1000;
/** Sidechain blocks between anchors: the unit in which finality is expected to move (or not). */
const INTERVAL = 5;
const UNIT = 10n ** 12n;
const SHARD = fromHex(configSchema.parse({}).shard);
const SAMPLE_MS = 500;
/** Parentchain blocks within which an anchor voted before a stop lands (its fallback submitters wait a few each). */
const SETTLE_BLOCKS = 12;

let chain: DevChain;
let pc: SubstrateParentchain;
let alice: ExtrinsicSigner;
const nodes: NodeHandle[] = [];
const clients: ValidateerClient[] = [];
const dataDirs: string[] = [];
/** Node i's enclave signing key (hex). */
const keys: string[] = [];
const ports: { p2p: number; rpc: number; metrics: number }[] = [];
/** Node indices by role: A (the vault's payer, never stopped), B (stopped, resumed), C (stopped, killed, restarted). */
let A = 0;
let B = 1;
let C = 2;
/** How many samples of C were taken before it was killed (the rest are of the restarted process). */
let cSamplesBeforeKill = 0;

interface Final {
  number: number;
  hash: string;
}
/** Every (final number, final hash) each node reported, in order, across its restart. */
const seen: Final[][] = Array.from({ length: N }, () => []);
/** Nodes not sampled: stopped or killed (a request to a stopped process only hangs). */
const paused = new Set<number>();
let sampling: Promise<void> | undefined;
let samplingOn = false;

/** The payouts asked for: a parentchain beneficiary, its balance before, the amount. */
interface Payout {
  beneficiary: Uint8Array;
  before: bigint;
  amount: bigint;
}
const payouts: Payout[] = [];

function options(i: number): StartNodeOptions {
  return {
    slotMs: SLOT_MS,
    dataDir: dataDirs[i],
    rpcPort: ports[i].rpc,
    metricsPort: ports[i].metrics,
    extraConfig: {
      parentchain: { endpoint: chain.endpoint, anchorInterval: INTERVAL },
      // A fixed listen port: the registered address stays valid across the restart.
      p2p: { listen: [`/ip4/127.0.0.1/tcp/${ports[i].p2p}`] },
      sidechain: { snapshotInterval: 20 },
    },
  };
}

/** Node i's final block through RPC: its finalized head and that block's number. */
async function final(i: number, timeoutMs = 10_000): Promise<Final> {
  const hash = await clients[i].rpc.request<string>('chain_getFinalizedHead', [], timeoutMs);
  const h = await clients[i].rpc.request<HeaderJson | null>('chain_getHeader', [hash], timeoutMs);
  if (!h) throw new Error(`node ${i} has no header for its finalized head ${hash}`);
  return { number: h.number, hash };
}

async function head(i: number): Promise<number> {
  return (await clients[i].head()).number;
}

async function metric(i: number, name: string): Promise<number> {
  return (await scrapeMetrics(nodes[i].metricsUrl)).get(name) ?? 0;
}

function name(i: number): string {
  return i === A ? 'A' : i === B ? 'B' : 'C';
}

/** Samples every running node's final block every SAMPLE_MS until stopSampling(). */
function startSampling(): void {
  samplingOn = true;
  sampling = (async () => {
    while (samplingOn) {
      await Promise.all(
        [...Array(N).keys()]
          .filter((i) => !paused.has(i))
          .map(async (i) => {
            const f = await final(i, 2_000).catch(() => undefined); // a node stopping under a request
            if (f && !paused.has(i)) seen[i].push(f);
          }),
      );
      await sleep(SAMPLE_MS);
    }
  })();
}

async function stopSampling(): Promise<void> {
  samplingOn = false;
  await sampling;
}

async function parentBalance(account: Uint8Array): Promise<bigint> {
  return (await pc.balance(account)).free;
}

/** Burns `amount` of //Dave's sidechain funds through node i, to be paid to the parentchain account `uri`. */
async function unshield(i: number, uri: string, amount: bigint): Promise<Payout & { block: number }> {
  const beneficiary = new Keyring({ type: 'sr25519' }).addFromUri(uri).publicKey;
  const payout = { beneficiary, before: await parentBalance(beneficiary), amount };
  payouts.push(payout);
  const r = await clients[i].unshield(await devAccount('//Dave'), beneficiary, amount, { timeoutMs: 60_000 });
  return { ...payout, block: r.blockNumber };
}

before(async () => {
  await cryptoWaitReady();
  alice = keyringSigner(new Keyring({ type: 'sr25519' }).addFromUri('//Alice'));
  const root = tempDir('validateer-finality-');
  for (let i = 0; i < N; i++) dataDirs.push(join(root, `v${i + 1}`));
  // The enclave accounts must be funded at parentchain genesis: create their keys first.
  keys.push(...(await createEnclaveKeys(dataDirs)));
  chain = await startDevChain({
    host: '127.0.0.1',
    blockTimeMs: BLOCK_MS,
    endowments: keys.map((k) => ({ publicKey: fromHex(k), amount: 10_000n * UNIT })),
  });
  pc = await connectParentchain({ endpoint: chain.endpoint, onWarning: () => undefined });
  const free = await freePorts(3 * N);
  for (let i = 0; i < N; i++) ports.push({ p2p: free[3 * i], rpc: free[3 * i + 1], metrics: free[3 * i + 2] });
  // All at once: only the first registered member creates block 0; the others are ready once they have it.
  nodes.push(...(await startNodes(dataDirs.map((_, i) => options(i)))));
  for (const n of nodes) clients.push(await ValidateerClient.connect(n.rpcUrl, OWN_NODES));
});

after(async () => {
  await stopSampling();
  // A stopped process would sit on SIGTERM until it is continued.
  for (const n of nodes) n.proc.kill('SIGCONT');
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  await Promise.all(nodes.map((n) => n.stop()));
  await pc?.close();
  await chain?.close();
  cleanupTempDirs();
});

test('three validateers register, share the vault and finalize blocks', async (t) => {
  const t0 = Date.now();
  // Generous: in CI the rest of the suite shares the two cores.
  for (const c of clients) {
    await waitFor(
      async () => ((await c.shardInfo()).validateers ?? []).filter((m) => m.unregisteredAt === null).length === N,
      'all three registered, as seen by every validateer',
      180_000,
      250,
    );
  }
  await waitFor(
    async () => ((await clients[0].shardInfo()).vaultProxies ?? []).length === N,
    'every member a vault proxy',
    120_000,
    250,
  );
  t.diagnostic(`registered with the vault's proxies after ${Date.now() - t0} ms`);
  // The first registered member pays withdrawals: it stays up (A), so payouts never wait on a stopped payer.
  const first = ((await clients[0].shardInfo()).validateers ?? [])[0].signingKey;
  A = keys.findIndex((k) => k.toLowerCase() === first.toLowerCase());
  assert.ok(A >= 0, `the first registered member ${first} is one of ours`);
  [B, C] = [0, 1, 2].filter((i) => i !== A);
  t.diagnostic(`roles: A = node ${A} (payer), B = node ${B}, C = node ${C}`);
  for (let i = 0; i < N; i++) {
    await waitFor(async () => (await final(i)).number > 0, `a final block on node ${i}`, 120_000, 250);
    assert.ok((await metric(i, 'validateer_sidechain_finalized_number')) > 0, `finalized metric on node ${i}`);
  }
  t.diagnostic(`a final block on all three after ${Date.now() - t0} ms`);
  startSampling();
});

test('a shield is credited once; an unshield burns while the set is whole', async () => {
  const dave = await devAccount('//Dave');
  const c = clients[A];
  const before = await c.balance(dave);
  const vault = fromHex((await c.shardInfo()).vault!);
  const r = await pc.submit(alice, shieldCall(await c.shieldingKey(), SHARD, vault, 5n * UNIT, dave.publicKey), {
    waitFor: 'finalized',
  });
  assert.ok(r.success, r.error);
  await waitFor(
    async () => (await c.head()).parentchain.number >= r.blockNumber + 2,
    `the sidechain past parentchain #${r.blockNumber + 2}`,
    60_000,
    250,
  );
  assert.equal(await c.balance(dave), before + 5n * UNIT, 'credited once');
  assert.equal(BigInt((await c.shardInfo()).shieldedSupply!), 5n * UNIT);
  // Paid once the burn is final: whenever that is, the last test checks it happened exactly once.
  await unshield(A, '//Charlie', UNIT);
});

test('with C stopped (SIGSTOP, then SIGKILL) finality keeps advancing on A and B', async (t) => {
  const from = await Promise.all([A, B].map((i) => final(i)));
  paused.add(C);
  nodes[C].proc.kill('SIGSTOP');
  for (const [k, i] of [A, B].entries()) {
    await waitFor(
      async () => (await final(i)).number >= from[k].number + 2 * INTERVAL,
      `node ${name(i)}'s final block past #${from[k].number + 2 * INTERVAL} with C stopped`,
      120_000,
      250,
    );
  }
  t.diagnostic(`final on A, B: #${from.map((f) => f.number).join(', #')} -> #${(await final(A)).number}`);
  await nodes[C].kill('SIGKILL');
  await clients[C].close().catch(() => undefined);
});

test('with B stopped too, A still authors but finality waits', async (t) => {
  // The highest block B can have seen (a block of the slot under way may still reach it before the signal).
  const stoppedAt = Math.max(await head(A), await head(B)) + 1;
  paused.add(B);
  nodes[B].proc.kill('SIGSTOP');
  // A burn while finality waits: its payout has to wait for the set to come back, and still happen once.
  const burn = await unshield(A, '//Ferdie', UNIT / 2n);
  // An anchor B voted for before it stopped may still land, also from a fallback submitter a few parentchain blocks
  // later: take A's final block once its head moved on and A processed SETTLE_BLOCKS more parentchain blocks.
  const stoppedParent = await metric(A, 'validateer_parentchain_processed_number');
  await waitFor(
    async () =>
      (await head(A)) >= stoppedAt + INTERVAL &&
      (await metric(A, 'validateer_parentchain_processed_number')) >= stoppedParent + SETTLE_BLOCKS,
    `A's head past #${stoppedAt + INTERVAL} and parentchain #${stoppedParent + SETTLE_BLOCKS} processed`,
    120_000,
    250,
  );
  const settled = await final(A);
  const parentAt = await metric(A, 'validateer_parentchain_processed_number');
  // Time for anchors to land: three intervals of blocks past the final one, and parentchain blocks processed.
  await waitFor(
    async () =>
      (await head(A)) >= settled.number + 3 * INTERVAL &&
      (await metric(A, 'validateer_parentchain_processed_number')) >= parentAt + 3,
    `A's head past #${settled.number + 3 * INTERVAL} and 3 more parentchain blocks processed`,
    180_000,
    250,
  );
  const now = await final(A);
  t.diagnostic(
    `B stopped at #${stoppedAt}; A's final #${settled.number} one interval later, #${now.number} when A's head was #${await head(A)}`,
  );
  // No block that only A holds is final; and nothing became final while A alone was up.
  assert.ok(
    now.number <= stoppedAt,
    `A alone finalized #${now.number}, a block B never saw (B stopped at #${stoppedAt})`,
  );
  assert.deepEqual(now, settled, 'with one of three members up, finality waits');
  assert.equal(await metric(A, 'validateer_sidechain_finalized_number'), settled.number, 'the finalized metric waits');
  // A withdrawal is paid once its burn is final: this one waits for the set.
  assert.ok(burn.block > now.number, `the burn (#${burn.block}) is not final`);
  assert.equal(await parentBalance(burn.beneficiary), burn.before, 'the payout of a burn that is not final waits');
});

test('with B continued and C restarted, finality resumes on all three', async (t) => {
  const resumedAt = await head(A);
  nodes[B].proc.kill('SIGCONT');
  paused.delete(B);
  cSamplesBeforeKill = seen[C].length;
  nodes[C] = await restartNode(nodes[C], options(C));
  clients[C] = await ValidateerClient.connect(nodes[C].rpcUrl, OWN_NODES);
  paused.delete(C);
  for (let i = 0; i < N; i++) {
    await waitFor(
      async () => (await final(i)).number > resumedAt,
      `node ${name(i)}'s final block past #${resumedAt} (A's head when the set came back)`,
      120_000,
      250,
    );
  }
  t.diagnostic(`A's head #${resumedAt} at the restart; final now #${(await final(A)).number}`);
});

test('no final block was reverted, all agree on each final block, and every payout was made exactly once', async (t) => {
  // Payouts: each beneficiary paid, nothing owed, then a few more parentchain blocks for a duplicate to show.
  for (const p of payouts)
    await waitFor(async () => (await parentBalance(p.beneficiary)) > p.before, 'the payout', 120_000, 500);
  for (let i = 0; i < N; i++)
    await waitFor(
      async () => (await clients[i].shardInfo()).unpaidWithdrawals === 0,
      `no withdrawal unpaid on node ${name(i)}`,
      60_000,
      250,
    );
  const pcNow = (await pc.finalizedHead()).number;
  for (let i = 0; i < N; i++)
    await waitFor(
      async () => (await metric(i, 'validateer_parentchain_processed_number')) >= pcNow + 3,
      `node ${name(i)} at parentchain #${pcNow + 3}`,
      60_000,
      250,
    );
  for (const p of payouts) assert.equal(await parentBalance(p.beneficiary), p.before + p.amount, 'paid exactly once');
  const info = await clients[A].shardInfo();
  const burnt = payouts.reduce((sum, p) => sum + p.amount, 0n);
  assert.equal(BigInt(info.shieldedSupply!), 5n * UNIT - burnt);
  assert.equal(await parentBalance(fromHex(info.vault!)), pc.existentialDeposit() + 5n * UNIT - burnt);

  await stopSampling();
  const byNumber = new Map<number, string>();
  for (let i = 0; i < N; i++) {
    const s = seen[i];
    t.diagnostic(`node ${name(i)}: ${s.length} samples, final #${s[0]?.number} .. #${s.at(-1)?.number}`);
    assert.ok(s.length >= 5, `node ${name(i)} sampled`);
    for (let k = 1; k < s.length; k++) {
      assert.ok(
        s[k].number >= s[k - 1].number,
        `node ${name(i)}'s final went back: #${s[k - 1].number} -> #${s[k].number}`,
      );
      if (s[k].number === s[k - 1].number)
        assert.equal(s[k].hash, s[k - 1].hash, `node ${name(i)}: final #${s[k].number} changed`);
    }
    for (const f of s) {
      const other = byNumber.get(f.number);
      assert.ok(
        other === undefined || other === f.hash,
        `final #${f.number}: ${other} elsewhere, ${f.hash} on node ${name(i)}`,
      );
      byNumber.set(f.number, f.hash);
    }
  }
  assert.ok(cSamplesBeforeKill > 0 && seen[C].length > cSamplesBeforeKill, 'C sampled before its kill and after');
  assert.ok(Math.max(...byNumber.keys()) > Math.min(...byNumber.keys()), 'finality moved while sampled');
  // Every block ever reported final is still in every node's chain.
  for (const [n, hash] of byNumber)
    for (let i = 0; i < N; i++)
      assert.equal(await clients[i].rpc.request('chain_getBlockHash', [n]), hash, `final #${n} on node ${name(i)}`);
});
