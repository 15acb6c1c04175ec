// Block import, fork choice and reorg decisions, and the range sync, through ChainService with fakes:
// an in-memory store, an enclave that accepts every block it is not told to refuse, a fake network.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChainService } from '../../src/chain/chain.ts';
import { CallRelay, type CallUpdate } from '../../src/calls/relay.ts';
import { describeBlock, type TreeBlock } from '../../src/sidechain/block-tree.ts';
import { hexKey } from '../../src/protocol/bytes.ts';
import { HeadEvents, type HeadEvent } from '../../src/chain/head-events.ts';
import { createMetrics } from '../../src/metrics/metrics.ts';
import {
  FakeStore,
  capturingLogger,
  chainOf,
  encodeBlock,
  fakeEnclave,
  fakeNetwork,
  serveChain,
  statusOf,
  type Serve,
} from '../sync/fakes.ts';

const A = chainOf(0, 6, new Uint8Array(32), 'a'); // canonical 0..5
const B = chainOf(4, 4, A[3].hashBytes, 'bb'); // a fork on a3: 4..7

function setup(
  opts: {
    anchor?: { number: number; hash: Uint8Array } | null;
    refuse?: Set<string>;
    peers?: Record<string, Serve>;
    canonical?: TreeBlock[];
    onCall?: (method: string, params: unknown) => unknown;
    isAuthority?: (key: string, parentchainNumber: number | null) => boolean | undefined;
  } = {},
) {
  const store = new FakeStore(opts.canonical ?? A);
  const enclave = fakeEnclave({ refuse: opts.refuse, onCall: opts.onCall });
  const relay = new CallRelay(enclave);
  const metrics = createMetrics();
  const log = capturingLogger();
  const heads = new HeadEvents();
  const events: HeadEvent[] = [];
  heads.on((e) => events.push(e));
  const chain = new ChainService(
    {
      enclave,
      store: store.asStore(),
      metrics,
      logger: log.logger,
      relay,
      signingKey: new Uint8Array(32).fill(7),
      genesisBalances: async () => [],
      isAuthority: opts.isAuthority ?? (() => true),
      anchor: () => opts.anchor ?? null,
      heads,
    },
    {
      slotDurationMs: 60_000,
      maxCalls: 10,
      snapshotInterval: 1000,
      snapshotsKept: 2,
      shard: new Uint8Array(32),
      rangeBatch: 4,
      treeLimit: 100,
    },
  );
  const network = fakeNetwork(opts.peers ?? {});
  chain.attach(network);
  return { store, enclave, log, events, chain, network, relay, metrics };
}

const tipOf = (store: FakeStore) => store.blocks.at(-1)!.hash;

test('a gossiped child of the head is imported and moves the head (one head event, cause imported)', async () => {
  const { store, chain, events } = setup();
  const next = chainOf(6, 1, A[5].hashBytes, 'a')[0];
  assert.equal(await chain.onGossipBlock(next.bytes, 'p'), 'accept');
  assert.equal(tipOf(store), next.hash);
  assert.deepEqual(
    events.map((e) => [e.number, e.cause]),
    [[6, 'imported']],
  );
  assert.equal(await chain.onGossipBlock(next.bytes, 'p'), 'ignore', 'known now');
  await chain.stop();
});

test('a longer fork wins by a reorg; a shorter or equal one is kept on the side', async () => {
  const { store, chain, events, log } = setup();
  for (const b of B.slice(0, 2)) assert.equal(await chain.onGossipBlock(b.bytes, 'p'), 'accept'); // 4, 5: not longer
  const tieWins = Buffer.compare(B[1].hashBytes, A[5].hashBytes) < 0;
  assert.equal(tipOf(store), tieWins ? B[1].hash : A[5].hash, 'at equal length the lower hash wins');
  assert.equal(await chain.onGossipBlock(B[2].bytes, 'p'), 'accept'); // 6: longer
  assert.equal(tipOf(store), B[2].hash);
  assert.deepEqual(
    store.blocks.map((b) => b.hash),
    [...A.slice(0, 4), ...B.slice(0, 3)].map((b) => b.hash),
  );
  assert.ok(log.messages().includes('reorg'));
  // The switch is a reorg (at 5 if the tie went to the fork, else at 6); the head event says so.
  assert.ok(events.some((e) => e.cause === 'reorg'));
  assert.equal(events.at(-1)?.number, 6);
  assert.deepEqual(await chain.blocksByHash([A[5].hashBytes]), [A[5].bytes], 'the abandoned block stays known');
  await chain.stop();
});

