// The fork-choice rule as pure functions: longest chain, ties to the lowest hash, never a chain
// without the last anchored block.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { anchorVerdict, chooseTip, isBetter, type Candidate } from '../../src/chain/fork-choice.ts';

const hash = (byte: number) => new Uint8Array(32).fill(byte);
const tip = (number: number, byte: number) => ({ number, hash: hash(byte) });
const candidate = (name: string, number: number, byte: number, onAnchoredChain = true): Candidate<string> => ({
  tip: tip(number, byte),
  onAnchoredChain,
  value: name,
});

test('the longest chain wins, over the head and over other candidates', () => {
  const head = { tip: tip(10, 1), onAnchoredChain: true };
  assert.equal(
    chooseTip(head, [candidate('short', 9, 0), candidate('long', 12, 9), candidate('mid', 11, 0)])?.value,
    'long',
  );
  assert.equal(chooseTip(head, [candidate('shorter', 9, 0)]), null, 'no candidate beats the head: keep it');
  assert.equal(chooseTip(head, []), null);
  assert.equal(chooseTip(null, [candidate('any', 0, 5)])?.value, 'any', 'anything beats no head');
});

test('a tie goes to the lowest hash', () => {
  assert.equal(chooseTip(null, [candidate('b', 5, 7), candidate('a', 5, 3), candidate('c', 5, 4)])?.value, 'a');
  assert.equal(
    chooseTip({ tip: tip(5, 2), onAnchoredChain: true }, [candidate('higher hash', 5, 3)]),
    null,
    'the head keeps a tie it wins',
  );
  assert.equal(
    chooseTip({ tip: tip(5, 4), onAnchoredChain: true }, [candidate('lower hash', 5, 3)])?.value,
    'lower hash',
  );
  assert.ok(isBetter(tip(5, 3), tip(5, 4)) && !isBetter(tip(5, 4), tip(5, 3)) && !isBetter(tip(5, 3), tip(5, 3)));
});

test('never a chain without the last anchored block, however long; a head without it counts for nothing', () => {
  const head = { tip: tip(10, 1), onAnchoredChain: true };
  assert.equal(chooseTip(head, [candidate('unanchored', 50, 0, false)]), null);
  assert.equal(
    chooseTip(head, [candidate('unanchored', 50, 0, false), candidate('anchored', 11, 9)])?.value,
    'anchored',
  );
  // A head on a branch that lost to an anchor: even a shorter anchored chain replaces it.
  assert.equal(
    chooseTip({ tip: tip(10, 1), onAnchoredChain: false }, [candidate('anchored but shorter', 4, 9)])?.value,
    'anchored but shorter',
  );
});

test('anchorVerdict: whether a chain (canonical to an ancestor, then a path) contains the anchor', () => {
  const path = [
    { number: 6, hash: 'aa' },
    { number: 7, hash: 'bb' },
    { number: 8, hash: 'cc' },
  ];
  assert.equal(anchorVerdict(null, 5, path, null), true, 'no anchor yet');
  assert.equal(anchorVerdict(tip(9, 0), 5, path, 'dd'), true, 'below the anchor: it may still grow into it');
  assert.equal(anchorVerdict(tip(7, 0), 5, path, 'bb'), true, 'the path holds the anchored block');
  assert.equal(anchorVerdict(tip(7, 0), 5, path, 'ee'), false, 'the path holds another block at the anchor height');
  assert.equal(
    anchorVerdict(tip(4, 0), 5, path, 'ff'),
    'ask_store',
    'at or below the ancestor: the canonical chain decides',
  );
  assert.equal(anchorVerdict(tip(5, 0), 5, [], 'ff'), 'ask_store');
});
