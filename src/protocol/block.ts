// Sidechain block: header (signed by the author's enclave) and body (encrypted transitions + included
// call hashes, and a new state key when the block begins an epoch). The header commits to the body through
// transitionsRoot = sha256(SCALE(body)), and to the parentchain effects it executes through effectsRoot.
import { Bytes, Option, Struct, Vector, u32, u64 } from 'scale-ts';
import { sha256 } from '../crypto/primitives.ts';
import { H256 } from './wire.ts';
import { concatBytes } from './bytes.ts';
import { ValidateerError } from './errors.ts';
import { same } from './bytes.ts';

export const Header = Struct({
  parentHash: H256,
  /**
   * sha256 of the parent's signature: a block's signature then vouches for its ancestors' signatures
   * too, so a run of linked blocks is authenticated by its last signature (onboarding, replay) and
   * no stored block can carry a signature that was not its author's.
   */
  parentSignatureHash: H256,
  number: u64,
  shard: H256,
  slot: u64,
  author: Bytes(32),
  stateCommitment: H256,
  transitionsRoot: H256,
  parentchainNumber: u32,
  parentchainHash: H256,
  /**
   * Digest of the parentchain effects this block executes: those of parentchain blocks after its parent's
   * parentchainNumber up to its own, in order (enclave/chain/effects.ts). Importers derive them from their own
   * light client and refuse a block whose effects differ: what a shield credited is not its author's host's word.
   */
  effectsRoot: H256,
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
export const KeyRotation = Struct({
  keyId: u32,
  wraps: Vector(Struct({ member: Bytes(32), enc: Bytes(32), ciphertext: Bytes() })),
});
export type KeyRotation = ReturnType<typeof KeyRotation.dec>;

export const Body = Struct({ transitions: EncryptedPayload, calls: Vector(H256), rotation: Option(KeyRotation) });
export type Body = ReturnType<typeof Body.dec>;

export const SignedBlock = Struct({ header: Header, body: Body, signature: Bytes(64) });
export type SignedBlock = ReturnType<typeof SignedBlock.dec>;

/** v2: the header has effectsRoot (a v1 header is neither decoded nor signed by this build). */
const HEADER_DOMAIN = new TextEncoder().encode('validateer/header/v2');

export function headerHash(h: Header): Uint8Array {
  return sha256(Header.enc(h));
}
export function headerSigningPayload(h: Header): Uint8Array {
  return concatBytes(HEADER_DOMAIN, Header.enc(h));
}
export function signatureHash(signature: Uint8Array): Uint8Array {
  return sha256(signature);
}

/** Whether `child` names `parent` (its hash and its signature's hash) as its parent; zeros for genesis. */
export function linksTo(child: Header, parent: { hash: Uint8Array; signatureHash: Uint8Array }): boolean {
  return same(child.parentHash, parent.hash) && same(child.parentSignatureHash, parent.signatureHash);
}

export function bodyRoot(b: Body): Uint8Array {
  return sha256(Body.enc(b));
}
/** A header's encoding: every field is fixed-width, so there is exactly one. */
export const HEADER_BYTES = 284;
const SIGNATURE_BYTES = 64;

/** SCALE compact length prefix size of `n` in its canonical (shortest) form. */
const compactSize = (n: number): number =>
  n < 1 << 6 ? 1 : n < 1 << 14 ? 2 : n < 2 ** 30 ? 4 : 5 + Math.ceil(Math.log2(n + 1) / 8) - 4;

/** Bytes of a body's canonical encoding, computed from the decoded value (no encoding). */
function bodyLength(b: Body): number {
  const t = b.transitions;
  let n =
    4 +
    12 +
    compactSize(t.ciphertext.length) +
    t.ciphertext.length +
    compactSize(b.calls.length) +
    32 * b.calls.length +
    1;
  if (b.rotation) {
    n += 4 + compactSize(b.rotation.wraps.length);
    for (const w of b.rotation.wraps) n += 64 + compactSize(w.ciphertext.length) + w.ciphertext.length;
  }
  return n;
}

export interface ReceivedBlock {
  block: SignedBlock;
  hash: Uint8Array;
  signatureHash: Uint8Array;
  signingPayload: Uint8Array;
  bodyRoot: Uint8Array;
}

/**
 * Decodes a block strictly without re-encoding it: the header is fixed-width, so its bytes are its one
 * encoding; the body must be exactly one canonical encoding (checked by its length). Throws
 * DECODE_FAILED otherwise. `headerBytes` is a copy; `bodyBytes` a view into `bytes`.
 */
export function decodeBlock(bytes: Uint8Array): { block: SignedBlock; headerBytes: Uint8Array; bodyBytes: Uint8Array } {
  if (bytes.length < HEADER_BYTES + SIGNATURE_BYTES + 1)
    throw new ValidateerError('DECODE_FAILED', 'malformed block: too short');
  // Copies, not views: scale-ts decodes from offset 0 of the underlying buffer (and a Buffer's slice
  // is a view). The body gets a padded copy: scale-ts does not bounds-check fixed fields.
  const headerBytes = new Uint8Array(bytes.subarray(0, HEADER_BYTES));
  const bodyBytes = bytes.subarray(HEADER_BYTES, bytes.length - SIGNATURE_BYTES);
  const padded = new Uint8Array(bodyBytes.length + 8);
  padded.set(bodyBytes);
  let header: Header;
  let body: Body;
  try {
    header = Header.dec(headerBytes);
    body = Body.dec(padded);
  } catch {
    throw new ValidateerError('DECODE_FAILED', 'malformed block');
  }
  // Truncated, padded or non-canonical bytes: the decoded body's encoding has another length.
  if (bodyLength(body) !== bodyBytes.length)
    throw new ValidateerError('DECODE_FAILED', 'malformed block: not exactly one canonical block');
  return {
    block: { header, body, signature: new Uint8Array(bytes.subarray(bytes.length - SIGNATURE_BYTES)) },
    headerBytes,
    bodyBytes,
  };
}

/**
 * A received block for import (imports are hot): the header's bytes are hashed and signed as
 * received; the body is hashed as received, so any other bytes than the ones its author hashed fail
 * the transitionsRoot check before its decoding is used.
 */
export function decodeReceivedBlock(bytes: Uint8Array): ReceivedBlock {
  const { block, headerBytes, bodyBytes } = decodeBlock(bytes);
  return {
    block,
    hash: sha256(headerBytes),
    signatureHash: signatureHash(block.signature),
    signingPayload: concatBytes(HEADER_DOMAIN, headerBytes),
    bodyRoot: sha256(bodyBytes),
  };
}

export function transitionsAad(shard: Uint8Array, number: bigint): Uint8Array {
  return concatBytes(shard, u64.enc(number));
}
