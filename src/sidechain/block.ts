// Sidechain block: header (signed by the author's enclave) and body (encrypted transitions + included
// call hashes, and a new state key when the block begins an epoch). The header commits to the body through transitionsRoot = sha256(SCALE(body)).
import { Bytes, Option, Struct, Vector, u32, u64 } from 'scale-ts';
import { sha256 } from '../crypto/primitives.ts';
import { H256, concatBytes } from '../codec/wire.ts';

export const Header = Struct({
  parentHash: H256,
  number: u64,
  shard: H256,
  slot: u64,
  author: Bytes(32),
  stateCommitment: H256,
  transitionsRoot: H256,
  parentchainNumber: u32,
  parentchainHash: H256,
  timestampMs: u64,
});
export type Header = ReturnType<typeof Header.dec>;

/** AES-256-GCM ciphertext under the shard's state key `keyId`; AAD binds it to (shard, block number). */
export const EncryptedPayload = Struct({ keyId: u32, nonce: Bytes(12), ciphertext: Bytes() });
export type EncryptedPayload = ReturnType<typeof EncryptedPayload.dec>;

/**
 * A new state key epoch begun by this block (its transitions are already under `keyId`): the key
 * HPKE-sealed to each member's registered encryption key, in registration order.
 */
export const KeyRotation = Struct({ keyId: u32, wraps: Vector(Struct({ member: Bytes(32), enc: Bytes(32), ciphertext: Bytes() })) });
export type KeyRotation = ReturnType<typeof KeyRotation.dec>;

export const Body = Struct({ transitions: EncryptedPayload, calls: Vector(H256), rotation: Option(KeyRotation) });
export type Body = ReturnType<typeof Body.dec>;

export const SignedBlock = Struct({ header: Header, body: Body, signature: Bytes(64) });
export type SignedBlock = ReturnType<typeof SignedBlock.dec>;

const HEADER_DOMAIN = new TextEncoder().encode('validateer/header/v1');

export function headerHash(h: Header): Uint8Array {
  return sha256(Header.enc(h));
}
export function headerSigningPayload(h: Header): Uint8Array {
  return concatBytes(HEADER_DOMAIN, Header.enc(h));
}
export function bodyRoot(b: Body): Uint8Array {
  return sha256(Body.enc(b));
}
export function transitionsAad(shard: Uint8Array, number: bigint): Uint8Array {
  return concatBytes(shard, u64.enc(number));
}
