// Thin, synchronous wrappers over libsodium (sodium-native) and node:crypto (OpenSSL). Synchronous on
// purpose: the call hot path runs thousands of these per second per thread, and WebCrypto's async hop
// costs more than the math. ed25519 verification and X25519 go to libsodium, which takes raw keys:
// node:crypto needs a KeyObject per public key, and its import alone costs a third of a verification
// (measured here per call: verify 75 us against 140 + 46 for the import; X25519 35 us against 93).
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  hash,
  randomBytes,
  sign,
  type KeyObject,
} from 'node:crypto';
import sodium from 'sodium-native';

const ED25519_PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex');
const ED25519_SPKI = Buffer.from('302a300506032b6570032100', 'hex');

/** Below this, libsodium's one-shot wins on call overhead; above, OpenSSL's (SHA-NI here) is up to 5x faster. */
const SODIUM_SHA256_MAX = 192;

export function sha256(...parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) {
    const input = parts[0];
    if (input.length > SODIUM_SHA256_MAX) return new Uint8Array(hash('sha256', input, 'buffer'));
    const out = new Uint8Array(32); // its own memory: hashes are kept, pool slices would pin 8 KiB each
    sodium.crypto_hash_sha256(out, input);
    return out;
  }
  let length = 0;
  for (const p of parts) length += p.length;
  // Short inputs: one copy and a one-shot hash beat node:crypto's Hash object.
  if (length <= 4096) return sha256(Buffer.concat(parts, length));
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

const BLOCK = 64;
// Pads reused by every call (synchronous, so never shared by two at once; concat copies them).
const ipad = Buffer.alloc(BLOCK);
const opad = Buffer.alloc(BLOCK);
/** HMAC-SHA256 built from two hash calls: about 4x cheaper than createHmac for short inputs. */
export function hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const k = key.length > BLOCK ? sha256(key) : key;
  ipad.fill(0x36);
  opad.fill(0x5c);
  for (let i = 0; i < k.length; i++) {
    ipad[i] ^= k[i];
    opad[i] ^= k[i];
  }
  const inner = sha256(Buffer.concat([ipad, ...parts]));
  return sha256(Buffer.concat([opad, inner]));
}

export interface KeyPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

// ---- ed25519 ----
export function ed25519PrivateKey(seed: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([ED25519_PKCS8, seed]), format: 'der', type: 'pkcs8' });
}
export function ed25519PublicFromSeed(seed: Uint8Array): Uint8Array {
  const pub = createPublicKey(ed25519PrivateKey(seed)).export({ format: 'der', type: 'spki' });
  return new Uint8Array(pub.subarray(ED25519_SPKI.length));
}
export function ed25519Generate(): KeyPair {
  const seed = new Uint8Array(randomBytes(32));
  return { secretKey: seed, publicKey: ed25519PublicFromSeed(seed) };
}
export function ed25519Sign(key: KeyObject | Uint8Array, message: Uint8Array): Uint8Array {
  const k = key instanceof Uint8Array ? ed25519PrivateKey(key) : key;
  return new Uint8Array(sign(null, message, k));
}
/** Verifies; a malformed key or signature is a failed verification, never a throw. libsodium also
 * refuses non-canonical signatures and small-order public keys. */
export function ed25519Verify(pub: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 64 || pub.length !== 32) return false;
  try {
    return sodium.crypto_sign_verify_detached(signature, message, pub);
  } catch {
    return false;
  }
}

// ---- x25519 ----
export function x25519PublicFromSecret(secret: Uint8Array): Uint8Array {
  const out = new Uint8Array(32);
  sodium.crypto_scalarmult_base(out, secret);
  return out;
}
export function x25519Generate(): KeyPair {
  const secretKey = new Uint8Array(randomBytes(32));
  return { secretKey, publicKey: x25519PublicFromSecret(secretKey) };
}
/** X25519; throws on a low-order peer point (an all-zero shared secret), as RFC 7748 section 6.1 allows. */
export function x25519(secret: Uint8Array, peerPublic: Uint8Array): Uint8Array {
  if (peerPublic.length !== 32 || secret.length !== 32) throw new RangeError('x25519 keys must be 32 bytes');
  const out = new Uint8Array(32);
  sodium.crypto_scalarmult(out, secret, peerPublic); // throws when the result is all zero
  return out;
}

// ---- AES-GCM ----
const TAG = 16;
/** Raw key bytes become a KeyObject first: node:crypto takes ~24 us to set up a cipher from bytes and
 * ~7 us from a KeyObject made for it (measured here, Node 24), and ciphers are set up once per call. */
function secretKey(key: Uint8Array | KeyObject): KeyObject {
  return key instanceof Uint8Array ? createSecretKey(key) : key;
}
const gcm = (key: KeyObject) => (key.symmetricKeySize === 16 ? 'aes-128-gcm' : 'aes-256-gcm');

/** An AES-GCM cipher for sealing; the key length picks AES-128 or AES-256. */
function gcmCipher(key: Uint8Array | KeyObject, nonce: Uint8Array, aad?: Uint8Array) {
  const k = secretKey(key);
  const c = createCipheriv(gcm(k), k, nonce);
  if (aad) c.setAAD(aad);
  return c;
}

/** AES-GCM seal; returns ciphertext || tag. The key length picks AES-128 or AES-256. */
export function aesGcmSeal(
  key: Uint8Array | KeyObject,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  aad?: Uint8Array,
): Uint8Array {
  const c = gcmCipher(key, nonce, aad);
  const head = c.update(plaintext);
  const tail = c.final();
  return new Uint8Array(Buffer.concat([head, tail, c.getAuthTag()]));
}
/**
 * AES-GCM seal of a plaintext given in parts, written into `out` from `at` (ciphertext || tag, as
 * aesGcmSeal), with `pause()` between parts: a large plaintext does not hold the thread up. Returns
 * the end offset; `out` must have room for the plaintext's length plus the 16-byte tag.
 */
export async function aesGcmSealParts(
  key: Uint8Array | KeyObject,
  nonce: Uint8Array,
  parts: Uint8Array[],
  aad: Uint8Array,
  out: Uint8Array,
  at: number,
  pause: () => Promise<void>,
): Promise<number> {
  const c = gcmCipher(key, nonce, aad);
  for (let i = 0; i < parts.length; i++) {
    if (i > 0) await pause();
    const ct = c.update(parts[i]);
    out.set(ct, at);
    at += ct.length;
  }
  const tail = c.final();
  out.set(tail, at);
  at += tail.length;
  out.set(c.getAuthTag(), at);
  return at + TAG;
}
export const AES_GCM_TAG_BYTES = TAG;
/** AES-GCM open of ciphertext || tag; returns null when authentication fails. */
export function aesGcmOpen(
  key: Uint8Array | KeyObject,
  nonce: Uint8Array,
  sealed: Uint8Array,
  aad?: Uint8Array,
): Uint8Array | null {
  if (sealed.length < TAG) return null;
  try {
    const k = secretKey(key);
    const d = createDecipheriv(gcm(k), k, nonce);
    if (aad) d.setAAD(aad);
    d.setAuthTag(sealed.subarray(sealed.length - TAG));
    const head = d.update(sealed.subarray(0, sealed.length - TAG));
    return new Uint8Array(Buffer.concat([head, d.final()]));
  } catch {
    return null;
  }
}

export function randomNonce(): Uint8Array {
  return new Uint8Array(randomBytes(12));
}
