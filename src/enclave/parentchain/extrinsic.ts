// The enclave's own reading of a verified extrinsic: its signer and its call, decoded from the bytes the
// extrinsics root commits to, over the closed set of call shapes the registry accepts (built from the sealed
// call indices). Nothing the host decoded is believed. Anything else (an unknown call, bad encoding, nesting
// deeper than our shapes, bytes left over) is not ours: `null`, and the caller ignores the extrinsic. The cost
// is linear in the extrinsic's size, so no extrinsic anyone posts can slow the scan beyond its own bytes.
import { MESSAGE_MAGIC } from '../../protocol/parentchain-messages.ts';
import { EnclaveError } from '../boundary/errors.ts';
import { contains, type CallIndices, type CallName } from './calls.ts';
import type { ExtrinsicOutcome } from './registry-data.ts';
import type { ImportedBlock } from './view-format.ts';

/** A call of ours, as the chain dispatched it. `plain` = proxy type Any, delay 0 (and index 0 for createPure). */
export type Call =
  | { kind: 'remark'; remark: Uint8Array }
  | { kind: 'transferKeepAlive'; dest: Uint8Array; amount: bigint }
  | { kind: 'batchAll'; calls: Call[] }
  | { kind: 'proxy'; real: Uint8Array; call: Call }
  | { kind: 'createPure'; plain: boolean }
  | { kind: 'addProxy' | 'removeProxy'; delegate: Uint8Array; plain: boolean };

export interface Extrinsic {
  /** The signing account (MultiAddress::Id); undefined for an unsigned extrinsic. */
  signer: Uint8Array | undefined;
  call: Call;
}

/** Our deepest shape: batchAll[transfer, proxy(vault, batchAll[addProxy, remark])]. */
export const MAX_CALL_DEPTH = 4;
/**
 * How far after the signature the call may start: the signed extensions (era, nonce, tip, asset id, metadata
 * hash mode) take a few dozen bytes on the runtimes we know.
 */
export const MAX_EXTENSION_BYTES = 256;
/** The smallest call of ours: an empty remark (two index bytes, a one-byte compact length). */
const MIN_CALL_BYTES = 3;
const MULTI_ADDRESS_ID = 0;
const SIGNED_V4 = 0x84;
const UNSIGNED_V4 = 0x04;

class Malformed extends Error {}

/** A cursor over the bytes; every read is bounds-checked and throws Malformed past the end. */
class Reader {
  readonly bytes: Uint8Array;
  at: number;
  constructor(bytes: Uint8Array, at: number) {
    this.bytes = bytes;
    this.at = at;
  }
  get left(): number {
    return this.bytes.length - this.at;
  }
  take(n: number): Uint8Array {
    if (n < 0 || n > this.left) throw new Malformed();
    return this.bytes.subarray(this.at, (this.at += n));
  }
  u8(): number {
    return this.take(1)[0];
  }
  uint(n: number): bigint {
    const b = this.take(n);
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    return v;
  }
  /** A canonical SCALE compact (non-minimal encodings are refused, as the runtime refuses them). */
  compact(): bigint {
    const first = this.bytes[this.at];
    if (first === undefined) throw new Malformed();
    const mode = first & 3;
    if (mode === 0) return BigInt(this.u8() >> 2);
    if (mode === 1) {
      const v = this.uint(2) >> 2n;
      if (v < 1n << 6n) throw new Malformed();
      return v;
    }
    if (mode === 2) {
      const v = this.uint(4) >> 2n;
      if (v < 1n << 14n) throw new Malformed();
      return v;
    }
    const n = (this.u8() >> 2) + 4;
    if (n > 16) throw new Malformed(); // u128 at most
    const v = this.uint(n);
    if (v < 1n << 30n || (n > 4 && v < 1n << BigInt(8 * (n - 1)))) throw new Malformed();
    return v;
  }
  /** A length that must fit in what is left (so no read is ever sized by an unchecked number). */
  length(): number {
    const n = this.compact();
    if (n > BigInt(this.left)) throw new Malformed();
    return Number(n);
  }
}

/** The call names by their two index bytes; the first name wins if the sealed indices ever collide. */
function callTable(ix: CallIndices): Map<number, CallName> {
  const table = new Map<number, CallName>();
  const add = (name: CallName, pallet: number, call: number) => {
    if (!table.has(pallet * 256 + call)) table.set(pallet * 256 + call, name);
  };
  for (const name of [
    'remarkWithEvent',
    'transferKeepAlive',
    'batchAll',
    'proxy',
    'createPure',
    'addProxy',
    'removeProxy',
  ] as const)
    add(name, ix[name].pallet, ix[name].call);
  return table;
}

function accountId(r: Reader, bare: boolean | undefined): Uint8Array {
  if (!bare && r.u8() !== MULTI_ADDRESS_ID) throw new Malformed();
  return r.take(32);
}

