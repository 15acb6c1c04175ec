// The enclave's keys: ed25519 signing and X25519 encryption (per enclave), X25519 shielding and
// AES-256-GCM state keys (per shard, with ids; a new state key per epoch). Generated once, sealed
// (signer policy, so they survive enclave upgrades by the same signer) and never leave this module
// unsealed. The encryption key is what other enclaves seal new state keys to (key-rotation.ts).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { Bytes, Struct, Vector, u8, u32 } from 'scale-ts';
import {
  ed25519PrivateKey,
  ed25519PublicFromSeed,
  x25519Generate,
  x25519PublicFromSecret,
} from '../../crypto/primitives.ts';
import { decodeExact } from '../../protocol/wire.ts';
import { EnclaveError } from '../boundary/errors.ts';
import { same, toHex } from '../../protocol/bytes.ts';
import { writeFileAtomic, type Sealer } from './sealing.ts';

const KeyFileV1 = Struct({
  signingSeed: Bytes(32),
  shieldingKeyId: u32,
  shieldingSecret: Bytes(32),
  stateKeys: Vector(Struct({ id: u32, key: Bytes(32) })),
  currentStateKeyId: u32,
});
/** v2 adds where the shard secrets came from (a v1 file's secrets were generated or dev-derived). */
const KeyFileV2 = Struct({
  version: u8,
  signingSeed: Bytes(32),
  shieldingKeyId: u32,
  shieldingSecret: Bytes(32),
  stateKeys: Vector(Struct({ id: u32, key: Bytes(32) })),
  currentStateKeyId: u32,
  origin: u8,
  /**
   * Provisioned secrets: the parentchain block the light client was at when they arrived. Shields
   * before it were read with the enclave's own (wrong) shielding key, so this enclave authors only on
   * chains that already executed the parentchain up to there.
   */
  provisionedAt: u32,
});
const KEY_FILE_V2 = 2;
/**
 * v3 adds the enclave's own X25519 encryption key (registered on the parentchain; receives rotated state keys). These
 * are its fields after the version; v4 has the same after the shard.
 */
const keyFields = {
  signingSeed: Bytes(32),
  encryptionSecret: Bytes(32),
  shieldingKeyId: u32,
  shieldingSecret: Bytes(32),
  stateKeys: Vector(Struct({ id: u32, key: Bytes(32) })),
  currentStateKeyId: u32,
  origin: u8,
  provisionedAt: u32,
};
const KeyFileV3 = Struct({ version: u8, ...keyFields });
const KEY_FILE_V3 = 3;
/**
 * v4 adds the shard the keys belong to (the hash of its policy, so its roots of trust): an enclave
 * opened on this data directory for another shard refuses to start, so its shard secrets never serve a
 * shard whose policy the host chose.
 */
const KeyFileV4 = Struct({ version: u8, shard: Bytes(32), ...keyFields });
const KEY_FILE_V4 = 4;
/** The shard of keys loaded without naming one (tests reading a data directory's keys). */
const NO_SHARD = new Uint8Array(32);

/**
 * generated: made here at first start (the shard's if this enclave is its first member); dev: derived from the shard
 * id; provisioned: received from a member enclave.
 */
export const SecretsOrigin = { generated: 0, dev: 1, provisioned: 2 } as const;
export type SecretsOrigin = keyof typeof SecretsOrigin;

export interface EnclaveKeys {
  /** The shard these keys (and the shard secrets among them) belong to. */
  shard: Uint8Array;
  signingPublic: Uint8Array;
  signingKey: KeyObject;
  signingSeed: Uint8Array;
  encryptionSecret: Uint8Array;
  encryptionPublic: Uint8Array;
  shieldingKeyId: number;
  shieldingPublic: Uint8Array;
  shieldingSecret: Uint8Array;
  stateKeys: Map<number, Uint8Array>;
  currentStateKeyId: number;
  secretsOrigin: SecretsOrigin;
  provisionedAt: number;
}

