// Substrate's ordered trie root (sp_trie LayoutV0/V1 with Blake2-256), enough to check a parentchain
// header's extrinsicsRoot against the block body: without it a light client that checks only the
// header hash chain would accept any body an untrusted node serves alongside a genuine header.
//
// Only the closed-form root is computed (what trie-root's `trie_root_no_extension` does), never a
// trie database: the input is the whole block body, and a block usually holds 1-3 extrinsics.
//
// Node format (sp_trie NodeCodec, "no extension" layout): a header byte whose top bits give the kind
// and whose remaining bits count the partial-key nibbles (overflowing into following bytes), the
// partial key packed two nibbles a byte (an odd count puts the lone first nibble in the low half of
// the first byte), then
//   leaf   (0b01, or 0b001 for a hashed value):  the value
//   branch (0b10 no value, 0b11 with value, 0b0001 hashed value): u16 LE child bitmap, the value if
//          any, then each present child as SCALE bytes: the child's encoding when shorter than 32
//          bytes, else its Blake2-256 hash (so compact(32) ‖ hash)
// where a value is compact(length) ‖ bytes, or under V1 for values of 33 bytes or more, their raw
// 32-byte Blake2-256 hash (the "hashed value" kinds). The root node is always hashed; the empty trie
// is the single byte 0x00.
import { blake2b } from '@noble/hashes/blake2.js';

export function blake2_256(data: Uint8Array): Uint8Array {
  return blake2b(data, { dkLen: 32 });
}

/** ordered_trie_root(&[]): the extrinsicsRoot of a block without extrinsics (and of genesis). */
const EMPTY_ROOT = blake2_256(Uint8Array.of(0));

/** sp_trie TRIE_VALUE_NODE_THRESHOLD: under V1 values at least this long are stored by hash. */
const V1_HASHED_VALUE_MIN = 33;

const LEAF = 0x40;
const BRANCH = 0x80;
const BRANCH_WITH_VALUE = 0xc0;
const HASHED_VALUE_LEAF = 0x20;
const HASHED_VALUE_BRANCH = 0x10;

interface Entry {
  /** The key as nibbles (a compact u32 is at most 5 bytes, so at most 10 nibbles). */
  key: Uint8Array;
  value: Uint8Array;
}

/**
 * A node's encoding as a list of parts, so a large value (a parachain's validation-data inherent
 * can be tens of kilobytes) is streamed into the hash rather than copied into a node buffer.
 */
interface Parts {
  chunks: Uint8Array[];
  length: number;
}

/**
 * sp_trie::LayoutV{stateVersion}::ordered_trie_root with Blake2-256: the trie mapping the SCALE
 * compact encoding of each index to its value.
 */
export function orderedTrieRoot(values: Uint8Array[], stateVersion: 0 | 1): Uint8Array {
  if (values.length === 0) return EMPTY_ROOT.slice();
  return hashParts(
    encodeNode(sortedEntries(values), 0, values.length, 0, stateVersion === 1 ? V1_HASHED_VALUE_MIN : Infinity),
  );
}

/**
 * Checks a header's extrinsicsRoot against the block's extrinsics, each as stored in the block
 * (SCALE, with its compact length prefix: what frame-system noted and chain_getBlock returns).
 *
 * Which layout a runtime uses is in its RuntimeVersion: current frame-system computes
 * `extrinsics_data_root(.., version.extrinsics_root_state_version())`, which is V1 only for
 * `system_version` (formerly `state_version`) 2; 0 and 1, and every frame-system from before that
 * field, use V0. The dev chain's runtime (the genesis code of Rococo Asset Hub's chain spec: spec "statemine" 900,
 * state_version 0) uses V0: test/enclave/trie.test.ts replays real blocks on it to pin that.
 *
 * Both layouts are accepted because a runtime upgrade can switch the layout at any block and the
 * caller does not track RuntimeVersion per block. That keeps the check binding: V0 never produces
 * the hashed-value node kinds and the layouts share every other node encoding, so a root matches at
 * most one list of extrinsics under either layout (barring a Blake2 collision). V0 is tried first;
 * V1 costs a second root only when V0 fails and some extrinsic is long enough (>= 33 bytes) for the
 * layouts to differ.
 *
 * chopsticks (the dev chain) does not put this root in its headers: it writes
 * blake2_256(extrinsic ‖ extrinsic ‖ ...) instead, which this function rejects.
 */
export function verifyExtrinsicsRoot(extrinsicsRoot: Uint8Array, extrinsics: Uint8Array[]): boolean {
  if (extrinsicsRoot.length !== 32) return false;
  if (equal32(orderedTrieRoot(extrinsics, 0), extrinsicsRoot)) return true;
  return (
    extrinsics.some((x) => x.length >= V1_HASHED_VALUE_MIN) && equal32(orderedTrieRoot(extrinsics, 1), extrinsicsRoot)
  );
}

