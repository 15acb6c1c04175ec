// The account pallet_proxy gives a pure proxy (the shard's vault is one). Computed from the creating extrinsic's
// signer, block and index, so neither the enclave nor the client takes the vault address from anyone's reading of
// events.
import { blake2b } from '@noble/hashes/blake2.js';
import { u16, u32 } from 'scale-ts';
import { concatBytes } from './bytes.ts';

/** pallet_proxy's ProxyType::Any (variant 0 on the standard runtimes). */
export const PROXY_TYPE_ANY = 0;

/**
 * blake2_256(SCALE("modlpy/proxy____", spawner, height, extrinsic index, proxy type Any, index 0)): the pure proxy
 * that `proxy.createPure(Any, 0, 0)` at (height, extrinsic index) makes for `spawner`.
 */
export function pureProxyAccount(spawner: Uint8Array, height: number, extrinsicIndex: number): Uint8Array {
  const entropy = concatBytes(
    new TextEncoder().encode('modlpy/proxy____'),
    spawner,
    u32.enc(height),
    u32.enc(extrinsicIndex),
    Uint8Array.of(PROXY_TYPE_ANY),
    u16.enc(0),
  );
  return blake2b(entropy, { dkLen: 32 });
}
