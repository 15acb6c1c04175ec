// Attested provisioning of the shard secrets between enclaves (/validateer/provision/1).
//
// The requester's quote binds its signing key and a hash of (shard, ephemeral X25519 key, nonce,
// time); the provider checks the quote (trusted authority, signature, allowed measurement, freshness),
// that the requester is a registered member with that measurement, and that the nonce is new. Its
// answer is the secrets HPKE-sealed to the ephemeral key (AAD: the request hash) plus its own quote
// binding the request hash and the ciphertext, which the requester checks the same way. The host
// relays bytes only: the libp2p noise session belongs to it and is not what protects the secrets.
// The enclave builds a request whole (the ephemeral key is made here and its secret never leaves) and
// quotes only bindings computed here: no message lets the host have its own key attested.
import { randomBytes } from 'node:crypto';
import { Bytes, Struct, Vector, u8, u32, u64, type Codec } from 'scale-ts';
import { HpkeSuite } from '../../crypto/hpke.ts';
import { sha256, x25519Generate } from '../../crypto/primitives.ts';
import { decodeExact } from '../../protocol/wire.ts';
import { verifySimulatedQuote, type VerifiedQuote } from './attestation.ts';
import { EnclaveError } from '../boundary/errors.ts';
import { hasCode, type ProvisionCode } from '../../protocol/errors.ts';
import { concatBytes, hexKey, same } from '../../protocol/bytes.ts';

export const ProvisionRequest = Struct({
  version: u8,
  shard: Bytes(32),
  requester: Bytes(32),
  ephemeral: Bytes(32),
  nonce: Bytes(32),
  timestampMs: u64,
  quote: Bytes(),
});
export const ProvisionResponse = Struct({
  version: u8,
  provider: Bytes(32),
  quote: Bytes(),
  enc: Bytes(32),
  ciphertext: Bytes(),
});
export const ShardSecrets = Struct({
  shieldingKeyId: u32,
  shieldingSecret: Bytes(32),
  stateKeys: Vector(Struct({ id: u32, key: Bytes(32) })),
  currentStateKeyId: u32,
});
export type ShardSecrets = ReturnType<typeof ShardSecrets.dec>;

const VERSION = 1;
const te = new TextEncoder();
const REQUEST_DOMAIN = te.encode('validateer/provision/request/v1');
const RESPONSE_DOMAIN = te.encode('validateer/provision/response/v1');
const suite = new HpkeSuite(te.encode('validateer/hpke/provision/v1'));
/** A request (and its quote) older or newer than this is refused; nonces are remembered as long. */
export const PROVISION_FRESH_MS = 2 * 60_000;
/** Pending requests of this enclave (one per provider asked), newest kept. */
const PENDING_KEPT = 16;
/** Nonces remembered within the freshness window: a bound on memory under a request flood. */
const SEEN_KEPT = 100_000;

/** Stable refusal codes (logged by both sides, counted in validateer_provisioning_total). */
export const ProvisionRefusal = {
  MALFORMED: 'PROVISION_MALFORMED',
  WRONG_SHARD: 'PROVISION_WRONG_SHARD',
  FORGED_QUOTE: 'PROVISION_FORGED_QUOTE',
  WRONG_MEASUREMENT: 'PROVISION_WRONG_MEASUREMENT',
  STALE: 'PROVISION_STALE',
  UNREGISTERED: 'PROVISION_UNREGISTERED',
  REPLAYED: 'PROVISION_REPLAYED',
  NOT_READY: 'PROVISION_NOT_READY',
  UNEXPECTED: 'PROVISION_UNEXPECTED',
  DECRYPT_FAILED: 'PROVISION_DECRYPT_FAILED',
} as const;

export interface AttestationPolicy {
  trustedAuthorities: Uint8Array[];
  allowedMeasurements: Uint8Array[];
}
export interface ProvisioningDeps {
  shard: Uint8Array;
  signingKey: Uint8Array;
  policy: AttestationPolicy;
  /** This enclave's quote over (its signing key ‖ binding), for a binding computed inside the enclave. */
  quote(binding: Uint8Array): Uint8Array;
  /** The registered measurement of an active member of the shard, undefined if `key` is none. */
  memberMeasurement(key: Uint8Array): Uint8Array | undefined;
  /** Called with every quote checked (result = 'ok' or the refusal code). */
  onVerification?(result: string): void;
}

const refuse = (code: ProvisionCode, message: string) => new EnclaveError(code, message);

/** A request or response of a version we speak, else PROVISION_MALFORMED. */
function decodeMessage<T extends { version: number }>(codec: Codec<T>, bytes: Uint8Array, what: string): T {
  let m: T;
  try {
    m = decodeExact(codec, bytes, what);
  } catch {
    throw refuse(ProvisionRefusal.MALFORMED, `malformed ${what}`);
  }
  if (m.version !== VERSION) throw refuse(ProvisionRefusal.MALFORMED, `unsupported provisioning version ${m.version}`);
  return m;
}

/** What a request's quote binds besides the requester's signing key. */
export function requestBinding(r: {
  shard: Uint8Array;
  ephemeral: Uint8Array;
  nonce: Uint8Array;
  timestampMs: bigint;
}): Uint8Array {
  return sha256(concatBytes(REQUEST_DOMAIN, r.shard, r.ephemeral, r.nonce, u64.enc(r.timestampMs)));
}

function responseBinding(requestHash: Uint8Array, enc: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  return sha256(concatBytes(RESPONSE_DOMAIN, requestHash, enc, sha256(ciphertext)));
}

export class Provisioning {
  private readonly deps: ProvisioningDeps;
  private readonly pending = new Map<string, { secretKey: Uint8Array; publicKey: Uint8Array }>();
  private readonly seen = new Map<string, number>();

