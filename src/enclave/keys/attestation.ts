// Attestation providers. `simulated`: a quote {measurement, signer, report data, time} signed by a
// simulated attestation authority whose public key verifiers configure as trusted. A DCAP provider
// implements the same two functions.
import {
  ed25519PrivateKey,
  ed25519PublicFromSeed,
  ed25519Sign,
  ed25519Verify,
  sha256,
} from '../../crypto/primitives.ts';
import { decodeExact } from '../../protocol/wire.ts';
import { QUOTE_DOMAIN, Quote, QuoteBody } from '../../protocol/registration.ts';
import { EnclaveError } from '../boundary/errors.ts';
import { concatBytes, same } from '../../protocol/bytes.ts';

export { Quote };
export type Quote = ReturnType<typeof Quote.dec>;
const KEYS_QUOTE_DOMAIN = new TextEncoder().encode('validateer/keys-quote/v1');

/**
 * What the quote `validateer keys` shows binds besides the signing key: the enclave's public keys, under a
 * domain of its own, so it can stand for no registration or provisioning step.
 */
export function keysQuoteBinding(
  shard: Uint8Array,
  keys: { shieldingPublic: Uint8Array; encryptionPublic: Uint8Array },
): Uint8Array {
  return sha256(concatBytes(KEYS_QUOTE_DOMAIN, shard, keys.shieldingPublic, keys.encryptionPublic));
}

/** The dev authority: deterministic so every simulated enclave of a devnet trusts the same one. */
const DEV_AUTHORITY_SEED = sha256(new TextEncoder().encode('validateer/sim-attestation-authority/v1 (dev only)'));
export const DEV_AUTHORITY_PUBLIC = ed25519PublicFromSeed(DEV_AUTHORITY_SEED);

export interface AttestationProvider {
  readonly kind: string;
  quote(reportData: Uint8Array): Uint8Array;
}

export interface VerifyPolicy {
  trustedAuthorities: Uint8Array[];
  /** Empty or absent = any measurement (the caller then decides). */
  allowedMeasurements?: Uint8Array[];
  nowMs?: number;
  maxAgeMs?: number;
}

export interface VerifiedQuote {
  measurement: Uint8Array;
  signer: Uint8Array;
  reportData: Uint8Array;
  timestampMs: bigint;
}

export function simulatedProvider(
  measurement: Uint8Array,
  signer: Uint8Array,
  authoritySeed = DEV_AUTHORITY_SEED,
): AttestationProvider {
  const key = ed25519PrivateKey(authoritySeed);
  const authority = ed25519PublicFromSeed(authoritySeed);
  return {
    kind: 'simulated',
    quote(reportData) {
      if (reportData.length !== 64) throw new EnclaveError('QUOTE_REPORT_DATA', 'report data must be 64 bytes');
      const body = { version: 1, measurement, signer, reportData, timestampMs: BigInt(Date.now()), authority };
      return Quote.enc({ ...body, signature: ed25519Sign(key, concatBytes(QUOTE_DOMAIN, QuoteBody.enc(body))) });
    },
  };
}

export function verifySimulatedQuote(bytes: Uint8Array, policy: VerifyPolicy): VerifiedQuote {
  let q: Quote;
  try {
    q = decodeExact(Quote, bytes, 'quote');
  } catch {
    throw new EnclaveError('QUOTE_MALFORMED', 'quote is malformed');
  }
  if (q.version !== 1) throw new EnclaveError('QUOTE_MALFORMED', `unsupported quote version ${q.version}`);
  if (!policy.trustedAuthorities.some((a) => same(a, q.authority)))
    throw new EnclaveError('QUOTE_UNTRUSTED_AUTHORITY', 'quote is signed by an authority that is not trusted');
  const { signature, ...body } = q;
  if (!ed25519Verify(q.authority, concatBytes(QUOTE_DOMAIN, QuoteBody.enc(body)), signature))
    throw new EnclaveError('QUOTE_BAD_SIGNATURE', 'quote signature does not verify');
  if (policy.allowedMeasurements?.length && !policy.allowedMeasurements.some((m) => same(m, q.measurement))) {
    throw new EnclaveError('QUOTE_MEASUREMENT_NOT_ALLOWED', 'quote measurement is not allowed');
  }
  if (policy.maxAgeMs !== undefined) {
    const age = (policy.nowMs ?? Date.now()) - Number(q.timestampMs);
    if (age > policy.maxAgeMs) throw new EnclaveError('QUOTE_STALE', 'quote is too old');
    if (age < -60_000) throw new EnclaveError('QUOTE_STALE', 'quote is dated in the future');
  }
  return { measurement: q.measurement, signer: q.signer, reportData: q.reportData, timestampMs: q.timestampMs };
}
