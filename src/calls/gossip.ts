// Encrypted calls between validateers: the enclave re-seals the calls it accepted from local clients
// in one batch under the shard's forwarding key and signs it with its own key (src/enclave/calls/forwarding.ts);
// the batch carries its sender's key and is gossiped as opaque bytes, and peers' enclaves open it and add
// the calls to their pools, so whichever validateer authors next has them. A batch that a current
// member did not sign, or that does not decrypt or decode, marks the peer that relayed it.
//
// Cheap checks come first, on the host: a batch larger than any an honest enclave seals, one whose envelope does not
// decode, or one whose sender our registry shows is no member never reaches the enclave (decoding and AES-GCM of up
// to maxGossipBytes each).
import type { Network, Validation } from '../p2p/network.ts';
import { MAX_BATCH, type CallRelay } from './relay.ts';
import type { Logger } from 'pino';
import { RejectCode, codeOf } from '../protocol/errors.ts';
import { FORWARD_SIGNATURE_BYTES, ForwardEnvelope } from '../protocol/forward-envelope.ts';
import { MAX_MEMO_BYTES, decodeExact } from '../protocol/wire.ts';
import { toHex } from '../protocol/bytes.ts';

/**
 * Rejections of a whole batch that no honest validateer forwards: the sender is penalised. Not a batch of another epoch
 * or from a non-member: the relaying peer may only be behind or ahead of us (a rotation, a join or a departure).
 */
const MALICIOUS = new Set(['DECODE_FAILED', 'DECRYPT_FAILED', 'FORWARD_BAD_SIGNATURE']);

/** The largest call: a transfer with the longest memo (tag, two accounts, u128, Some, compact length, memo). */
const MAX_CALL_BYTES = 1 + 32 + 32 + 16 + 1 + 2 + MAX_MEMO_BYTES;
/**
 * The largest batch an honest enclave seals (~1.5 MiB): one relay flush of MAX_BATCH calls (hash, nonce, call each),
 * sealed (compact lengths, GCM tag) in the envelope (key id, sender, nonce, signature).
 */
export const MAX_FORWARDED_BYTES =
  MAX_BATCH * (32 + 4 + MAX_CALL_BYTES) + 5 + 16 + 5 + 4 + 32 + 12 + FORWARD_SIGNATURE_BYTES;

/** What the host checks before it hands a forwarded batch to the enclave. */
export interface CallGossipChecks {
  /**
   * The host's view of a batch's sender (0x hex signing key), where it has a registry (the parentchain driver):
   * a member now; a stranger (never registered, and our registry is current); unsure (departed, or joined since).
   */
  forwarder?: (key: string) => 'member' | 'stranger' | 'unsure';
  /** Penalises the relaying peer (app score), for junk no honest validateer sends. */
  penalize: (peer: string, reason: string, code: string) => void;
}

/** Gossips every batch the enclave accepted from local clients. */
export function forwardAcceptedCalls(relay: CallRelay, network: Network, logger: Logger): void {
  relay.forwardWanted = () => network.connectedPeers().length > 0;
  relay.onForward = (envelope) => {
    network.publishCall(envelope).catch((err: Error) => logger.debug({ err: err.message }, 'calls not gossiped'));
  };
}

/** Gossip validation of a forwarded batch: accept if it brought a new call, reject if it is forged or malformed. */
export async function onGossipCalls(
  relay: CallRelay,
  bytes: Uint8Array,
  from: string,
  checks: CallGossipChecks,
): Promise<Validation> {
  if (bytes.length > MAX_FORWARDED_BYTES) {
    checks.penalize(from, `forwarded calls of ${bytes.length} bytes, above ${MAX_FORWARDED_BYTES}`, 'P2P_TOO_LARGE');
    return 'reject';
  }
  let sender: Uint8Array;
  try {
    sender = decodeExact(ForwardEnvelope, bytes, 'forwarded calls').sender;
  } catch {
    checks.penalize(from, 'undecodable forwarded-calls envelope', RejectCode.DECODE_FAILED);
    return 'reject';
  }
  const who = checks.forwarder?.(toHex(sender)) ?? 'member';
  // A stranger's batch costs the relay gossipsub's invalid-message score (P4), not a penalty of ours: a join finalized
  // moments ago may not be in our view yet.
  if (who === 'stranger') return 'reject';
  if (who === 'unsure') return 'ignore';
  try {
    return (await relay.submitForwarded(bytes)).accepted > 0 ? 'accept' : 'ignore';
  } catch (err) {
    return MALICIOUS.has(codeOf(err) ?? '') ? 'reject' : 'ignore';
  }
}
