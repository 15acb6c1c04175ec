// Gossip validation of forwarded batches: what the enclave's refusal says about the peer that relayed it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CallRelay } from '../../src/calls/relay.ts';
import { onGossipCalls } from '../../src/calls/gossip.ts';
import { EnclaveError } from '../../src/enclave/boundary/errors.ts';
import type { ErrorCode } from '../../src/protocol/errors.ts';
import type { Enclave } from '../../src/enclave/boundary/host.ts';

const answering = (outcome: { accepted: number; invalid: number } | ErrorCode) =>
  new CallRelay({
    call: async (method: string) => {
      assert.equal(method, 'submitForwarded');
      if (typeof outcome === 'string') throw new EnclaveError(outcome, 'refused');
      return outcome;
    },
  } as unknown as Enclave);

test('a forged or malformed batch penalises its relayer; one of another epoch or a non-member is only dropped', async () => {
  const cases: [Parameters<typeof answering>[0], string][] = [
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
  for (const [outcome, validation] of cases)
    assert.equal(await onGossipCalls(answering(outcome), new Uint8Array(8)), validation, JSON.stringify(outcome));
});
