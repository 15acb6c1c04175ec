import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { blake2b } from '@noble/hashes/blake2.js';
import { LtHash, LTHASH_BYTES } from '../../../src/enclave/state/lthash.ts';

const te = new TextEncoder();
const el = (s: string): Uint8Array => te.encode(s);
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Reference: 1024 independent 16-bit lanes, little-endian, wrapping mod 2^16. */
class RefLtHash {
  readonly lanes = new Uint16Array(LTHASH_BYTES / 2);
  /** The ChaCha20 keystream (OpenSSL's, counter 0, zero nonce) under BLAKE2b-256 (noble's) keyed by the domain. */
  private static expand(element: Uint8Array): Uint16Array {
    const key = blake2b(element, { key: te.encode('validateer/lthash/v2'), dkLen: 32 });
    const out = createCipheriv('chacha20', key, Buffer.alloc(16)).update(Buffer.alloc(LTHASH_BYTES));
    const lanes = new Uint16Array(LTHASH_BYTES / 2);
    for (let i = 0; i < lanes.length; i++) lanes[i] = out.readUInt16LE(2 * i);
    return lanes;
  }
  add(element: Uint8Array): void {
    const e = RefLtHash.expand(element);
    for (let i = 0; i < this.lanes.length; i++) this.lanes[i] = (this.lanes[i] + e[i]) & 0xffff;
  }
  remove(element: Uint8Array): void {
    const e = RefLtHash.expand(element);
    for (let i = 0; i < this.lanes.length; i++) this.lanes[i] = (this.lanes[i] - e[i] + 0x10000) & 0xffff;
  }
  bytes(): Uint8Array {
    const b = Buffer.alloc(LTHASH_BYTES);
    for (let i = 0; i < this.lanes.length; i++) b.writeUInt16LE(this.lanes[i], 2 * i);
    return new Uint8Array(b);
  }
}

test('empty lthash is all zero and digest is sha256 of 2048 zero bytes', () => {
  const h = new LtHash();
  assert.deepEqual(h.bytes(), new Uint8Array(LTHASH_BYTES));
  assert.equal(hex(h.digest()), createHash('sha256').update(Buffer.alloc(LTHASH_BYTES)).digest('hex'));
});

test('add then remove are inverse: add a, add b, remove a == add b alone', () => {
  const ab = new LtHash();
  ab.add(el('a'));
  ab.add(el('b'));
  ab.remove(el('a'));
  const b = new LtHash();
  b.add(el('b'));
  assert.deepEqual(ab.bytes(), b.bytes());
  assert.equal(hex(ab.digest()), hex(b.digest()));
  // and removing everything returns to the empty hash
  ab.remove(el('b'));
  assert.deepEqual(ab.bytes(), new LtHash().bytes());
});

test('remove of an element never added, then add, cancels (lanes wrap below zero)', () => {
  const h = new LtHash();
  h.remove(el('ghost'));
  assert.notDeepEqual(h.bytes(), new LtHash().bytes());
  h.add(el('ghost'));
  assert.deepEqual(h.bytes(), new LtHash().bytes());
});

test('order independence (multiset hash)', () => {
  const items = Array.from({ length: 20 }, (_, i) => el(`item-${i}`));
  const a = new LtHash();
  for (const x of items) a.add(x);
  const b = new LtHash();
  for (const x of [...items].reverse()) b.add(x);
  const c = new LtHash();
  for (let i = 0; i < items.length; i += 2) c.add(items[i]);
  for (let i = 1; i < items.length; i += 2) c.add(items[i]);
  assert.equal(hex(a.digest()), hex(b.digest()));
  assert.equal(hex(a.digest()), hex(c.digest()));
});

test('multiset: adding the same element twice differs from once', () => {
  const once = new LtHash();
  once.add(el('x'));
  const twice = new LtHash();
  twice.add(el('x'));
  twice.add(el('x'));
  assert.notEqual(hex(once.digest()), hex(twice.digest()));
  twice.remove(el('x'));
  assert.equal(hex(once.digest()), hex(twice.digest()));
});

