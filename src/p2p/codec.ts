// Wire encodings of the request/response protocols. Every request is one length-prefixed frame; every
// response starts with one header frame: a response code byte, then (ok) the payload or the number of
// block frames that follow, or (error) a short UTF-8 reason. Provision answers ok with a bare code byte
// and the opaque response in the next frame (it can exceed MAX_HEADER_BYTES).
import { Bytes, Struct, u32, u64 } from 'scale-ts';
import { ValidateerError } from '../protocol/errors.ts';
import { decodeExact } from '../protocol/wire.ts';
import { bytesView } from '../protocol/bytes.ts';

export const PROTOCOL_STATUS = '/validateer/status/1';
export const PROTOCOL_BLOCKS_BY_RANGE = '/validateer/blocks-by-range/1';
export const PROTOCOL_BLOCKS_BY_HASH = '/validateer/blocks-by-hash/1';
export const PROTOCOL_PROVISION = '/validateer/provision/1';
export type Protocol =
  typeof PROTOCOL_STATUS | typeof PROTOCOL_BLOCKS_BY_RANGE | typeof PROTOCOL_BLOCKS_BY_HASH | typeof PROTOCOL_PROVISION;

/** Provision bounds are part of the protocol, not node config, so every peer agrees on them. */
export const PROVISION_MAX_REQUEST_BYTES = 16 * 1024;
export const PROVISION_MAX_RESPONSE_BYTES = 64 * 1024;

export const ResponseCode = { ok: 0, invalidRequest: 1, rateLimited: 2, serverError: 3 } as const;
export type ResponseCode = (typeof ResponseCode)[keyof typeof ResponseCode];

/** Error reasons are for logs only; bounded so a header frame stays tiny. */
export const MAX_REASON_BYTES = 256;
/** Largest header frame: code byte + max(status, block count, reason). */
export const MAX_HEADER_BYTES = 1 + MAX_REASON_BYTES;
export const HASH_BYTES = 32;

export interface ChainStatus {
  headNumber: number;
  headHash: Uint8Array;
  finalizedNumber: number;
  finalizedHash: Uint8Array;
}

const ChainStatusCodec = Struct({
  headNumber: u64,
  headHash: Bytes(32),
  finalizedNumber: u64,
  finalizedHash: Bytes(32),
});
const BlocksByRangeCodec = Struct({ from: u64, count: u32 });

export function encodeStatus(s: ChainStatus): Uint8Array {
  if (!isBlockNumber(s.headNumber) || !isBlockNumber(s.finalizedNumber))
    throw new ValidateerError('P2P_BAD_STATUS', 'status block numbers must be non-negative safe integers');
  if (s.headHash.length !== HASH_BYTES || s.finalizedHash.length !== HASH_BYTES)
    throw new ValidateerError('P2P_BAD_STATUS', 'status hashes must be 32 bytes');
  return ChainStatusCodec.enc({
    headNumber: BigInt(s.headNumber),
    headHash: s.headHash,
    finalizedNumber: BigInt(s.finalizedNumber),
    finalizedHash: s.finalizedHash,
  });
}

export function decodeStatus(bytes: Uint8Array): ChainStatus {
  const v = decodeExact(ChainStatusCodec, bytes, 'status');
  return {
    headNumber: toSafeNumber(v.headNumber, 'head number'),
    headHash: v.headHash,
    finalizedNumber: toSafeNumber(v.finalizedNumber, 'finalized number'),
    finalizedHash: v.finalizedHash,
  };
}

export interface RangeRequest {
  from: number;
  count: number;
}

export function encodeRangeRequest(r: RangeRequest): Uint8Array {
  return BlocksByRangeCodec.enc({ from: BigInt(r.from), count: r.count });
}

export function decodeRangeRequest(bytes: Uint8Array): RangeRequest {
  const v = decodeExact(BlocksByRangeCodec, bytes, 'blocks-by-range request');
  return { from: toSafeNumber(v.from, 'from'), count: v.count };
}

/** Blocks-by-hash request: the 32-byte hashes back to back. No length prefix, so nothing to trust. */
export function encodeHashRequest(hashes: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(hashes.length * HASH_BYTES);
  hashes.forEach((h, i) => {
    if (h.length !== HASH_BYTES) throw new ValidateerError('P2P_INVALID_ARGUMENT', 'block hashes must be 32 bytes');
    out.set(h, i * HASH_BYTES);
  });
  return out;
}

export function decodeHashRequest(bytes: Uint8Array): Uint8Array[] {
  if (bytes.length === 0 || bytes.length % HASH_BYTES !== 0)
    throw new ValidateerError('DECODE_FAILED', 'malformed blocks-by-hash request');
  const hashes: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += HASH_BYTES) hashes.push(bytes.slice(i, i + HASH_BYTES));
  return hashes;
}

export function encodeErrorHeader(code: Exclude<ResponseCode, 0>, reason: string): Uint8Array {
  const text = Buffer.from(reason, 'utf8').subarray(0, MAX_REASON_BYTES);
  const out = new Uint8Array(1 + text.length);
  out[0] = code;
  out.set(text, 1);
  return out;
}

export function encodeOkHeader(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + payload.length);
  out[0] = ResponseCode.ok;
  out.set(payload, 1);
  return out;
}

/** Header of a blocks response: ok + u32 number of block frames that follow. */
export function encodeBlockCountHeader(count: number): Uint8Array {
  return encodeOkHeader(u32.enc(count));
}

export type Header = { code: 0; payload: Uint8Array } | { code: Exclude<ResponseCode, 0>; reason: string };

export function decodeHeader(bytes: Uint8Array): Header {
  if (bytes.length === 0) throw new ValidateerError('DECODE_FAILED', 'empty response header');
  const code = bytes[0];
  const rest = bytes.subarray(1);
  if (code === ResponseCode.ok) return { code, payload: rest };
  if (code === ResponseCode.invalidRequest || code === ResponseCode.rateLimited || code === ResponseCode.serverError) {
    return { code, reason: bytesView(rest).toString('utf8') };
  }
  throw new ValidateerError('DECODE_FAILED', `unknown response code ${code}`);
}

export function decodeBlockCount(payload: Uint8Array): number {
  return decodeExact(u32, payload, 'block count');
}

function isBlockNumber(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

function toSafeNumber(n: bigint, what: string): number {
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new ValidateerError('DECODE_FAILED', `${what} out of range`);
  return Number(n);
}
