// The relay between RPC and enclave: watchers get a call's final update even when the block came first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CallRelay, type CallUpdate } from '../../src/calls/relay.ts';
import { createMethods, type MethodDeps } from '../../src/rpc/methods.ts';
import { createMetrics } from '../../src/metrics/metrics.ts';
import type { Enclave } from '../../src/enclave/boundary/host.ts';
import type { RpcContext } from '../../src/rpc/server.ts';

const HASH = 'ab'.repeat(32);
const inBlock: CallUpdate = { status: 'inBlock', blockHash: '0x' + 'cd'.repeat(32), blockNumber: 7 };

const staleNonce = { code: 'STALE_NONCE', message: 'the nonce is already used' };

/**
 * An enclave whose `submit` answers only when the test says so (as one admitting a big batch in slices); its `requeue`
 * puts nothing back: the new chain used the calls' nonces.
 */
function slowEnclave() {
  const answer = Promise.withResolvers<void>();
  const enclave = {
    call: async (method: string, p: { hashes: string[] }) => {
      if (method === 'requeue') return { requeued: 0, dropped: p.hashes.map((hash) => ({ hash, ...staleNonce })) };
      assert.equal(method, 'submit');
      await answer.promise;
      return { results: [{ hash: HASH, status: 'ready' }], forwarded: null };
    },
  } as unknown as Enclave;
  return { enclave, answer: () => answer.resolve() };
}

test('a watcher registered after its call was settled gets the final update, once', () => {
  const relay = new CallRelay({} as Enclave);
  relay.settle(HASH, inBlock);
  const seen: CallUpdate[] = [];
  relay.watch(HASH, (u) => seen.push(u));
  assert.deepEqual(seen, [inBlock]);
  const again: CallUpdate[] = [];
  relay.watch(HASH, (u) => again.push(u));
  relay.settle('ef'.repeat(32), inBlock);
  assert.deepEqual(again, [], 'the kept update is handed out once; a second watcher waits for a new one');
});

test('a kept update of a call whose block a reorg abandoned is dropped when the call goes back to the pool', async () => {
  const requeued: string[][] = [];
  const relay = new CallRelay({
    call: async (_m: string, p: { hashes: string[] }) => (
      requeued.push(p.hashes),
      { requeued: p.hashes.length, dropped: [] }
    ),
  } as unknown as Enclave);
  relay.settle(HASH, inBlock);
  assert.equal(await relay.resubmit([HASH]), 1);
  assert.deepEqual(requeued, [[HASH]]);
  const seen: CallUpdate[] = [];
  relay.watch(HASH, (u) => seen.push(u));
  assert.deepEqual(seen, [], 'the abandoned block is not reported');
  const again: CallUpdate = { status: 'inBlock', blockHash: '0x' + 'ee'.repeat(32), blockNumber: 9 };
  relay.settle(HASH, again);
  assert.deepEqual(seen, [again]);
});

test('a watcher registered first gets the update when the call settles, and nothing after stop', () => {
  const relay = new CallRelay({} as Enclave);
  const seen: CallUpdate[] = [];
  const stop = relay.watch(HASH, (u) => seen.push(u));
  relay.settle(HASH, inBlock);
  assert.deepEqual(seen, [inBlock]);
  const other: CallUpdate[] = [];
  const stopOther = relay.watch('ef'.repeat(32), (u) => other.push(u));
  stopOther();
  stop();
  relay.settle('ef'.repeat(32), inBlock);
  assert.deepEqual(other, []);
});

/** author_submitAndWatchCall over a slow enclave, on a connection that records its notifications and cleanups. */
function watchedSubmission() {
  const { enclave, answer } = slowEnclave();
  const relay = new CallRelay(enclave);
  const shard = new Uint8Array(32).fill(3);
  const methods = createMethods({
    enclave,
    relay,
    shard,
    metrics: createMetrics(),
    version: 'test',
    isReady: () => true,
    store: {},
  } as unknown as MethodDeps);
  const notes: { sub: string; result: unknown }[] = [];
  const cleanups = new Set<() => void>();
  const ctx: RpcContext = {
    connectionId: 1,
    notify: (_m, sub, result) => notes.push({ sub, result }) > 0,
    onClose: (fn) => (cleanups.add(fn), () => cleanups.delete(fn)),
    reserveSubscription: () => () => {},
  };
  const request = '0x' + Buffer.concat([Buffer.from(shard), Buffer.alloc(40, 1)]).toString('hex');
  const submit = () => methods.author_submitAndWatchCall([request], ctx);
  const twoNotes = async () => {
    for (let i = 0; i < 10 && notes.length < 2; i++) await new Promise((r) => setImmediate(r));
  };
  return { relay, answer, notes, cleanups, submit, twoNotes };
}

test('author_submitAndWatchCall: a call in a block before its submission was answered still notifies ready, then inBlock', async () => {
  const { relay, answer, notes, cleanups, submit, twoNotes } = watchedSubmission();
  const pending = submit();
  await new Promise((r) => setImmediate(r)); // the relay has flushed its batch to the enclave
  relay.settle(HASH, inBlock); // the enclave put the call in a block while still admitting the batch
  answer();
  assert.equal(await pending, '0x' + HASH);
  assert.deepEqual(notes, [], 'nothing before the reply');
  await twoNotes();
  assert.deepEqual(notes, [
    { sub: '0x' + HASH, result: { status: 'ready' } },
    { sub: '0x' + HASH, result: inBlock },
  ]);
  assert.equal(cleanups.size, 0, 'an ended subscription leaves nothing on its connection');
});

test('author_submitAndWatchCall: the subscription drops its connection cleanup when the call settles', async () => {
  const { relay, answer, notes, cleanups, submit, twoNotes } = watchedSubmission();
  answer();
  await submit();
  assert.equal(cleanups.size, 1, 'a watched call is cleaned up if its connection closes');
  relay.settle(HASH, inBlock);
  assert.equal(cleanups.size, 0);
  await twoNotes();
  assert.deepEqual(
    notes.map((n) => n.result),
    [{ status: 'ready' }, inBlock],
  );
});

// A call whose block a reorg abandons and that the enclave does not requeue (its nonce used on the new chain, or no
// longer held) settles as invalid with the enclave's reason; before, its watchers waited for an inBlock forever.
test('author_submitAndWatchCall: a call a reorg drops without requeueing ends its subscription as invalid', async () => {
  const { relay, answer, notes, cleanups, submit, twoNotes } = watchedSubmission();
  const pending = submit();
  await new Promise((r) => setImmediate(r));
  relay.settle(HASH, inBlock); // in a block before the submission was answered
  assert.equal(await relay.resubmit([HASH]), 0, 'a reorg abandoned that block; the new chain used the nonce');
  answer();
  await pending;
  await twoNotes();
  assert.deepEqual(
    notes.map((n) => n.result),
    [{ status: 'ready' }, { status: 'invalid', ...staleNonce }],
  );
  assert.equal(cleanups.size, 0, 'the ended subscription leaves nothing on its connection');
});

test('a watcher of a call a reorg drops without requeueing gets the reason at once', async () => {
  const relay = new CallRelay(slowEnclave().enclave);
  const seen: CallUpdate[] = [];
  relay.watch(HASH, (u) => seen.push(u));
  await relay.resubmit([HASH]);
  assert.deepEqual(seen, [{ status: 'invalid', ...staleNonce }]);
});
