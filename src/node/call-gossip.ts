// Encrypted calls between validateers: accepted calls from local clients are gossiped in batches
// (one message per relay batch), and calls from peers go to our enclave like any other submission.
// A batch with a call that can never be valid (bad envelope, signature or shard) marks its sender.
import { Bytes, Vector } from 'scale-ts';
import { decodeExact } from '../codec/wire.ts';
import type { Network, Validation } from '../p2p/network.ts';
import type { CallRelay } from './call-relay.ts';
import type { Logger } from './logger.ts';

const CallBatch = Vector(Bytes());
/** Calls per gossip message (a call is ~250 bytes: ~0.5 MB, well under the gossip size bound). */
const MAX_CALLS_PER_MESSAGE = 2048;
/** Rejection codes no honest relay forwards: the sender is penalised. */
const MALICIOUS = new Set(['DECODE_FAILED', 'DECRYPT_FAILED', 'BAD_SIGNATURE', 'WRONG_SHARD', 'UNKNOWN_SHIELDING_KEY']);

export function encodeCallBatch(requests: Uint8Array[]): Uint8Array {
  return CallBatch.enc(requests);
}

/** Forwards every batch the relay accepted from local clients to the calls topic. */
export function forwardAcceptedCalls(relay: CallRelay, network: Network, logger: Logger): void {
  relay.onAccepted = (requests) => {
    if (network.connectedPeers().length === 0) return;
    for (let i = 0; i < requests.length; i += MAX_CALLS_PER_MESSAGE) {
      network.publishCall(encodeCallBatch(requests.slice(i, i + MAX_CALLS_PER_MESSAGE)))
        .catch((err: Error) => logger.debug({ err: err.message }, 'calls not gossiped'));
    }
  };
}

/** Gossip validation of a call batch: accept if it brought a new call, reject if any call is malformed or forged. */
export async function onGossipCalls(relay: CallRelay, bytes: Uint8Array): Promise<Validation> {
  let requests: Uint8Array[];
  try {
    requests = decodeExact(CallBatch, bytes, 'call batch');
  } catch {
    return 'reject';
  }
  if (requests.length === 0 || requests.length > MAX_CALLS_PER_MESSAGE) return 'reject';
  const results = await Promise.all(requests.map((r) => relay.submit(r, false)));
  if (results.some((r) => r.status === 'invalid' && MALICIOUS.has(r.code ?? ''))) return 'reject';
  return results.some((r) => r.status !== 'invalid') ? 'accept' : 'ignore';
}
