// Finality votes and the quorum an anchor carries. A vote is a member enclave's signature over a payload that is a pure
// function of one sidechain block and the anchor chain; an anchor is final-able only with the votes of a strict
// majority of the authority set its block's slots were assigned from. Everyone checks the same way: the registry of
// every member's enclave (what finalizes), the submitter's enclave (before paying the fee) and each host's gossip
// validation (before relaying).
import { Bytes, Struct, Vector, u16, u32, u64 } from 'scale-ts';
import { ed25519Verify } from '../crypto/primitives.ts';
import { concatBytes, same, toHex } from './bytes.ts';

const H256 = Bytes(32);
const VOTE_DOMAIN = new TextEncoder().encode('validateer/finality-vote/v1');

/**
 * What a member votes for: block `number`/`hash` of `shard`, extending the anchor `previousAnchor` (zero before the
 * first). `parentchainProcessed` is the parentchain block the block built on (its effects become final with it);
 * `authoritySetAt` the parentchain block whose active members were the block's authorities (they vote).
 */
export const VotePayload = Struct({
  shard: H256,
  number: u64,
  hash: H256,
  previousAnchor: H256,
  parentchainProcessed: Struct({ number: u32, hash: H256 }),
  authoritySetAt: u32,
});
export type VotePayload = ReturnType<typeof VotePayload.dec>;

/**
 * A vote as it travels on `/validateer/<shard>/votes/1`: fixed size, so a length check comes before any decoding.
 * `sentAtMs` is not signed: it only makes a vote published again (for members that were away) a new gossip message,
 * which the seen cache would otherwise drop; a copy with another time is a duplicate to whoever has the vote.
 */
export const FinalityVote = Struct({ payload: VotePayload, signer: H256, signature: Bytes(64), sentAtMs: u64 });
export type FinalityVote = ReturnType<typeof FinalityVote.dec>;
export const FINALITY_VOTE_BYTES = 248;

/** A vote inside an anchor: the signer by its index in the authority set at `authoritySetAt`. */
export const IndexedVote = Struct({ index: u16, signature: Bytes(64) });
export type IndexedVote = ReturnType<typeof IndexedVote.dec>;
export const IndexedVotes = Vector(IndexedVote);

export function voteMessage(p: VotePayload): Uint8Array {
  return concatBytes(VOTE_DOMAIN, VotePayload.enc(p));
}

export function verifyVote(p: VotePayload, signer: Uint8Array, signature: Uint8Array): boolean {
  return signature.length === 64 && ed25519Verify(signer, voteMessage(p), signature);
}

/** Votes needed from a set of n: a strict majority. */
export function quorumOf(n: number): number {
  return Math.floor(n / 2) + 1;
}

/** A stable key for equal payloads (votes for them aggregate). */
export function payloadKey(p: VotePayload): string {
  return toHex(VotePayload.enc(p));
}

/**
 * Why `votes` are not a quorum for `p`, or null when they are: at most one per member of `set` (the block's authority
 * set), in increasing index order (one canonical encoding, and duplicates cost nothing to spot), a strict majority of
 * `set` and also of `current` (the members at the block that includes the anchor: a set that has since grown is not
 * outvoted by its old members, e.g. the first member alone, anchoring a branch from before the others joined), every
 * signature valid. Cheap checks come first; at most set.length signatures are verified.
 */
export function quorumFault(
  p: VotePayload,
  set: Uint8Array[],
  votes: readonly IndexedVote[],
  current: Uint8Array[],
): string | null {
  if (set.length === 0) return 'no authority set';
  if (votes.length > set.length) return `${votes.length} votes for a set of ${set.length}`;
  if (votes.length < quorumOf(set.length)) return `${votes.length} of ${set.length} votes: no majority`;
  for (let i = 0; i < votes.length; i++) {
    const { index } = votes[i];
    if (index >= set.length) return `vote index ${index} outside a set of ${set.length}`;
    if (i > 0 && index <= votes[i - 1].index) return 'votes not in increasing index order';
  }
  const now = votes.filter((v) => memberIndex(current, set[v.index]) >= 0).length;
  if (now < quorumOf(current.length)) return `${now} votes of members now, of ${current.length}: no majority`;
  const message = voteMessage(p);
  for (const v of votes)
    if (!ed25519Verify(set[v.index], message, v.signature)) return `vote of member ${v.index} has a bad signature`;
  return null;
}

/** Whether signers (of valid votes, all in the block's `set`) are a majority of `set` and of `current`. */
export function isQuorum(signers: Uint8Array[], set: Uint8Array[], current: Uint8Array[]): boolean {
  const count = (of: Uint8Array[]) => signers.filter((k) => memberIndex(of, k) >= 0).length;
  return count(set) >= quorumOf(set.length) && count(current) >= quorumOf(current.length);
}

/** Index of `key` in `set`, or -1. */
export function memberIndex(set: Uint8Array[], key: Uint8Array): number {
  return set.findIndex((k) => same(k, key));
}
