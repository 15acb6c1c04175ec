// The shard policy: the shard's roots of trust as part of its identity. The shard id IS the hash of
// the policy's encoding, so a host cannot name other attestation authorities or enclave measurements
// for a shard without naming another shard; node config may only narrow them (the enclave checks).
//   version 1: name (free-form, also a salt), attestation authorities (ed25519 keys of quote signers),
//   allowed measurements (empty = exactly the measurement of the enclave that reads it), governance keys
//   (empty for now).
import { Bytes, Struct, Vector, str, u8 } from 'scale-ts';
import { sha256 } from '../crypto/primitives.ts';
import { DEV_AUTHORITY } from './registration.ts';
import { concatBytes, fromHex, same, toHex } from './bytes.ts';
import { ValidateerError } from './errors.ts';
import { decodeExact } from './wire.ts';

export const SHARD_POLICY_VERSION = 1;
/** Most entries of each list, and bytes of the name: a policy is small and fixed. */
export const SHARD_POLICY_MAX_ENTRIES = 64;
export const SHARD_POLICY_MAX_NAME = 256;

const ShardPolicyCodec = Struct({
  version: u8,
  name: str,
  authorities: Vector(Bytes(32)),
  measurements: Vector(Bytes(32)),
  governance: Vector(Bytes(32)),
});
export interface ShardPolicy {
  name: string;
  authorities: Uint8Array[];
  measurements: Uint8Array[];
  governance: Uint8Array[];
}

const SHARD_ID_DOMAIN = new TextEncoder().encode('validateer/shard-policy/v1');

/** The shard id a policy names: sha256(domain ‖ SCALE(policy)). */
export function shardIdOf(policyBytes: Uint8Array): Uint8Array {
  return sha256(concatBytes(SHARD_ID_DOMAIN, policyBytes));
}

const malformed = (message: string) => new ValidateerError('POLICY_MALFORMED', message);

function check(p: ShardPolicy): ShardPolicy {
  if (new TextEncoder().encode(p.name).length > SHARD_POLICY_MAX_NAME)
    throw malformed(`name longer than ${SHARD_POLICY_MAX_NAME} bytes`);
  if (p.authorities.length === 0) throw malformed('a shard policy names at least one attestation authority');
  for (const [what, list] of [
    ['authorities', p.authorities],
    ['measurements', p.measurements],
    ['governance', p.governance],
  ] as const) {
    if (list.length > SHARD_POLICY_MAX_ENTRIES) throw malformed(`more than ${SHARD_POLICY_MAX_ENTRIES} ${what}`);
    if (list.some((k) => k.length !== 32)) throw malformed(`${what} must be 32 bytes each`);
    if (list.some((k, i) => list.findIndex((o) => same(o, k)) !== i)) throw malformed(`${what} repeat an entry`);
  }
  return p;
}

export function encodeShardPolicy(p: ShardPolicy): Uint8Array {
  return ShardPolicyCodec.enc({ version: SHARD_POLICY_VERSION, ...check(p) });
}

/** A policy of a version we speak, exactly encoded and within its limits; POLICY_MALFORMED otherwise. */
export function decodeShardPolicy(bytes: Uint8Array): ShardPolicy {
  let v: ReturnType<typeof ShardPolicyCodec.dec>;
  try {
    v = decodeExact(ShardPolicyCodec, bytes, 'shard policy');
  } catch {
    throw malformed('shard policy does not decode');
  }
  if (v.version !== SHARD_POLICY_VERSION) throw malformed(`unsupported shard policy version ${v.version}`);
  const { version: _version, ...policy } = v;
  return check(policy);
}

/** The policy as JSON (what `validateer shard-policy create` prints and config's `shardPolicy` accepts). */
export function shardPolicyJson(p: ShardPolicy) {
  return {
    version: SHARD_POLICY_VERSION,
    name: p.name,
    authorities: p.authorities.map(toHex),
    measurements: p.measurements.map(toHex),
    governance: p.governance.map(toHex),
  };
}

/** The policy encoding from its JSON form or 0x-hex SCALE bytes; POLICY_MALFORMED for anything else. */
export function shardPolicyFrom(value: unknown): Uint8Array {
  if (typeof value === 'string') {
    if (!/^0x([0-9a-fA-F]{2})+$/.test(value)) throw malformed('expected the policy as 0x-hex SCALE bytes or JSON');
    const bytes = fromHex(value);
    decodeShardPolicy(bytes);
    return bytes;
  }
  const o = value as Partial<Record<'version' | 'name' | 'authorities' | 'measurements' | 'governance', unknown>>;
  if (typeof o !== 'object' || o === null) throw malformed('expected the policy as JSON or hex');
  if (o.version !== undefined && o.version !== SHARD_POLICY_VERSION)
    throw malformed(`unsupported shard policy version ${String(o.version)}`);
  const keys = (what: string, v: unknown): Uint8Array[] => {
    if (v === undefined) return [];
    if (!Array.isArray(v) || !v.every((k) => typeof k === 'string' && /^0x[0-9a-fA-F]{64}$/.test(k)))
      throw malformed(`${what}: expected an array of 0x-hex 32-byte keys`);
    return v.map((k: string) => fromHex(k));
  };
  if (typeof o.name !== 'string') throw malformed('name: expected a string');
  return encodeShardPolicy({
    name: o.name,
    authorities: keys('authorities', o.authorities),
    measurements: keys('measurements', o.measurements),
    governance: keys('governance', o.governance),
  });
}

/**
 * The simulated attestation authority of dev setups (registration.ts derives it). Its key derives from a public
 * string, so anyone can sign its quotes: a policy trusting it is accepted only on the embedded dev chain or with dev.
 */
export const DEV_AUTHORITY_PUBLIC = DEV_AUTHORITY;
/**
 * The built-in dev policy: the dev authority, and no measurements, so each enclave allows its own (the simulated
 * measurement hashes the enclave's source and changes with it).
 */
export const DEV_SHARD_POLICY = encodeShardPolicy({
  name: 'validateer dev shard',
  authorities: [DEV_AUTHORITY_PUBLIC],
  measurements: [],
  governance: [],
});
export const DEV_SHARD = shardIdOf(DEV_SHARD_POLICY);