function equal32(a: Uint8Array, b: Uint8Array): boolean {
  let diff = 0;
  for (let i = 0; i < 32; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** Entries in trie (byte-wise key) order, which is index order only while every key is one byte. */
function sortedEntries(values: Uint8Array[]): Entry[] {
  const entries = values.map((value, i) => ({ key: nibbles(compact(i)), value }));
  if (values.length > 64) entries.sort((a, b) => compareNibbles(a.key, b.key));
  return entries;
}

function compareNibbles(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

function nibbles(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length * 2);
  for (let i = 0; i < bytes.length; i++) {
    out[2 * i] = bytes[i] >> 4;
    out[2 * i + 1] = bytes[i] & 0x0f;
  }
  return out;
}

/** SCALE compact encoding of a u32. */
function compact(n: number): Uint8Array {
  if (n < 1 << 6) return Uint8Array.of(n << 2);
  if (n < 1 << 14) return Uint8Array.of(((n << 2) | 1) & 0xff, n >> 6);
  if (n < 1 << 30) return Uint8Array.of(((n << 2) | 2) & 0xff, (n >> 6) & 0xff, (n >> 14) & 0xff, n >>> 22);
  return Uint8Array.of(3, n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24);
}

/**
 * Encodes the subtrie of the sorted entries [lo, hi), all sharing their first `depth` nibbles (which
 * the parents' positions account for).
 */
function encodeNode(entries: Entry[], lo: number, hi: number, depth: number, hashedValueMin: number): Parts {
  const first = entries[lo].key;
  if (hi - lo === 1) {
    const hashed = entries[lo].value.length >= hashedValueMin;
    const parts = head(hashed ? HASHED_VALUE_LEAF : LEAF, hashed ? 3 : 2, first, depth, first.length);
    pushValue(parts, entries[lo].value, hashed);
    return parts;
  }
  // Sorted, so the prefix shared by the first and last key is shared by all.
  const last = entries[hi - 1].key;
  let end = depth;
  while (end < first.length && end < last.length && first[end] === last[end]) end++;
  // A key ending at the branch is a prefix of the others and sorts first. Compact encodings are
  // prefix-free, so this never happens for ordered roots; it is handled for a faithful codec.
  const value = first.length === end ? entries[lo++].value : undefined;
  const hashed = value !== undefined && value.length >= hashedValueMin;
  const kind = value === undefined ? BRANCH : hashed ? HASHED_VALUE_BRANCH : BRANCH_WITH_VALUE;
  const parts = head(kind, hashed ? 4 : 2, first, depth, end);
  const bitmap = new Uint8Array(2);
  push(parts, bitmap);
  if (value !== undefined) pushValue(parts, value, hashed);
  let bits = 0;
  for (let i = lo; i < hi;) {
    const nibble = entries[i].key[end];
    let j = i + 1;
    while (j < hi && entries[j].key[end] === nibble) j++;
    bits |= 1 << nibble;
    const child = encodeNode(entries, i, j, end + 1, hashedValueMin);
    if (child.length < 32) {
      push(parts, Uint8Array.of(child.length << 2));
      for (const c of child.chunks) push(parts, c);
    } else {
      push(parts, Uint8Array.of(32 << 2));
      push(parts, hashParts(child));
    }
    i = j;
  }
  bitmap[0] = bits & 0xff;
  bitmap[1] = bits >> 8;
  return parts;
}

/** Header (kind bits, nibble count) and the partial key key[from, to). */
function head(prefix: number, prefixBits: number, key: Uint8Array, from: number, to: number): Parts {
  const count = to - from;
  const max = 0xff >> prefixBits;
  const bytes: number[] = [];
  // The count fills the header's low bits; at max or beyond it continues in bytes of 255 plus a
  // final byte below 255 (a count of exactly max is followed by a 0 byte).
  if (count < max) bytes.push(prefix | count);
  else {
    bytes.push(prefix | max);
    let rest = count - max;
    for (; rest >= 255; rest -= 255) bytes.push(255);
    bytes.push(rest);
  }
  let i = from;
  if (count % 2 === 1) bytes.push(key[i++]);
  for (; i < to; i += 2) bytes.push((key[i] << 4) | key[i + 1]);
  const chunk = Uint8Array.from(bytes);
  return { chunks: [chunk], length: chunk.length };
}

function pushValue(parts: Parts, value: Uint8Array, hashed: boolean): void {
  if (hashed) push(parts, blake2_256(value));
  else {
    push(parts, compact(value.length));
    push(parts, value);
  }
}

function push(parts: Parts, chunk: Uint8Array): void {
  parts.chunks.push(chunk);
  parts.length += chunk.length;
}

function hashParts(parts: Parts): Uint8Array {
  if (parts.chunks.length === 1) return blake2_256(parts.chunks[0]);
  const h = blake2b.create({ dkLen: 32 });
  for (const c of parts.chunks) h.update(c);
  return h.digest();
}
