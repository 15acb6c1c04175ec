// In-memory fakes for FinalityVoting's deps: a three-member set with test keys, an enclave that signs real ed25519
// votes for blocks of the fake chain (with the signing guard's refusal of a lower number or another hash) and builds
// anchors only from a quorum it checks, a parentchain view the test mutates, and a publish that records the bytes.
import type { Method, Params, Result } from '../../src/enclave/boundary/api.ts';
import type { EnclaveCalls } from '../../src/parentchain/driver.ts';
import {
  FinalityVoting,
  type FinalityOptions,
  type FinalityParentchain,
  type FinalityDeps,
} from '../../src/consensus/finality.ts';
import {
  FinalityVote,
  memberIndex,
  quorumFault,
  voteMessage,
  VotePayload,
  type IndexedVote,
} from '../../src/protocol/finality.ts';
import { ed25519PublicFromSeed, ed25519Sign, sha256 } from '../../src/crypto/primitives.ts';
import { createMetrics, type Metrics } from '../../src/metrics/metrics.ts';
import { createLogger } from '../../src/node/logger.ts';
import { same } from '../../src/protocol/bytes.ts';
import { ValidateerError } from '../../src/protocol/errors.ts';

export const SHARD = new Uint8Array(32).fill(0x5a);
export const ZERO = new Uint8Array(32);
/** The parentchain block every fake block's authorities are taken at. */
export const SET_AT = 5;

export interface TestKey {
  seed: Uint8Array;
  pub: Uint8Array;
}
export const key = (i: number): TestKey => {
  const seed = new Uint8Array(32).fill(0x10 + i);
  return { seed, pub: ed25519PublicFromSeed(seed) };
};
/** Members 0 (this node), 1 and 2; key(3) is no member. */
export const KEYS = [key(0), key(1), key(2)];
export const OUTSIDER = key(3);

/** A block hash of branch `branch` at `n`. */
export const hashOf = (n: number, branch = 'a'): Uint8Array => sha256(new TextEncoder().encode(`${branch}/${n}`));

export function payload(n: number, over: Partial<VotePayload> = {}): VotePayload {
  return {
    shard: SHARD,
    number: BigInt(n),
    hash: hashOf(n),
    previousAnchor: ZERO,
    parentchainProcessed: { number: SET_AT, hash: new Uint8Array(32).fill(SET_AT) },
    authoritySetAt: SET_AT,
    ...over,
  };
}

export function signedVote(
  by: TestKey,
  p: VotePayload,
): { payload: VotePayload; signer: Uint8Array; signature: Uint8Array } {
  return { payload: p, signer: by.pub, signature: ed25519Sign(by.seed, voteMessage(p)) };
}

/** Gossip bytes of member `by`'s vote for `p`. */
export function voteBytes(by: TestKey, p: VotePayload, sentAtMs = 1n): Uint8Array {
  return FinalityVote.enc({ ...signedVote(by, p), sentAtMs });
}

export interface Submitted {
  number: number;
  callData: Uint8Array;
}

export class FakeParentchain implements FinalityParentchain {
  lastAnchor: { number: number; hash: Uint8Array } | null = null;
  finalized: { number: number } | null = null;
  processedNumber = 10;
  members: FinalityParentchain['members'] = KEYS.map((k) => ({ registeredAt: 1, signingKey: k.pub }));
  lastVote: { number: number; hash: Uint8Array } | null = null;
  submitted: Submitted[] = [];
  submitOk = true;

  async submitAnchor(number: number, call: { callData: Uint8Array; nonce: number }): Promise<boolean> {
    this.submitted.push({ number, callData: call.callData });
    return this.submitOk;
  }
}

export class FakeChain {
  readonly blocks = new Map<number, { hash: Uint8Array; author: Uint8Array }>();

  /** Blocks 1..to of `branch`, authored by `author(n)` (default: member n % 3). */
  extend(to: number, author: (n: number) => TestKey = (n) => KEYS[n % 3], branch = 'a'): void {
    for (let n = this.blocks.size + 1; n <= to; n++)
      this.blocks.set(n, { hash: hashOf(n, branch), author: author(n).pub });
  }

  head(): { number: number } | null {
    return this.blocks.size === 0 ? null : { number: this.blocks.size };
  }

  async block(n: number) {
    return this.blocks.get(n) ?? null;
  }
}

/** The enclave's two finality calls over the fake chain and parentchain, signing as `me` (member 0 by default). */
export class FakeEnclave implements EnclaveCalls {
  readonly calls: { method: string; params: unknown }[] = [];
  /** The signing guard's record: the highest number voted at and its hash. */
  guard: { number: number; hash: Uint8Array } | null = null;
  failAnchor = false;
  private readonly chain: FakeChain;
  private readonly pc: FakeParentchain;
  private readonly me: TestKey;

