// The call verifier: a client's shielded transfer opens to the call, its hash and its own encoding
// (what forwarding re-seals); another shard's or a tampered request is refused with its code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { CallVerifier } from '../../../src/enclave/calls/call-verifier.ts';
import { CryptoThreads } from '../../../src/enclave/calls/crypto-threads.ts';
import { buildTransfer, shield, signCall } from '../../../src/client/calls.ts';
import { devAccount } from '../../../src/client/accounts.ts';
import { TrustedCall } from '../../../src/protocol/wire.ts';
import { x25519Generate } from '../../../src/crypto/primitives.ts';

const SHARD = new Uint8Array(32).fill(5);
const OTHER_SHARD = new Uint8Array(32).fill(6);

test('a shielded transfer verifies to its call, hash and call bytes; tampering and another shard are refused', async () => {
  const alice = await devAccount('//Alice');
  const bob = await devAccount('//Bob');
  const kp = x25519Generate();
  const verifier = new CallVerifier({ keyId: 1, secret: kp.secretKey, publicKey: kp.publicKey });
  const t = buildTransfer(
    alice,
    { to: bob.publicKey, amount: 77n, nonce: 4, memo: 'for the view' },
    { keyId: 1, publicKey: kp.publicKey },
    SHARD,
  );
  const v = verifier.verify(t.request);
  assert.ok(v.ok);
  assert.equal(Buffer.from(v.hash).toString('hex'), t.hash);
  assert.equal(v.nonce, 4);
  assert.deepEqual(Buffer.from(v.callBytes), Buffer.from(TrustedCall.enc(v.call)), "the call's own encoding");
  assert.equal(v.call.tag, 'transfer');
  assert.equal(v.call.value.amount, 77n);

  const flipped = t.request.slice();
  flipped[flipped.length - 1] ^= 1;
  assert.equal((verifier.verify(flipped) as { code: string }).code, 'DECRYPT_FAILED');
  const other = buildTransfer(
    alice,
    { to: bob.publicKey, amount: 1n, nonce: 5 },
    { keyId: 2, publicKey: kp.publicKey },
    SHARD,
  );
  assert.equal((verifier.verify(other.request) as { code: string }).code, 'UNKNOWN_SHIELDING_KEY');

  // Signed for another shard, shielded for this one: the envelope's shard is not the call's.
  const call = {
    tag: 'transfer' as const,
    value: { from: alice.publicKey, to: bob.publicKey, amount: 1n, memo: undefined },
  };
  const rerouted = shield(signCall(alice, call, 6, OTHER_SHARD), { keyId: 1, publicKey: kp.publicKey }, SHARD);
  assert.equal((verifier.verify(rerouted) as { code: string }).code, 'WRONG_SHARD');
  // The same signed call under its own shard verifies: only the shard differed.
  assert.ok(
    verifier.verify(shield(signCall(alice, call, 6, OTHER_SHARD), { keyId: 1, publicKey: kp.publicKey }, OTHER_SHARD))
      .ok,
  );
});

// Niceness per thread, from /proc (Linux: `nice` is field 19 of a task's stat, after the command in parentheses).
const niceOf = (tid: string) =>
  Number(readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1].split(' ')[16]);
// The suite may itself run niced (`nice npm test`): the threads are asked for a niceness above the
// process's own, the only direction an unprivileged thread may move.
const baseNice = niceOf(String(process.pid));
const threadNice = Math.min(baseNice + 7, 19);

test(
  'the crypto threads verify in worker threads at the niceness they were given (only those threads yield)',
  { skip: threadNice === baseNice && 'the process already runs at the lowest priority' },
  async () => {
    const alice = await devAccount('//Alice');
    const kp = x25519Generate();
    const threads = new CryptoThreads({ keyId: 1, secret: kp.secretKey, publicKey: kp.publicKey }, 2, threadNice);
    const threadsAt = (nice: number) => readdirSync('/proc/self/task').filter((tid) => niceOf(tid) === nice).length;
    try {
      const before = threadsAt(threadNice);
      const requests = [0, 1].map(
        (nonce) =>
          buildTransfer(alice, { to: alice.publicKey, amount: 1n, nonce }, { keyId: 1, publicKey: kp.publicKey }, SHARD)
            .request,
      );
      // The threads start on first use; small batches go to the threads in turn, so after two both have run their
      // setup.
      for (const r of requests) assert.ok((await threads.verify([r]))[0].ok);
      assert.equal(threadsAt(threadNice) - before, 2, `both worker threads run at niceness ${threadNice}`);
      assert.equal(niceOf(String(process.pid)), baseNice, 'the main thread keeps its priority');
    } finally {
      await threads.close();
    }
  },
);
