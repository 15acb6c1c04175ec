// When the chain must not author: while an onboarding sync runs (it owns the head, so a slot that
// passed its first check before the sync started must not author once it gets the lock), and after a
// restart until a peer has reported its head (a block on a stale head would only fork).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { ChainService, type ChainDeps } from '../../src/chain/chain.ts';
import { CallRelay } from '../../src/calls/relay.ts';
import { HeadEvents } from '../../src/chain/head-events.ts';
import { createLogger } from '../../src/node/logger.ts';
import { createMetrics } from '../../src/metrics/metrics.ts';
import { slotAt, slotStartMs } from '../../src/protocol/aura.ts';
import type { Enclave } from '../../src/enclave/boundary/host.ts';
import type { BlockStore } from '../../src/sidechain/store.ts';
import type { Network } from '../../src/p2p/network.ts';
import type { Logger } from 'pino';

const SLOT_MS = 60_000;
/** Freezes Date at 1 s into a slot: a wall-clock slot would be "too late to propose" in its last 30%. */
function earlyInSlot(t: TestContext): bigint {
  const slot = slotAt(Date.now(), SLOT_MS) + 1n;
  t.mock.timers.enable({ apis: ['Date'], now: slotStartMs(slot, SLOT_MS) + 1_000 });
  return slot;
}
const ME = new Uint8Array(32).fill(7);
const OTHER = new Uint8Array(32).fill(9);

/** The chain under test: one validateer of a set whose enclave and store the test fakes. */
function chainWith(enclave: Enclave, store: BlockStore, logger: Logger): ChainService {
  const deps: ChainDeps = {
    enclave,
    store,
    logger,
    metrics: createMetrics(),
    relay: new CallRelay(enclave),
    signingKey: ME,
    genesisBalances: async () => [],
    isAuthority: () => true,
    anchor: () => null,
    heads: new HeadEvents(),
  };
  return new ChainService(deps, {
    slotDurationMs: SLOT_MS,
    maxCalls: 10,
    snapshotInterval: 100,
    snapshotsKept: 2,
    shard: new Uint8Array(32),
    rangeBatch: 16,
    treeLimit: 100,
  });
}

test('a slot that waited for the lock while an onboarding sync started does not author', async (t) => {
  const slotNow = earlyInSlot(t);
  const methods: string[] = [];
  const firstHint = Promise.withResolvers<void>();
  const hintAsked = Promise.withResolvers<void>();
  let hints = 0;
  const enclave = {
    call: async (method: string) => {
      methods.push(method);
      if (method !== 'slotAuthor') throw new Error(`unexpected enclave call ${method}`);
      if (hints++ === 0) {
        hintAsked.resolve();
        await firstHint.promise;
        return { author: OTHER, genesisAuthor: null }; // the hint: not ours, so no wait for the parent
      }
      return { author: ME, genesisAuthor: null }; // under the lock: ours
    },
  } as unknown as Enclave;
  const head = { number: 5, hash: new Uint8Array(32).fill(1) };
  const store = { head: () => head, numberOf: async () => undefined } as unknown as BlockStore;
  const lines: string[] = [];
  const logger = createLogger({
    level: 'info',
    destination: new Writable({
      write(c, _e, cb) {
        lines.push(String(c));
        cb();
      },
    }),
  });
  const chain = chainWith(enclave, store, logger);
  const pending = Promise.withResolvers<Uint8Array[]>(); // blocks-by-range never answers: the sync stays on
  const status = {
    headNumber: 1000,
    headHash: new Uint8Array(32).fill(2),
    finalizedNumber: 0,
    finalizedHash: new Uint8Array(32),
  };
  chain.attach({
    connectedPeers: () => ['peer'],
    requestStatus: async () => status,
    // The one-block check of our head (nothing served: taken as on their chain), then the sync's ranges.
    requestBlocksByRange: (_peer: string, _from: number, count: number) =>
      count === 1 ? Promise.resolve([]) : pending.promise,
    penalize: () => undefined,
  } as unknown as Network);

  const slot = chain.onSlot(slotNow);
  await hintAsked.promise; // the slot passed its first check
  chain.onPeerStatus('peer', status); // far ahead: the onboarding sync starts
  const started = () => lines.some((l) => l.includes('onboarding sync started'));
  for (let i = 0; i < 100 && !started(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(started(), 'the onboarding sync started');
  firstHint.resolve();
  await slot;
  assert.deepEqual(methods, ['slotAuthor'], 'nothing authored after the sync started');
  await chain.stop();
  pending.resolve([]);
});

test('a restarted validateer with a chain does not author before a peer has reported its head', async (t) => {
  const slot = earlyInSlot(t); // also keeps the clock inside the startup wait until the status arrives
  const methods: string[] = [];
  let hint = true;
  const enclave = {
    call: async (method: string) => {
      methods.push(method);
      if (method === 'slotAuthor') {
        // The first question of each slot (the hint) says "not ours", so the slot does not wait for its parent.
        const author = hint ? OTHER : ME;
        hint = !hint;
        return { author, genesisAuthor: null };
      }
      // authoring was attempted
      if (method === 'propose') throw Object.assign(new Error('not caught up'), { code: 'NOT_CAUGHT_UP' });
      throw new Error(`unexpected enclave call ${method}`);
    },
  } as unknown as Enclave;
  const head = { number: 5, hash: new Uint8Array(32).fill(1) };
  const store = { head: () => head, numberOf: async () => undefined } as unknown as BlockStore;
  const chain = chainWith(enclave, store, createLogger({ level: 'silent' }));
  // A peer at our own head: nothing to fetch, but now we know where the set is.
  const status = {
    headNumber: head.number,
    headHash: head.hash,
    finalizedNumber: 0,
    finalizedHash: new Uint8Array(32),
  };
  chain.attach({ connectedPeers: () => ['peer'], requestStatus: async () => status } as unknown as Network);

  await chain.onSlot(slot);
  assert.ok(!methods.includes('propose'), 'no block before any peer status (the network has just come up)');
  chain.onPeerStatus('peer', status);
  await chain.onSlot(slot);
  assert.ok(methods.includes('propose'), 'it authors once a peer has reported its head');
  await chain.stop();
});
