// ExtrinsicSigner implementations. The enclave will provide its own (signing inside its boundary);
// these are for enclave-less tools and tests: an ed25519 key from a 32-byte seed, and keyring pairs
// (the sr25519 dev accounts //Alice ...).
import { blake2b } from '@noble/hashes/blake2.js';
import type { KeyringPair } from '@polkadot/keyring/types';
import { ValidateerError } from '../protocol/errors.ts';
import { ed25519PrivateKey, ed25519PublicFromSeed, ed25519Sign } from '../crypto/primitives.ts';
import type { ExtrinsicSigner } from './api.ts';

/** Substrate signs payloads longer than 256 bytes by their blake2_256 hash. */
export function signingMessage(payload: Uint8Array): Uint8Array {
  return payload.length > 256 ? blake2b(payload, { dkLen: 32 }) : payload;
}

export function ed25519Signer(seed: Uint8Array): ExtrinsicSigner {
  if (seed.length !== 32) throw new ValidateerError('PARENTCHAIN_BAD_SEED', 'an ed25519 seed is 32 bytes');
  const key = ed25519PrivateKey(seed);
  return {
    publicKey: ed25519PublicFromSeed(seed),
    scheme: 'ed25519',
    sign: (payload) => ed25519Sign(key, signingMessage(payload)),
  };
}

/** Wraps a polkadot-js keyring pair (sr25519 or ed25519). */
export function keyringSigner(pair: KeyringPair): ExtrinsicSigner {
  if (pair.type !== 'sr25519' && pair.type !== 'ed25519')
    throw new ValidateerError('PARENTCHAIN_BAD_SIGNER', `unsupported key type ${pair.type}`);
  return { publicKey: pair.publicKey, scheme: pair.type, sign: (payload) => pair.sign(signingMessage(payload)) };
}
