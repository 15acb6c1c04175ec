// The part of sodium-native 5 this project uses. Its own package has no types, and
// @types/sodium-native describes version 2 (Buffer-only arguments); version 5 takes any typed array.
declare module 'sodium-native' {
  /** Throws when the arguments have the wrong lengths. */
  export function crypto_sign_verify_detached(
    signature: Uint8Array,
    message: Uint8Array,
    publicKey: Uint8Array,
  ): boolean;
  export function crypto_scalarmult_base(publicKey: Uint8Array, secretKey: Uint8Array): void;
  /** Throws when the shared secret is all zero (a low-order peer point). */
  export function crypto_scalarmult(sharedSecret: Uint8Array, secretKey: Uint8Array, remotePublicKey: Uint8Array): void;
  export function crypto_hash_sha256(output: Uint8Array, input: Uint8Array): void;
  /** BLAKE2b with an output of `output.length` bytes (16 to 64), keyed when `key` is given. */
  export function crypto_generichash(output: Uint8Array, input: Uint8Array, key?: Uint8Array): void;
  /** Writes the ChaCha20 (IETF, 96-bit nonce) keystream over all of `output`. */
  export function crypto_stream_chacha20_ietf(output: Uint8Array, nonce: Uint8Array, key: Uint8Array): void;
}