/**
 * Shard secrets every dev enclave of a shard derives alike (shielding and first state key from the
 * shard id). A stop-gap for devnets until attested provisioning hands them over between enclaves:
 * anyone who knows the shard id knows these keys, so it is refused outside simulation mode.
 */
export function devShardSecrets(shard: Uint8Array): { shieldingSecret: Uint8Array; stateKey: Uint8Array } {
  const derive = (label: string) =>
    new Uint8Array(hkdfSync('sha256', shard, new Uint8Array(0), `validateer/dev-shard-secrets/v1/${label}`, 32));
  return { shieldingSecret: derive('shielding'), stateKey: derive('state') };
}

type KeyFileT = ReturnType<typeof KeyFileV4.dec>;

/**
 * Older files get an encryption key (before v3) and the shard they are opened for (before v4) on load
 * (`upgraded`: the caller seals the v4 file before using it). Shard ids before v4 were not policy hashes,
 * so such a directory cannot hold the secrets of a shard with a policy.
 */
function decodeKeyFile(bytes: Uint8Array, shard: Uint8Array): { file: KeyFileT; upgraded: boolean } {
  const withShard = (f: Omit<KeyFileT, 'version' | 'shard'>) => ({
    file: { ...f, version: KEY_FILE_V4, shard },
    upgraded: true,
  });
  const withEncryption = (f: Omit<KeyFileT, 'version' | 'shard' | 'encryptionSecret'>) =>
    withShard({ ...f, encryptionSecret: x25519Generate().secretKey });
  // A v1 file's first byte is its random seed's: a version byte counts only if the length fits.
  if (bytes[0] === KEY_FILE_V4) {
    try {
      return { file: decodeExact(KeyFileV4, bytes, 'key file'), upgraded: false };
    } catch {
      /* not v4 */
    }
  }
  if (bytes[0] === KEY_FILE_V3) {
    try {
      const { version: _version, ...f } = decodeExact(KeyFileV3, bytes, 'key file');
      return withShard(f);
    } catch {
      /* not v3 */
    }
  }
  if (bytes[0] === KEY_FILE_V2) {
    try {
      return withEncryption(decodeExact(KeyFileV2, bytes, 'key file'));
    } catch {
      /* not v2 */
    }
  }
  return withEncryption({
    ...decodeExact(KeyFileV1, bytes, 'key file'),
    origin: SecretsOrigin.generated,
    provisionedAt: 0,
  });
}

function keysOf(file: KeyFileT): EnclaveKeys {
  const origin =
    (Object.keys(SecretsOrigin) as SecretsOrigin[]).find((o) => SecretsOrigin[o] === file.origin) ?? 'generated';
  return {
    shard: file.shard,
    signingSeed: file.signingSeed,
    signingKey: ed25519PrivateKey(file.signingSeed),
    signingPublic: ed25519PublicFromSeed(file.signingSeed),
    encryptionSecret: file.encryptionSecret,
    encryptionPublic: x25519PublicFromSecret(file.encryptionSecret),
    shieldingKeyId: file.shieldingKeyId,
    shieldingSecret: file.shieldingSecret,
    shieldingPublic: x25519PublicFromSecret(file.shieldingSecret),
    stateKeys: new Map(file.stateKeys.map((k) => [k.id, k.key])),
    currentStateKeyId: file.currentStateKeyId,
    secretsOrigin: origin,
    provisionedAt: file.provisionedAt,
  };
}

const keyPath = (dataDir: string) => join(dataDir, 'enclave', 'keys.sealed');

function writeKeyFile(dataDir: string, sealer: Sealer, file: KeyFileT): EnclaveKeys {
  writeFileAtomic(keyPath(dataDir), sealer.seal('signer', 'keys', KeyFileV4.enc(file)));
  return keysOf(file);
}

