// Finality votes received and cast, aggregated by payload: equal payloads are one candidate anchor whose votes add
// up. Bounded: only members' verified votes enter (gossip validation comes first), each member holds at most one vote
// per number and votes at MAX_NUMBERS_PER_SIGNER numbers, and everything at or below the last anchor is dropped.
import { payloadKey, type FinalityVote, type VotePayload } from '../protocol/finality.ts';
import { hexKey } from '../protocol/bytes.ts';

/** Numbers a member's votes are kept at: its latest few (rounds retried at higher heights). */
export const MAX_NUMBERS_PER_SIGNER = 8;

export interface Candidate {
  payload: VotePayload;
  key: string;
  /** Votes by signer (hex signing key). */
  votes: Map<string, { signer: Uint8Array; signature: Uint8Array }>;
  /** Parentchain block processed when the votes first made a quorum (undefined: not yet). */
  quorumAt?: number;
  /** Parentchain block processed from which this node may submit the anchor again after a failure. */
  retryAt?: number;
  submitting?: boolean;
  /** Included by this node: it lands once its block is final, or the quorum goes stale and we vote higher. */
  submitted?: boolean;
}

/**
 * updated: the member's vote at that number again for the same block, over another payload (its enclave signs the
 * block again with a new previous anchor once a lower anchor landed): it replaces the older one.
 */
export type AddResult = 'added' | 'updated' | 'duplicate' | 'equivocation';

export class VotePool {
  private readonly candidates = new Map<string, Candidate>();
  /** signer hex -> number -> payload key of its vote there, and the block it is for. */
  private readonly bySigner = new Map<string, Map<bigint, { key: string; hash: string }>>();

  /**
   * What a vote from `signer` at `number` would be: nothing yet, the same vote, the same block over another payload, or
   * another block (equivocation).
   */
  check(signer: Uint8Array, payload: VotePayload): AddResult {
    const known = this.bySigner.get(hexKey(signer))?.get(payload.number);
    if (known === undefined) return 'added';
    if (known.key === payloadKey(payload)) return 'duplicate';
    return known.hash === hexKey(payload.hash) ? 'updated' : 'equivocation';
  }

  /**
   * Adds a verified vote; a member's first vote at a number counts, later ones there do not. No candidate: not
   * added, or below the member's latest MAX_NUMBERS_PER_SIGNER numbers (dropped at once).
   */
  add(v: Pick<FinalityVote, 'payload' | 'signer' | 'signature'>): { result: AddResult; candidate?: Candidate } {
    const result = this.check(v.signer, v.payload);
    if (result !== 'added' && result !== 'updated') return { result };
    const signer = hexKey(v.signer);
    const key = payloadKey(v.payload);
    if (result === 'updated') this.forget(signer, v.payload.number);
    let mine = this.bySigner.get(signer);
    if (!mine) this.bySigner.set(signer, (mine = new Map()));
    mine.set(v.payload.number, { key, hash: hexKey(v.payload.hash) });
    let c = this.candidates.get(key);
    if (!c) this.candidates.set(key, (c = { payload: v.payload, key, votes: new Map() }));
    c.votes.set(signer, { signer: v.signer, signature: v.signature });
    if (mine.size > MAX_NUMBERS_PER_SIGNER) {
      // Trimmed after the vote is in, so a vote older than the member's latest ones leaves no trace either.
      const lowest = [...mine.keys()].reduce((a, b) => (b < a ? b : a));
      this.forget(signer, lowest);
      if (lowest === v.payload.number) return { result };
    }
    return { result, candidate: c };
  }

  get(key: string): Candidate | undefined {
    return this.candidates.get(key);
  }

  all(): Candidate[] {
    return [...this.candidates.values()];
  }

  /** Drops everything at or below the last anchor: it can never be anchored. */
  prune(lastAnchor: bigint): void {
    for (const [key, c] of this.candidates) if (c.payload.number <= lastAnchor) this.candidates.delete(key);
    for (const [signer, numbers] of this.bySigner) {
      for (const n of numbers.keys()) if (n <= lastAnchor) numbers.delete(n);
      if (numbers.size === 0) this.bySigner.delete(signer);
    }
  }

  private forget(signer: string, number: bigint): void {
    const numbers = this.bySigner.get(signer);
    const key = numbers?.get(number)?.key;
    numbers?.delete(number);
    const c = key === undefined ? undefined : this.candidates.get(key);
    if (!c) return;
    c.votes.delete(signer);
    if (c.votes.size === 0) this.candidates.delete(key!);
  }
}
