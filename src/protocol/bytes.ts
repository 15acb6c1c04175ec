// Byte helpers every layer shares: equality without copies, and the two hex forms (0x-prefixed for
// users and logs, bare for map keys). One copy of each, so that no two modules disagree on a form.

/** A Buffer over the same memory: Buffer.from of a Uint8Array copies, and hot paths read bytes many times. */
export const bytesView = (b: Uint8Array): Buffer =>
  Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/** Whether a view spans its whole buffer (and so can be decoded by scale-ts, or handed to another thread, as it is). */
export const fillsItsBuffer = (b: Uint8Array): boolean => b.byteOffset === 0 && b.byteLength === b.buffer.byteLength;

/** Whether two byte strings are equal (no copies). */
export const same = (a: Uint8Array, b: Uint8Array): boolean => bytesView(a).equals(bytesView(b));

/** Bare lowercase hex, for map keys and log fields that are not shown to users as hashes. */
export const hexKey = (b: Uint8Array): string => bytesView(b).toString('hex');

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

/** 0x-prefixed lowercase hex: how hashes, keys and accounts are shown to users and in RPC. */
export function toHex(b: Uint8Array): string {
  return '0x' + bytesView(b).toString('hex');
}
export function fromHex(s: string): Uint8Array {
  const b = parseHex(s.startsWith('0x') ? s.slice(2) : s);
  if (!b) throw new TypeError('invalid hex string');
  return b;
}

/**
 * Hex digits to bytes, or null if they are not an even number of hex digits. One pass, no regex (a hot path for RPC).
 */
export function parseHex(h: string): Uint8Array | null {
  if (h.length % 2 !== 0) return null;
  // Buffer stops at the first pair that is not hex: a shorter result means the input was not hex.
  const b = Buffer.from(h, 'hex');
  return b.length * 2 === h.length ? new Uint8Array(b.buffer, b.byteOffset, b.length) : null;
}
