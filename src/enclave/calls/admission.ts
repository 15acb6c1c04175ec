// Admission of calls into the pool: client calls verified here (or on the crypto threads for a big
// batch), calls another enclave of the shard verified and forwarded, and calls put back after a
// reorg. Each is checked against the current state before it enters the pool.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { LRUCache } from 'lru-cache';
import { hexKey, same } from '../../protocol/bytes.ts';
import { RejectCode } from '../../protocol/errors.ts';
import { EnclaveError } from '../boundary/errors.ts';
import { accountKey } from '../state/state.ts';
import { precheck } from '../state/stf.ts';
import { openForwarded, sealForwarded, type ForwardedCall } from './forwarding.ts';
import type { CallPool } from './pool.ts';
import type { Rejection } from '../chain/block-builder.ts';
import type { StateKeyring } from '../keys/state-keys.ts';
import { currentEpoch, isCurrentMember, stfContext, type EnclaveContext } from '../context.ts';

export interface SubmitResult {
  hash?: string;
  status: 'ready' | 'future' | 'invalid';
  code?: string;
  message?: string;
}

/** How many calls of abandoned blocks went back to the pool, and those that did not. */
export interface RequeueResult {
  requeued: number;
  dropped: Rejection[];
}

const REORG_DROPPED_MESSAGE =
  'the block that included the call left the chain in a reorg, and the call is no longer held to put it back ' +
  'in the pool: submit it again';

/** Verified calls kept for requeueing after a reorg (newest win; a few hundred bytes each). */
const RECENT_CALLS_KEPT = 65_536;
/** Calls admitted between two turns of the enclave thread's other work. */
const ADMIT_SLICE = 256;
/** Batches at least this long are verified on the crypto threads. */
const THREADED_BATCH = 8;

export interface AdmissionDeps {
  ctx: EnclaveContext;
  pool: CallPool;
  keyring: StateKeyring;
  /** Resolves once no replay is rebuilding the state (refuses with REPLAYING after a long wait). */
  replayDone: () => Promise<void>;
}

export class Admission {
  private readonly ctx: EnclaveContext;
  private readonly pool: CallPool;
  private readonly keyring: StateKeyring;
  private readonly replayDone: () => Promise<void>;
  /**
   * An LRU, not a Map trimmed from its front: a Map's first key is found past every deleted slot, ~30 us at this size.
   */
  private readonly recentCalls = new LRUCache<string, ForwardedCall>({ max: RECENT_CALLS_KEPT });
  /** The shard as a Buffer once: compared with every call's. */
  private readonly shardBytes: Buffer;

  constructor(deps: AdmissionDeps) {
    this.ctx = deps.ctx;
    this.pool = deps.pool;
    this.keyring = deps.keyring;
    this.replayDone = deps.replayDone;
    this.shardBytes = Buffer.from(deps.ctx.opts.shard);
  }

  /** Verifies client calls and adds them to the pool. */
  async submit(requests: Uint8Array[], nowMs: number): Promise<SubmitResult[]> {
    return (await this.submitAndForward(requests, nowMs, new Set())).results;
  }

  /**
   * As submit; the accepted calls whose index is in `forward` come back re-sealed for the shard's other enclaves
   * (forwarding.ts).
   */
  async submitAndForward(
    requests: Uint8Array[],
    nowMs: number,
    forward: ReadonlySet<number>,
  ): Promise<{ results: SubmitResult[]; forwarded: Uint8Array | null }> {
    await this.replayDone();
    const ctx = this.ctx;
    const verified =
      requests.length >= THREADED_BATCH
        ? await ctx.crypto.verify(requests)
        : requests.map((r) => ctx.localVerifier.verify(r));
    const toForward: ForwardedCall[] = [];
    const results = await this.admitInTurns(verified, (v, i): SubmitResult => {
      if (!v.ok) return { status: 'invalid', code: v.code, message: v.message };
      if (!same(v.shard, this.shardBytes))
        return {
          hash: hexKey(v.hash),
          status: 'invalid',
          code: RejectCode.WRONG_SHARD,
          message: 'call is for another shard',
        };
      const r = this.admit({ hash: v.hash, nonce: v.nonce, call: v.call }, nowMs);
      if (r.status !== 'invalid' && forward.has(i))
        toForward.push({ hash: v.hash, nonce: v.nonce, call: v.call, callBytes: v.callBytes });
      return r;
    });
    const key = currentEpoch(ctx).keyId;
    const signer = { publicKey: ctx.keys.signingPublic, signingKey: ctx.keys.signingKey };
    const forwarded =
      toForward.length > 0
        ? sealForwarded({ id: key, key: this.keyring.forwardKey(key)! }, ctx.opts.shard, signer, toForward)
        : null;
    return { results, forwarded };
  }

