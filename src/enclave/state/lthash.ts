// LtHash16 (Bellare-Micciancio / Lewi et al., as in Solana's accounts lattice hash): a multiset hash
// of 1024 16-bit lanes where adding or removing an element is lane-wise addition or subtraction mod 2^16.
// It lets the state commitment follow each change at O(1) cost instead of re-hashing the whole state.
import sodium from 'sodium-native';
import { sha256 } from '../../crypto/primitives.ts';

export const LTHASH_BYTES = 2048;
const WORDS = LTHASH_BYTES / 4;

// An element's 2 KiB is the ChaCha20 keystream under BLAKE2b-256(element) keyed by a domain string:
// a PRG seeded by a collision-resistant hash, as BLAKE3's XOF mode is in Solana's lattice hash.
// libsodium writes it in place (no allocation) in ~2 us, where 2 KiB of SHAKE128 took 8.6.
const DOMAIN = new TextEncoder().encode('validateer/lthash/v2');
const NONCE = new Uint8Array(12);
const seed = new Uint8Array(32);
// Each element is added or removed as soon as it is hashed, so one buffer serves them all. (A cache of
// recent elements' hashes paid when an element cost 8.6 us; at ~2 us, its lookups and copies cost more.)
const scratch = new Uint32Array(WORDS);
const scratchBytes = new Uint8Array(scratch.buffer);

// A second buffer for replace(), which needs the old and the new element at once.
const scratch2 = new Uint32Array(WORDS);
const scratch2Bytes = new Uint8Array(scratch2.buffer);

function elementWords(element: Uint8Array, into = scratchBytes): void {
  sodium.crypto_generichash(seed, element, DOMAIN);
  sodium.crypto_stream_chacha20_ietf(into, NONCE, seed);
}

/** Two 16-bit lanes per 32-bit word, added without carry between lanes (SWAR). */
function laneAdd(x: number, y: number): number {
  return (((x & 0x7fff7fff) + (y & 0x7fff7fff)) ^ ((x ^ y) & 0x80008000)) >>> 0;
}

/** Each lane's negation mod 2^16: ~y + 1 per lane (the +1 added lane-wise, 0x00010001). */
function laneNeg(y: number): number {
  const ny = ~y >>> 0;
  return (((ny & 0x7fff7fff) + 0x00010001) ^ (ny & 0x80008000)) >>> 0;
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
    elementWords(element);
    this.addWords(scratch);
  }

  remove(element: Uint8Array): void {
    elementWords(element);
    this.subWords(scratch);
  }

  /** remove(old) then add(next), in one pass over the lanes (an item's new value replacing its old). */
  replace(old: Uint8Array, next: Uint8Array): void {
    elementWords(old, scratchBytes);
    elementWords(next, scratch2Bytes);
    this.digested = undefined;
    const w = this.words;
    for (let i = 0; i < WORDS; i++) {
      w[i] = laneAdd(w[i], laneAdd(scratch2[i], laneNeg(scratch[i]))); // x + (new - old) per lane
    }
  }

  /** Adds another multiset's hash (the union of both multisets). */
  addSum(other: LtHash): void {
    this.addWords(other.words);
  }

  /** Subtracts another multiset's hash (removes a sub-multiset). */
  subSum(other: LtHash): void {
    this.subWords(other.words);
  }

  private addWords(e: Uint32Array): void {
    this.digested = undefined;
    const w = this.words;
    for (let i = 0; i < WORDS; i++) w[i] = laneAdd(w[i], e[i]);
  }

  private subWords(e: Uint32Array): void {
    this.digested = undefined;
    const w = this.words;
    for (let i = 0; i < WORDS; i++) w[i] = laneAdd(w[i], laneNeg(e[i]));
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
