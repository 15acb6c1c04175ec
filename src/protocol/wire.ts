// Wire types shared by clients and the enclave: trusted calls, getters, and the shielded envelope.
// Everything hashed or signed is SCALE (scale-ts), never JSON, so encodings are deterministic.
import {
  Bytes,
  Enum,
  Option,
  Struct,
  Vector,
  compact,
  createCodec,
  createDecoder,
  str,
  u16,
  u32,
  u64,
  u128,
  type Codec as ScaleCodec,
} from 'scale-ts';
import { sha256 } from '../crypto/primitives.ts';
import { ValidateerError } from './errors.ts';
import { bytesView, concatBytes, fillsItsBuffer } from './bytes.ts';

export const AccountId = Bytes(32);
export const H256 = Bytes(32);
export const MAX_MEMO_BYTES = 256;

/**
 * Fixed-size bytes that decode to a view into the decoded buffer instead of a copy: a small copy is an
 * ArrayBuffer of its own, which costs more to allocate and collect than the copying. Only for inputs
 * whose buffer is not reused afterwards (the view keeps all of it alive).
 */
export const BytesView = (n: number): ScaleCodec<Uint8Array> =>
  createCodec(
    Bytes(n).enc,
    createDecoder((input) => {
      const b = input as Uint8Array & { i: number }; // scale-ts's reader: its offset is `i`
      const view = new Uint8Array(b.buffer, b.byteOffset + b.i, n); // throws RangeError past the end
      b.i += n;
      return view;
    }),
  );

const trustedCall = (id: ScaleCodec<Uint8Array>) =>
  Enum({
    transfer: Struct({ from: id, to: id, amount: u128, memo: Option(str) }),
    /** Burns `amount` on the sidechain; the shard's vault pays it to `beneficiary` on the parentchain. */
    unshield: Struct({ from: id, beneficiary: id, amount: u128 }),
  });
export const TrustedCall = trustedCall(AccountId);
export type TrustedCall = ReturnType<typeof TrustedCall.dec>;
/** The same encoding; decoded account ids are views into the input (see BytesView). */
export const TrustedCallView = trustedCall(BytesView(32));

/** What the sender signs: domain tag + SCALE(call, nonce, shard). */
export const CallPayload = Struct({ call: TrustedCall, nonce: u32, shard: H256 });
export const TrustedCallSigned = Struct({ call: TrustedCall, nonce: u32, shard: H256, signature: Bytes(64) });
export type TrustedCallSigned = ReturnType<typeof TrustedCallSigned.dec>;

export const TrustedGetter = Enum({
  balance: AccountId,
  nonce: AccountId,
  memos: Struct({ account: AccountId, offset: u32, limit: u16 }),
});
export type TrustedGetter = ReturnType<typeof TrustedGetter.dec>;
/** Signed by the account queried; the reply is HPKE-sealed to replyKey. */
export const GetterPayload = Struct({ getter: TrustedGetter, shard: H256, replyKey: Bytes(32), issuedAtMs: u64 });
export const TrustedGetterSigned = Struct({
  getter: TrustedGetter,
  shard: H256,
  replyKey: Bytes(32),
  issuedAtMs: u64,
  signature: Bytes(64),
});
export type TrustedGetterSigned = ReturnType<typeof TrustedGetterSigned.dec>;

export const Memo = Struct({ from: AccountId, amount: u128, text: str, block: u64 });
export type Memo = ReturnType<typeof Memo.dec>;
export const GetterReply = Enum({
  balance: u128,
  nonce: u32,
  memos: Struct({ total: u32, items: Vector(Memo) }),
  error: str,
});
export type GetterReply = ReturnType<typeof GetterReply.dec>;

/** What the untrusted host sees: the shard (for routing), the shielding key id and an HPKE ciphertext. */
export const ShieldedRequest = Struct({ shard: H256, keyId: u32, enc: Bytes(32), ciphertext: Bytes() });
export type ShieldedRequest = ReturnType<typeof ShieldedRequest.dec>;
export const SealedReply = Struct({ enc: Bytes(32), ciphertext: Bytes() });