  /**
   * Calls another enclave of the shard verified and forwarded: only a batch signed by a current member under the
   * current epoch opens (forwarding.ts); any other is refused whole. A replayed batch adds nothing: its calls are in
   * the pool (DUPLICATE) or executed (STALE_NONCE), or were dropped and are as valid as their signed client requests.
   */
  async submitForwarded(envelope: Uint8Array, nowMs: number): Promise<SubmitResult[]> {
    // The epoch is the head's: not that of a half-rebuilt state, which may be passing through an older one.
    await this.replayDone();
    const ctx = this.ctx;
    const epoch = currentEpoch(ctx).keyId;
    const key = this.keyring.forwardKey(epoch);
    if (!key) throw new EnclaveError('UNKNOWN_STATE_KEY', `the current state key ${epoch} is not held`);
    const opened = openForwarded(envelope, ctx.opts.shard, {
      current: { id: epoch, key },
      isMember: (k) => isCurrentMember(ctx, k),
    });
    if (!opened.ok) throw new EnclaveError(opened.code, opened.message);
    return this.admitInTurns(opened.calls, (c) => this.admit(c, nowMs));
  }

  /**
   * Puts verified calls seen recently back into the pool (calls of blocks a reorg abandoned). Those it cannot put back
   * are dropped, with why: their watchers get that as the final update instead of waiting forever.
   */
  async requeue(hashes: string[], nowMs: number): Promise<RequeueResult> {
    await this.replayDone();
    const dropped: Rejection[] = [];
    let requeued = 0;
    for (const hash of hashes) {
      const c = this.recentCalls.get(hash);
      if (!c) {
        dropped.push({ hash, code: RejectCode.REORG_DROPPED, message: REORG_DROPPED_MESSAGE });
        continue;
      }
      // Already pending again (forwarded or submitted anew): it is not dropped.
      if (this.pool.has(hash)) {
        requeued++;
        continue;
      }
      const r = this.admit(c, nowMs);
      if (r.status !== 'invalid') requeued++;
      else dropped.push({ hash, code: r.code!, message: r.message! });
    }
    return { requeued, dropped };
  }

  /**
   * Admits a batch a slice at a time, letting other messages run between slices: a batch of thousands
   * of calls takes tens of milliseconds, and a block import or proposal waiting behind it is what makes
   * blocks late under load. Each slice waits out a replay that began meanwhile (the state is rebuilt).
   */
  private async admitInTurns<T>(items: T[], admit: (item: T, index: number) => SubmitResult): Promise<SubmitResult[]> {
    const out: SubmitResult[] = [];
    for (let i = 0; i < items.length; i++) {
      if (i > 0 && i % ADMIT_SLICE === 0) {
        await nextTurn();
        await this.replayDone();
      }
      out.push(admit(items[i], i));
    }
    return out;
  }

  /** A verified call's checks against the current state, then into the pool (and the recent calls, for requeues). */
  private admit(c: ForwardedCall, nowMs: number): SubmitResult {
    const hash = hexKey(c.hash);
    const senderKey = accountKey(c.call.value.from);
    const sender = this.ctx.state.accountAt(senderKey);
    const pre = precheck(c.call, sender, stfContext(this.ctx));
    if (!pre.ok) return { hash, status: 'invalid', code: pre.code, message: pre.message };
    const r = this.pool.add({ hash, sender: senderKey, nonce: c.nonce, call: c.call, addedAtMs: nowMs }, sender.nonce);
    if (r.status === 'invalid') return { hash, status: 'invalid', code: r.code, message: r.message };
    this.recentCalls.set(hash, c);
    return { hash, status: r.status };
  }
}
