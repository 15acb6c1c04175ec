// The network layer's pure parts: codecs, rate limiter, application scores, message ids.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { codeOf } from '../helpers/errors.ts';
import {
  ResponseCode,
  decodeBlockCount,
  decodeHashRequest,
  decodeHeader,
  decodeRangeRequest,
  decodeStatus,
  encodeBlockCountHeader,
  encodeErrorHeader,
  encodeHashRequest,
  encodeRangeRequest,
  encodeStatus,
} from '../../src/p2p/codec.ts';
import { MessageIds, topicName } from '../../src/p2p/gossip.ts';
import { RateLimiter } from '../../src/p2p/rate-limiter.ts';
import { AppScores } from '../../src/p2p/scores.ts';

const status = {
  headNumber: 2 ** 40,
  headHash: new Uint8Array(32).fill(1),
  finalizedNumber: 7,
  finalizedHash: new Uint8Array(32).fill(2),
};

test('codec: status and requests round trip; anything else is DECODE_FAILED', () => {
  assert.deepEqual(decodeStatus(encodeStatus(status)), status);
  assert.equal(
    codeOf(() => decodeStatus(encodeStatus(status).subarray(1))),
    'DECODE_FAILED',
  );
  assert.equal(
    codeOf(() => decodeStatus(new Uint8Array([...encodeStatus(status), 0]))),
    'DECODE_FAILED',
  );
  assert.equal(
    codeOf(() => encodeStatus({ ...status, headNumber: -1 })),
    'P2P_BAD_STATUS',
  );
  assert.deepEqual(decodeRangeRequest(encodeRangeRequest({ from: 5, count: 9 })), { from: 5, count: 9 });
  assert.equal(
    codeOf(() => decodeRangeRequest(new Uint8Array(11))),
    'DECODE_FAILED',
  );
  const hashes = [new Uint8Array(32).fill(3), new Uint8Array(32).fill(4)];
  assert.deepEqual(decodeHashRequest(encodeHashRequest(hashes)), hashes);
  for (const len of [0, 31, 33])
    assert.equal(
      codeOf(() => decodeHashRequest(new Uint8Array(len))),
      'DECODE_FAILED',
    );
  assert.equal(
    codeOf(() => encodeHashRequest([new Uint8Array(31)])),
    'P2P_INVALID_ARGUMENT',
  );
});

test('codec: response headers', () => {
  const ok = decodeHeader(encodeBlockCountHeader(3));
  assert.equal(ok.code, ResponseCode.ok);
  assert.equal(decodeBlockCount((ok as { payload: Uint8Array }).payload), 3);
  assert.deepEqual(decodeHeader(encodeErrorHeader(ResponseCode.rateLimited, 'slow down')), {
    code: 2,
    reason: 'slow down',
  });
  assert.equal(encodeErrorHeader(ResponseCode.serverError, 'x'.repeat(1000)).length, 1 + 256);
  assert.equal(
    codeOf(() => decodeHeader(Uint8Array.of(9))),
    'DECODE_FAILED',
  );
  assert.equal(
    codeOf(() => decodeHeader(new Uint8Array(0))),
    'DECODE_FAILED',
  );
});

test('rate limiter: burst, refill, separate buckets per peer and protocol', () => {
  let now = 0;
  const rl = new RateLimiter({ rate: 2, burst: 4, now: () => now });
  for (let i = 0; i < 4; i++) assert.ok(rl.tryTake('p', 'a'));
  assert.ok(!rl.tryTake('p', 'a'));
  assert.ok(rl.tryTake('p', 'b'));
  assert.ok(rl.tryTake('q', 'a'));
  now += 499;
  assert.ok(!rl.tryTake('p', 'a'));
  now += 2;
  assert.ok(rl.tryTake('p', 'a'));
  now += 60_000;
  for (let i = 0; i < 4; i++) assert.ok(rl.tryTake('p', 'a'), 'refills only up to the burst');
  assert.ok(!rl.tryTake('p', 'a'));
});

test('rate limiter: full buckets are swept when the map grows', () => {
  let now = 0;
  const rl = new RateLimiter({ rate: 1, burst: 2, maxTracked: 10, now: () => now });
  for (let i = 0; i < 10; i++) rl.tryTake(`p${i}`, 'a');
  now += 10_000;
  rl.tryTake('new', 'a');
  assert.equal(rl.tracked, 1);
});

test('app scores: penalties decay, the threshold bans for the cool-down, then the slate is clean', () => {
  let now = 0;
  const s = new AppScores({ banThreshold: -90, banMs: 60_000, halfLifeMs: 1_000, now: () => now });
  assert.equal(s.penalize('p', 50), false);
  now += 1_000;
  assert.equal(s.score('p'), -25);
  assert.equal(s.penalize('p', 50), false); // -75
  assert.equal(s.penalize('p', 20), true); // -95
  assert.ok(s.isBanned('p'));
  assert.equal(s.penalize('p', 1000), false, 'no re-ban while banned');
  now += 60_000;
  assert.ok(!s.isBanned('p'));
  assert.equal(s.score('p'), 0);
});

test('message ids: content-addressed per topic; copies are reported as duplicates', () => {
  const dups: string[] = [];
  const ids = new MessageIds((topic) => dups.push(topic));
  const t = topicName(new Uint8Array(32), 'blocks');
  assert.match(t, /^\/validateer\/0x0{64}\/blocks\/1$/);
  assert.match(topicName(new Uint8Array(32), 'calls'), /^\/validateer\/0x0{64}\/calls\/2$/);
  const data = Uint8Array.of(1, 2, 3);
  const first = ids.fastMsgIdFn({ topic: t, data });
  assert.equal(ids.fastMsgIdFn({ topic: t, data: Uint8Array.of(1, 2, 3) }), first);
  assert.notEqual(ids.fastMsgIdFn({ topic: 'other', data }), first);
  assert.equal(ids.msgIdToStrFn(ids.msgIdFn({ type: 'unsigned', topic: t, data })), first);
  assert.deepEqual(dups, [t]);
  ids.markPublished(t, Uint8Array.of(9));
  ids.fastMsgIdFn({ topic: t, data: Uint8Array.of(9) });
  assert.deepEqual(dups, [t, t]);
});
