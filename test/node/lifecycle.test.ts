// The validateer's one stop: parts stop in STOP_ORDER whatever order they started in, once, and a
// failing part does not keep the others running. The in-process test stops a real validateer while it
// authors and checks the order in its log, that a second stop() is the same stop, and that the store it
// leaves reopens at the head the node last reported.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Lifecycle, STOP_ORDER, type Stage } from '../../src/node/lifecycle.ts';
import { loadConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/node/logger.ts';
import { startValidateer } from '../../src/node/validateer.ts';
import { BlockStore } from '../../src/sidechain/store.ts';

const quiet = { error: () => undefined, debug: () => undefined };

test('parts stop in STOP_ORDER, not in the order they started', async () => {
  const life = new Lifecycle(quiet);
  const stopped: Stage[] = [];
  const shuffled = [...STOP_ORDER].reverse();
  [shuffled[0], shuffled[3]] = [shuffled[3], shuffled[0]];
  for (const stage of shuffled)
    life.add(stage, async () => {
      await new Promise((r) => setImmediate(r));
      stopped.push(stage);
    });
  await life.stop();
  assert.deepEqual(stopped, [...STOP_ORDER]);
});

test('stop() is idempotent: a second call is the same stop and stops nothing twice', async () => {
  const life = new Lifecycle(quiet);
  let stops = 0;
  life.add('chain', async () => {
    stops++;
  });
  const first = life.stop();
  const second = life.stop();
  assert.equal(first, second);
  await second;
  await life.stop();
  assert.equal(stops, 1);
  assert.equal(life.stopped, true);
});

test('a part that fails to stop is logged and the later stages still stop', async () => {
  const errors: unknown[] = [];
  const life = new Lifecycle({ error: (o: unknown) => errors.push(o), debug: () => undefined });
  let storeClosed = false;
  life.add('network', () => {
    throw new Error('socket already gone');
  });
  life.add('store', () => {
    storeClosed = true;
  });
  await life.stop();
  assert.equal(storeClosed, true);
  assert.equal(errors.length, 1);
  assert.match(JSON.stringify(errors[0]), /network.*socket already gone/);
});

test('a part that starts after stop() began is stopped at once, not left running', async () => {
  const life = new Lifecycle(quiet);
  const stopping = life.stop();
  let stopped = false;
  life.add('slots', () => {
    stopped = true;
  });
  await stopping;
  await new Promise((r) => setImmediate(r));
  assert.equal(stopped, true);
});

test(
  'a validateer stopped while it authors stops in order, once, and leaves a store that reopens at its head',
  { timeout: 120_000 },
  async (t) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'validateer-lifecycle-'));
    t.after(() => rmSync(dataDir, { recursive: true, force: true }));
    const lines: { msg?: string; stage?: string }[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l));
        done();
      },
    });
    const logger = createLogger({ level: 'debug', destination: sink });
    const config = loadConfig({
      env: {},
      overrides: { dataDir, 'rpc.port': 0, 'metrics.port': 0, 'sidechain.slotDurationMs': 100 },
    });
    const node = await startValidateer(config, logger);
    let stopped = false;
    t.after(() => (stopped ? undefined : node.stop()));
    // Wait for a few blocks so the stop lands while slots are firing.
    const deadline = Date.now() + 60_000;
    while ((await metric(node.metrics, 'validateer_sidechain_head_number')) < 3) {
      assert.ok(Date.now() < deadline, 'the node authors blocks');
      await new Promise((r) => setTimeout(r, 50));
    }
    const first = node.stop();
    const second = node.stop();
    await Promise.all([first, second]);
    stopped = true;
    const stages = lines.filter((l) => l.msg === 'stopped').map((l) => l.stage);
    assert.deepEqual(
      stages,
      STOP_ORDER.filter((s) => stages.includes(s)),
      'stages stopped in STOP_ORDER',
    );
    for (const s of ['rpc', 'network', 'slots', 'chain', 'enclave', 'store'] as const)
      assert.ok(stages.includes(s), `${s} stopped`);
    assert.equal(stages.length, new Set(stages).size, 'each stage stopped once, though stop() was called twice');
    assert.equal(lines.filter((l) => l.msg === 'error during shutdown').length, 0);
    // Nothing was written after the store closed: it reopens with the head the node last reported.
    const reported = await metric(node.metrics, 'validateer_sidechain_head_number');
    const store = await BlockStore.open(join(dataDir, 'chain'));
    try {
      assert.equal(store.head()?.number, reported);
    } finally {
      await store.close();
    }
  },
);

async function metric(metrics: { registry: { getSingleMetric(n: string): unknown } }, name: string): Promise<number> {
  const m = metrics.registry.getSingleMetric(name) as { get(): Promise<{ values: { value: number }[] }> } | undefined;
  return (await m?.get())?.values[0]?.value ?? -1;
}
