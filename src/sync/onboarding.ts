// Onboarding sync: a validateer far behind (a new member, or one back after a long outage) fetches
// the canonical chain from several peers at once with blocks-by-range, a few requests in flight per
// peer, and applies it in order: the enclave verifies each run of blocks (signatures on its crypto
// threads), the store appends it in one atomic batch. Every batch is durable before the next is
// applied, so a kill -9 resumes from the stored head instead of starting over. A peer that fails a
// request, times out or serves blocks that do not verify is dropped and its ranges go to the others.
import type { Enclave } from '../enclave/boundary/host.ts';
import type { BlockStore } from '../sidechain/store.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { Network } from '../p2p/network.ts';
import { describeBlock } from '../sidechain/block-tree.ts';
import type { Logger } from '../node/logger.ts';
import type { ProgressSink } from './progress.ts';
import { hexKey } from '../protocol/bytes.ts';

export interface OnboardingDeps {
  enclave: Enclave;
  store: BlockStore;
  metrics: Metrics;
  logger: Logger;
  network: Network;
  /** The last anchored block: the fetched chain must contain it. */
  anchor: () => { number: number; hash: Uint8Array } | null;
  /** Progress sink (a terminal progress bar); log lines are written either way. */
  progress?: ProgressSink;
  /** Runs each apply step under the chain's lock (the head moves only there). */
  serialize: <T>(fn: () => Promise<T>) => Promise<T>;
  /** A block's state key epoch was not sealed to this enclave: ask a member for the shard's keys again. */
  onMissingStateKey?: () => Promise<unknown>;
}

export interface OnboardingOptions {
  /** Blocks per request. */
  batch: number;
  /** Requests in flight per peer. */
  perPeer: number;
  /** Log a progress line this often. */
  logEveryMs: number;
}

export interface OnboardingResult { from: number; to: number; blocks: number; ms: number; peersDropped: string[] }

interface Range { start: number; count: number }

const RATE_LIMITED_BACKOFF_MS = 250;

export class Onboarding {
  private readonly d: OnboardingDeps;
  private readonly o: OnboardingOptions;
  private stopped = false;

  constructor(deps: OnboardingDeps, opts: OnboardingOptions) {
    this.d = deps;
    this.o = opts;
  }

  private join: ((peer: string, head: number) => void) | null = null;

  /** A peer's reported head while the sync runs: it serves from now on (no-op when not running). */
  addPeer(peer: string, head: number): void {
    this.join?.(peer, head);
  }

  stop(): void {
    this.stopped = true;
  }