function readCall(r: Reader, ix: CallIndices, table: Map<number, CallName>, depth: number): Call {
  if (depth > MAX_CALL_DEPTH) throw new Malformed();
  const head = r.take(2);
  const name = table.get(head[0] * 256 + head[1]);
  switch (name) {
    case 'remarkWithEvent':
      return { kind: 'remark', remark: r.take(r.length()) };
    case 'transferKeepAlive': {
      const dest = accountId(r, false);
      const amount = r.compact();
      return { kind: 'transferKeepAlive', dest, amount };
    }
    case 'batchAll': {
      const count = r.compact();
      // Bounded by the bytes left before anything is allocated: a huge count costs nothing.
      if (count > BigInt(Math.floor(r.left / MIN_CALL_BYTES))) throw new Malformed();
      const calls: Call[] = [];
      for (let i = 0; i < Number(count); i++) calls.push(readCall(r, ix, table, depth + 1));
      return { kind: 'batchAll', calls };
    }
    case 'proxy': {
      const real = accountId(r, ix.proxyRealAccountId);
      const force = r.u8(); // Option<ProxyType>
      if (force === 1) r.u8();
      else if (force !== 0) throw new Malformed();
      return { kind: 'proxy', real, call: readCall(r, ix, table, depth + 1) };
    }
    case 'createPure': {
      const type = r.u8();
      const delay = r.uint(4);
      const index = r.uint(2);
      return { kind: 'createPure', plain: type === 0 && delay === 0n && index === 0n };
    }
    case 'addProxy':
    case 'removeProxy': {
      const delegate = accountId(r, ix.addProxyDelegateAccountId);
      const type = r.u8();
      const delay = r.uint(4);
      return { kind: name, delegate, plain: type === 0 && delay === 0n };
    }
    default:
      throw new Malformed();
  }
}

/** The call encoded in exactly `bytes[from..]`, or null. */
export function decodeCall(ix: CallIndices, bytes: Uint8Array, from = 0): Call | null {
  return decodeWith(ix, callTable(ix), bytes, from);
}

/**
 * Reads a v4 extrinsic as a block stores it: compact length, version, then for a signed one
 * MultiAddress::Id(signer), MultiSignature and the signed extensions, then the call. The extensions'
 * layout is the runtime's, so the host says where the call starts (`callOffset`); that is only an upper
 * bound here: the call is the first one of ours that decodes exactly to the end from the signature on.
 * A host that points into one of our calls (at a call hidden in a remark's bytes, say) still gets that
 * call read; one that points before the call gets the extrinsic ignored. Pointing into a call that is not
 * ours can make a call at its end read instead: no more than a host can do by lying about the outcome,
 * which the enclave takes from the host's events too. Returns a reason string for an extrinsic not ours.
 */
export function readExtrinsic(ix: CallIndices, encoded: Uint8Array, callOffset: number): Extrinsic | string {
  const r = new Reader(encoded, 0);
  let signer: Uint8Array | undefined;
  try {
    if (r.length() !== r.left) return 'its length prefix does not match its bytes';
    const version = r.u8();
    if (version === SIGNED_V4) {
      if (r.u8() !== MULTI_ADDRESS_ID) return 'its signer is not a MultiAddress::Id';
      signer = r.take(32);
      const kind = r.u8(); // MultiSignature: Ed25519, Sr25519 (64 bytes) or Ecdsa (65)
      if (kind > 2) return 'unknown signature kind';
      r.take(kind === 2 ? 65 : 64);
    } else if (version !== UNSIGNED_V4) {
      return `extrinsic version 0x${version.toString(16)} is not v4`;
    }
  } catch (err) {
    if (err instanceof Malformed) return 'truncated before its call';
    throw err;
  }
  const first = r.at;
  const last = Math.min(callOffset, signer ? first + MAX_EXTENSION_BYTES : first, encoded.length - MIN_CALL_BYTES);
  if (last < first) return 'the host placed its call inside the signature';
  const table = callTable(ix);
  for (let at = first; at <= last; at++) {
    // Only offsets that start with one of our call indices are decoded at all.
    if (!table.has(encoded[at] * 256 + encoded[at + 1])) continue;
    const call = decodeWith(ix, table, encoded, at);
    if (call) return { signer, call };
  }
  return 'its call is none of the calls the shard accepts';
}

function decodeWith(ix: CallIndices, table: Map<number, CallName>, bytes: Uint8Array, from: number): Call | null {
  const r = new Reader(bytes, from);
  try {
    const call = readCall(r, ix, table, 1);
    return r.left === 0 ? call : null;
  } catch (err) {
    if (err instanceof Malformed) return null;
    throw err;
  }
}

/**
 * The extrinsics of block `number` that may be ours (their bytes carry our magic and our shard id: a byte search),
 * each with the outcome the host reported. The host must not hide one: a candidate without an outcome refuses the
 * block. Outcomes for other extrinsics are not looked at, so messages for other shards cost nothing here.
 */
export function blockCandidates(
  b: ImportedBlock,
  shard: Uint8Array,
  number: number,
): { index: number; outcome: ExtrinsicOutcome }[] {
  const outcomes = new Map<number, ExtrinsicOutcome>();
  for (const o of b.outcomes) {
    if (b.extrinsics[o.index] === undefined)
      throw new EnclaveError('PARENTCHAIN_BAD_BODY', `block #${number} has no extrinsic ${o.index}`);
    if (outcomes.has(o.index))
      throw new EnclaveError('PARENTCHAIN_BAD_BODY', `block #${number}: two outcomes for extrinsic ${o.index}`);
    outcomes.set(o.index, o);
  }
  const found: { index: number; outcome: ExtrinsicOutcome }[] = [];
  for (const [index, x] of b.extrinsics.entries()) {
    if (!contains(x, MESSAGE_MAGIC) || !contains(x, shard)) continue;
    const outcome = outcomes.get(index);
    if (!outcome)
      throw new EnclaveError(
        'PARENTCHAIN_HIDDEN_EXTRINSIC',
        `block #${number}: extrinsic ${index} carries a shard message and the host gave no outcome for it`,
      );
    found.push({ index, outcome });
  }
  return found;
}
