// Gossip validation of forwarded batches: the host's cheap checks first (size, envelope, sender), then what the
// enclave's refusal says about the peer that relayed it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { CallRelay, MAX_BATCH } from '../../src/calls/relay.ts';
import { MAX_FORWARDED_BYTES, onGossipCalls, type CallGossipChecks } from '../../src/calls/gossip.ts';
import { forwardKey, sealForwarded, type ForwardedCall } from '../../src/enclave/calls/forwarding.ts';
import { EnclaveError } from '../../src/enclave/boundary/errors.ts';
import { ed25519Generate, ed25519PrivateKey } from '../../src/crypto/primitives.ts';
import { MAX_MEMO_BYTES } from '../../src/protocol/wire.ts';
import { toHex } from '../../src/protocol/bytes.ts';
import type { ErrorCode } from '../../src/protocol/errors.ts';
import type { Enclave } from '../../src/enclave/boundary/host.ts';

const SHARD = new Uint8Array(32).fill(7);
const KEY = { id: 1, key: forwardKey(new Uint8Array(32).fill(9)) };
const signerOf = () => {
  const k = ed25519Generate();
  return { publicKey: k.publicKey, signingKey: ed25519PrivateKey(k.secretKey) };
};
const member = signerOf();
const call = (memo?: string): ForwardedCall => ({
  hash: new Uint8Array(randomBytes(32)),
  nonce: 1,
  call: { tag: 'transfer', value: { from: randomBytes(32), to: randomBytes(32), amount: 2n ** 128n - 1n, memo } },
});
const batch = (signer = member, calls = [call()]) => sealForwarded(KEY, SHARD, signer, calls);

/** A relay whose enclave answers `outcome` and counts how often it was asked. */
function answering(outcome: { accepted: number; invalid: number } | ErrorCode) {
  const asked = { n: 0 };
  const relay = new CallRelay({
    call: async (method: string) => {
      assert.equal(method, 'submitForwarded');
      asked.n++;
      if (typeof outcome === 'string') throw new EnclaveError(outcome, 'refused');
      return outcome;
    },
  } as unknown as Enclave);
  return { relay, asked };
}

function checks(forwarder?: CallGossipChecks['forwarder']) {
  const penalties: { peer: string; code: string }[] = [];
  const c: CallGossipChecks = { penalize: (peer, _reason, code) => penalties.push({ peer, code }) };
  if (forwarder) c.forwarder = forwarder;
  return { c, penalties };
}

test('a forged or malformed batch penalises its relayer; one of another epoch or a non-member is only dropped', async () => {
  const cases: [{ accepted: number; invalid: number } | ErrorCode, string][] = [
    [{ accepted: 2, invalid: 1 }, 'accept'],
    [{ accepted: 0, invalid: 3 }, 'ignore'],
    ['FORWARD_BAD_SIGNATURE', 'reject'],
    ['DECRYPT_FAILED', 'reject'],
    ['DECODE_FAILED', 'reject'],
    // An honest peer may be a block or a parentchain block ahead or behind: a rotation, a join, a departure.
    ['FORWARD_WRONG_EPOCH', 'ignore'],
    ['FORWARD_NOT_MEMBER', 'ignore'],
    ['REPLAYING', 'ignore'],
  ];
  for (const [outcome, validation] of cases) {
    const { relay, asked } = answering(outcome);
    assert.equal(await onGossipCalls(relay, batch(), 'p', checks().c), validation, JSON.stringify(outcome));
    assert.equal(asked.n, 1);
  }
});

test('junk never reaches the enclave: oversized or undecodable is rejected and penalised, a stranger rejected', async () => {
  const oversized = new Uint8Array(MAX_FORWARDED_BYTES + 1);
  const truncated = batch().subarray(0, 40);
  const trailing = new Uint8Array([...batch(), 0]);
  for (const [bytes, code] of [
    [oversized, 'P2P_TOO_LARGE'],
    [truncated, 'DECODE_FAILED'],
    [trailing, 'DECODE_FAILED'],
    [new Uint8Array(8), 'DECODE_FAILED'],
  ] as const) {
    const { relay, asked } = answering({ accepted: 1, invalid: 0 });
    const { c, penalties } = checks(() => 'member');
    assert.equal(await onGossipCalls(relay, bytes, 'junk', c), 'reject', code);
    assert.equal(asked.n, 0, code);
    assert.deepEqual(penalties, [{ peer: 'junk', code }]);
  }

  // The sender as our registry sees it: a stranger's batch is rejected (gossipsub's score) but not penalised by us;
  // one we cannot place (departed, or joined since our view) is only dropped; a member's goes to the enclave.
  const stranger = signerOf();
  const sender = (key: string) =>
    key === toHex(member.publicKey) ? 'member' : key === toHex(stranger.publicKey) ? 'stranger' : 'unsure';
  for (const [signer, validation, asks] of [
    [stranger, 'reject', 0],
    [signerOf(), 'ignore', 0],
    [member, 'accept', 1],
  ] as const) {
    const { relay, asked } = answering({ accepted: 1, invalid: 0 });
    const { c, penalties } = checks(sender);
    assert.equal(await onGossipCalls(relay, batch(signer), 'relay', c), validation);
    assert.equal(asked.n, asks);
    assert.deepEqual(penalties, []);
  }
});

test('the largest batch an honest enclave seals fits the bound, well below maxGossipBytes', () => {
  const calls = Array.from({ length: MAX_BATCH }, () => call('é'.repeat(MAX_MEMO_BYTES / 2)));
  const sealed = batch(member, calls);
  assert.ok(sealed.length <= MAX_FORWARDED_BYTES, `${sealed.length} > ${MAX_FORWARDED_BYTES}`);
  assert.ok(sealed.length > MAX_FORWARDED_BYTES - 64, 'the bound is tight');
  assert.ok(MAX_FORWARDED_BYTES < 2 * 1024 * 1024);
});
