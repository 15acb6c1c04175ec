// The call verifier: a client's shielded transfer opens to the call, its hash and its own encoding
// (what forwarding re-seals); another shard's or a tampered request is refused with its code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { CallVerifier } from '../../../src/enclave/calls/call-verifier.ts';
import { CryptoThreads } from '../../../src/enclave/calls/crypto-threads.ts';
import { buildTransfer } from '../../../src/client/calls.ts';
import { devAccount } from '../../../src/client/accounts.ts';
import { TrustedCall } from '../../../src/protocol/wire.ts';
import { x25519Generate } from '../../../src/crypto/primitives.ts';

const SHARD = new Uint8Array(32).fill(5);

test('a shielded transfer verifies to its call, hash and call bytes; tampering and another shard are refused', async () => {
  const alice = await devAccount('//Alice');
  const bob = await devAccount('//Bob');
  const kp = x25519Generate();
  const verifier = new CallVerifier({ keyId: 1, secret: kp.secretKey, publicKey: kp.publicKey });
  const t = buildTransfer(alice, { to: bob.publicKey, amount: 77n, nonce: 4, memo: 'for the view' }, { keyId: 1, publicKey: kp.publicKey }, SHARD);
  const v = verifier.verify(t.request);
  assert.ok(v.ok);
  assert.equal(Buffer.from(v.hash).toString('hex'), t.hash);
  assert.equal(v.nonce, 4);
  assert.deepEqual(Buffer.from(v.callBytes), Buffer.from(TrustedCall.enc(v.call)), 'the call\'s own encoding');
  assert.equal(v.call.tag, 'transfer');
  assert.equal(v.call.value.amount, 77n);

  const flipped = t.request.slice();
  flipped[flipped.length - 1] ^= 1;
  assert.equal((verifier.verify(flipped) as { code: string }).code, 'DECRYPT_FAILED');
  const other = buildTransfer(alice, { to: bob.publicKey, amount: 1n, nonce: 5 }, { keyId: 2, publicKey: kp.publicKey }, SHARD);
  assert.equal((verifier.verify(other.request) as { code: string }).code, 'UNKNOWN_SHIELDING_KEY');
});

test('the crypto threads verify in worker threads at the niceness it was given (only those threads yield)', async () => {
  const alice = await devAccount('//Alice');
  const kp = x25519Generate();
  const pool = new CryptoThreads({ keyId: 1, secret: kp.secretKey, publicKey: kp.publicKey }, 2, 7);
  // Niceness per thread, from /proc (Linux: `nice` is field 19 of a task's stat, after the command in parentheses).
  const niceOf = (tid: string) => Number(readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1].split(' ')[16]);
  const threadsAt = (nice: number) => readdirSync('/proc/self/task').filter((tid) => niceOf(tid) === nice).length;
  try {
    const before = threadsAt(7);
    const requests = [0, 1].map((nonce) => buildTransfer(alice, { to: alice.publicKey, amount: 1n, nonce }, { keyId: 1, publicKey: kp.publicKey }, SHARD).request);
    // The threads start on first use; small batches go to the threads in turn, so after two both have run their setup.
    for (const r of requests) assert.ok((await pool.verify([r]))[0].ok);
    assert.equal(threadsAt(7) - before, 2, 'both worker threads run at niceness 7');
    assert.equal(niceOf(String(process.pid)), 0, 'the main thread keeps its priority');
  } finally {
    await pool.close();
  }
});
