// Opens and verifies shielded calls: HPKE decrypt, strict decode, ed25519 signature, call hash.
// Pure and synchronous so it runs unchanged on the enclave thread and in the crypto worker threads.
import { HpkeSuite } from '../../crypto/hpke.ts';
import { ed25519Verify } from '../../crypto/primitives.ts';
import {
  HPKE_INFO_CALL,
  ShieldedRequest,
  TrustedCallSigned,
  callHash,
  callSigningPayload,
  decodeExact,
  type TrustedCall,
} from '../../protocol/wire.ts';
import { RejectCode } from '../../protocol/errors.ts';
import { same } from '../../protocol/bytes.ts';

export interface ShieldingKeyMaterial {
  keyId: number;
  secret: Uint8Array;
  publicKey: Uint8Array;
}
/** callBytes: the call's own encoding within the signed call (forwarding re-seals it without encoding it again). */
export type Verified = {
  ok: true;
  hash: Uint8Array;
  shard: Uint8Array;
  nonce: number;
  call: TrustedCall;
  callBytes: Uint8Array;
};
export type VerifyFailure = { ok: false; code: RejectCode; message: string };

const suite = new HpkeSuite(HPKE_INFO_CALL);
/** nonce (u32) + shard (32) + signature (64) after the call in a TrustedCallSigned. */
const SIGNED_CALL_TAIL = 4 + 32 + 64;

export class CallVerifier {
  private readonly key: ShieldingKeyMaterial;

  constructor(key: ShieldingKeyMaterial) {
    this.key = key;
  }

  verify(requestBytes: Uint8Array): Verified | VerifyFailure {
    let req: ShieldedRequest;
    try {
      req = decodeExact(ShieldedRequest, requestBytes, 'shielded request');
    } catch {
      return { ok: false, code: RejectCode.DECODE_FAILED, message: 'malformed shielded request envelope' };
    }
    if (req.keyId !== this.key.keyId)
      return { ok: false, code: RejectCode.UNKNOWN_SHIELDING_KEY, message: `unknown shielding key id ${req.keyId}` };
    // The envelope's shard is bound as AAD: a host cannot re-route a call to another shard.
    const plain = suite.open(
      { secretKey: this.key.secret, publicKey: this.key.publicKey },
      req.enc,
      req.ciphertext,
      req.shard,
    );
    if (!plain)
      return { ok: false, code: RejectCode.DECRYPT_FAILED, message: 'payload does not decrypt with the shielding key' };
    let signed: TrustedCallSigned;
    try {
      signed = decodeExact(TrustedCallSigned, plain, 'trusted call');
    } catch {
      return { ok: false, code: RejectCode.DECODE_FAILED, message: 'decrypted payload is not a valid trusted call' };
    }
    if (!ed25519Verify(signed.call.value.from, callSigningPayload(signed), signed.signature)) {
      return { ok: false, code: RejectCode.BAD_SIGNATURE, message: 'signature does not verify for the sender' };
    }
    if (!same(signed.shard, req.shard)) {
      return { ok: false, code: RejectCode.WRONG_SHARD, message: 'call is signed for another shard' };
    }
    // The encoding is canonical (decodeExact): the call is what precedes nonce, shard and signature.
    const callBytes = plain.subarray(0, plain.length - SIGNED_CALL_TAIL);
    return { ok: true, hash: callHash(plain), shard: signed.shard, nonce: signed.nonce, call: signed.call, callBytes };
  }
}
