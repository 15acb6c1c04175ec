// Encrypted calls between validateers: the enclave re-seals the calls it accepted from local clients
// in one batch under the shard's forwarding key and signs it with its own key (src/enclave/calls/forwarding.ts);
// the batch carries its sender's key and is gossiped as opaque bytes, and peers' enclaves open it and add
// the calls to their pools, so whichever validateer authors next has them. A batch that a current
// member did not sign, or that does not decrypt or decode, marks the peer that relayed it.
import type { Network, Validation } from '../p2p/network.ts';
import type { CallRelay } from './relay.ts';
import type { Logger } from 'pino';
import { codeOf } from '../protocol/errors.ts';

/**
 * Rejections of a whole batch that no honest validateer forwards: the sender is penalised. Not a batch of another epoch
 * or from a non-member: the relaying peer may only be behind or ahead of us (a rotation, a join or a departure).
 */
const MALICIOUS = new Set(['DECODE_FAILED', 'DECRYPT_FAILED', 'FORWARD_BAD_SIGNATURE']);

/** Gossips every batch the enclave accepted from local clients. */
export function forwardAcceptedCalls(relay: CallRelay, network: Network, logger: Logger): void {
  relay.forwardWanted = () => network.connectedPeers().length > 0;
  relay.onForward = (envelope) => {
    network.publishCall(envelope).catch((err: Error) => logger.debug({ err: err.message }, 'calls not gossiped'));
  };
}

/** Gossip validation of a forwarded batch: accept if it brought a new call, reject if it is forged or malformed. */
export async function onGossipCalls(relay: CallRelay, bytes: Uint8Array): Promise<Validation> {
  try {
    return (await relay.submitForwarded(bytes)).accepted > 0 ? 'accept' : 'ignore';
  } catch (err) {
    return MALICIOUS.has(codeOf(err) ?? '') ? 'reject' : 'ignore';
  }
}
