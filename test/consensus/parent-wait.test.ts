// An author's wait for its parent: short unless the block is known to come late (its author's last
// block came after a short wait would have ended, or a block of the slot is being imported).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ParentWait } from '../../src/consensus/parent-wait.ts';

const elapsed = async (fn: () => Promise<void>) => {
  const t = performance.now();
  await fn();
  return performance.now() - t;
};

test('resolves at once when the head already has the slot, and when the head reaches it', async () => {
  const w = new ParentWait();
  w.headIs(5n);
  assert.ok((await elapsed(() => w.until(5n, 'aa', Date.now(), Date.now() + 5_000, Date.now() + 5_000))) < 1_000);
  const waiting = w.until(6n, 'aa', Date.now(), Date.now() + 5_000, Date.now() + 5_000);
  setTimeout(() => w.headIs(6n), 20);
  assert.ok((await elapsed(() => waiting)) < 1_000);
});

test('gives up at the short deadline when the author was on time, quiet or unknown, and nothing is on its way', async () => {
  const w = new ParentWait();
  w.headIs(4n);
  const now = Date.now();
  w.importing('on time', 38n, 'aa', now - 10)(); // imported 10 ms after its slot start
  w.importing('late, long ago', 1n, 'bb', now - 10_000)(); // late, but more than 32 slots back
  w.importing('late, another slot', 39n, 'cc', now - 10_000)(); // late, by another author
  for (const author of ['aa', 'bb', null]) {
    const start = Date.now();
    const ms = await elapsed(() => w.until(40n, author, start, start + 50, start + 5_000));
    assert.ok(ms >= 40 && ms < 1_000, `waited ${ms} ms for ${author}`);
  }
});

test('waits up to the long deadline for an author whose last block came late', async () => {
  const w = new ParentWait();
  w.headIs(8n);
  const now = Date.now();
  w.importing('its last', 5n, 'aa', now - 300)(); // imported 300 ms after its slot start
  const ms = await elapsed(() => w.until(9n, 'aa', now, now + 30, now + 250));
  assert.ok(ms >= 230 && ms < 1_500, `waited ${ms} ms`);
  const start = Date.now();
  // 300 ms is on time for a slot that began 1 s back
  const onTime = await elapsed(() => w.until(9n, 'aa', start - 1_000, start + 30, start + 250));
  assert.ok(onTime < 200, `waited ${onTime} ms`);
});

test('waits past the short deadline while a block of the slot imports, and stops when the import ends', async () => {
  const w = new ParentWait();
  w.headIs(4n);
  const done = w.importing('parent', 5n, 'aa', Date.now());
  const started = Date.now();
  const waiting = w.until(5n, 'cc', started, started + 30, started + 5_000);
  setTimeout(() => {
    done(); // imported, but it did not become the head (e.g. invalid): back to the short deadline, long passed
  }, 200);
  const ms = await elapsed(() => waiting);
  assert.ok(ms >= 150 && ms < 1_500, `waited ${ms} ms`);

  const done2 = w.importing('parent2', 5n, 'aa', Date.now());
  const waiting2 = w.until(5n, 'cc', Date.now(), Date.now() + 30, Date.now() + 5_000);
  setTimeout(() => {
    w.headIs(5n);
    done2();
  }, 100);
  const ms2 = await elapsed(() => waiting2);
  assert.ok(ms2 >= 80 && ms2 < 1_500, `waited ${ms2} ms`);
});

test('stop ends a wait', async () => {
  const w = new ParentWait();
  w.importing('parent', 1n, 'aa', Date.now());
  const waiting = w.until(1n, 'aa', Date.now(), Date.now() + 5_000, Date.now() + 10_000);
  setTimeout(() => w.stop(), 20);
  assert.ok((await elapsed(() => waiting)) < 1_000);
});
