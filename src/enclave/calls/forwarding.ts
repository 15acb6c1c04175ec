// Calls forwarded between the shard's enclaves. The enclave that received a call from a client has
// already decrypted it (HPKE) and verified its signature; it re-seals the verified calls in one batch
// under a key derived from the current state key epoch, and signs the batch with its own ed25519 key
// (the one registered in the shard's set). Receivers execute the calls on that enclave's word, so they
// check one signature per batch, not one HPKE open and one ed25519 verification per call: a call is
// verified once in the whole set, not once per validateer.
//
// Encrypt-then-sign: the signature covers the whole envelope as sent (key id, sender key, nonce,
// ciphertext) and the shard, so a receiver refuses a batch of a non-member, of another epoch or with a
// bad signature before it decrypts or decodes anything. The sender's key is also in the AES-GCM AAD,
// so one member cannot strip another's signature and pass the ciphertext off as its own. The shared
// forward key alone (held by every member, and by departed members for past epochs) forges nothing.
import type { KeyObject } from 'node:crypto';
import { hkdfSync } from 'node:crypto';
import { Struct, Vector, compact, u32 } from 'scale-ts';
import {
  FORWARD_SIGNATURE_BYTES as SIGNATURE_BYTES,
  ForwardBody as Body,
  ForwardEnvelope as Envelope,
} from '../../protocol/forward-envelope.ts';
import {
  BytesView,
  TrustedCall,
  TrustedCallView,
  decodeAuthenticated,
  decodeExact,
  type TrustedCall as TrustedCallT,
} from '../../protocol/wire.ts';
import { concatBytes } from '../../protocol/bytes.ts';
import { RejectCode } from '../../protocol/errors.ts';
import { aesGcmOpen, aesGcmSeal, ed25519Sign, ed25519Verify, randomNonce, sha256 } from '../../crypto/primitives.ts';

/**
 * callBytes: the call's encoding when at hand (a verified client call): sealing then copies it instead of encoding the
 * call.
 */
export interface ForwardedCall {
  hash: Uint8Array;
  nonce: number;
  call: TrustedCallT;
  callBytes?: Uint8Array;
}

// Views into the opened batch (each batch's plaintext is a buffer of its own): no copy per field.
const Calls = Vector(Struct({ hash: BytesView(32), nonce: u32, call: TrustedCallView }));
const DOMAIN = new TextEncoder().encode('validateer/forward/v2');
// The key forwardKey derives stays that of v1: only the envelope changed.
const KEY_DOMAIN = new TextEncoder().encode('validateer/forward/v1');
/** A signed message of its own kind: the signing key also signs block headers and parentchain extrinsics. */
const SIGNATURE_DOMAIN = new TextEncoder().encode('validateer/forward-signature/v2');

/** A key of its own for forwarding: the state key itself only ever encrypts transitions. */
export function forwardKey(stateKey: Uint8Array): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', stateKey, new Uint8Array(0), KEY_DOMAIN, 32));
}

const aad = (shard: Uint8Array, sender: Uint8Array) => concatBytes(DOMAIN, shard, sender);
/** One hash pass over the batch (SHA-256, fast here), then a short message to sign and verify. */
const signedMessage = (shard: Uint8Array, body: Uint8Array) => concatBytes(SIGNATURE_DOMAIN, sha256(shard, body));

/** The forwarding enclave: its registered signing key. */
export interface ForwardSigner {
  publicKey: Uint8Array;
  signingKey: KeyObject;
}

export function sealForwarded(
  key: { id: number; key: Uint8Array },
  shard: Uint8Array,
  signer: ForwardSigner,
  calls: ForwardedCall[],
): Uint8Array {
  const nonce = randomNonce();
  const ciphertext = aesGcmSeal(key.key, nonce, encodeCalls(calls), aad(shard, signer.publicKey));
  const body = Body.enc({ keyId: key.id, sender: signer.publicKey, nonce, ciphertext });
  const out = new Uint8Array(body.length + SIGNATURE_BYTES);
  out.set(body, 0);
  out.set(ed25519Sign(signer.signingKey, signedMessage(shard, body)), body.length);
  return out;
}

/** Calls.enc, with each call's own encoding copied where it is at hand (encoding a call costs ~5 us). */
function encodeCalls(calls: ForwardedCall[]): Uint8Array {
  const bodies = calls.map((c) => c.callBytes ?? TrustedCall.enc(c.call));
  const count = compact.enc(calls.length);
  let size = count.length;
  for (const b of bodies) size += 32 + 4 + b.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out.set(count, 0);
  let at = count.length;
  for (let i = 0; i < calls.length; i++) {
    out.set(calls[i].hash, at);
    view.setUint32(at + 32, calls[i].nonce, true);
    out.set(bodies[i], at + 36);
    at += 36 + bodies[i].length;
  }
  return out;
}

export type ForwardRefusal =
  | typeof RejectCode.DECODE_FAILED
  | typeof RejectCode.DECRYPT_FAILED
  | typeof RejectCode.FORWARD_WRONG_EPOCH
  | typeof RejectCode.FORWARD_NOT_MEMBER
  | typeof RejectCode.FORWARD_BAD_SIGNATURE;
export type OpenResult =
  { ok: true; sender: Uint8Array; calls: ForwardedCall[] } | { ok: false; code: ForwardRefusal; message: string };

/** What a receiver accepts: the current epoch's key only, and senders that are members of the set now. */
export interface ForwardPolicy {
  current: { id: number; key: Uint8Array };
  isMember: (signingKey: Uint8Array) => boolean;
}

/** Opens a forwarded batch: cheapest refusals first, so a batch from outside the set costs no signature check. */
export function openForwarded(bytes: Uint8Array, shard: Uint8Array, policy: ForwardPolicy): OpenResult {
  let env: ReturnType<typeof Envelope.dec>;
  try {
    env = decodeExact(Envelope, bytes, 'forwarded calls');
  } catch {
    return { ok: false, code: RejectCode.DECODE_FAILED, message: 'malformed forwarded-calls envelope' };
  }
  // No grace for a past epoch: its key may be held by an enclave that has left the set since.
  if (env.keyId !== policy.current.id)
    return {
      ok: false,
      code: RejectCode.FORWARD_WRONG_EPOCH,
      message: `forwarded calls sealed under state key ${env.keyId}, not the current epoch's`,
    };
  if (!policy.isMember(env.sender))
    return {
      ok: false,
      code: RejectCode.FORWARD_NOT_MEMBER,
      message: 'forwarded calls from an enclave outside the set',
    };
  const body = bytes.subarray(0, bytes.length - SIGNATURE_BYTES);
  if (!ed25519Verify(env.sender, signedMessage(shard, body), env.signature))
    return { ok: false, code: RejectCode.FORWARD_BAD_SIGNATURE, message: 'forwarded calls not signed by their sender' };
  const plain = aesGcmOpen(policy.current.key, env.nonce, env.ciphertext, aad(shard, env.sender));
  if (!plain)
    return {
      ok: false,
      code: RejectCode.DECRYPT_FAILED,
      message: 'forwarded calls do not decrypt with the shard key',
    };
  try {
    // Signed by a member's enclave, which verified each call: the calls are executed on its word.
    return { ok: true, sender: env.sender, calls: decodeAuthenticated(Calls, plain, 'forwarded calls') };
  } catch {
    return { ok: false, code: RejectCode.DECODE_FAILED, message: 'forwarded calls do not decode' };
  }
}
