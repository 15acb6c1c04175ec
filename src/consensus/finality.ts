// Finality votes and anchors, the host's part: when to ask the enclave for a vote, gossip of votes on
// /validateer/<shard>/votes/1, their aggregation, and who submits the anchor once a strict majority agrees.
// - Cadence: a member votes once the previous anchor is final in its light client, for its canonical block at the
//   highest multiple of anchorInterval below its head (a block the others most likely hold too), so anchors keep up
//   with the sidechain whatever the parentchain's block time. A valid vote of another member at a higher aligned
//   height is joined when our chain has that block, so the set converges on one height. Without a quorum after
//   voteRetryMs (a split by a reorg, or a majority away), it votes again higher up, or publishes its vote again for
//   members that were away.
// - Submission: the anchored block's author submits at once; the others, in set order after it, each wait
//   anchorFallbackBlocks more parentchain blocks, so the set pays one fee per anchor unless the author is away.
// The enclave decides what is signed: it votes only for its own chain and builds anchors only from votes it checked.
import type { Logger } from 'pino';
import type { EnclaveCalls } from '../parentchain/driver.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { Validation } from '../p2p/network.ts';
import {
  FINALITY_VOTE_BYTES,
  FinalityVote,
  isQuorum,
  memberIndex,
  payloadKey,
  verifyVote,
  type VotePayload,
} from '../protocol/finality.ts';
import { isActiveAt, type MembershipSpan } from '../protocol/membership.ts';
import { decodeExact } from '../protocol/wire.ts';
import { same } from '../protocol/bytes.ts';
import { codeOf, hasCode } from '../protocol/errors.ts';
import { VotePool, type Candidate } from './vote-pool.ts';

/** How far above our head and the last anchor a vote may be and still be kept (sidechain blocks). */
const MAX_AHEAD = 4096;
const TICK_MS = 1000;

export interface FinalityOptions {
  shard: Uint8Array;
  anchorInterval: number;
  /** Without a quorum for our vote this long, vote again (higher, or the same vote published again). */
  voteRetryMs: number;
  /** Parentchain blocks each fallback submitter waits after the one before it. */
  anchorFallbackBlocks: number;
}

/** What the finality service reads of the parentchain driver (the enclave's verified view). */
export interface FinalityParentchain {
  readonly lastAnchor: { number: number; hash: Uint8Array } | null;
  readonly finalized: { number: number } | null;
  readonly processedNumber: number;
  readonly members: (MembershipSpan & { signingKey: Uint8Array })[];
  readonly lastVote: { number: number; hash: Uint8Array } | null;
  submitAnchor(number: number, call: { callData: Uint8Array; nonce: number }): Promise<boolean>;
}

/** Our canonical chain, as the store holds it. */
export interface FinalityChain {
  head(): { number: number } | null;
  /** The canonical block at `number`: its hash and author, or null. */
  block(number: number): Promise<{ hash: Uint8Array; author: Uint8Array } | null>;
}

export interface FinalityDeps {
  enclave: EnclaveCalls;
  parentchain: FinalityParentchain;
  chain: FinalityChain;
  publish(bytes: Uint8Array): Promise<unknown>;
  signingKey: Uint8Array;
  metrics: Metrics;
  logger: Logger;
}

interface OwnVote {
  number: bigint;
  key: string;
  bytes: Uint8Array | null;
  atMs: number;
}

export class FinalityVoting {
  private readonly d: FinalityDeps;
  private readonly o: FinalityOptions;
  private readonly pool = new VotePool();
  private own: OwnVote | null = null;
  private busy: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private kickQueued = false;

  constructor(deps: FinalityDeps, opts: FinalityOptions) {
    this.d = deps;
    this.o = opts;
    const last = deps.parentchain.lastVote;
    // A vote sealed before a restart: no quorum is known for it, so it is published again (or outdone) at once.
    if (last) this.own = { number: BigInt(last.number), key: '', bytes: null, atMs: 0 };
  }

  start(): void {
    this.timer = setInterval(() => this.kick(), TICK_MS);
    this.timer.unref();
    this.kick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.busy;
  }

  /** Resolves once no step is queued (tests: a kick or a gossiped vote has had its effect). */
  async settled(): Promise<void> {
    for (let b = this.busy; ; b = this.busy) {
      await b;
      if (b === this.busy) return;
    }
  }

  /** After our head moved, or the enclave verified parentchain blocks (a new anchor, a later processed block). */
  kick(): void {
    if (this.stopped) return;
    this.updateLag();
    if (this.kickQueued) return; // one queued step sees everything that happened before it runs
    this.kickQueued = true;
    this.serial(async () => {
      this.kickQueued = false;
      this.pool.prune(BigInt(this.anchorNumber()));
      await this.maybeVote();
      await this.maybeSubmit();
    });
  }

