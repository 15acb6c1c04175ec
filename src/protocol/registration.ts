// A registration's proof as anyone checks it: the simulated attestation quote's format and signature,
// and what its report data binds. The enclave produces quotes in this format (enclave/keys/attestation.ts)
// and its registry binds registrations with registrationUserData; the client uses the same code to decide
// for itself whether an enclave signing key belongs to an attested member of a shard.
import { Bytes, Struct, Vector, str, u8, u64 } from 'scale-ts';
import { ed25519PublicFromSeed, ed25519Verify, sha256 } from '../crypto/primitives.ts';
import { concatBytes, same } from './bytes.ts';
import { ValidateerError } from './errors.ts';
import { decodeExact } from './wire.ts';

const te = new TextEncoder();
export const Quote = Struct({
  version: u8,
  measurement: Bytes(32),
  signer: Bytes(32),
  reportData: Bytes(64),
  timestampMs: u64,
  authority: Bytes(32),
  signature: Bytes(64),
});
export const QuoteBody = Struct({
  version: u8,
  measurement: Bytes(32),
  signer: Bytes(32),
  reportData: Bytes(64),
  timestampMs: u64,
  authority: Bytes(32),
});
export const QUOTE_DOMAIN = te.encode('validateer/sim-quote/v1');

/** The simulated dev authority's public key (its seed is a public string: it proves nothing off a dev chain). */
export const DEV_AUTHORITY = ed25519PublicFromSeed(
  sha256(te.encode('validateer/sim-attestation-authority/v1 (dev only)')),
);

export interface AttestationPolicy {
  trustedAuthorities: Uint8Array[];
  /** Empty or absent: any measurement. */
  allowedMeasurements?: Uint8Array[];
}

/** What a registration's quote binds besides the signing key: shard, peer id, addresses and encryption key. */
export function registrationUserData(
  shard: Uint8Array,
  peerId: string,
  p2pAddresses: string[],
  encryptionKey: Uint8Array,
): Uint8Array {
  return sha256(
    concatBytes(
      te.encode('validateer/register/v2'),
      shard,
      str.enc(peerId),
      Vector(str).enc(p2pAddresses),
      encryptionKey,
    ),
  );
}

export interface Registration {
  shard: Uint8Array;
  quote: Uint8Array;
  signingKey: Uint8Array;
  p2pAddresses: string[];
  peerId: string;
  encryptionKey: Uint8Array;
}

/**
 * Checks that a registration's quote is signed by a trusted authority, for an allowed measurement, and binds
 * this signing key for this shard (with the registration's other fields). Throws a QUOTE_* ValidateerError.
 */
export function verifyRegistrationQuote(r: Registration, policy: AttestationPolicy): { measurement: Uint8Array } {
  let q: ReturnType<typeof Quote.dec>;
  try {
    q = decodeExact(Quote, r.quote, 'quote');
  } catch {
    throw new ValidateerError('QUOTE_MALFORMED', 'quote is malformed');
  }
  if (q.version !== 1) throw new ValidateerError('QUOTE_MALFORMED', 'unsupported quote version');
  if (!policy.trustedAuthorities.some((a) => same(a, q.authority)))
    throw new ValidateerError('QUOTE_UNTRUSTED_AUTHORITY', 'quote is signed by an authority that is not trusted');
  const { signature, ...body } = q;
  if (!ed25519Verify(q.authority, concatBytes(QUOTE_DOMAIN, QuoteBody.enc(body)), signature))
    throw new ValidateerError('QUOTE_BAD_SIGNATURE', 'quote signature does not verify');
  if (policy.allowedMeasurements?.length && !policy.allowedMeasurements.some((m) => same(m, q.measurement)))
    throw new ValidateerError('QUOTE_MEASUREMENT_NOT_ALLOWED', 'quote measurement is not allowed');
  const bound = registrationUserData(r.shard, r.peerId, r.p2pAddresses, r.encryptionKey);
  if (!same(q.reportData.subarray(0, 32), r.signingKey) || !same(q.reportData.subarray(32), bound))
    throw new ValidateerError('QUOTE_REPORT_DATA', 'quote does not bind this registration');
  return { measurement: q.measurement };
}
