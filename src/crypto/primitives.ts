// Thin, synchronous wrappers over node:crypto (OpenSSL). Synchronous on purpose: the call hot path
// runs thousands of these per second per thread, and WebCrypto's async hop costs more than the math.
import { createCipheriv, createDecipheriv, createHash, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, hash, randomBytes, sign, verify, type KeyObject } from 'node:crypto';

const ED25519_PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex');
const ED25519_SPKI = Buffer.from('302a300506032b6570032100', 'hex');
const X25519_PKCS8 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const X25519_SPKI = Buffer.from('302a300506032b656e032100', 'hex');

export function sha256(...parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return new Uint8Array(hash('sha256', parts[0], 'buffer'));
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

const BLOCK = 64;
/** HMAC-SHA256 built from two hash calls: about 4x cheaper than createHmac for short inputs. */
export function hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const k = key.length > BLOCK ? sha256(key) : key;
  const ipad = Buffer.alloc(BLOCK, 0x36);
  const opad = Buffer.alloc(BLOCK, 0x5c);
  for (let i = 0; i < k.length; i++) { ipad[i] ^= k[i]; opad[i] ^= k[i]; }
  const inner = hash('sha256', Buffer.concat([ipad, ...parts]), 'buffer');
  return new Uint8Array(hash('sha256', Buffer.concat([opad, inner]), 'buffer'));
}

export interface KeyPair { publicKey: Uint8Array; secretKey: Uint8Array }

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
/** Raw public-key import ('raw-public', newer Node) is ~25% cheaper than DER; fall back where absent. */
const RAW_IMPORT = (() => {
  try {
    createPublicKey({ key: Buffer.alloc(32, 9), format: 'raw-public', asymmetricKeyType: 'x25519' } as never);
    return true;
  } catch {
    return false;
  }
})();
function importPublic(type: 'ed25519' | 'x25519', pub: Uint8Array): KeyObject {
  if (pub.length !== 32) throw new RangeError(`${type} public key must be 32 bytes`);
  if (RAW_IMPORT) return createPublicKey({ key: pub, format: 'raw-public', asymmetricKeyType: type } as never);
  return createPublicKey({ key: Buffer.concat([type === 'ed25519' ? ED25519_SPKI : X25519_SPKI, pub]), format: 'der', type: 'spki' });
}
export function ed25519PublicKey(pub: Uint8Array): KeyObject {
  return importPublic('ed25519', pub);
}
/** Verifies; a malformed key or signature is a failed verification, never a throw. */
export function ed25519Verify(pub: Uint8Array | KeyObject, message: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 64) return false;
  try {
    return verify(null, message, pub instanceof Uint8Array ? ed25519PublicKey(pub) : pub, signature);
  } catch {
    return false;
  }
}

// ---- x25519 ----
export function x25519PrivateKey(secret: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([X25519_PKCS8, secret]), format: 'der', type: 'pkcs8' });
}
export function x25519PublicFromSecret(secret: Uint8Array): Uint8Array {
  return new Uint8Array(createPublicKey(x25519PrivateKey(secret)).export({ format: 'der', type: 'spki' }).subarray(X25519_SPKI.length));
}
export function x25519Generate(): KeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('x25519');
  return {
    publicKey: new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }).subarray(X25519_SPKI.length)),
    secretKey: new Uint8Array(privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(X25519_PKCS8.length)),
  };
}
export function x25519(secret: KeyObject | Uint8Array, peerPublic: Uint8Array): Uint8Array {
  const privateKey = secret instanceof Uint8Array ? x25519PrivateKey(secret) : secret;
  return new Uint8Array(diffieHellman({ privateKey, publicKey: importPublic('x25519', peerPublic) }));
}

// ---- AES-GCM ----
const TAG = 16;
/** AES-GCM seal; returns ciphertext || tag. The key length picks AES-128 or AES-256. */
export function aesGcmSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad?: Uint8Array): Uint8Array {
  const c = createCipheriv(key.length === 16 ? 'aes-128-gcm' : 'aes-256-gcm', key, nonce);
  if (aad) c.setAAD(aad);
  const head = c.update(plaintext);
  const tail = c.final();
  return new Uint8Array(Buffer.concat([head, tail, c.getAuthTag()]));
}
/** AES-GCM open of ciphertext || tag; returns null when authentication fails. */
export function aesGcmOpen(key: Uint8Array | KeyObject, nonce: Uint8Array, sealed: Uint8Array, aad?: Uint8Array): Uint8Array | null {
  if (sealed.length < TAG) return null;
  try {
    const bytes = key instanceof Uint8Array ? key.length : key.symmetricKeySize;
    const d = createDecipheriv(bytes === 16 ? 'aes-128-gcm' : 'aes-256-gcm', key, nonce);
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