  /** Gossip validation of a vote: cheap checks first, the signature last; a valid one counts and may be joined. */
  async onGossip(bytes: Uint8Array): Promise<Validation> {
    if (this.stopped) return 'ignore'; // no step after stop(): the enclave and the store close next
    const r = this.validate(bytes);
    this.d.metrics.countVote(r.result);
    if (r.result === 'equivocation')
      this.d.logger.warn({ number: String(r.vote.payload.number) }, 'a member voted for two blocks at one number');
    if (r.result !== 'accepted') return r.validation;
    const { candidate } = this.pool.add(r.vote);
    const n = r.vote.payload.number;
    this.serial(async () => {
      if (this.shouldJoin(n)) {
        const ours = await this.d.chain.block(Number(n));
        if (ours && same(ours.hash, r.vote.payload.hash)) await this.vote(n);
      }
      if (candidate) this.noteQuorum(candidate);
      await this.maybeSubmit();
    });
    return 'accept';
  }

  private validate(
    bytes: Uint8Array,
  ):
    | { result: 'accepted'; validation: 'accept'; vote: FinalityVote }
    | { result: 'equivocation'; validation: Validation; vote: FinalityVote }
    | { result: 'invalid' | 'stale' | 'unknown' | 'duplicate'; validation: Validation } {
    const invalid = { result: 'invalid', validation: 'reject' } as const;
    if (bytes.length !== FINALITY_VOTE_BYTES) return invalid;
    let vote: FinalityVote;
    try {
      vote = decodeExact(FinalityVote, bytes, 'finality vote');
    } catch {
      return invalid;
    }
    const p = vote.payload;
    if (!same(p.shard, this.o.shard)) return invalid;
    const last = BigInt(this.anchorNumber());
    const head = BigInt(this.d.chain.head()?.number ?? 0);
    if (p.number <= last || p.number > (head > last ? head : last) + BigInt(MAX_AHEAD))
      return { result: 'stale', validation: 'ignore' };
    // A vote that does not name our last anchor can never land (or names one we have not processed yet).
    if (!this.extendsLast(p, this.d.parentchain.lastAnchor)) return { result: 'stale', validation: 'ignore' };
    // The set is known only up to our verified parentchain block; a peer ahead of us is not at fault.
    if (p.authoritySetAt > this.d.parentchain.processedNumber) return { result: 'unknown', validation: 'ignore' };
    if (memberIndex(this.setAt(p.authoritySetAt), vote.signer) < 0) return invalid;
    const known = this.pool.check(vote.signer, p);
    if (known === 'duplicate') return { result: 'duplicate', validation: 'ignore' };
    if (!verifyVote(p, vote.signer, vote.signature)) return invalid;
    // A member's enclave signed two blocks at one number (rolled back, or not ours to explain): the first one counts.
    if (known === 'equivocation') return { result: 'equivocation', validation: 'ignore', vote };
    return { result: 'accepted', validation: 'accept', vote };
  }

  /**
   * Whether to join a member's vote at n: an aligned height above ours and the last anchor, unless our own vote has a
   * quorum that may still land (a second quorum naming the same previous anchor would only pay a second fee).
   */
  private shouldJoin(n: bigint): boolean {
    if (n % BigInt(this.o.anchorInterval) !== 0n || n <= (this.own?.number ?? 0n) || n <= this.anchorNumber())
      return false;
    return !this.ownPending();
  }

  /** Our open vote's candidate, if it has a quorum that extends the last anchor and its turn to land is not over. */
  private ownPending(): boolean {
    const c = this.own && this.pool.get(this.own.key);
    return (
      !!c &&
      this.extendsLast(c.payload, this.d.parentchain.lastAnchor) &&
      c.quorumAt !== undefined &&
      !this.quorumStale(c)
    );
  }

  /** Our vote, if it is time for one (see the header). */
  private async maybeVote(): Promise<void> {
    const head = this.d.chain.head();
    if (!head) return;
    const interval = this.o.anchorInterval;
    const target = BigInt(Math.floor((head.number - 1) / interval) * interval);
    const last = BigInt(this.anchorNumber());
    const own = this.own;
    if (own && own.number > last) {
      // Our vote is still open: wait while it may yet become an anchor.
      if (this.ownPending()) return;
      // Another anchor landed below it: our enclave signs the block again over that anchor, at once.
      const behind =
        own.bytes !== null && !this.extendsLast(FinalityVote.dec(own.bytes).payload, this.d.parentchain.lastAnchor);
      if (!behind && Date.now() - own.atMs < this.o.voteRetryMs) return;
      if (target > own.number) return this.vote(target);
      if (behind) return this.vote(own.number);
      await this.republish(own);
      return;
    }
    if (target > last && target > (own?.number ?? 0n)) await this.vote(target);
  }

