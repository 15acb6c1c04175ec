// End to end, `validateer devnet` (what `npm start` runs): it starts a dev parentchain and the
// validateers, prints their endpoints, reaches a final (anchored) sidechain block, and on SIGINT stops
// every process it started and exits cleanly.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ValidateerClient, type HeaderJson } from '../../src/client/client.ts';
import {
  cleanupTempDirs,
  descendants,
  processGroup,
  scrapeMetrics,
  startDevnet,
  waitFor,
  type DevnetHandle,
  OWN_NODES,
} from './harness.ts';

// Small settings: two validateers (the second still gets the shard secrets by provisioning), short slots and blocks.
const VALIDATEERS = 2;
const SLOT_MS = 500;
const BLOCK_MS = 1000;

let devnet: DevnetHandle | undefined;
const clients: ValidateerClient[] = [];

before(async () => {
  devnet = await startDevnet({ validateers: VALIDATEERS, slotMs: SLOT_MS, blockMs: BLOCK_MS });
  for (const v of devnet.validateers) clients.push(await ValidateerClient.connect(v.rpcUrl, OWN_NODES));
});

after(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  await devnet?.stop();
  cleanupTempDirs();
});

test('the devnet prints the parentchain and every validateer, each endpoint serving', async () => {
  assert.ok(devnet);
  assert.match(
    devnet.stdout(),
    new RegExp(`^validateer devnet running \\(${VALIDATEERS} validateers; data in \\S+`, 'm'),
  );
  assert.deepEqual(
    devnet.validateers.map((v) => v.index),
    [1, 2],
  );
  for (const v of devnet.validateers) {
    assert.match(v.rpcUrl, /^ws:\/\/127\.0\.0\.1:\d+$/);
    assert.match(v.p2p, /^\/ip4\/127\.0\.0\.1\/tcp\/\d+$/);
    const live = await fetch(`${v.metricsUrl}/health/live`);
    assert.equal(live.status, 200, `${v.metricsUrl}/health/live`);
    await live.arrayBuffer();
  }
  // Every validateer follows the parentchain the devnet printed.
  for (const c of clients) assert.equal((await c.shardInfo()).parentchain?.endpoint, devnet.parentchain);
});

test('the devnet reaches a final (anchored) sidechain block, on every validateer', async (t) => {
  assert.ok(devnet);
  const started = Date.now();
  for (const [i, v] of devnet.validateers.entries()) {
    const finalized = await waitFor(
      async () => {
        const n = (await scrapeMetrics(v.metricsUrl)).get('validateer_sidechain_finalized_number') ?? 0;
        return n > 0 ? n : undefined;
      },
      `validateer ${v.index}: validateer_sidechain_finalized_number > 0`,
      180_000,
      500,
    );
    // The same block over JSON-RPC: the finalized head is a block of the node's chain with that number or above.
    const hash = await clients[i].finalizedHead();
    const header = await clients[i].rpc.request<HeaderJson | null>('chain_getHeader', [hash]);
    assert.ok(
      header && header.number >= finalized,
      `validateer ${v.index}: finalized head #${header?.number} >= #${finalized}`,
    );
    assert.equal(
      await clients[i].rpc.request<string | null>('chain_getBlockHash', [header.number]),
      hash,
      'the finalized block is on its chain',
    );
  }
  t.diagnostic(`final on every validateer after ${Date.now() - started} ms`);
  // The devnet itself reports it (README: "first anchored (final) sidechain block #N after X s").
  await waitFor(
    () => /^first anchored \(final\) sidechain block #[1-9]\d* after [\d.]+ s$/m.test(devnet!.stdout()),
    'the devnet to report its first anchor',
    30_000,
    250,
  );
});

test('SIGINT stops every validateer and the parentchain, leaving no process behind', async () => {
  assert.ok(devnet);
  // Ctrl-C signals the whole foreground group; here only the devnet gets it, so it must stop the others itself.
  const children = await descendants(devnet.proc.pid!);
  assert.ok(
    children.length >= VALIDATEERS + 1,
    `the validateers and the parentchain run as children (found ${children.length})`,
  );
  assert.deepEqual(
    [...(await processGroup(devnet.pgid))].sort(),
    [devnet.pgid, ...children].sort(),
    'everything it started is in its group',
  );
  await Promise.all(clients.splice(0).map((c) => c.close()));

  const exit = await devnet.kill('SIGINT');
  assert.deepEqual(exit, { code: 0, signal: null }, `devnet exit; stderr: ${devnet.stderr().slice(-2000)}`);
  assert.match(devnet.stdout(), /^stopping the devnet\nstopped cleanly$/m);
  for (const v of devnet.validateers)
    assert.match(readFileSync(v.log, 'utf8'), /^stopped cleanly$/m, `validateer ${v.index} stopped cleanly (${v.log})`);
  // The devnet waited for each child; an orphan would still be in the group (or alive elsewhere).
  const left = async () => [...new Set([...(await processGroup(devnet!.pgid)), ...children.filter(isAlive)])];
  await waitFor(async () => (await left()).length === 0, 'every process the devnet started to exit', 10_000, 200).catch(
    async (err: Error) => assert.fail(`${err.message}: still running ${(await left()).join(', ')}`),
  );
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
