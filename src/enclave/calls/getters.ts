// Trusted getters: a client's signed, shielded query of its own account, answered from the state,
// sealed to the one-time key the client sent (no RPC endpoint on the way can read it) and signed by
// this enclave over the request it answers (none can forge it: base-mode HPKE alone proves no sender).
import { HpkeSuite } from '../../crypto/hpke.ts';
import { ed25519Sign, ed25519Verify } from '../../crypto/primitives.ts';
import { SignedGetterReply, getterReplyDigest } from '../../protocol/enclave-proofs.ts';
import { same } from '../../protocol/bytes.ts';
import { RejectCode } from '../../protocol/errors.ts';
import {
  GetterReply,
  HPKE_INFO_GETTER,
  HPKE_INFO_REPLY,
  SealedReply,
  ShieldedRequest,
  TrustedGetterSigned,
  decodeExact,
  getterAccount,
  getterSigningPayload,
  type GetterReply as GetterReplyT,
  type TrustedGetter,
} from '../../protocol/wire.ts';
import { EnclaveError } from '../boundary/errors.ts';
import type { EnclaveContext } from '../context.ts';

const getterSuite = new HpkeSuite(HPKE_INFO_GETTER);
const replySuite = new HpkeSuite(HPKE_INFO_REPLY);
const GETTER_MAX_SKEW_MS = 5 * 60_000;
/** Memos one getter returns at most. */
const MAX_MEMOS = 100;

export class Getters {
  private readonly ctx: EnclaveContext;

  constructor(ctx: EnclaveContext) {
    this.ctx = ctx;
  }

  execute(requestBytes: Uint8Array, nowMs: number): Uint8Array {
    const { opts, keys } = this.ctx;
    let req;
    try {
      req = decodeExact(ShieldedRequest, requestBytes, 'shielded request');
    } catch {
      throw new EnclaveError(RejectCode.DECODE_FAILED, 'malformed shielded request envelope');
    }
    if (!same(req.shard, opts.shard)) throw new EnclaveError(RejectCode.WRONG_SHARD, 'getter is for another shard');
    const plain = getterSuite.open(
      { secretKey: keys.shieldingSecret, publicKey: keys.shieldingPublic },
      req.enc,
      req.ciphertext,
      req.shard,
    );
    if (!plain) throw new EnclaveError(RejectCode.DECRYPT_FAILED, 'getter does not decrypt with the shielding key');
    const g = decodeExact(TrustedGetterSigned, plain, 'trusted getter');
    if (!ed25519Verify(getterAccount(g.getter), getterSigningPayload(g), g.signature)) {
      throw new EnclaveError(RejectCode.BAD_SIGNATURE, 'getter signature does not verify for the account');
    }
    if (!same(g.shard, opts.shard))
      throw new EnclaveError(RejectCode.WRONG_SHARD, 'getter is signed for another shard');
    if (Math.abs(nowMs - Number(g.issuedAtMs)) > GETTER_MAX_SKEW_MS) {
      throw new EnclaveError(RejectCode.GETTER_EXPIRED, 'getter timestamp is too far from the enclave clock');
    }
    const { enc, ciphertext } = replySuite.seal(g.replyKey, GetterReply.enc(this.answer(g.getter)));
    const sealed = SealedReply.enc({ enc, ciphertext });
    const signature = ed25519Sign(keys.signingKey, getterReplyDigest(opts.shard, requestBytes, sealed));
    return SignedGetterReply.enc({ sealed, signer: keys.signingPublic, signature });
  }

  private answer(g: TrustedGetter): GetterReplyT {
    const state = this.ctx.state;
    if (g.tag === 'balance') return { tag: 'balance', value: state.account(g.value).balance };
    if (g.tag === 'nonce') return { tag: 'nonce', value: state.account(g.value).nonce };
    const total = state.account(g.value.account).memoCount;
    const items = [];
    // Newest first: offset 0 is the latest memo.
    for (let i = total - 1 - g.value.offset; i >= 0 && items.length < Math.min(g.value.limit, MAX_MEMOS); i--) {
      const m = state.memo(g.value.account, i);
      if (m) items.push(m);
    }
    return { tag: 'memos', value: { total, items } };
  }
}