const te = new TextEncoder();
export const CALL_DOMAIN = te.encode('validateer/call/v1');
export const GETTER_DOMAIN = te.encode('validateer/getter/v1');
/** HPKE info strings, one per purpose, so a ciphertext cannot be replayed as another kind. */
export const HPKE_INFO_CALL = te.encode('validateer/hpke/call/v1');
export const HPKE_INFO_GETTER = te.encode('validateer/hpke/getter/v1');
export const HPKE_INFO_REPLY = te.encode('validateer/hpke/reply/v1');
/** The sidechain recipient in a shield remark, encrypted to the shielding key (AAD: the shard). */
export const HPKE_INFO_SHIELD = te.encode('validateer/hpke/shield/v1');

export function callSigningPayload(c: { call: TrustedCall; nonce: number; shard: Uint8Array }): Uint8Array {
  return concatBytes(CALL_DOMAIN, CallPayload.enc(c));
}
export function getterSigningPayload(g: {
  getter: TrustedGetter;
  shard: Uint8Array;
  replyKey: Uint8Array;
  issuedAtMs: bigint;
}): Uint8Array {
  return concatBytes(GETTER_DOMAIN, GetterPayload.enc(g));
}
/** The call hash clients track: over the signed call, so it cannot be guessed without the signature. */
export function callHash(signedCallBytes: Uint8Array): Uint8Array {
  return sha256(signedCallBytes);
}
export function getterAccount(g: TrustedGetter): Uint8Array {
  return g.tag === 'memos' ? g.value.account : g.value;
}
export function callSender(c: TrustedCall): Uint8Array {
  return c.value.from;
}

/**
 * The encoding of a struct whose last field is Bytes(), up to that field's content, for content that
 * is written after it in parts (never joined): `withEmptyLast` is the struct encoded with that field
 * empty, so it ends in compact(0), which is replaced by compact(`length`).
 */
export function headBeforeLastBytes(withEmptyLast: Uint8Array, length: number): Uint8Array {
  if (withEmptyLast.length === 0 || withEmptyLast[withEmptyLast.length - 1] !== 0)
    throw new RangeError('the last field is not an empty Bytes()');
  return concatBytes(withEmptyLast.subarray(0, withEmptyLast.length - 1), compact.enc(length));
}

interface Codec<T> {
  enc(v: T): Uint8Array;
  dec(b: Uint8Array): T;
}
/**
 * Decodes bytes that only trusted code can have written (authenticated under a shard key, e.g. calls
 * another enclave forwarded): no canonical re-encoding, which doubled the cost. Anything from a
 * client or a peer's untrusted host goes through decodeExact.
 */
export function decodeAuthenticated<T>(codec: Codec<T>, bytes: Uint8Array, what: string): T {
  // scale-ts reads `bytes.buffer` from offset 0: a view elsewhere in a buffer needs its own copy.
  const own = fillsItsBuffer(bytes) ? bytes : bytes.slice();
  try {
    return codec.dec(own);
  } catch {
    throw new ValidateerError('DECODE_FAILED', `malformed ${what}`);
  }
}

/** Decodes and insists the bytes are exactly the canonical encoding: no trailing or ambiguous bytes. */
export function decodeExact<T>(codec: Codec<T>, bytes: Uint8Array, what: string): T {
  // scale-ts decodes `bytes.buffer` from offset 0 and does not bounds-check fixed-size fields: a
  // truncated input would decode to a short field and re-encode identically. Decoding a padded copy
  // fixes the offset and makes any read past the end show up as a longer re-encoding, which the
  // comparison below rejects.
  const padded = new Uint8Array(bytes.length + 8);
  padded.set(bytes);
  let value: T;
  try {
    value = codec.dec(padded);
  } catch {
    throw new ValidateerError('DECODE_FAILED', `malformed ${what}`);
  }
  if (!Buffer.from(codec.enc(value)).equals(bytesView(bytes))) {
    throw new ValidateerError('DECODE_FAILED', `non-canonical or trailing bytes in ${what}`);
  }
  return value;
}
