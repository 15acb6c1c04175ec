// Onboarding sync: a validateer far behind (a new member, or one back after a long outage) fetches
// the canonical chain from several peers at once with blocks-by-range, a few requests in flight per
// peer, and applies it in order: the enclave verifies each run of blocks (signatures on its crypto
// threads), the store appends it in one atomic batch. Every batch is durable before the next is
// applied, so a kill -9 resumes from the stored head instead of starting over. A peer that fails a
// request, times out or serves blocks that do not verify is dropped and its ranges go to the others.
//
// The work is a list of Batches (sync/batch.ts) with explicit states, handed to SyncPeers by one loop
// that also applies them. That loop waits only while a request is in flight; when none is and the
// next block cannot be fetched from anyone (every peer dropped, or the peers left are all below it),
// the sync ends with a reason instead of waiting: every run ends, and authoring resumes.
import type { Enclave } from '../enclave/boundary/host.ts';
import type { BlockStore } from '../sidechain/store.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { Network } from '../p2p/network.ts';
import type { Logger } from 'pino';
import type { ProgressSink } from './progress.ts';
import type { HeadEvents } from '../chain/head-events.ts';
import { describeBlock } from '../sidechain/block-tree.ts';
import { hexKey } from '../protocol/bytes.ts';
import { ValidateerError, codeOf, hasCode, provesBlockInvalid } from '../protocol/errors.ts';
import { Batch, SyncPeer } from './batch.ts';

export interface OnboardingDeps {
  enclave: Enclave;
  store: BlockStore;
  metrics: Metrics;
  logger: Logger;
  network: Pick<Network, 'requestBlocksByRange' | 'penalize'>;
  /** Told of each durable run ('syncing'). */
  heads: Pick<HeadEvents, 'emit'>;
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

/** `reason`: why the sync stopped before the target (null when done). */
export interface OnboardingResult {
  from: number;
  to: number;
  blocks: number;
  ms: number;
  peersDropped: string[];
  reason: string | null;
}

const RATE_LIMITED_BACKOFF_MS = 250;

export class Onboarding {
  private readonly deps: OnboardingDeps;
  private readonly options: OnboardingOptions;
  private stopped = false;
  private stopReason: string | null = null;
  /** Set once run() returned: late replies are ignored. */
  private finished = false;
  private readonly peers = new Map<string, SyncPeer>();
  private readonly droppedPeers: string[] = [];
  /** Ranges not applied yet, in order and contiguous: they cover [cursor, nextStart). */
  private batches: Batch[] = [];
  /** Next block number to apply, and the next one not yet in a batch. */
  private cursor = 0;
  private nextStart = 0;
  private target = -1;
  /** Batches are made at most this many blocks ahead of the cursor. */
  private window = 0;
  private changed = Promise.withResolvers<void>();
  /** The store write in flight (a run is stored while the enclave verifies the next), and its last block. */
  private storing: Promise<void> = Promise.resolve();
  private storingThrough: number | null = null;
  private lastLog = { at: 0, cursor: 0 };

  constructor(deps: OnboardingDeps, options: OnboardingOptions) {
    this.deps = deps;
    this.options = options;
  }

  /** A peer's reported head while the sync runs: it serves from now on (no-op when not running). */
  addPeer(peer: string, head: number): void {
    if (this.finished || this.droppedPeers.includes(peer) || this.cursor > this.target) return;
    const known = this.peers.get(peer);
    if (known) known.head = Math.max(known.head, head);
    else this.peers.set(peer, new SyncPeer(peer, head));
    this.deps.metrics.syncPeers.set(this.activePeers());
    this.wake();
  }

  stop(): void {
    this.stopped = true;
    this.wake();
  }

