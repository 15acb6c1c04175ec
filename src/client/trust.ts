// What the client believes, and why: an RPC endpoint is only a relay (any host, or anyone on a plain
// ws:// path, can answer in its place). A shielding key is used only when an enclave that the client
// itself knows to be a member of the shard signed it; a getter reply is opened only when such an
// enclave signed it over the request. The anchor is the shard's registry on the parentchain
// (registry.ts), or pinned keys where there is no parentchain.
import { ed25519Verify } from '../crypto/primitives.ts';
import { shieldingKeyDigest } from '../protocol/enclave-proofs.ts';
import { ValidateerError } from '../protocol/errors.ts';
import { hexKey, parseHex, same } from '../protocol/bytes.ts';
import type { MembershipCheck, VaultLookup } from './registry.ts';

export interface ClientTrust {
  /** Enclave signing keys pinned as members of the shard (e.g. a fixed set's configured authorities). */
  signers?: Uint8Array[];
  /**
   * A pinned shielding public key: the endpoint must hand out exactly this key. Its enclave signer is then not
   * checked; getter replies stay unforgeable because the one-time reply key travels encrypted to this key.
   */
  shieldingKey?: Uint8Array;
  /** The shard the client means; else the shard the endpoint names (the membership check is for that shard). */
  shard?: Uint8Array;
  /** Whether a signing key is an attested member of the shard: registryLookup() on the client's parentchain. */
  member?: MembershipCheck;
  /** The shard's vault as the client found it on the parentchain (registryLookup().vault): where shields go. */
  vault?: VaultLookup;
}

/** author_getShieldingKey's reply. */
export interface ShieldingKeyReply {
  shard: string;
  keyId: number;
  publicKey: string;
  signer?: string;
  signature?: string;
}

export interface TrustedKey {
  shard: Uint8Array;
  keyId: number;
  publicKey: Uint8Array;
  /** The enclave that vouched for the key. */
  signer: Uint8Array;
}

const untrusted = (why: string) => new ValidateerError('UNTRUSTED_SHIELDING_KEY', `shielding key refused: ${why}`);

function bytesOf(hex: unknown, length: number, what: string): Uint8Array {
  const b = typeof hex === 'string' && hex.startsWith('0x') ? parseHex(hex.slice(2)) : null;
  if (!b || b.length !== length) throw untrusted(`${what} is not ${length} hex bytes`);
  return b;
}

/** Whether the client has any anchor at all (without one, every key is refused). */
function hasAnchor(t: ClientTrust): boolean {
  return (t.signers?.length ?? 0) > 0 || t.shieldingKey !== undefined || t.member !== undefined;
}

/** Checks a signing key against the pinned signers, else the membership check; throws `fail` if neither vouches. */
export async function checkSigner(
  t: ClientTrust,
  shard: Uint8Array,
  signer: Uint8Array,
  fail: (why: string) => Error,
): Promise<void> {
  if (t.signers?.some((s) => same(s, signer))) return;
  if (!t.member) throw fail(`enclave ${hexKey(signer)} is not a pinned signer`);
  try {
    await t.member(shard, signer);
  } catch (err) {
    if (err instanceof ValidateerError && err.code !== 'UNTRUSTED_ENCLAVE') throw err;
    throw fail(`enclave ${hexKey(signer)} is not a registered member of the shard`);
  }
}

/** Verifies an endpoint's shielding key against the trust anchor; the result names the enclave that vouched. */
export async function verifyShieldingKey(t: ClientTrust, r: ShieldingKeyReply): Promise<TrustedKey> {
  if (!hasAnchor(t)) throw untrusted('no trust anchor (pin a signer or shielding key, or give a parentchain)');
  const shard = bytesOf(r.shard, 32, 'shard');
  const publicKey = bytesOf(r.publicKey, 32, 'publicKey');
  if (!Number.isInteger(r.keyId) || r.keyId < 0 || r.keyId > 0xffffffff) throw untrusted('bad keyId');
  if (t.shard && !same(t.shard, shard)) throw untrusted('the endpoint serves another shard');
  const signer = bytesOf(r.signer, 32, 'signer');
  const signature = bytesOf(r.signature, 64, 'signature');
  if (!ed25519Verify(signer, shieldingKeyDigest(shard, r.keyId, publicKey), signature))
    throw untrusted('the signature does not verify');
  if (t.shieldingKey) {
    if (!same(t.shieldingKey, publicKey)) throw untrusted('it is not the pinned shielding key');
  } else {
    await checkSigner(t, shard, signer, untrusted);
  }
  return { shard, keyId: r.keyId, publicKey, signer };
}
