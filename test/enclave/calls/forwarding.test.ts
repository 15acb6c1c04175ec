// Forwarded call batches: what one enclave seals and signs, another of the shard opens, whichever way
// each call's bytes were produced; other shards, epochs, senders, signatures and tampering are refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { TrustedCall, type TrustedCall as TrustedCallT } from '../../../src/protocol/wire.ts';
import {
  forwardKey,
  openForwarded,
  sealForwarded,
  type ForwardPolicy,
  type ForwardedCall,
} from '../../../src/enclave/calls/forwarding.ts';
import { ed25519Generate, ed25519PrivateKey, ed25519Sign, sha256 } from '../../../src/crypto/primitives.ts';
import { concatBytes, same } from '../../../src/protocol/bytes.ts';

const SHARD = new Uint8Array(32).fill(7);
const key = { id: 3, key: forwardKey(new Uint8Array(randomBytes(32))) };
const signerOf = () => {
  const k = ed25519Generate();
  return { publicKey: k.publicKey, signingKey: ed25519PrivateKey(k.secretKey) };
};
const member = signerOf();
const otherMember = signerOf();
const policy: ForwardPolicy = {
  current: key,
  isMember: (k) => same(k, member.publicKey) || same(k, otherMember.publicKey),
};
const codeOf = (r: ReturnType<typeof openForwarded>) => (r.ok ? 'ok' : r.code);

const transfer = (memo?: string): TrustedCallT => ({
  tag: 'transfer',
  value: { from: randomBytes(32), to: randomBytes(32), amount: 12345678901234567890n, memo },
});
const unshield: TrustedCallT = {
  tag: 'unshield',
  value: { from: randomBytes(32), beneficiary: randomBytes(32), amount: 5n },
};
const one = (): ForwardedCall[] => [{ hash: randomBytes(32), nonce: 1, call: transfer() }];

test("a batch opens to the sealed calls and names its sender, with or without the calls' own bytes at hand", () => {
  const calls: ForwardedCall[] = [transfer('hi'), transfer(), unshield].map((call, i) => ({
    hash: randomBytes(32),
    nonce: 2 ** 32 - 1 - i,
    call,
  }));
  const withBytes = calls.map((c, i) => (i === 1 ? c : { ...c, callBytes: TrustedCall.enc(c.call) }));
  for (const batch of [calls, withBytes, []]) {
    const opened = openForwarded(sealForwarded(key, SHARD, member, batch), SHARD, policy);
    assert.ok(opened.ok);
    assert.ok(same(opened.sender, member.publicKey));
    assert.deepEqual(
      opened.calls.map((c) => [
        Buffer.from(c.hash).toString('hex'),
        c.nonce,
        Buffer.from(TrustedCall.enc(c.call)).toString('hex'),
      ]),
      batch.map((c) => [
        Buffer.from(c.hash).toString('hex'),
        c.nonce,
        Buffer.from(TrustedCall.enc(c.call)).toString('hex'),
      ]),
    );
  }
});

test('another shard, another epoch, a non-member, a flipped byte or a truncation is refused with its code', () => {
  const sealed = sealForwarded(key, SHARD, member, one());
  assert.equal(codeOf(openForwarded(sealed, new Uint8Array(32).fill(8), policy)), 'FORWARD_BAD_SIGNATURE');
  const nextEpoch = { id: 4, key: forwardKey(new Uint8Array(randomBytes(32))) };
  assert.equal(codeOf(openForwarded(sealed, SHARD, { ...policy, current: nextEpoch })), 'FORWARD_WRONG_EPOCH');
  assert.equal(codeOf(openForwarded(sealed, SHARD, { ...policy, isMember: () => false })), 'FORWARD_NOT_MEMBER');
  for (const at of [0, 4, 40, 60, sealed.length - 70, sealed.length - 1]) {
    const flipped = sealed.slice();
    flipped[at] ^= 1;
    assert.notEqual(codeOf(openForwarded(flipped, SHARD, policy)), 'ok', `byte ${at}`);
  }
  const badSignature = sealed.slice();
  badSignature[badSignature.length - 1] ^= 1;
  assert.equal(codeOf(openForwarded(badSignature, SHARD, policy)), 'FORWARD_BAD_SIGNATURE');
  assert.equal(codeOf(openForwarded(sealed.subarray(0, 5), SHARD, policy)), 'DECODE_FAILED');
});

test('the forward key alone forges nothing: a member key needs its signature, and a signature its own ciphertext', () => {
  const sealed = sealForwarded(key, SHARD, member, one());
  // Holding the forward key (a departed member, a leaked key) but no member's signing key.
  const outsider = signerOf();
  assert.equal(codeOf(openForwarded(sealForwarded(key, SHARD, outsider, one()), SHARD, policy)), 'FORWARD_NOT_MEMBER');
  // ... and naming a member as the sender: the signature is the outsider's.
  const claimed = sealForwarded(key, SHARD, { publicKey: member.publicKey, signingKey: outsider.signingKey }, one());
  assert.equal(codeOf(openForwarded(claimed, SHARD, policy)), 'FORWARD_BAD_SIGNATURE');
  // Another member re-signing this batch's ciphertext as its own (a valid signature over the swapped envelope): the
  // sender is bound in the ciphertext's AAD.
  const swapped = sealed.slice(0, sealed.length - 64);
  swapped.set(otherMember.publicKey, 4);
  const message = concatBytes(new TextEncoder().encode('validateer/forward-signature/v2'), sha256(SHARD, swapped));
  const resigned = concatBytes(swapped, ed25519Sign(otherMember.signingKey, message));
  assert.equal(codeOf(openForwarded(resigned, SHARD, policy)), 'DECRYPT_FAILED');
  // The same construction over the unchanged envelope is the member's own signature: the test's format is the real one.
  const body = sealed.subarray(0, sealed.length - 64);
  const own = concatBytes(new TextEncoder().encode('validateer/forward-signature/v2'), sha256(SHARD, body));
  assert.equal(codeOf(openForwarded(concatBytes(body, ed25519Sign(member.signingKey, own)), SHARD, policy)), 'ok');
});