  /**
   * Syncs from `peers` (peer id -> reported head number) up to the highest of their heads. The store
   * must hold at least block 0 (fetched like any other block otherwise is fine too: from -1 + 1).
   */
  async run(peers: Map<string, number>): Promise<OnboardingResult> {
    const { store, metrics, logger } = this.deps;
    const started = performance.now();
    const from = (store.head()?.number ?? -1) + 1;
    this.cursor = this.nextStart = from;
    this.target = Math.max(...peers.values());
    for (const [id, head] of peers) this.peers.set(id, new SyncPeer(id, head));
    // Fetched blocks wait until their turn: at most this many blocks ahead of the cursor.
    this.window = this.options.batch * this.options.perPeer * Math.max(1, peers.size) * 2;
    this.lastLog = { at: performance.now(), cursor: from };
    metrics.syncTargetNumber.set(this.target);
    metrics.syncPeers.set(peers.size);
    this.deps.progress?.start(this.target + 1, from);
    logger.info({ from, target: this.target, peers: peers.size }, 'onboarding sync started');
    try {
      await this.loop();
      await this.deps.serialize(() => this.storing); // the last run's write
    } finally {
      this.finished = true;
      for (const b of this.batches) b.fail();
      this.deps.progress?.stop();
      metrics.syncPeers.set(0);
    }
    const ms = performance.now() - started;
    const done = this.cursor - from;
    const reason = this.cursor > this.target ? null : (this.stopReason ?? 'stopped');
    const fields = {
      from,
      to: this.cursor - 1,
      blocks: done,
      ms: Math.round(ms),
      blocksPerSecond: Math.round((done * 1000) / Math.max(1, ms)),
      dropped: this.droppedPeers,
    };
    logger.info(
      reason === null ? fields : { ...fields, reason },
      reason === null ? 'onboarding sync done' : 'onboarding sync stopped',
    );
    return { from, to: this.cursor - 1, blocks: done, ms, peersDropped: [...this.droppedPeers], reason };
  }

  /** Hands out ranges and applies them in order until the target, a stop, or nobody can serve the next block. */
  private async loop(): Promise<void> {
    while (!this.stopped && this.cursor <= this.target) {
      this.assignDownloads();
      const next = this.batches[0];
      if (next?.state === 'awaiting_processing') {
        await this.process(next);
        continue;
      }
      if (this.requestsInFlight() === 0) {
        // Nothing on its way and nothing more to ask: waiting would be forever.
        this.stopReason = this.activePeers() === 0 ? 'no peers left' : `no peer serves block #${this.cursor}`;
        return;
      }
      await this.changed.promise;
    }
  }

  private assignDownloads(): void {
    for (const peer of this.peers.values()) {
      while (peer.hasCapacity(this.options.perPeer)) {
        const batch = this.batchFor(peer);
        if (!batch) break;
        void this.download(peer, batch);
      }
    }
  }

  /** A range `peer` can serve: one that came back first, else a new one above the others (within the window). */
  private batchFor(peer: SyncPeer): Batch | null {
    const waiting = this.batches.find((b) => b.state === 'awaiting_download' && b.start <= peer.head);
    if (waiting) return waiting;
    const start = this.nextStart;
    if (start > this.target || start > peer.head || start >= this.cursor + this.window) return null;
    const batch = new Batch(start, Math.min(this.options.batch, this.target - start + 1));
    this.nextStart += batch.count;
    this.batches.push(batch);
    return batch;
  }

  private async download(peer: SyncPeer, batch: Batch): Promise<void> {
    const { start, count } = batch;
    batch.startDownload(peer.id);
    peer.inFlight++;
    try {
      const blocks = (await this.deps.network.requestBlocksByRange(peer.id, start, count)).slice(0, count);
      if (this.finished) return;
      const first = blocks.length > 0 ? describeBlock(blocks[0], peer.id, null).block.number : -1;
      if (blocks.length === 0 || first !== start)
        throw new ValidateerError('BAD_RANGE', `served ${blocks.length} blocks from #${first} for #${start}`);
      const rest = batch.downloaded(blocks);
      if (rest) this.batches.splice(this.batches.indexOf(batch) + 1, 0, rest);
    } catch (err) {
      if (this.finished) return;
      if (hasCode(err, 'P2P_RATE_LIMITED')) {
        // The peer asks us to slow down: not a fault. Another peer may take the range meanwhile.
        batch.retry({ countAttempt: false });
        this.wake();
        await new Promise((res) => setTimeout(res, RATE_LIMITED_BACKOFF_MS));
        return;
      }
      batch.retry();
      const code = codeOf(err);
      this.drop(
        peer,
        `blocks-by-range ${start}+${count} failed: ${code ?? (err as Error).message}`,
        hasCode(err, 'BAD_RANGE', 'P2P_BAD_RESPONSE'),
      );
    } finally {
      peer.inFlight--;
      this.wake();
    }
  }

