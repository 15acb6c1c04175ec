// The roots of trust the enclave checks quotes against (registry and provisioning): those of the
// shard policy the shard id names, narrowed, never widened, by the node's config. The host hands over
// the policy bytes; the enclave opens only if they hash to its shard id, so a host that names its own
// authority or measurement names another shard, whose members and secrets are not this one's.
import { same, toHex } from '../../protocol/bytes.ts';
import { hasCode } from '../../protocol/errors.ts';
import { DEV_AUTHORITY_PUBLIC, decodeShardPolicy, shardIdOf } from '../../protocol/shard-policy.ts';
import { EnclaveError } from '../boundary/errors.ts';
import { CHOPSTICKS_GENESIS } from '../parentchain/light-client.ts';

export interface TrustRoots {
  trustedAuthorities: Uint8Array[];
  allowedMeasurements: Uint8Array[];
  /** Trusts the simulated dev authority (the dev policy does): only on the embedded dev chain or with `dev`. */
  devAuthority: boolean;
}

export interface TrustRootsOptions {
  shard: Uint8Array;
  shardPolicy: Uint8Array;
  /** Config's narrowing: a subset of the policy's (empty = the policy's). */
  trustedAuthorities?: Uint8Array[];
  allowedMeasurements?: Uint8Array[];
}

/** Checks the policy against the shard id and the narrowing against the policy; throws a POLICY_* refusal. */
export function openTrustRoots(opts: TrustRootsOptions, ownMeasurement: Uint8Array): TrustRoots {
  if (!same(shardIdOf(opts.shardPolicy), opts.shard))
    throw new EnclaveError(
      'POLICY_SHARD_MISMATCH',
      `the shard policy hashes to ${toHex(shardIdOf(opts.shardPolicy))}, not to the shard id ${toHex(opts.shard)}`,
    );
  let policy;
  try {
    policy = decodeShardPolicy(opts.shardPolicy);
  } catch (err) {
    if (hasCode(err)) throw new EnclaveError('POLICY_MALFORMED', err.message);
    throw err;
  }
  const measurements = policy.measurements.length > 0 ? policy.measurements : [ownMeasurement];
  const trustedAuthorities = narrow('authorities', policy.authorities, opts.trustedAuthorities);
  return {
    trustedAuthorities,
    allowedMeasurements: narrow('measurements', measurements, opts.allowedMeasurements),
    devAuthority: trustedAuthorities.some((a) => same(a, DEV_AUTHORITY_PUBLIC)),
  };
}

function narrow(what: string, policy: Uint8Array[], config: Uint8Array[] | undefined): Uint8Array[] {
  if (!config?.length) return policy;
  const extra = config.find((k) => !policy.some((p) => same(p, k)));
  if (extra)
    throw new EnclaveError('POLICY_WIDENED', `config names ${what} ${toHex(extra)} that the shard policy does not`);
  return config;
}

/**
 * Before a parentchain is taken: a policy that trusts the dev authority (whose key derives from a public
 * string, so anyone can sign its quotes), as the dev policy does, only on the embedded dev chain (its
 * genesis is one no real chain has, and the light client, starting there and not at a checkpoint, holds
 * the host to it) or with `dev`; dev shard secrets, derived from the public shard id, never with a parentchain.
 */
export function checkParentchainAllowed(
  roots: TrustRoots,
  opts: { dev?: boolean; devShardSecrets?: boolean },
  chain: { genesisHash: Uint8Array; checkpoint?: unknown },
): void {
  const devChain = same(chain.genesisHash, CHOPSTICKS_GENESIS) && chain.checkpoint === undefined;
  if (opts.devShardSecrets)
    throw new EnclaveError(
      'DEV_SECRETS_WITH_PARENTCHAIN',
      'dev shard secrets (derived from the public shard id) are refused with a parentchain',
    );
  if (roots.devAuthority && !opts.dev && !devChain)
    throw new EnclaveError(
      'POLICY_DEV_ONLY',
      `the shard policy trusts the dev attestation authority, whose key is public: refused on parentchain ${toHex(chain.genesisHash)} (not the embedded dev chain) without --dev`,
    );
}