  constructor(chain: FakeChain, pc: FakeParentchain, me: TestKey = KEYS[0]) {
    this.chain = chain;
    this.pc = pc;
    this.me = me;
  }

  callsOf(method: string): unknown[] {
    return this.calls.filter((c) => c.method === method).map((c) => c.params);
  }

  async call<M extends Method>(method: M, params: Params<M>): Promise<Result<M>> {
    this.calls.push({ method, params });
    if (method === 'finalityVote') return this.vote((params as Params<'finalityVote'>).number) as Result<M>;
    if (method === 'anchorCall') return this.anchor(params as Params<'anchorCall'>) as Result<M>;
    throw new Error(`unexpected enclave call ${method}`);
  }

  private payloadAt(number: number): VotePayload {
    const b = this.chain.blocks.get(number);
    if (!b) throw new ValidateerError('UNKNOWN_BLOCK', `no block ${number}`);
    return payload(number, { hash: b.hash, previousAnchor: this.pc.lastAnchor?.hash ?? ZERO });
  }

  private vote(number: number) {
    const p = this.payloadAt(number);
    const g = this.guard;
    if (g && (number < g.number || (number === g.number && !same(p.hash, g.hash))))
      throw new ValidateerError('VOTE_ALREADY_SIGNED', `voted at ${g.number}`);
    this.guard = { number, hash: p.hash };
    return signedVote(this.me, p);
  }

  private anchor({ number, votes }: Params<'anchorCall'>) {
    if (this.failAnchor) throw new ValidateerError('ANCHOR_NO_QUORUM', 'failing on purpose');
    const p = this.payloadAt(number);
    const set = KEYS.map((k) => k.pub);
    const indexed: IndexedVote[] = votes
      .map((v) => ({ index: memberIndex(set, v.signer), signature: v.signature }))
      .sort((a, b) => a.index - b.index);
    const fault = quorumFault(p, set, indexed, set);
    if (fault) throw new ValidateerError('ANCHOR_NO_QUORUM', fault);
    return { callData: VotePayload.enc(p), nonce: 0 }; // what a registry fake needs to check the link
  }
}

export interface Harness {
  fv: FinalityVoting;
  chain: FakeChain;
  pc: FakeParentchain;
  enclave: FakeEnclave;
  published: Uint8Array[];
  metrics: Metrics;
  /** kick() and the step it queued. */
  step(): Promise<void>;
  /** A peer's vote through gossip validation, and the steps it queued. */
  gossip(bytes: Uint8Array): Promise<string>;
  /** Our published votes, decoded. */
  ours(): FinalityVote[];
  /** validateer_finality_votes_total by result. */
  votes(): Promise<Record<string, number>>;
}

export const OPTIONS: FinalityOptions = {
  shard: SHARD,
  anchorInterval: 10,
  voteRetryMs: 60_000,
  anchorFallbackBlocks: 3,
};

/** Member `me`'s FinalityVoting (not started: tests kick it) over fresh fakes; `publish` defaults to recording. */
export function harness(
  opts: Partial<FinalityOptions> = {},
  setup?: (pc: FakeParentchain) => void,
  me = 0,
  publish?: (bytes: Uint8Array) => Promise<unknown>,
): Harness {
  const chain = new FakeChain();
  const pc = new FakeParentchain();
  setup?.(pc);
  const enclave = new FakeEnclave(chain, pc, KEYS[me]);
  const published: Uint8Array[] = [];
  const metrics = createMetrics();
  const deps: FinalityDeps = {
    enclave,
    parentchain: pc,
    chain,
    publish: async (bytes) => {
      published.push(bytes);
      return publish?.(bytes);
    },
    signingKey: KEYS[me].pub,
    metrics,
    logger: createLogger({ level: 'silent' }),
  };
  const fv = new FinalityVoting(deps, { ...OPTIONS, ...opts });
  return {
    fv,
    chain,
    pc,
    enclave,
    published,
    metrics,
    async step() {
      fv.kick();
      await fv.settled();
    },
    async gossip(bytes) {
      const r = await fv.onGossip(bytes);
      await fv.settled();
      return r;
    },
    ours: () => published.map((b) => FinalityVote.dec(b)),
    async votes() {
      const m = await metrics.finalityVotes.get();
      return Object.fromEntries(m.values.map((v) => [String(v.labels.result), v.value]));
    },
  };
}

/** Polls `cond` (kicking first) until it holds; fails after `ms`. */
export async function until(h: Harness, cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    await h.step();
    if (cond()) return;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
