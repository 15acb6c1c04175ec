// HPKE (RFC 9180) base mode, single-shot, for DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-GCM.
// Written on the synchronous primitives (libsodium, node:crypto) because @hpke/core's WebCrypto path opens ~3.4k
// messages/s on
// this hardware against ~10k/s here; test/crypto/hpke.test.ts checks interop with @hpke/core both ways.
import { aesGcmOpen, aesGcmSeal, hmacSha256, x25519, x25519Generate } from './primitives.ts';

const te = new TextEncoder();
const EMPTY = new Uint8Array(0);
const KEM_ID = 0x0020;
const KDF_ID = 0x0001;

function i2osp2(n: number): Uint8Array {
  return new Uint8Array([(n >> 8) & 0xff, n & 0xff]);
}
function concat(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

const V1 = te.encode('HPKE-v1');
const KEM_SUITE = concat(te.encode('KEM'), i2osp2(KEM_ID));

// Labels and lengths are encoded once: these run for every call and getter (worker hot path).
const labels = new Map<string, Uint8Array>();
const label = (s: string): Uint8Array => {
  let b = labels.get(s);
  if (!b) labels.set(s, (b = te.encode(s)));
  return b;
};
const lengths = new Map<number, Uint8Array>();
const lengthBytes = (n: number): Uint8Array => {
  let b = lengths.get(n);
  if (!b) lengths.set(n, (b = i2osp2(n)));
  return b;
};
const ONE = new Uint8Array([1]);

function labeledExtract(suite: Uint8Array, salt: Uint8Array, name: string, ikm: Uint8Array): Uint8Array {
  return hmacSha256(salt, V1, suite, label(name), ikm);
}
function labeledExpand(suite: Uint8Array, prk: Uint8Array, name: string, info: Uint8Array, length: number): Uint8Array {
  // One HMAC block suffices: every output here is at most 32 bytes.
  return hmacSha256(prk, lengthBytes(length), V1, suite, label(name), info, ONE).subarray(0, length);
}

export type AeadId = 0x0001 | 0x0002; // AES-128-GCM | AES-256-GCM

/** A suite bound to one `info` string: the info-dependent part of the key schedule is computed once. */
export class HpkeSuite {
  readonly aead: AeadId;
  private readonly suite: Uint8Array;
  private readonly keyScheduleContext: Uint8Array;
  private readonly nk: number;

  constructor(info: Uint8Array, aead: AeadId = 0x0002) {
    this.aead = aead;
    this.nk = aead === 0x0001 ? 16 : 32;
    this.suite = concat(te.encode('HPKE'), i2osp2(KEM_ID), i2osp2(KDF_ID), i2osp2(aead));
    const pskIdHash = labeledExtract(this.suite, EMPTY, 'psk_id_hash', EMPTY);
    const infoHash = labeledExtract(this.suite, EMPTY, 'info_hash', info);
    this.keyScheduleContext = concat(new Uint8Array([0]), pskIdHash, infoHash);
  }

  private keyAndNonce(sharedSecret: Uint8Array): { key: Uint8Array; nonce: Uint8Array } {
    const secret = labeledExtract(this.suite, sharedSecret, 'secret', EMPTY);
    return {
      key: labeledExpand(this.suite, secret, 'key', this.keyScheduleContext, this.nk),
      nonce: labeledExpand(this.suite, secret, 'base_nonce', this.keyScheduleContext, 12),
    };
  }

  /** Encrypts to recipientPublic. `ephemeral` is for test vectors only. */
  seal(
    recipientPublic: Uint8Array,
    plaintext: Uint8Array,
    aad: Uint8Array = EMPTY,
    ephemeral?: { publicKey: Uint8Array; secretKey: Uint8Array },
  ): { enc: Uint8Array; ciphertext: Uint8Array } {
    const eph = ephemeral ?? x25519Generate();
    const dh = x25519(eph.secretKey, recipientPublic);
    const shared = extractAndExpand(dh, concat(eph.publicKey, recipientPublic));
    const { key, nonce } = this.keyAndNonce(shared);
    return { enc: eph.publicKey, ciphertext: aesGcmSeal(key, nonce, plaintext, aad) };
  }

  /** Decrypts; null when the ciphertext or enc is invalid (never throws on bad input). */
  open(
    recipient: { secretKey: Uint8Array; publicKey: Uint8Array },
    enc: Uint8Array,
    ciphertext: Uint8Array,
    aad: Uint8Array = EMPTY,
  ): Uint8Array | null {
    if (enc.length !== 32) return null;
    let dh: Uint8Array;
    try {
      dh = x25519(recipient.secretKey, enc);
    } catch {
      return null; // low-order point or malformed key
    }
    const shared = extractAndExpand(dh, concat(enc, recipient.publicKey));
    const { key, nonce } = this.keyAndNonce(shared);
    return aesGcmOpen(key, nonce, ciphertext, aad);
  }
}

function extractAndExpand(dh: Uint8Array, kemContext: Uint8Array): Uint8Array {
  const prk = labeledExtract(KEM_SUITE, EMPTY, 'eae_prk', dh);
  return labeledExpand(KEM_SUITE, prk, 'shared_secret', kemContext, 32);
}
