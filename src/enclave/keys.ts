// The enclave's keys: ed25519 signing (per enclave), X25519 shielding and AES-256-GCM state keys (per
// shard, with ids). Generated once, sealed (signer policy, so they survive enclave upgrades by the
// same signer) and never leave this module unsealed.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { Bytes, Struct, Vector, u32 } from 'scale-ts';
import { ed25519PrivateKey, ed25519PublicFromSeed, x25519Generate, x25519PrivateKey, x25519PublicFromSecret } from '../crypto/primitives.ts';
import { decodeExact } from '../codec/wire.ts';
import { writeFileAtomic, type Sealer } from './sealing.ts';

const KeyFile = Struct({
  signingSeed: Bytes(32),
  shieldingKeyId: u32,
  shieldingSecret: Bytes(32),
  stateKeys: Vector(Struct({ id: u32, key: Bytes(32) })),
  currentStateKeyId: u32,
});

export interface EnclaveKeys {
  signingPublic: Uint8Array;
  signingKey: KeyObject;
  signingSeed: Uint8Array;
  shieldingKeyId: number;
  shieldingPublic: Uint8Array;
  shieldingSecret: Uint8Array;
  shieldingKey: KeyObject;
  stateKeys: Map<number, Uint8Array>;
  currentStateKeyId: number;
}

/**
 * Shard secrets every dev enclave of a shard derives alike (shielding and first state key from the
 * shard id). A stop-gap for devnets until attested provisioning hands them over between enclaves:
 * anyone who knows the shard id knows these keys, so it is refused outside simulation mode.
 */
export function devShardSecrets(shard: Uint8Array): { shieldingSecret: Uint8Array; stateKey: Uint8Array } {
  const derive = (label: string) => new Uint8Array(hkdfSync('sha256', shard, new Uint8Array(0), `validateer/dev-shard-secrets/v1/${label}`, 32));
  return { shieldingSecret: derive('shielding'), stateKey: derive('state') };
}

export function loadOrCreateKeys(dataDir: string, sealer: Sealer, devShard?: Uint8Array): { keys: EnclaveKeys; created: boolean } {
  const path = join(dataDir, 'enclave', 'keys.sealed');
  let created = false;
  let file: ReturnType<typeof KeyFile.dec>;
  if (existsSync(path)) {
    file = decodeExact(KeyFile, sealer.unseal('keys', new Uint8Array(readFileSync(path))), 'key file');
  } else {
    const shared = devShard ? devShardSecrets(devShard) : { shieldingSecret: x25519Generate().secretKey, stateKey: new Uint8Array(randomBytes(32)) };
    file = {
      signingSeed: new Uint8Array(randomBytes(32)),
      shieldingKeyId: 1,
      shieldingSecret: shared.shieldingSecret,
      stateKeys: [{ id: 1, key: shared.stateKey }],
      currentStateKeyId: 1,
    };
    writeFileAtomic(path, sealer.seal('signer', 'keys', KeyFile.enc(file)));
    created = true;
  }
  return {
    created,
    keys: {
      signingSeed: file.signingSeed,
      signingKey: ed25519PrivateKey(file.signingSeed),
      signingPublic: ed25519PublicFromSeed(file.signingSeed),
      shieldingKeyId: file.shieldingKeyId,
      shieldingSecret: file.shieldingSecret,
      shieldingKey: x25519PrivateKey(file.shieldingSecret),
      shieldingPublic: x25519PublicFromSecret(file.shieldingSecret),
      stateKeys: new Map(file.stateKeys.map((k) => [k.id, k.key])),
      currentStateKeyId: file.currentStateKeyId,
    },
  };
}