test('a call of an abandoned block that the new chain made invalid settles as invalid, not watched forever', async () => {
  const call = new Uint8Array(32).fill(0x5c);
  const callHex = hexKey(call);
  const a5 = describeBlock(encodeBlock(5, A[4].hashBytes, 'a', undefined, [call]), 'peer-a', null).block;
  const staleNonce = { code: 'STALE_NONCE', message: 'the nonce is already used' };
  const requeued: string[][] = [];
  const { store, chain, relay } = setup({
    canonical: [...A.slice(0, 5), a5],
    onCall: (method, p) => {
      if (method !== 'requeue') return undefined;
      const { hashes } = p as { hashes: string[] };
      requeued.push(hashes);
      return { requeued: 0, dropped: hashes.map((hash) => ({ hash, ...staleNonce })) };
    },
  });
  // The call was in a5 before its submitter watched it (the enclave admits a big batch in slices).
  relay.settle(callHex, { status: 'inBlock', blockHash: '0x' + a5.hash, blockNumber: 5 });
  for (const b of B.slice(0, 3)) await chain.onGossipBlock(b.bytes, 'p');
  assert.equal(tipOf(store), B[2].hash, 'the fork won by a reorg, abandoning a5');
  assert.deepEqual(requeued, [[callHex]], 'the abandoned call was offered back to the pool');
  const seen: CallUpdate[] = [];
  relay.watch(callHex, (u) => seen.push(u));
  assert.deepEqual(seen, [{ status: 'invalid', ...staleNonce }], 'the watcher gets why, and its subscription ends');
  await chain.stop();
});

test('never a reorg below the last anchored block, however long the fork', async () => {
  const { store, chain, events } = setup({ anchor: { number: 5, hash: A[5].hashBytes } });
  for (const b of B) await chain.onGossipBlock(b.bytes, 'p');
  assert.equal(tipOf(store), A[5].hash);
  assert.deepEqual(events, []);
  await chain.stop();
});

test('a block the enclave refuses is rejected, dropped with its descendants, and its sender penalised with the code', async () => {
  const next = chainOf(6, 2, A[5].hashBytes, 'a');
  const { store, chain, network, log } = setup({ refuse: new Set([next[0].hash]) });
  assert.equal(await chain.onGossipBlock(next[0].bytes, 'liar'), 'reject');
  assert.equal(tipOf(store), A[5].hash);
  assert.deepEqual(
    network.penalties.map((p) => p.peer),
    ['liar'],
  );
  assert.ok(log.lines.some((l) => l.msg === 'peer penalised' && l.code === 'BLOCK_BAD_COMMITMENT'));
  await chain.stop();
});

test('a failing store write (a full disk) blames no one: the block is ignored, kept, imported once it works', async () => {
  const { store, chain, network, log, metrics } = setup();
  const next = chainOf(6, 2, A[5].hashBytes, 'a');
  const append = store.append.bind(store);
  let diskFull = true;
  store.append = async (b) => {
    if (diskFull) throw Object.assign(new Error('IO error: No space left on device'), { code: 'LEVEL_IO_ERROR' });
    return append(b);
  };
  assert.equal(await chain.onGossipBlock(next[0].bytes, 'honest'), 'ignore', 'not rejected, not forwarded');
  assert.deepEqual(network.penalties, []);
  assert.ok(!log.messages().includes('peer penalised'));
  assert.ok(log.lines.some((l) => l.code === 'LEVEL_IO_ERROR' && String(l.msg).includes('local fault')));
  assert.match(await metrics.registry.metrics(), /blocks_imported_total\{result="local_fault"\} 1\n/);
  diskFull = false;
  // The kept block is tried again with the next import.
  assert.equal(await chain.onGossipBlock(next[1].bytes, 'honest'), 'accept');
  assert.equal(tipOf(store), next[1].hash);
  assert.deepEqual(network.penalties, []);
  await chain.stop();
});

test('an enclave failing on its own (INTERNAL, closed) while importing a block blames no one', async () => {
  for (const code of ['INTERNAL', 'ENCLAVE_CLOSED']) {
    const onCall = (method: string) => {
      if (method === 'importBlock') throw Object.assign(new Error('internal enclave error'), { code });
    };
    const { store, chain, network, log } = setup({ onCall });
    assert.equal(await chain.onGossipBlock(chainOf(6, 1, A[5].hashBytes, 'a')[0].bytes, 'honest'), 'ignore', code);
    assert.equal(tipOf(store), A[5].hash);
    assert.deepEqual(network.penalties, [], code);
    assert.ok(!log.messages().includes('peer penalised'), code);
    await chain.stop();
  }
});