function fileOf(keys: EnclaveKeys): KeyFileT {
  return {
    version: KEY_FILE_V4,
    shard: keys.shard,
    signingSeed: keys.signingSeed,
    encryptionSecret: keys.encryptionSecret,
    ...shardSecretsOf(keys),
    origin: SecretsOrigin[keys.secretsOrigin],
    provisionedAt: keys.provisionedAt,
  };
}

/**
 * The enclave's keys, made at the first start. `shard`: the shard they belong to (the enclave always
 * names it: keys of another shard are refused); `devShard`: derive the shard secrets from it.
 */
export function loadOrCreateKeys(
  dataDir: string,
  sealer: Sealer,
  o: { shard?: Uint8Array; devShard?: Uint8Array } = {},
): { keys: EnclaveKeys; created: boolean } {
  const path = keyPath(dataDir);
  const shard = o.shard ?? NO_SHARD;
  if (existsSync(path)) {
    const { file, upgraded } = decodeKeyFile(sealer.unseal('keys', new Uint8Array(readFileSync(path))), shard);
    if (o.shard && !same(file.shard, o.shard))
      throw new EnclaveError(
        'POLICY_SHARD_MISMATCH',
        `the keys in this data directory belong to shard ${toHex(file.shard)}, not ${toHex(o.shard)}`,
      );
    return { created: false, keys: upgraded ? writeKeyFile(dataDir, sealer, file) : keysOf(file) };
  }
  const devShard = o.devShard;
  const shared = devShard
    ? devShardSecrets(devShard)
    : { shieldingSecret: x25519Generate().secretKey, stateKey: new Uint8Array(randomBytes(32)) };
  const file: KeyFileT = {
    version: KEY_FILE_V4,
    shard,
    signingSeed: new Uint8Array(randomBytes(32)),
    encryptionSecret: x25519Generate().secretKey,
    shieldingKeyId: 1,
    shieldingSecret: shared.shieldingSecret,
    stateKeys: [{ id: 1, key: shared.stateKey }],
    currentStateKeyId: 1,
    origin: devShard ? SecretsOrigin.dev : SecretsOrigin.generated,
    provisionedAt: 0,
  };
  return { created: true, keys: writeKeyFile(dataDir, sealer, file) };
}

/** The shard secrets this enclave holds, as provisioning hands them over. */
export function shardSecretsOf(keys: EnclaveKeys): {
  shieldingKeyId: number;
  shieldingSecret: Uint8Array;
  stateKeys: { id: number; key: Uint8Array }[];
  currentStateKeyId: number;
} {
  return {
    shieldingKeyId: keys.shieldingKeyId,
    shieldingSecret: keys.shieldingSecret,
    stateKeys: [...keys.stateKeys].map(([id, key]) => ({ id, key })),
    currentStateKeyId: keys.currentStateKeyId,
  };
}

/** Replaces the shard secrets with provisioned ones (the signing key stays); sealed before they are used. */
export function installShardSecrets(
  dataDir: string,
  sealer: Sealer,
  keys: EnclaveKeys,
  secrets: ReturnType<typeof shardSecretsOf>,
  provisionedAt: number,
): EnclaveKeys {
  return writeKeyFile(dataDir, sealer, {
    ...fileOf(keys),
    ...secrets,
    origin: SecretsOrigin.provisioned,
    provisionedAt,
  });
}

/**
 * Adds state keys of new epochs (made here, received in a block, or provisioned again), sealed before
 * any block that uses them is stored: replay from the event log needs them. Earlier epochs' keys stay.
 */
export function addStateKeys(
  dataDir: string,
  sealer: Sealer,
  keys: EnclaveKeys,
  added: { id: number; key: Uint8Array }[],
  currentStateKeyId = keys.currentStateKeyId,
): EnclaveKeys {
  const ids = new Set(added.map((k) => k.id));
  const stateKeys = [...shardSecretsOf(keys).stateKeys.filter((k) => !ids.has(k.id)), ...added];
  return writeKeyFile(dataDir, sealer, { ...fileOf(keys), stateKeys, currentStateKeyId });
}
