// The onboarding sync with a fake network (peers serving slices of one chain), a fake enclave and an
// in-memory store: it applies the chain in order from several peers, drops peers that fail, and every
// run ends (done, or given up with a reason) — never waits forever on peers that cannot serve.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Onboarding, type OnboardingDeps } from '../../src/sync/onboarding.ts';
import { createMetrics } from '../../src/metrics/metrics.ts';
import { HeadEvents, headMetrics, type HeadEvent } from '../../src/chain/head-events.ts';
import { describeBlock } from '../../src/sidechain/block-tree.ts';
import {
  FakeStore,
  capturingLogger,
  chainOf,
  STATUS,
  failing,
  fakeEnclave,
  hexKey,
  fakeNetwork,
  serveChain,
  type Serve,
} from './fakes.ts';

const GENESIS_PARENT = new Uint8Array(32);
const CHAIN = chainOf(0, 41, GENESIS_PARENT, 'canon'); // blocks 0..40

function setup(
  peers: Record<string, Serve>,
  opts: { store?: FakeStore; enclave?: ReturnType<typeof fakeEnclave> } = {},
) {
  const store = opts.store ?? new FakeStore();
  const enclave = opts.enclave ?? fakeEnclave();
  const network = fakeNetwork(peers);
  const log = capturingLogger();
  const metrics = createMetrics();
  let lock: Promise<unknown> = Promise.resolve();
  const heads = new HeadEvents();
  const events: HeadEvent[] = [];
  heads.on((e) => events.push(e));
  heads.on(headMetrics(metrics));
  const deps: OnboardingDeps = {
    enclave,
    store: store.asStore(),
    metrics,
    logger: log.logger,
    network,
    anchor: () => null,
    heads,
    serialize: <T>(fn: () => Promise<T>) => {
      const run = lock.then(fn, fn);
      lock = run.catch(() => undefined);
      return run;
    },
  };
  return { store, enclave, network, log, metrics, deps, events };
}