  private async vote(n: bigint): Promise<void> {
    let v;
    try {
      v = await this.d.enclave.call('finalityVote', { number: Number(n) });
    } catch (err) {
      this.d.metrics.countVote('refused');
      // Refused by the guard: a vote sealed at or above n that we did not know of (e.g. before a restart).
      if (hasCode(err, 'VOTE_ALREADY_SIGNED') && (!this.own || this.own.number < n))
        this.own = { number: n, key: '', bytes: null, atMs: Date.now() };
      this.d.logger.debug({ number: String(n), code: codeOf(err), err: (err as Error).message }, 'no finality vote');
      return;
    }
    this.d.metrics.countVote('cast');
    const bytes = FinalityVote.enc({ ...v, sentAtMs: BigInt(Date.now()) });
    this.own = { number: n, key: payloadKey(v.payload), bytes, atMs: Date.now() };
    const { candidate } = this.pool.add(v);
    this.publish(bytes);
    if (candidate) this.noteQuorum(candidate);
  }

  /** Our open vote again, with a new send time (a new gossip message) for members that were away. */
  private async republish(own: OwnVote): Promise<void> {
    own.atMs = Date.now();
    if (!own.bytes) return this.vote(own.number); // known only from the sealed record: the enclave signs it again
    const v = FinalityVote.dec(own.bytes);
    own.bytes = FinalityVote.enc({ ...v, sentAtMs: BigInt(Date.now()) });
    this.publish(own.bytes);
  }

  private publish(bytes: Uint8Array): void {
    this.d.publish(bytes).catch((err: Error) => this.d.logger.debug({ err: err.message }, 'vote not gossiped'));
  }

  private noteQuorum(c: Candidate): void {
    if (c.quorumAt !== undefined) return;
    // As the registries will count: a majority of the block's set and of the members now.
    const signers = [...c.votes.values()].map((v) => v.signer);
    if (!isQuorum(signers, this.setAt(c.payload.authoritySetAt), this.setAt(this.d.parentchain.processedNumber)))
      return;
    c.quorumAt = this.d.parentchain.processedNumber;
    this.d.logger.debug({ number: String(c.payload.number), votes: c.votes.size }, 'finality quorum');
  }

  /** A quorum whose anchor every submitter had its turn at and that still did not land. */
  private quorumStale(c: Candidate): boolean {
    const n = this.setAt(c.payload.authoritySetAt).length;
    return this.d.parentchain.processedNumber > c.quorumAt! + (n + 1) * this.o.anchorFallbackBlocks;
  }

  /** Submits the anchors whose turn has come to this node (see the header). */
  private async maybeSubmit(): Promise<void> {
    const last = this.d.parentchain.lastAnchor;
    for (const c of this.pool.all()) {
      const p = c.payload;
      if (c.quorumAt === undefined || c.submitting || c.submitted || !this.extendsLast(p, last)) continue;
      const processed = this.d.parentchain.processedNumber;
      if (c.retryAt !== undefined && processed < c.retryAt) continue;
      const ours = await this.d.chain.block(Number(p.number));
      if (!ours || !same(ours.hash, p.hash)) continue; // not our chain: our enclave would not build it
      const set = this.setAt(p.authoritySetAt);
      const me = memberIndex(set, this.d.signingKey);
      const author = memberIndex(set, ours.author);
      if (me < 0) continue;
      const rank = author < 0 ? me : (me - author + set.length) % set.length;
      if (processed < c.quorumAt + rank * this.o.anchorFallbackBlocks) continue;
      c.submitting = true;
      try {
        const call = await this.d.enclave.call('anchorCall', {
          number: Number(p.number),
          votes: [...c.votes.values()],
        });
        // Included: sent once (every later step until it is final would pay another fee).
        if (await this.d.parentchain.submitAnchor(Number(p.number), call)) c.submitted = true;
        else c.retryAt = processed + this.o.anchorFallbackBlocks;
      } catch (err) {
        this.d.logger.warn({ number: String(p.number), code: codeOf(err) }, 'anchor not built');
        c.retryAt = processed + this.o.anchorFallbackBlocks;
      } finally {
        c.submitting = false;
      }
    }
  }

  private extendsLast(p: VotePayload, last: { number: number; hash: Uint8Array } | null): boolean {
    return last
      ? p.number > BigInt(last.number) && same(p.previousAnchor, last.hash)
      : p.previousAnchor.every((b) => b === 0);
  }

  private setAt(n: number): Uint8Array[] {
    return this.d.parentchain.members.filter((m) => isActiveAt(m, n)).map((m) => m.signingKey);
  }

  private anchorNumber(): number {
    return this.d.parentchain.lastAnchor?.number ?? 0;
  }

  private updateLag(): void {
    const head = this.d.chain.head()?.number ?? 0;
    this.d.metrics.finalityLag.set(Math.max(0, head - (this.d.parentchain.finalized?.number ?? 0)));
  }

  /** One step at a time: votes and submissions never interleave (the enclave seals each vote first anyway). */
  private serial(step: () => Promise<void>): void {
    this.busy = this.busy
      .then(step)
      .catch((err: Error) => this.d.logger.error({ err: err.message }, 'finality step failed'));
  }
}
