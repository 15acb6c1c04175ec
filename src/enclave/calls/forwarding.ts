// Calls forwarded between the shard's enclaves. The enclave that received a call from a client has
// already decrypted it (HPKE) and verified its signature; it re-seals the verified calls in one batch
// under a key derived from the shard's state key, which only the shard's enclaves hold. Receivers
// open the batch with one AES-GCM operation instead of one HPKE open and one ed25519 verification per
// call, so a call is verified once in the whole set, not once per validateer.
import { hkdfSync } from 'node:crypto';
import { Bytes, Struct, Vector, compact, u32 } from 'scale-ts';
import {
  BytesView,
  TrustedCall,
  TrustedCallView,
  decodeAuthenticated,
  decodeExact,
  type TrustedCall as TrustedCallT,
} from '../../protocol/wire.ts';
import { aesGcmOpen, aesGcmSeal, randomNonce } from '../../crypto/primitives.ts';

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

const Envelope = Struct({ keyId: u32, nonce: Bytes(12), ciphertext: Bytes() });
// Views into the opened batch (each batch's plaintext is a buffer of its own): no copy per field.
const Calls = Vector(Struct({ hash: BytesView(32), nonce: u32, call: TrustedCallView }));
const DOMAIN = new TextEncoder().encode('validateer/forward/v1');

/** A key of its own for forwarding: the state key itself only ever encrypts transitions. */
export function forwardKey(stateKey: Uint8Array): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', stateKey, new Uint8Array(0), DOMAIN, 32));
}

const aad = (shard: Uint8Array) => new Uint8Array([...DOMAIN, ...shard]);

export function sealForwarded(
  key: { id: number; key: Uint8Array },
  shard: Uint8Array,
  calls: ForwardedCall[],
): Uint8Array {
  const nonce = randomNonce();
  return Envelope.enc({ keyId: key.id, nonce, ciphertext: aesGcmSeal(key.key, nonce, encodeCalls(calls), aad(shard)) });
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

export type OpenResult =
  | { ok: true; calls: ForwardedCall[] }
  | { ok: false; code: 'DECODE_FAILED' | 'UNKNOWN_STATE_KEY' | 'DECRYPT_FAILED'; message: string };

/** Opens a forwarded batch; `keyFor` returns the forward key of a state key id (undefined if unknown). */
export function openForwarded(
  bytes: Uint8Array,
  shard: Uint8Array,
  keyFor: (id: number) => Uint8Array | undefined,
): OpenResult {
  let env: ReturnType<typeof Envelope.dec>;
  try {
    env = decodeExact(Envelope, bytes, 'forwarded calls');
  } catch {
    return { ok: false, code: 'DECODE_FAILED', message: 'malformed forwarded-calls envelope' };
  }
  const key = keyFor(env.keyId);
  if (!key)
    return { ok: false, code: 'UNKNOWN_STATE_KEY', message: `forwarded calls sealed under unknown key ${env.keyId}` };
  const plain = aesGcmOpen(key, env.nonce, env.ciphertext, aad(shard));
  if (!plain)
    return { ok: false, code: 'DECRYPT_FAILED', message: 'forwarded calls do not decrypt with the shard key' };
  try {
    // Authenticated under the shard's forward key: only an enclave of the shard wrote these bytes.
    return { ok: true, calls: decodeAuthenticated(Calls, plain, 'forwarded calls') };
  } catch {
    return { ok: false, code: 'DECODE_FAILED', message: 'forwarded calls do not decode' };
  }
}
