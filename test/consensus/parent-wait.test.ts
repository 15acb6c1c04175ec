// An author's wait for its parent: short when its author is quiet and nothing is on its way, longer
// while that author is live or its block imports.
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
  assert.ok((await elapsed(() => w.until(5n, 'aa', Date.now() + 5_000, Date.now() + 5_000))) < 1_000);
  const waiting = w.until(6n, 'aa', Date.now() + 5_000, Date.now() + 5_000);
  setTimeout(() => w.headIs(6n), 20);
  assert.ok((await elapsed(() => waiting)) < 1_000);
});

test('gives up at the short deadline when the author is quiet and no block of the slot is being imported', async () => {
  const w = new ParentWait();
  w.headIs(4n);
  w.importing('older', 4n, 'bb')(); // a block of an earlier slot, by another author, imported
  w.importing('long ago', 1n, 'aa')(); // the awaited author, but more than 32 slots back
  const ms = await elapsed(() => w.until(40n, 'aa', Date.now() + 50, Date.now() + 5_000));
  assert.ok(ms >= 40 && ms < 1_000, `waited ${ms} ms`);
  const unknown = await elapsed(() => w.until(40n, null, Date.now() + 50, Date.now() + 5_000));
  assert.ok(unknown >= 40 && unknown < 1_000, `waited ${unknown} ms for an unknown author`);
});

test('waits up to the long deadline for a live author', async () => {
  const w = new ParentWait();
  w.headIs(8n);
  w.importing('its last', 5n, 'aa')(); // 'aa' authored slot 5: live
  const ms = await elapsed(() => w.until(9n, 'aa', Date.now() + 30, Date.now() + 250));
  assert.ok(ms >= 230 && ms < 1_500, `waited ${ms} ms`);
});

test('waits past the short deadline while a block of the slot imports, and stops when the import ends', async () => {
  const w = new ParentWait();
  w.headIs(4n);
  const done = w.importing('parent', 5n, 'aa');
  const started = Date.now();
  const waiting = w.until(5n, 'cc', started + 30, started + 5_000);
  setTimeout(() => {
    done(); // imported, but it did not become the head (e.g. invalid): back to the short deadline, long passed
  }, 200);
  const ms = await elapsed(() => waiting);
  assert.ok(ms >= 150 && ms < 1_500, `waited ${ms} ms`);

  const done2 = w.importing('parent2', 5n, 'aa');
  const waiting2 = w.until(5n, 'cc', Date.now() + 30, Date.now() + 5_000);
  setTimeout(() => {
    w.headIs(5n);
    done2();
  }, 100);
  const ms2 = await elapsed(() => waiting2);
  assert.ok(ms2 >= 80 && ms2 < 1_500, `waited ${ms2} ms`);
});

test('stop ends a wait', async () => {
  const w = new ParentWait();
  w.importing('parent', 1n, 'aa');
  const waiting = w.until(1n, 'aa', Date.now() + 5_000, Date.now() + 10_000);
  setTimeout(() => w.stop(), 20);
  assert.ok((await elapsed(() => waiting)) < 1_000);
});
