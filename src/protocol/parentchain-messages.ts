// Versioned binary messages carried in parentchain remarks: magic "vldtr" + version u8 + SCALE enum.
// Remarks are public and anyone can post them, so decoding separates three cases: not ours (null,
// ignored), ours but from a version we do not know, and ours but malformed (both typed errors).
import { Bytes, Enum, Struct, Vector, str, u32, u64 } from 'scale-ts';
import { ValidateerError } from './errors.ts';
import { decodeExact } from './wire.ts';
import { concatBytes } from './bytes.ts';
import { IndexedVotes } from './finality.ts';

const H256 = Bytes(32);

export const MESSAGE_MAGIC = new TextEncoder().encode('vldtr');
export const MESSAGE_VERSION = 1;

export const ParentchainMessage = Enum({
  /**
   * An enclave announces itself for a shard; `quote` binds `signingKey` to a measurement, and the
   * rest (with `encryptionKey`, the X25519 key other enclaves seal new state keys to) to the quote.
   */
  register: Struct({
    shard: H256,
    quote: Bytes(),
    signingKey: H256,
    p2pAddresses: Vector(str),
    peerId: str,
    encryptionKey: H256,
  }),
  unregister: Struct({ shard: H256, signingKey: H256 }),
  /** Indirect invocation: a shielded trusted call (opaque HPKE ciphertext here). */
  invoke: Struct({ shard: H256, request: Bytes() }),
  /** Second half of a shield batch: the HPKE-encrypted sidechain recipient (opaque here). */
  shield: Struct({ shard: H256, recipient: Bytes() }),
  /**
   * Sidechain finality: block `sidechainNumber`/`sidechainHash` extends `previousAnchor` (zero for the first), with
   * the votes of a strict majority of the members active at `authoritySetAt` (finality.ts: the fields are the vote
   * payload).
   */
  anchor: Struct({
    shard: H256,
    sidechainNumber: u64,
    sidechainHash: H256,
    previousAnchor: H256,
    parentchainProcessed: Struct({ number: u32, hash: H256 }),
    authoritySetAt: u32,
    votes: IndexedVotes,
  }),
  /**
   * Second half of `batchAll[proxy.createPure(Any, 0, 0), remark]` by a member: that pure proxy is the shard's vault.
   */
  vault: Struct({ shard: H256 }),
  /**
   * Second half of `batchAll[transferKeepAlive(vault, existential deposit), remark]`: the vault's keep-alive reserve.
   */
  reserve: Struct({ shard: H256 }),
  /**
   * Inside `proxy.proxy(vault, batchAll[transferKeepAlive(beneficiary, amount), remark])`: withdrawal `withdrawal`
   * paid.
   */
  payout: Struct({ shard: H256, withdrawal: u64 }),
  /**
   * Inside `proxy.proxy(vault, batchAll[proxy.addProxy(delegate, Any, 0), remark])` by a member: `delegate` now
   * controls the vault.
   */
  proxy: Struct({ shard: H256, delegate: H256 }),
  /**
   * Inside `proxy.proxy(vault, batchAll[proxy.removeProxy(delegate, Any, 0), transferKeepAlive(signer, deposit),
   * remark])`
   * by a member: `delegate` (a member that left) no longer controls the vault; the proxy deposit the
   * removal frees in the vault goes to the signing member (whose enclave accounts paid such deposits in).
   */
  unproxy: Struct({ shard: H256, delegate: H256 }),
});
export type ParentchainMessage = ReturnType<typeof ParentchainMessage.dec>;
export type MessageTag = ParentchainMessage['tag'];

/** True when the remark starts with our magic (whatever follows). */
export function isOurRemark(remark: Uint8Array): boolean {
  if (remark.length < MESSAGE_MAGIC.length) return false;
  for (let i = 0; i < MESSAGE_MAGIC.length; i++) if (remark[i] !== MESSAGE_MAGIC[i]) return false;
  return true;
}

export function encodeMessage(message: ParentchainMessage): Uint8Array {
  return concatBytes(MESSAGE_MAGIC, Uint8Array.of(MESSAGE_VERSION), ParentchainMessage.enc(message));
}

/**
 * Decodes a remark. Returns null for foreign remarks (no magic); throws `PARENTCHAIN_MESSAGE_VERSION`
 * for a version this code does not know and `PARENTCHAIN_MESSAGE_MALFORMED` for anything else that
 * is not exactly the canonical encoding (truncated, trailing bytes, unknown tag, bad UTF-8).
 */
export function decodeMessage(remark: Uint8Array): ParentchainMessage | null {
  if (!isOurRemark(remark)) return null;
  if (remark.length === MESSAGE_MAGIC.length)
    throw new ValidateerError('PARENTCHAIN_MESSAGE_MALFORMED', 'remark has our magic but no version');
  const version = remark[MESSAGE_MAGIC.length];
  if (version !== MESSAGE_VERSION)
    throw new ValidateerError('PARENTCHAIN_MESSAGE_VERSION', `unsupported message version ${version}`);
  const body = remark.subarray(MESSAGE_MAGIC.length + 1);
  try {
    return decodeExact(ParentchainMessage, body, 'parentchain message');
  } catch (err) {
    // decodeExact re-encodes outside its own try: an unknown enum tag surfaces as a TypeError there.
    throw new ValidateerError(
      'PARENTCHAIN_MESSAGE_MALFORMED',
      `malformed parentchain message: ${(err as Error).message}`,
    );
  }
}

/** Like decodeMessage but never throws: foreign or bad remarks are reported, not fatal, when scanning. */
export function tryDecodeMessage(remark: Uint8Array): { message: ParentchainMessage | null; error?: ValidateerError } {
  try {
    return { message: decodeMessage(remark) };
  } catch (err) {
    return { message: null, error: err as ValidateerError };
  }
}
