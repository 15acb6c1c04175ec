// Client-side construction of shielded calls and getters, and opening of sealed getter replies.
// Pure functions over a signer: usable by the CLI, the client library, tests and the benchmark.
import { HpkeSuite } from '../crypto/hpke.ts';
import { ed25519Verify, x25519Generate } from '../crypto/primitives.ts';
import { SignedGetterReply, getterReplyDigest } from '../protocol/enclave-proofs.ts';
import {
  GetterReply,
  HPKE_INFO_CALL,
  HPKE_INFO_GETTER,
  HPKE_INFO_REPLY,
  HPKE_INFO_SHIELD,
  SealedReply,
  ShieldedRequest,
  TrustedCallSigned,
  TrustedGetterSigned,
  callHash,
  callSigningPayload,
  decodeExact,
  getterSigningPayload,
  type GetterReply as GetterReplyT,
  type TrustedCall,
  type TrustedGetter,
} from '../protocol/wire.ts';
import { ValidateerError } from '../protocol/errors.ts';
import { encodeMessage } from '../protocol/parentchain-messages.ts';
import type { CallSpec } from '../parentchain/api.ts';
import { concatBytes, hexKey } from '../protocol/bytes.ts';

export type { Signer } from '../crypto/accounts.ts';
import type { Signer } from '../crypto/accounts.ts';
export interface ShieldingKey {
  keyId: number;
  publicKey: Uint8Array;
}

const callSuite = new HpkeSuite(HPKE_INFO_CALL);
const getterSuite = new HpkeSuite(HPKE_INFO_GETTER);
const replySuite = new HpkeSuite(HPKE_INFO_REPLY);
const shieldSuite = new HpkeSuite(HPKE_INFO_SHIELD);

export function signCall(signer: Signer, call: TrustedCall, nonce: number, shard: Uint8Array): Uint8Array {
  const signature = signer.sign(callSigningPayload({ call, nonce, shard }));
  return TrustedCallSigned.enc({ call, nonce, shard, signature });
}

/** Encrypts signed bytes to the shard's shielding key; the envelope shard is bound as AAD. */
export function shield(
  signed: Uint8Array,
  key: ShieldingKey,
  shard: Uint8Array,
  kind: 'call' | 'getter' = 'call',
): Uint8Array {
  const suite = kind === 'call' ? callSuite : getterSuite;
  const { enc, ciphertext } = suite.seal(key.publicKey, signed, shard);
  return ShieldedRequest.enc({ shard, keyId: key.keyId, enc, ciphertext });
}

export interface TransferArgs {
  to: Uint8Array;
  amount: bigint;
  memo?: string;
  nonce: number;
}

/** A ready-to-submit transfer: the envelope bytes and the hash the node will report it under. */
export function buildTransfer(
  signer: Signer,
  args: TransferArgs,
  key: ShieldingKey,
  shard: Uint8Array,
): { request: Uint8Array; hash: string } {
  const call: TrustedCall = {
    tag: 'transfer',
    value: { from: signer.publicKey, to: args.to, amount: args.amount, memo: args.memo },
  };
  const signed = signCall(signer, call, args.nonce, shard);
  return { request: shield(signed, key, shard), hash: hexKey(callHash(signed)) };
}

/** An unshield: burns `amount` here; the shard's vault pays `beneficiary` (a parentchain AccountId32). */
export function buildUnshield(
  signer: Signer,
  args: { beneficiary: Uint8Array; amount: bigint; nonce: number },
  key: ShieldingKey,
  shard: Uint8Array,
): { request: Uint8Array; hash: string } {
  const call: TrustedCall = {
    tag: 'unshield',
    value: { from: signer.publicKey, beneficiary: args.beneficiary, amount: args.amount },
  };
  const signed = signCall(signer, call, args.nonce, shard);
  return { request: shield(signed, key, shard), hash: hexKey(callHash(signed)) };
}

/** The recipient of a shield, encrypted so the parentchain does not learn who receives the funds. */
export function shieldRecipient(key: ShieldingKey, shard: Uint8Array, recipient: Uint8Array): Uint8Array {
  const { enc, ciphertext } = shieldSuite.seal(key.publicKey, recipient, shard);
  return concatBytes(enc, ciphertext);
}

/** The parentchain call of a shield: `batchAll[transferKeepAlive(vault, amount), remark(shield message)]`. */
export function shieldCall(
  key: ShieldingKey,
  shard: Uint8Array,
  vault: Uint8Array,
  amount: bigint,
  recipient: Uint8Array,
): CallSpec {
  const remark = encodeMessage({ tag: 'shield', value: { shard, recipient: shieldRecipient(key, shard, recipient) } });
  return {
    kind: 'batchAll',
    calls: [
      { kind: 'transferKeepAlive', dest: vault, amount },
      { kind: 'remark', remark },
    ],
  };
}

/**
 * A getter request plus the one-time key that opens its reply. `open` checks the enclave's signature over the
 * request and the sealed reply, and refuses a signer that `trusted` (the client's anchor) does not vouch for.
 */
export function buildGetter(
  signer: Signer,
  getter: TrustedGetter,
  key: ShieldingKey,
  shard: Uint8Array,
  nowMs = Date.now(),
): { request: Uint8Array; open(reply: Uint8Array, trusted?: (enclave: Uint8Array) => boolean): GetterReplyT } {
  const reply = x25519Generate();
  const payload = { getter, shard, replyKey: reply.publicKey, issuedAtMs: BigInt(nowMs) };
  const signed = TrustedGetterSigned.enc({ ...payload, signature: signer.sign(getterSigningPayload(payload)) });
  const request = shield(signed, key, shard, 'getter');
  return {
    request,
    open(bytes, trusted) {
      const r = decodeExact(SignedGetterReply, bytes, 'getter reply');
      if (!ed25519Verify(r.signer, getterReplyDigest(shard, request, r.sealed), r.signature))
        throw new ValidateerError('UNTRUSTED_REPLY', 'getter reply is not signed by its enclave over this request');
      if (trusted && !trusted(r.signer))
        throw new ValidateerError('UNTRUSTED_REPLY', 'getter reply is signed by an enclave the client does not trust');
      const s = decodeExact(SealedReply, r.sealed, 'getter reply');
      const plain = replySuite.open(reply, s.enc, s.ciphertext);
      if (!plain) throw new ValidateerError('REPLY_UNREADABLE', 'getter reply does not decrypt with the reply key');
      return decodeExact(GetterReply, plain, 'getter reply');
    },
  };
}
