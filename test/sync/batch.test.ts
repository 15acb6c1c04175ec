// The onboarding sync's Batch: its states and how a range shrinks when a peer serves part of it or
// only part of it verifies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Batch, SyncPeer } from '../../src/sync/batch.ts';

const blocks = (n: number) => Array.from({ length: n }, (_, i) => Uint8Array.of(i));

test('a batch goes awaiting_download -> downloading -> awaiting_processing -> processing -> done', () => {
  const b = new Batch(10, 4);
  assert.equal(b.state, 'awaiting_download');
  b.startDownload('p');
  assert.deepEqual([b.state, b.peer, b.attempts], ['downloading', 'p', 1]);
  assert.equal(b.downloaded(blocks(4)), null);
  assert.equal(b.state, 'awaiting_processing');
  b.startProcessing();
  b.processed(4);
  assert.equal(b.state, 'done');
  assert.throws(() => b.startDownload('q'), /is done, not awaiting_download/);
});

test('a partial download splits off the rest; a partial apply leaves the rest to download again', () => {
  const b = new Batch(10, 8);
  b.startDownload('p');
  const rest = b.downloaded(blocks(3));
  assert.deepEqual([b.start, b.count, b.end], [10, 3, 12]);
  assert.deepEqual([rest?.start, rest?.count, rest?.state], [13, 5, 'awaiting_download']);
  b.startProcessing();
  b.processed(1);
  assert.deepEqual([b.start, b.count, b.state, b.peer, b.blocks.length], [11, 2, 'awaiting_download', null, 0]);
});

test('a failed download goes back to be asked again; a rate limit does not count as an attempt', () => {
  const b = new Batch(0, 4);
  b.startDownload('p');
  b.retry();
  assert.deepEqual([b.state, b.attempts], ['awaiting_download', 1]);
  b.startDownload('q');
  b.retry({ countAttempt: false });
  assert.equal(b.attempts, 1);
  b.fail();
  assert.equal(b.state, 'failed');
});

test('a peer takes a bounded number of requests at once, and none once dropped', () => {
  const p = new SyncPeer('p', 20);
  assert.ok(p.hasCapacity(2));
  p.inFlight = 2;
  assert.ok(!p.hasCapacity(2));
  p.inFlight = 0;
  p.dropped = true;
  assert.ok(!p.hasCapacity(2));
});