/** Resolves with the run's result, or rejects if it has not ended within `ms` (the old logic hung here). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_r, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still running after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

test('fetches from several peers and applies the chain in order up to the highest head', async () => {
  const { store, deps, network, log, events, metrics } = setup({ a: serveChain(CHAIN), b: serveChain(CHAIN, 30) });
  const r = await within(
    new Onboarding(deps, { batch: 4, perPeer: 2, logEveryMs: 60_000 }).run(
      new Map([
        ['a', 40],
        ['b', 30],
      ]),
    ),
    10_000,
    'sync',
  );
  assert.deepEqual({ from: r.from, to: r.to, blocks: r.blocks }, { from: 0, to: 40, blocks: 41 });
  assert.equal(store.head()?.number, 40);
  assert.deepEqual(
    store.blocks.map((b) => b.hash),
    CHAIN.map((b) => b.hash),
  );
  assert.ok(new Set(network.requests.map((q) => q.peer)).size === 2, 'both peers served');
  assert.ok(log.messages().includes('onboarding sync done'));
  assert.deepEqual(network.penalties, []);
  // Each durable run is one head event, in order, ending at the head; the metrics follow it.
  assert.ok(events.length > 1 && events.every((e) => e.cause === 'syncing'));
  assert.deepEqual(
    events.map((e) => e.number),
    [...events.map((e) => e.number)].sort((x, y) => x - y),
  );
  assert.equal(events.at(-1)?.number, 40);
  const text = await metrics.registry.metrics();
  assert.match(text, /validateer_sidechain_head_number 40\n/);
  assert.match(text, /validateer_event_log_entries 41\n/);
});

test('ends when the only peer left has a head below the next block (it used to wait forever)', async () => {
  // a fails every request and is dropped; b serves up to 20 of 40: nobody can serve block 21.
  const { store, deps, log } = setup({ a: failing('P2P_TIMEOUT'), b: serveChain(CHAIN, 20) });
  const sync = new Onboarding(deps, { batch: 4, perPeer: 2, logEveryMs: 60_000 });
  const r = await within(
    sync.run(
      new Map([
        ['a', 40],
        ['b', 20],
      ]),
    ),
    5_000,
    'the onboarding sync',
  );
  assert.equal(r.to, 20, 'everything b could serve was applied');
  assert.equal(store.head()?.number, 20);
  assert.deepEqual(r.peersDropped, ['a']);
  assert.equal(r.reason, 'no peer serves block #21');
  assert.ok(
    log.lines.some((l) => l.msg === 'onboarding sync stopped' && l.reason === 'no peer serves block #21'),
    'it says it stopped, and why',
  );
  sync.stop();
});

test('ends when every peer has been dropped', async () => {
  const { store, deps, network } = setup({ a: failing('P2P_BAD_RESPONSE'), b: failing('P2P_TIMEOUT') });
  const r = await within(
    new Onboarding(deps, { batch: 4, perPeer: 2, logEveryMs: 60_000 }).run(
      new Map([
        ['a', 40],
        ['b', 40],
      ]),
    ),
    5_000,
    'sync',
  );
  assert.equal(r.blocks, 0);
  assert.equal(r.reason, 'no peers left');
  assert.equal(store.head(), null);
  assert.deepEqual([...r.peersDropped].sort(), ['a', 'b']);
  assert.deepEqual(
    network.penalties.map((p) => p.peer),
    ['a'],
    'only a bad response is penalised, a timeout is not',
  );
});

test('a peer serving a block that does not verify is dropped and penalised; its range goes to another peer', async () => {
  const forged = chainOf(0, 41, GENESIS_PARENT, 'forged'); // the liar is asked first: for blocks 0..3
  const enclave = fakeEnclave({ refuse: new Set(forged.map((b) => b.hash)) });
  const { store, deps, network } = setup({ liar: serveChain(forged), honest: serveChain(CHAIN) }, { enclave });
  const r = await within(
    new Onboarding(deps, { batch: 4, perPeer: 1, logEveryMs: 60_000 }).run(
      new Map([
        ['liar', 40],
        ['honest', 40],
      ]),
    ),
    10_000,
    'sync',
  );
  assert.equal(r.to, 40);
  assert.deepEqual(
    store.blocks.map((b) => b.hash),
    CHAIN.map((b) => b.hash),
  );
  assert.deepEqual(r.peersDropped, ['liar']);
  assert.equal(network.penalties[0]?.peer, 'liar');
});

test('a local fault of our enclave (INTERNAL) drops and penalises no peer: the sync stops, saying why', async () => {
  const failAt = CHAIN[6].hash;
  const enclave = fakeEnclave({
    onCall: (method, params) => {
      if (method !== 'importBlocks') return undefined;
      const blocks = (params as { blocks: Uint8Array[] }).blocks;
      const index = blocks.findIndex((x) => hexKey(describeBlock(x, null, null).block.hashBytes) === failAt);
      if (index < 0) return undefined;
      const imported = blocks
        .slice(0, index)
        .map((x) => describeBlock(x, null, null).block)
        .map((b) => ({ hash: b.hashBytes, number: b.number, calls: [] }));
      return { imported, failure: { index, code: 'INTERNAL', message: 'internal enclave error' }, status: STATUS };
    },
  });
  const { store, deps, network, log } = setup({ a: serveChain(CHAIN), b: serveChain(CHAIN) }, { enclave });
  const r = await within(
    new Onboarding(deps, { batch: 4, perPeer: 1, logEveryMs: 60_000 }).run(
      new Map([
        ['a', 40],
        ['b', 40],
      ]),
    ),
    10_000,
    'sync',
  );
  assert.deepEqual(r.peersDropped, []);
  assert.deepEqual(network.penalties, []);
  assert.equal(r.reason, 'local fault at block #6: INTERNAL');
  assert.equal(store.head()?.number, 5, 'the blocks before it were applied');
  assert.ok(log.messages().includes('onboarding sync: local fault'));
});

test('a peer serving fewer blocks than asked: the rest is asked again', async () => {
  const short: Serve = async (from, count) => await serveChain(CHAIN)(from, Math.min(count, 2));
  const { store, deps } = setup({ a: short });
  const r = await within(
    new Onboarding(deps, { batch: 8, perPeer: 2, logEveryMs: 60_000 }).run(new Map([['a', 40]])),
    10_000,
    'sync',
  );
  assert.equal(r.to, 40);
  assert.equal(store.head()?.number, 40);
});

test('stop ends a run that waits for a peer', async () => {
  const never: Serve = () => new Promise(() => undefined);
  const { deps } = setup({ a: never });
  const sync = new Onboarding(deps, { batch: 4, perPeer: 1, logEveryMs: 60_000 });
  const run = sync.run(new Map([['a', 40]]));
  await new Promise((r) => setTimeout(r, 20));
  sync.stop();
  const r = await within(run, 5_000, 'a stopped sync');
  assert.equal(r.blocks, 0);
});