test('a forged signature is refused before import, with BLOCK_BAD_SIGNATURE', async () => {
  const { chain, enclave, log } = setup();
  const forged = new Uint8Array(chainOf(6, 1, A[5].hashBytes, 'a')[0].bytes);
  forged[forged.length - 1] ^= 1; // the signature's last byte
  assert.equal(await chain.onGossipBlock(forged, 'rogue'), 'reject');
  assert.ok(!enclave.calls.includes('importBlock'));
  assert.ok(
    log.lines.some((l) => l.msg === 'peer penalised' && l.peer === 'rogue' && l.code === 'BLOCK_BAD_SIGNATURE'),
  );
  await chain.stop();
});

test("a stranger's block is rejected and its sender penalised once our registry covers its parentchain block", async () => {
  // The registry as of parentchain block `registryAt`: the fakes' blocks build on parentchain block 0.
  let registryAt = -1;
  const { chain, enclave, network, log } = setup({
    isAuthority: (_key, at) => (at !== null && at <= registryAt ? false : undefined),
  });
  const stranger = chainOf(6, 1, A[5].hashBytes, 'a')[0];
  // Our parentchain view is behind the block's: its author may have joined since. Dropped, no one blamed.
  assert.equal(await chain.onGossipBlock(stranger.bytes, 'early'), 'ignore');
  assert.equal(network.penalties.length, 0);
  registryAt = 0;
  assert.equal(await chain.onGossipBlock(stranger.bytes, 'rogue'), 'reject');
  assert.deepEqual(
    network.penalties.map((p) => p.peer),
    ['rogue'],
  );
  assert.ok(log.lines.some((l) => l.msg === 'peer penalised' && l.peer === 'rogue' && l.code === 'NOT_AUTHORITY'));
  assert.ok(!enclave.calls.includes('importBlock'), 'refused before any work');
  await chain.stop();
});

test('range sync: a peer a little ahead is asked for its blocks above our head', async () => {
  const ahead = [...A, ...chainOf(6, 3, A[5].hashBytes, 'a')]; // 0..8
  const { store, chain, network } = setup({ peers: { p: serveChain(ahead) } });
  chain.onPeerStatus('p', statusOf(ahead));
  for (let i = 0; i < 200 && store.head()!.number < 8; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(tipOf(store), ahead[8].hash);
  assert.equal(network.requests[0].from, 6);
  await chain.stop();
});

test('range sync: a gossiped block with a missing parent makes us fetch its chain from the sender', async () => {
  const ahead = [...A, ...chainOf(6, 3, A[5].hashBytes, 'a')]; // 0..8
  const { store, chain, network } = setup({ peers: { p: serveChain(ahead) } });
  assert.equal(await chain.onGossipBlock(ahead[8].bytes, 'p'), 'accept'); // kept: its parent is not here
  for (let i = 0; i < 200 && store.head()!.number < 8; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(tipOf(store), ahead[8].hash);
  assert.ok(network.requests.some((q) => q.peer === 'p'));
  await chain.stop();
});

test('onboarding that cannot finish (its peer is below the next block) ends, and the chain may author again', async () => {
  const long = [...A, ...chainOf(6, 20, A[5].hashBytes, 'a')]; // 0..25
  // The peer says 25 but serves only up to 12.
  const { store, chain, log } = setup({ peers: { p: serveChain(long, 12) } });
  chain.onPeerStatus('p', statusOf(long));
  const over = () => log.messages().some((m) => m === 'onboarding sync stopped' || m === 'onboarding sync done');
  for (let i = 0; i < 300 && !over(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(log.messages().includes('onboarding sync stopped'), 'the onboarding sync gave up');
  assert.equal(store.head()?.number, 12, 'with what the peer could serve');
  // Not stuck: no sync holds the head any more (a slot asks the enclave whose it is).
  for (let i = 0; i < 300 && (chain as unknown as { rangeSync: { busy(): boolean } }).rangeSync.busy(); i++)
    await new Promise((r) => setTimeout(r, 10));
  assert.equal((chain as unknown as { rangeSync: { busy(): boolean } }).rangeSync.busy(), false);
  await chain.stop();
});

test('after stop() nothing is imported or written: a block in flight when the chain stops and one gossiped after are dropped', async () => {
  const { store, chain, events, enclave } = setup();
  const [b6, b7] = chainOf(6, 2, A[5].hashBytes, 'a');
  // In flight: it passed the gossip's first check and waits for its precheck when stop() is called.
  const inFlight = chain.onGossipBlock(b6.bytes, 'p');
  await chain.stop();
  assert.equal(await inFlight, 'ignore');
  assert.equal(await chain.onGossipBlock(b7.bytes, 'p'), 'ignore');
  assert.equal(tipOf(store), A[5].hash, 'the store did not move');
  assert.equal(store.blocks.length, A.length);
  assert.deepEqual(events, []);
  assert.ok(
    !enclave.calls.includes('importBlock') && !enclave.calls.includes('importBlocks'),
    'the enclave imported nothing',
  );
});
