// LtHash16 (Bellare-Micciancio / Lewi et al., as in Solana's accounts lattice hash): a multiset hash
// of 1024 16-bit lanes where adding or removing an element is lane-wise addition or subtraction mod 2^16.
// It lets the state commitment follow each change at O(1) cost instead of re-hashing the whole state.
import sodium from 'sodium-native';
import { sha256 } from '../crypto/primitives.ts';

export const LTHASH_BYTES = 2048;
const WORDS = LTHASH_BYTES / 4;

// An element's 2 KiB is the ChaCha20 keystream under BLAKE2b-256(element) keyed by a domain string:
// a PRG seeded by a collision-resistant hash, as BLAKE3's XOF mode is in Solana's lattice hash.
// libsodium writes it in place (no allocation) in ~2 us, where 2 KiB of SHAKE128 took 8.6.
const DOMAIN = new TextEncoder().encode('validateer/lthash/v2');
const NONCE = new Uint8Array(12);
const seed = new Uint8Array(32);

function elementWords(element: Uint8Array, out: Uint32Array): Uint32Array {
  sodium.crypto_generichash(seed, element, DOMAIN);
  sodium.crypto_stream_chacha20_ietf(new Uint8Array(out.buffer, out.byteOffset, LTHASH_BYTES), NONCE, seed);
  return out;
}
/** For elements that are not kept: each is added as soon as it is hashed. */
const scratch = new Uint32Array(WORDS);

/**
 * The element hashes of recently written state items. A block's commitment removes each touched
 * item's old value and adds its new one; the old value is usually one a recent block added, so its
 * hash (the costly part: 2 KiB of keystream) is kept. Bounded: 4096 entries, 8 MiB.
 */
export class ElementCache {
  private readonly entries = new Map<string, Uint32Array>();
  private readonly capacity: number;

  constructor(capacity = 4096) {
    this.capacity = capacity;
  }

  words(element: Uint8Array): Uint32Array {
    const key = Buffer.from(element.buffer, element.byteOffset, element.byteLength).toString('latin1');
    let w = this.entries.get(key);
    if (!w) {
      w = elementWords(element, new Uint32Array(WORDS));
      this.entries.set(key, w);
      if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
    }
    return w;
  }
}

export class LtHash {
  readonly words: Uint32Array;
  private digested: Uint8Array | undefined;

  constructor(bytes?: Uint8Array) {
    this.words = new Uint32Array(WORDS);
    if (bytes) {
      if (bytes.length !== LTHASH_BYTES) throw new RangeError('lthash must be 2048 bytes');
      new Uint8Array(this.words.buffer).set(bytes);
    }
  }

  add(element: Uint8Array): void {
    this.addWords(elementWords(element, scratch));
  }

  remove(element: Uint8Array): void {
    this.subWords(elementWords(element, scratch));
  }

  /** add/remove through a cache of recent elements' hashes. */
  addCached(element: Uint8Array, cache: ElementCache): void {
    this.addWords(cache.words(element));
  }

  removeCached(element: Uint8Array, cache: ElementCache): void {
    this.subWords(cache.words(element));
  }

  /** Adds another multiset's hash (the union of both multisets). */
  addSum(other: LtHash): void {
    this.addWords(other.words);
  }

  /** Subtracts another multiset's hash (removes a sub-multiset). */
  subSum(other: LtHash): void {
    this.subWords(other.words);
  }

  /** Two 16-bit lanes per 32-bit word, added without carry between lanes (SWAR). */
  private addWords(e: Uint32Array): void {
    this.digested = undefined;
    const w = this.words;
    for (let i = 0; i < WORDS; i++) {
      const x = w[i], y = e[i];
      w[i] = (((x & 0x7fff7fff) + (y & 0x7fff7fff)) ^ ((x ^ y) & 0x80008000)) >>> 0;
    }
  }

  private subWords(e: Uint32Array): void {
    this.digested = undefined;
    const w = this.words;
    for (let i = 0; i < WORDS; i++) {
      // x - y per lane = x + (~y + 1) per lane; the +1 is added per lane (0x00010001).
      const x = w[i];
      const ny = (~e[i] >>> 0);
      const a = (((ny & 0x7fff7fff) + 0x00010001) ^ (ny & 0x80008000)) >>> 0;
      w[i] = (((x & 0x7fff7fff) + (a & 0x7fff7fff)) ^ ((x ^ a) & 0x80008000)) >>> 0;
    }
  }

  bytes(): Uint8Array {
    return new Uint8Array(this.words.buffer.slice(0));
  }

  /** The 32-byte commitment put in block headers (kept until the next change: read at preview and at commit). */
  digest(): Uint8Array {
    return (this.digested ??= sha256(new Uint8Array(this.words.buffer)));
  }

  clone(): LtHash {
    return new LtHash(new Uint8Array(this.words.buffer));
  }
}
