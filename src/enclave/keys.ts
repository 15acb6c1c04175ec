// The enclave's keys: ed25519 signing (per enclave), X25519 shielding and AES-256-GCM state keys (per
// shard, with ids). Generated once, sealed (signer policy, so they survive enclave upgrades by the
// same signer) and never leave this module unsealed.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes, type KeyObject } from 'node:crypto';
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

export function loadOrCreateKeys(dataDir: string, sealer: Sealer): { keys: EnclaveKeys; created: boolean } {
  const path = join(dataDir, 'enclave', 'keys.sealed');
  let created = false;
  let file: ReturnType<typeof KeyFile.dec>;
  if (existsSync(path)) {
    file = decodeExact(KeyFile, sealer.unseal('keys', new Uint8Array(readFileSync(path))), 'key file');
  } else {
    file = {
      signingSeed: new Uint8Array(randomBytes(32)),
      shieldingKeyId: 1,
      shieldingSecret: x25519Generate().secretKey,
      stateKeys: [{ id: 1, key: new Uint8Array(randomBytes(32)) }],
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