  constructor(deps: ProvisioningDeps) {
    this.deps = deps;
  }

  /** Requester: a fresh request; its ephemeral secret stays here until the answer comes. */
  request(nowMs: number): Uint8Array {
    const eph = x25519Generate();
    const nonce = new Uint8Array(randomBytes(32));
    const body = { shard: this.deps.shard, ephemeral: eph.publicKey, nonce, timestampMs: BigInt(nowMs) };
    const bytes = ProvisionRequest.enc({
      version: VERSION,
      requester: this.deps.signingKey,
      quote: this.deps.quote(requestBinding(body)),
      ...body,
    });
    this.pending.set(hexKey(sha256(bytes)), eph);
    if (this.pending.size > PENDING_KEPT) this.pending.delete(this.pending.keys().next().value!);
    return bytes;
  }

  /**
   * Provider: checks a request; returns the secrets sealed to its ephemeral key with our quote, or throws a refusal.
   */
  serve(bytes: Uint8Array, secrets: ShardSecrets, nowMs: number): Uint8Array {
    const r = decodeMessage(ProvisionRequest, bytes, 'provisioning request');
    if (!same(r.shard, this.deps.shard)) throw refuse(ProvisionRefusal.WRONG_SHARD, 'request is for another shard');
    this.checkQuote(r.quote, r.requester, requestBinding(r), nowMs, 'requester');
    if (Math.abs(nowMs - Number(r.timestampMs)) > PROVISION_FRESH_MS)
      throw refuse(ProvisionRefusal.STALE, 'request is not fresh');
    const nonce = hexKey(r.nonce);
    this.pruneSeen(nowMs);
    if (this.seen.has(nonce)) throw refuse(ProvisionRefusal.REPLAYED, 'request was already answered');
    this.seen.set(nonce, Number(r.timestampMs) + PROVISION_FRESH_MS);
    const requestHash = sha256(bytes);
    const { enc, ciphertext } = suite.seal(r.ephemeral, ShardSecrets.enc(secrets), requestHash);
    return ProvisionResponse.enc({
      version: VERSION,
      provider: this.deps.signingKey,
      quote: this.deps.quote(responseBinding(requestHash, enc, ciphertext)),
      enc,
      ciphertext,
    });
  }

  /** Requester: checks the provider's answer to one of our requests and returns the secrets. */
  accept(requestBytes: Uint8Array, responseBytes: Uint8Array, nowMs: number): ShardSecrets {
    const requestHash = sha256(requestBytes);
    const key = hexKey(requestHash);
    const eph = this.pending.get(key);
    if (!eph) throw refuse(ProvisionRefusal.UNEXPECTED, 'no pending provisioning request matches');
    const r = decodeMessage(ProvisionResponse, responseBytes, 'provisioning response');
    this.checkQuote(r.quote, r.provider, responseBinding(requestHash, r.enc, r.ciphertext), nowMs, 'provider');
    const plain = suite.open(eph, r.enc, r.ciphertext, requestHash);
    if (!plain)
      throw refuse(ProvisionRefusal.DECRYPT_FAILED, "secrets do not decrypt with the request's ephemeral key");
    let secrets: ShardSecrets;
    try {
      secrets = decodeExact(ShardSecrets, plain, 'shard secrets');
    } catch {
      throw refuse(ProvisionRefusal.MALFORMED, 'shard secrets do not decode');
    }
    if (!secrets.stateKeys.some((k) => k.id === secrets.currentStateKeyId))
      throw refuse(ProvisionRefusal.MALFORMED, 'shard secrets lack the current state key');
    this.pending.delete(key); // one answer per request
    return secrets;
  }

  /**
   * The other side's quote: authority and signature, binding to its key and this exchange, measurement, registration.
   */
  private checkQuote(
    quote: Uint8Array,
    signingKey: Uint8Array,
    binding: Uint8Array,
    nowMs: number,
    who: string,
  ): VerifiedQuote {
    const fail = (code: ProvisionCode, message: string) => {
      this.deps.onVerification?.(code);
      return refuse(code, message);
    };
    let q: VerifiedQuote;
    try {
      q = verifySimulatedQuote(quote, {
        trustedAuthorities: this.deps.policy.trustedAuthorities,
        nowMs,
        maxAgeMs: PROVISION_FRESH_MS,
      });
    } catch (err) {
      const stale = hasCode(err, 'QUOTE_STALE');
      throw fail(
        stale ? ProvisionRefusal.STALE : ProvisionRefusal.FORGED_QUOTE,
        `${who} quote: ${(err as Error).message}`,
      );
    }
    if (!same(q.reportData.subarray(0, 32), signingKey) || !same(q.reportData.subarray(32), binding)) {
      throw fail(
        ProvisionRefusal.FORGED_QUOTE,
        `${who} quote does not bind this ${who === 'requester' ? 'request' : 'response'}`,
      );
    }
    if (!this.deps.policy.allowedMeasurements.some((m) => same(m, q.measurement)))
      throw fail(ProvisionRefusal.WRONG_MEASUREMENT, `${who} runs enclave code that is not allowed`);
    const registered = this.deps.memberMeasurement(signingKey);
    if (!registered) throw fail(ProvisionRefusal.UNREGISTERED, `${who} is not a registered member of the shard`);
    if (!same(registered, q.measurement))
      throw fail(ProvisionRefusal.WRONG_MEASUREMENT, `${who} quote measurement differs from its registration`);
    this.deps.onVerification?.('ok');
    return q;
  }

  private pruneSeen(nowMs: number): void {
    for (const [k, expires] of this.seen) {
      if (expires >= nowMs && this.seen.size <= SEEN_KEPT) break; // insertion order ~ expiry order
      this.seen.delete(k);
    }
  }
}
