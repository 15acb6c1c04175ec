// The slot worker with a mocked clock: one slot at a time at slot starts, an overrunning slot's missed
// slots are skipped (not queued), an error does not stop the worker, and stop() waits for the slot in
// progress and schedules nothing after it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SlotWorker } from '../../src/consensus/slots.ts';

const SLOT = 1000;

function worker(t: import('node:test').TestContext, onSlot: (slot: bigint, startMs: number) => Promise<void>) {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 10 * SLOT + 300 });
  const errors: unknown[] = [];
  const w = new SlotWorker({ slotDurationMs: SLOT, onSlot, onError: (e) => errors.push(e) });
  return { w, errors };
}

/** Lets the promise chains the worker started run (mocked timers do not advance microtasks). */
const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => queueMicrotask(r));
};

test('fires at each slot start, in order, with the slot start time', async (t) => {
  const seen: [bigint, number][] = [];
  const { w } = worker(t, async (slot, start) => void seen.push([slot, start]));
  w.start();
  t.mock.timers.tick(699); // 10_999: still slot 10, which had begun before start()
  await settle();
  assert.deepEqual(seen, []);
  for (let i = 0; i < 3; i++) {
    t.mock.timers.tick(i === 0 ? 1 : SLOT);
    await settle();
  }
  assert.deepEqual(seen, [
    [11n, 11_000],
    [12n, 12_000],
    [13n, 13_000],
  ]);
  await w.stop();
});

test('a slot whose work overruns is not queued behind: the missed slots are skipped', async (t) => {
  const seen: bigint[] = [];
  let release: () => void = () => undefined;
  const { w } = worker(t, (slot) => {
    seen.push(slot);
    return slot === 11n ? new Promise<void>((r) => (release = r)) : Promise.resolve();
  });
  w.start();
  t.mock.timers.tick(700); // slot 11 starts and hangs
  await settle();
  t.mock.timers.tick(2 * SLOT + 500); // 13_500: slots 12 and 13 pass while 11 runs
  await settle();
  assert.deepEqual(seen, [11n]);
  release();
  await settle();
  t.mock.timers.tick(500); // 14_000
  await settle();
  assert.deepEqual(seen, [11n, 14n], 'the next slot after the overrun, not 12 and 13');
  await w.stop();
});

test('a failing slot is reported and the worker goes on', async (t) => {
  const seen: bigint[] = [];
  const { w, errors } = worker(t, async (slot) => {
    seen.push(slot);
    if (slot === 11n) throw new Error('propose failed');
  });
  w.start();
  t.mock.timers.tick(700);
  await settle();
  t.mock.timers.tick(SLOT);
  await settle();
  assert.deepEqual(seen, [11n, 12n]);
  assert.equal(errors.length, 1);
  assert.match(String(errors[0]), /propose failed/);
  await w.stop();
});

test('stop() waits for the slot in progress and nothing runs after it', async (t) => {
  const seen: bigint[] = [];
  let release: () => void = () => undefined;
  let done = false;
  const { w } = worker(t, (slot) => {
    seen.push(slot);
    return new Promise<void>((r) => (release = () => ((done = true), r())));
  });
  w.start();
  t.mock.timers.tick(700);
  await settle();
  let stopped = false;
  const stopping = w.stop().then(() => (stopped = true));
  await settle();
  assert.equal(stopped, false, 'stop() waits for the slot in progress');
  release();
  await stopping;
  assert.equal(done, true);
  t.mock.timers.tick(5 * SLOT);
  await settle();
  assert.deepEqual(seen, [11n]);
});