  /**
   * Syncs from `peers` (peer id -> reported head number) up to the highest of their heads. The store
   * must hold at least block 0 (fetched like any other block otherwise is fine too: from -1 + 1).
   */
  async run(peers: Map<string, number>): Promise<OnboardingResult> {
    const { store, metrics, logger } = this.d;
    const started = performance.now();
    const from = (store.head()?.number ?? -1) + 1;
    const target = Math.max(...peers.values());
    const active = new Map(peers);
    const dropped: string[] = [];
    const requeued: Range[] = [];
    const ready = new Map<number, { blocks: Uint8Array[]; peer: string }>();
    let next = from; // next block number not yet handed to a fetcher
    let cursor = from; // next block number to apply
    // Fetched blocks wait in `ready` until their turn: at most this many blocks ahead of the applier.
    const window = this.o.batch * this.o.perPeer * Math.max(1, active.size) * 2;
    let changed = Promise.withResolvers<void>();
    const signal = () => { changed.resolve(); changed = Promise.withResolvers<void>(); };
    const waitForChange = () => changed.promise;

    metrics.syncTargetNumber.set(target);
    metrics.syncPeers.set(active.size);
    this.d.progress?.start(target + 1, from);
    logger.info({ from, target, peers: active.size }, 'onboarding sync started');

    const drop = (peer: string, reason: string, penalize: boolean) => {
      if (!active.delete(peer)) return;
      dropped.push(peer);
      metrics.syncPeers.set(active.size);
      logger.warn({ peer, reason }, 'onboarding sync: peer dropped');
      if (penalize) this.d.network.penalize(peer, reason);
    };
    const take = (peerHead: number): Range | null => {
      const i = requeued.findIndex((r) => r.start <= peerHead);
      if (i >= 0) return requeued.splice(i, 1)[0];
      if (next > target || next > peerHead || next >= cursor + window) return null;
      const r = { start: next, count: Math.min(this.o.batch, target - next + 1) };
      next += r.count;
      return r;
    };

    const fetcher = async (peer: string): Promise<void> => {
      while (!this.stopped && active.has(peer) && cursor <= target) {
        const r = take(active.get(peer)!);
        if (!r) {
          // Nothing to hand out now; ranges may come back from a dropped peer.
          await waitForChange();
          continue;
        }
        try {
          const blocks = await this.d.network.requestBlocksByRange(peer, r.start, r.count);
          const first = blocks.length > 0 ? describeBlock(blocks[0], peer, null).block.number : -1;
          if (blocks.length === 0 || first !== r.start) throw Object.assign(new Error(`served ${blocks.length} blocks from #${first} for #${r.start}`), { code: 'BAD_RANGE' });
          if (blocks.length < r.count) requeued.push({ start: r.start + blocks.length, count: r.count - blocks.length });
          ready.set(r.start, { blocks, peer });
        } catch (err) {
          requeued.push(r);
          const code = (err as { code?: string }).code;
          if (code === 'P2P_RATE_LIMITED') {
            // The peer asks us to slow down: not a fault.
            signal();
            await new Promise((res) => setTimeout(res, RATE_LIMITED_BACKOFF_MS));
            continue;
          }
          drop(peer, `blocks-by-range ${r.start}+${r.count} failed: ${code ?? (err as Error).message}`, code === 'BAD_RANGE' || code === 'P2P_BAD_RESPONSE');
        }
        signal();
      }
    };

    // A run is stored while the enclave verifies the next one; each step waits for the previous
    // store write before it returns, so the store never lags the enclave by more than one run.
    let storing: Promise<void> = Promise.resolve();
    let storingThrough: number | null = null; // last block number of the write in flight
    const applier = async (): Promise<void> => {
      let lastLog = performance.now();
      let lastDone = cursor;
      while (!this.stopped && cursor <= target) {
        const part = ready.get(cursor);
        if (!part) {
          if (active.size === 0) break;
          await waitForChange();
          continue;
        }
        ready.delete(cursor);
        const anchor = this.d.anchor();
        let blocks = part.blocks;
        const anchorAt = anchor ? anchor.number - cursor : -1;
        if (anchor && anchorAt >= 0 && anchorAt < blocks.length && hexKey(describeBlock(blocks[anchorAt], null, null).block.hashBytes) !== hexKey(anchor.hash)) {
          requeued.push({ start: cursor, count: blocks.length });
          drop(part.peer, `its block #${anchor.number} is not the anchored one`, true);
          signal();
          continue;
        }
        const r = await this.d.serialize(async () => {
          if ((storingThrough ?? store.head()?.number ?? -1) !== cursor - 1) return null; // the ordinary sync moved the head meanwhile
          const imported = this.d.enclave.call('importBlocks', { blocks, nowMs: Date.now() });
          try {
            await storing;
          } finally {
            storingThrough = null;
          }
          const res = await imported;
          // The enclave returns each block's call hashes: no second decode here.
          const applied = blocks.slice(0, res.imported.length).map((bytes, i) => ({
            number: res.imported[i].number, hash: res.imported[i].hash, bytes, callHashes: res.imported[i].calls.map((c) => Buffer.from(c, 'hex')),
          }));
          // Counted once durable: the sync metrics and the head are what a restart continues from.
          storing = store.appendMany(applied).then(() => {
            if (applied.length === 0) return;
            const last = applied[applied.length - 1].number;
            metrics.syncBlocks.inc(applied.length);
            metrics.sidechainHeadNumber.set(last);
            metrics.eventLogEntries.set(last + 1);
          });
          storing.catch(() => undefined); // awaited (and thrown) by the next step or at the end
          if (applied.length > 0) storingThrough = applied[applied.length - 1].number;
          return { ...res, applied };
        });
        if (!r) {
          logger.warn({ expected: cursor - 1, head: store.head()?.number ?? -1 }, 'onboarding sync: the head moved elsewhere; stopping');
          this.stopped = true;
          break;
        }
        if (r.applied.length > 0) {
          cursor += r.applied.length;
          metrics.observeState(r.status);
        }
        if (r.failure) {
          blocks = blocks.slice(r.imported.length);
          requeued.push({ start: cursor, count: blocks.length });
          // An epoch's key sealed before our registration counted: not the peer's fault; ask for the keys again.
          if (r.failure.code === 'STATE_KEY_UNKNOWN' && this.d.onMissingStateKey) await this.d.onMissingStateKey();
          else drop(part.peer, `block #${cursor} does not verify: ${r.failure.code}`, true);
        }
        const now = performance.now();
        if (now - lastLog >= this.o.logEveryMs || cursor > target) {
          const rate = ((cursor - lastDone) * 1000) / Math.max(1, now - lastLog);
          const eta = rate > 0 ? Math.round((target + 1 - cursor) / rate) : null;
          logger.info({ head: cursor - 1, target, blocksPerSecond: Math.round(rate), etaSeconds: eta, peers: active.size }, 'onboarding sync');
          this.d.progress?.update(cursor, rate);
          lastLog = now;
          lastDone = cursor;
        }
        signal();
      }
      await this.d.serialize(() => storing);
      signal();
    };

    const fetchers = [...active.keys()].flatMap((p) => Array.from({ length: this.o.perPeer }, () => fetcher(p)));
    // Peers that connect (or report a head) while this runs serve too; dropped ones do not come back.
    this.join = (peer, head) => {
      if (active.has(peer) || dropped.includes(peer) || cursor > target) return;
      active.set(peer, head);
      metrics.syncPeers.set(active.size);
      for (let i = 0; i < this.o.perPeer; i++) fetchers.push(fetcher(peer));
    };
    await applier();
    this.join = null;
    // Settled one by one: the list grows while peers join.
    for (let i = 0; i < fetchers.length; i++) await fetchers[i];
    this.d.progress?.stop();
    metrics.syncPeers.set(0);
    const ms = performance.now() - started;
    const done = cursor - from;
    logger.info({ from, to: cursor - 1, blocks: done, ms: Math.round(ms), blocksPerSecond: Math.round((done * 1000) / Math.max(1, ms)), dropped }, cursor > target ? 'onboarding sync done' : 'onboarding sync stopped');
    return { from, to: cursor - 1, blocks: done, ms, peersDropped: dropped };
  }
}
