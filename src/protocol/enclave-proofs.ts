// What an enclave signs for clients, so that no RPC endpoint between them has to be believed: the
// shard's shielding key it holds, and each getter reply it sealed. The client checks the signer
// against the shard's registry on the parentchain (or a pinned key), never against the endpoint.
// Signed as sha256 of a domain-tagged statement: 32 bytes can be no parentchain extrinsic payload
// (the enclave's signing key is also its parentchain account), nor a block header's signing payload.
import { Bytes, Struct, u32 } from 'scale-ts';
import { sha256 } from '../crypto/primitives.ts';
import { concatBytes } from './bytes.ts';

const te = new TextEncoder();
const SHIELDING_KEY_DOMAIN = te.encode('validateer/shielding-key/v1');
const GETTER_REPLY_DOMAIN = te.encode('validateer/getter-reply/v1');

/** The digest an enclave signs to say it holds the shielding key (`keyId`, `publicKey`) of `shard`. */
export function shieldingKeyDigest(shard: Uint8Array, keyId: number, publicKey: Uint8Array): Uint8Array {
  return sha256(concatBytes(SHIELDING_KEY_DOMAIN, shard, u32.enc(keyId), publicKey));
}

/** The digest an enclave signs over a getter reply: bound to the exact request it answers. */
export function getterReplyDigest(shard: Uint8Array, request: Uint8Array, sealedReply: Uint8Array): Uint8Array {
  return sha256(concatBytes(GETTER_REPLY_DOMAIN, shard, sha256(request), sha256(sealedReply)));
}

/** A getter reply as it leaves the enclave: the SealedReply (wire.ts) bytes, who signed them, and the signature. */
export const SignedGetterReply = Struct({ sealed: Bytes(), signer: Bytes(32), signature: Bytes(64) });
export type SignedGetterReply = ReturnType<typeof SignedGetterReply.dec>;