test('digest changes when an element changes (even by one bit)', () => {
  const base = new LtHash();
  base.add(el('alice:100'));
  base.add(el('bob:50'));
  const changed = new LtHash();
  changed.add(el('alice:101'));
  changed.add(el('bob:50'));
  assert.notEqual(hex(base.digest()), hex(changed.digest()));
  const e = new Uint8Array(randomBytes(40));
  const e2 = new Uint8Array(e);
  e2[17] ^= 0x01;
  const h1 = new LtHash();
  h1.add(e);
  const h2 = new LtHash();
  h2.add(e2);
  assert.notEqual(hex(h1.digest()), hex(h2.digest()));
});

test('SWAR add/remove matches a per-lane Uint16 reference over random elements (wraps mod 2^16)', () => {
  const ours = new LtHash();
  const ref = new RefLtHash();
  const live: Uint8Array[] = [];
  for (let step = 0; step < 400; step++) {
    if (live.length > 0 && step % 3 === 2) {
      const [x] = live.splice(step % live.length, 1);
      ours.remove(x);
      ref.remove(x);
    } else if (step % 7 === 5) {
      // remove something never added: drives lanes below zero
      const x = new Uint8Array(randomBytes(1 + (step % 50)));
      ours.remove(x);
      ref.remove(x);
    } else {
      const x = new Uint8Array(randomBytes(1 + (step % 64)));
      live.push(x);
      ours.add(x);
      ref.add(x);
    }
    if (step % 50 === 0) assert.deepEqual(ours.bytes(), ref.bytes(), `diverged at step ${step}`);
  }
  assert.deepEqual(ours.bytes(), ref.bytes());
  // the lanes must have wrapped: with hundreds of random 16-bit additions almost every lane overflowed
  // at some point; check the reference saw values near both ends so the carry paths were exercised.
  let high = 0;
  for (const v of ref.lanes) if (v >= 0x8000) high++;
  assert.ok(high > 300 && high < 724, `lane distribution looks wrong: ${high}`);
});

test('replace(old, next) equals remove(old) then add(next), against the per-lane reference', () => {
  const ours = new LtHash();
  const ref = new RefLtHash();
  let current = new Uint8Array(randomBytes(57));
  ours.add(current);
  ref.add(current);
  for (let step = 0; step < 200; step++) {
    // also replacing a value never added (lanes below zero), and a value by itself
    const old = step % 9 === 4 ? new Uint8Array(randomBytes(57)) : current;
    const next = step % 13 === 6 ? old : new Uint8Array(randomBytes(57));
    ours.replace(old, next);
    ref.remove(old);
    ref.add(next);
    current = next;
  }
  assert.deepEqual(ours.bytes(), ref.bytes());
});

test('lane carries do not leak between adjacent lanes (saturated lanes)', () => {
  // Start from all-0xffff lanes: adding any element must equal per-lane (x - 1 + e) mod 2^16.
  const start = new Uint8Array(LTHASH_BYTES).fill(0xff);
  const ours = new LtHash(start);
  const ref = new RefLtHash();
  ref.lanes.fill(0xffff);
  for (let i = 0; i < 10; i++) {
    const x = new Uint8Array(randomBytes(16));
    ours.add(x);
    ref.add(x);
    assert.deepEqual(ours.bytes(), ref.bytes());
  }
  const zeroes = new LtHash(new Uint8Array(LTHASH_BYTES));
  const refZ = new RefLtHash();
  for (let i = 0; i < 10; i++) {
    const x = new Uint8Array(randomBytes(16));
    zeroes.remove(x);
    refZ.remove(x);
    assert.deepEqual(zeroes.bytes(), refZ.bytes());
  }
});

test('clone and bytes are independent copies; constructor validates length', () => {
  const h = new LtHash();
  h.add(el('a'));
  const c = h.clone();
  const snapshot = h.bytes();
  h.add(el('b'));
  assert.deepEqual(c.bytes(), snapshot);
  assert.notDeepEqual(h.bytes(), snapshot);
  const roundTrip = new LtHash(h.bytes());
  assert.equal(hex(roundTrip.digest()), hex(h.digest()));
  assert.throws(() => new LtHash(new Uint8Array(100)), RangeError);
});