  /** Verifies and applies the batch at the cursor. */
  private async process(batch: Batch): Promise<void> {
    const { store, logger } = this.deps;
    const cursor = this.cursor;
    const peer = this.peers.get(batch.peer!) ?? null;
    const blocks = batch.blocks;
    batch.startProcessing();
    const anchor = this.deps.anchor();
    const anchorAt = anchor ? anchor.number - cursor : -1;
    if (
      anchor &&
      anchorAt >= 0 &&
      anchorAt < blocks.length &&
      hexKey(describeBlock(blocks[anchorAt], null, null).block.hashBytes) !== hexKey(anchor.hash)
    ) {
      batch.processed(0);
      if (peer) this.drop(peer, `its block #${anchor.number} is not the anchored one`, true);
      return;
    }
    const r = await this.deps.serialize(() => this.importAndStore(cursor, blocks));
    if (!r) {
      logger.warn(
        { expected: cursor - 1, head: store.head()?.number ?? -1 },
        'onboarding sync: the head moved elsewhere; stopping',
      );
      this.stopReason = 'the head moved elsewhere';
      this.stopped = true;
      return;
    }
    this.cursor += r.applied.length;
    batch.processed(r.applied.length);
    if (batch.state === 'done') this.batches.shift();
    if (r.failure) {
      const { code, message } = r.failure;
      // An epoch's key sealed before our registration counted: not the peer's fault; ask for the keys again.
      if (code === 'STATE_KEY_UNKNOWN' && this.deps.onMissingStateKey) await this.deps.onMissingStateKey();
      else if (provesBlockInvalid(code)) {
        if (peer) this.drop(peer, `block #${this.cursor} does not verify: ${code}`, true);
      } else {
        // Our enclave failed (INTERNAL, ...), not the block: no peer is blamed; another would fail the same way.
        this.deps.metrics.countImport('local_fault');
        logger.error({ number: this.cursor, peer: peer?.id, code, err: message }, 'onboarding sync: local fault');
        this.stopReason = `local fault at block #${this.cursor}: ${code}`;
        this.stopped = true;
      }
    }
    this.logProgress();
  }

  /**
   * Under the chain's lock: the enclave verifies `blocks` while the previous run's store write finishes;
   * then this run's write starts. null if the head is no longer where this sync left it.
   */
  private async importAndStore(cursor: number, blocks: Uint8Array[]) {
    const { store, metrics } = this.deps;
    // the ordinary sync moved the head meanwhile
    if ((this.storingThrough ?? store.head()?.number ?? -1) !== cursor - 1) return null;
    const imported = this.deps.enclave.call('importBlocks', { blocks, nowMs: Date.now() });
    try {
      await this.storing;
    } finally {
      this.storingThrough = null;
    }
    const res = await imported;
    // The enclave returns each block's call hashes: no second decode here.
    const applied = blocks.slice(0, res.imported.length).map((bytes, i) => ({
      number: res.imported[i].number,
      hash: res.imported[i].hash,
      bytes,
      callHashes: res.imported[i].calls.map((c) => Buffer.from(c, 'hex')),
    }));
    // Counted once durable: the sync metrics and the head are what a restart continues from.
    this.storing = store.appendMany(applied).then(() => {
      const last = applied.at(-1);
      if (!last) return;
      metrics.syncBlocks.inc(applied.length);
      this.deps.heads.emit({
        number: last.number,
        hash: last.hash,
        slot: null,
        cause: 'syncing',
        status: res.status,
        calls: [],
      });
    });
    this.storing.catch(() => undefined); // awaited (and thrown) by the next step or at the end
    if (applied.length > 0) this.storingThrough = applied[applied.length - 1].number;
    return { ...res, applied };
  }

  private logProgress(): void {
    const now = performance.now();
    if (now - this.lastLog.at < this.options.logEveryMs && this.cursor <= this.target) return;
    const rate = ((this.cursor - this.lastLog.cursor) * 1000) / Math.max(1, now - this.lastLog.at);
    const eta = rate > 0 ? Math.round((this.target + 1 - this.cursor) / rate) : null;
    const fields = {
      head: this.cursor - 1,
      target: this.target,
      blocksPerSecond: Math.round(rate),
      etaSeconds: eta,
      peers: this.activePeers(),
    };
    this.deps.logger.info(fields, 'onboarding sync');
    this.deps.progress?.update(this.cursor, rate);
    this.lastLog = { at: now, cursor: this.cursor };
  }

  private drop(peer: SyncPeer, reason: string, penalize: boolean): void {
    if (peer.dropped) return;
    peer.dropped = true;
    this.droppedPeers.push(peer.id);
    this.deps.metrics.syncPeers.set(this.activePeers());
    this.deps.logger.warn({ peer: peer.id, reason }, 'onboarding sync: peer dropped');
    if (penalize) this.deps.network.penalize(peer.id, reason);
  }

  private activePeers(): number {
    let n = 0;
    for (const p of this.peers.values()) if (!p.dropped) n++;
    return n;
  }

  private requestsInFlight(): number {
    let n = 0;
    for (const p of this.peers.values()) n += p.inFlight;
    return n;
  }

  private wake(): void {
    this.changed.resolve();
    this.changed = Promise.withResolvers<void>();
  }
}
