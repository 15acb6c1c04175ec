// Range sync: fetching a peer's canonical chain with blocks-by-range when it is ahead of us, when its
// final block is not in our chain, or when a gossiped block's ancestry is missing. A sync with one
// peer at a time; far behind (more than one request's worth), the onboarding sync fetches from every
// peer at once (sync/onboarding.ts). While either runs, this validateer does not author.
import type { Enclave } from '../enclave/boundary/host.ts';
import type { BlockStore } from '../sidechain/store.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { Logger } from 'pino';
import type { ChainStatus, Network } from '../p2p/network.ts';
import type { BlockImport } from '../chain/import.ts';
import type { HeadLock } from '../chain/head-lock.ts';
import type { HeadEvents } from '../chain/head-events.ts';
import { bootstrap } from '../chain/bootstrap.ts';
import { isBetter } from '../chain/fork-choice.ts';
import { describeBlock, type TreeBlock } from '../sidechain/block-tree.ts';
import { hexKey } from '../protocol/bytes.ts';
import { codeOf, hasCode } from '../protocol/errors.ts';
import { Onboarding } from './onboarding.ts';
import type { ProgressSink } from './progress.ts';

/** A peer that rate-limits our sync requests is asked again after a pause, this many times. */
const RATE_LIMITED_RETRIES = 20;
const RATE_LIMITED_BACKOFF_MS = 300;

export interface RangeSyncDeps {
  enclave: Enclave;
  store: BlockStore;
  metrics: Metrics;
  logger: Logger;
  lock: HeadLock;
  blockImport: Pick<BlockImport, 'precheck' | 'ingest' | 'tree'>;
  /** The network, once attached. */
  network: () => Network | null;
  anchor: () => { number: number; hash: Uint8Array } | null;
  isActive: () => boolean;
  penalize: (peer: string | null, reason: string, code?: string) => void;
  heads: HeadEvents;
  progress?: ProgressSink;
  onMissingStateKey?: () => Promise<unknown>;
}

export class RangeSync {
  private readonly deps: RangeSyncDeps;
  /** Blocks asked per blocks-by-range request. */
  private readonly batchSize: number;
  /** A range sync with one peer at a time (runRangeSync) is running. */
  private rangeSyncRunning = false;
  /** Peers to sync with, and the height to start looking at (their chain may be shorter than ours). */
  private readonly queued = new Map<string, number>();
  /** Peers' reported heads. */
  private readonly peerHeads = new Map<string, number>();
  private onboardingSync: Onboarding | null = null;
  private stopped = false;

  constructor(deps: RangeSyncDeps, batchSize: number) {
    this.deps = deps;
    this.batchSize = batchSize;
  }

  /** The onboarding sync is running (it owns the head). */
  onboarding(): boolean {
    return this.onboardingSync !== null;
  }

  /** Fetching blocks above our head: a block authored now, on a head we know to be behind, would only fork. */
  busy(): boolean {
    return this.rangeSyncRunning || this.onboardingSync !== null;
  }

  queue(peer: string, from: number): void {
    this.queued.set(peer, Math.min(from, this.queued.get(peer) ?? from));
  }

  /** Runs the queued syncs (in the background). */
  fetchQueued(): void {
    if (this.queued.size > 0) void this.runRangeSync();
  }

  /** A peer's status: if it is ahead, or final where we are not, fetch its chain. */
  onPeerStatus(peer: string, s: ChainStatus): void {
    void (async () => {
      if (s.headHash.every((x) => x === 0)) return; // the peer has no chain yet
      this.peerHeads.set(peer, s.headNumber);
      if (this.onboardingSync) return this.onboardingSync.addPeer(peer, s.headNumber);
      const head = this.deps.store.head();
      if (s.headNumber - (head?.number ?? -1) > this.batchSize) return this.onboard();
      const ahead = !head || isBetter({ number: s.headNumber, hash: s.headHash }, head);
      // Its final block is not in our chain: we are on a branch that lost (e.g. after a partition).
      const finalElsewhere =
        s.finalizedHash.some((x) => x !== 0) &&
        !(await this.deps.store.isCanonical(s.finalizedNumber, s.finalizedHash));
      if (!ahead && !finalElsewhere) return;
      this.queue(peer, Math.min(s.headNumber, (head?.number ?? -1) + 1));
      await this.runRangeSync();
    })().catch((err: Error) => this.deps.logger.debug({ peer, err: err.message }, 'status handling failed'));
  }

  /**
   * Far behind (more than one request's worth of blocks): fetch from every peer ahead of us at once,
   * then hand over to the ordinary sync and gossip for the last blocks.
   */
  private async onboard(): Promise<void> {
    const { store, logger } = this.deps;
    const network = this.deps.network();
    if (!network || this.rangeSyncRunning) return; // an ordinary sync is moving the head: it finishes the job
    const onboarding = new Onboarding(
      {
        enclave: this.deps.enclave,
        store,
        metrics: this.deps.metrics,
        logger,
        network,
        anchor: this.deps.anchor,
        heads: this.deps.heads,
        progress: this.deps.progress,
        serialize: (fn) => this.deps.lock.run(fn),
        onMissingStateKey: this.deps.onMissingStateKey,
      },
      { batch: this.batchSize, perPeer: 2, logEveryMs: 2000 },
    );
    this.onboardingSync = onboarding;
    // Every connected peer's head, fresh: the more peers serve, the faster this goes.
    const connected = network.connectedPeers();
    await Promise.allSettled(
      connected.map((p) => network.requestStatus(p).then((st) => this.peerHeads.set(p, st.headNumber))),
    );
    const head = store.head()?.number ?? -1;
    const peers = new Map([...this.peerHeads].filter(([p, n]) => connected.includes(p) && n > head));
    try {
      if (peers.size === 0) return;
      const best = [...peers].reduce((a, b) => (b[1] > a[1] ? b : a))[0];
      if (!(await this.headOnChainOf(network, best))) {
        // The ordinary sync steps back to the fork point and switches branches; once on their chain
        // and still far behind, it hands back to the onboarding sync (runRangeSync).
        logger.info({ peer: best, head }, 'our head is not on the chain of the peers ahead: finding the fork point');
        this.queue(best, head);
        peers.clear(); // no other peer's sync queued below: this one finds the fork point
        return;
      }
      const r = await onboarding.run(peers);
      const top = store.head();
      if (top && r.blocks > 0) {
        const bytes = await store.blockByNumber(top.number);
        const slot = bytes ? describeBlock(bytes, null, null).block.slot : null;
        this.deps.heads.emit({ number: top.number, hash: top.hash, slot, cause: 'synced', status: null, calls: [] });
      }
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'onboarding sync failed');
      await this.deps.lock.run(() => bootstrap(this.deps, null)); // the enclave may be ahead of the store
    } finally {
      this.onboardingSync = null;
    }
    for (const [p] of peers) this.queue(p, (store.head()?.number ?? -1) + 1);
    await this.runRangeSync();
  }

  /**
   * Whether our head is on `peer`'s chain: its block at our head's number is ours. A head that is not
   * (a block we authored or imported that lost, e.g. while cut off) cannot be extended by the
   * onboarding sync: the first block it fetched would not be a child of ours, and every honest peer
   * would be dropped for it.
   */
  private async headOnChainOf(net: Network, peer: string): Promise<boolean> {
    const head = this.deps.store.head();
    if (!head) return true;
    try {
      const [theirs] = await this.rangeWithBackoff(net, peer, head.number, 1);
      // Nothing served, or not decodable: the onboarding sync finds out and deals with the peer.
      return !theirs || describeBlock(theirs, peer, null).block.hash === hexKey(head.hash);
    } catch {
      return true;
    }
  }

  private async runRangeSync(): Promise<void> {
    if (this.rangeSyncRunning || this.onboardingSync) return;
    this.rangeSyncRunning = true;
    let farBehind = false;
    try {
      while (this.queued.size > 0 && !this.stopped) {
        const [peer, from] = this.queued.entries().next().value!;
        this.queued.delete(peer);
        const r = await this.syncWith(peer, from).catch((err: Error) =>
          this.deps.logger.info({ peer, code: codeOf(err), err: err.message }, 'sync with peer failed'),
        );
        if (r === 'far_behind') {
          farBehind = true;
          break;
        }
      }
    } finally {
      this.rangeSyncRunning = false;
    }
    // On the peers' chain again (e.g. after stepping back from a branch that lost), but far behind:
    // the onboarding sync fetches the rest from every peer at once.
    if (farBehind && !this.stopped) await this.onboard();
  }

  /**
   * Fetches the peer's canonical blocks above our head; steps back to find the fork point if they do
   * not connect. 'far_behind': our head is on the peer's chain, more than a request below its head.
   */
  private async syncWith(peer: string, start: number): Promise<'far_behind' | void> {
    const { store, blockImport } = this.deps;
    const net = this.deps.network();
    if (!net) return;
    // Never look below our own final block; the last anchor may be on a branch we do not have yet.
    const anchor = this.deps.anchor();
    const floor = anchor && (await store.isCanonical(anchor.number, anchor.hash)) ? anchor.number + 1 : 0;
    let from = Math.max(floor, Math.min(start, (store.head()?.number ?? -1) + 1));
    let back = 16;
    while (!this.stopped) {
      const bytes = await this.rangeWithBackoff(net, peer, from);
      if (bytes.length === 0) return;
      const blocks: TreeBlock[] = [];
      for (const x of bytes) {
        try {
          const { block, signed } = describeBlock(x, peer, null);
          const pre = await blockImport.precheck(block, signed);
          if (typeof pre === 'object') {
            this.deps.penalize(peer, 'invalid block in blocks-by-range', pre.invalid);
            return;
          }
          blocks.push(block);
        } catch {
          this.deps.penalize(peer, 'undecodable block in blocks-by-range', 'DECODE_FAILED');
          return;
        }
      }
      const first = blocks[0];
      const connected =
        first.number === 0 ||
        blockImport.tree.has(first.parent) ||
        (await store.isCanonical(first.number - 1, Buffer.from(first.parent, 'hex')));
      if (!connected) {
        if (from <= floor) {
          this.deps.logger.warn({ peer, from }, 'peer chain does not connect above the last anchor');
          return;
        }
        from = Math.max(floor, from - back);
        back *= 2;
        continue;
      }
      const r = await blockImport.ingest(blocks);
      if (r.invalid.length > 0 || r.failed.length > 0 || bytes.length < this.batchSize) return;
      const head = store.head();
      const headHex = head && hexKey(head.hash);
      const peerHead = this.peerHeads.get(peer) ?? -1;
      if (head && blocks.some((b) => b.hash === headHex) && peerHead - head.number > this.batchSize)
        return 'far_behind';
      from = blocks.at(-1)!.number + 1;
    }
  }

  /** blocks-by-range, waiting and asking again while the peer says we ask too often. */
  private async rangeWithBackoff(
    net: Network,
    peer: string,
    from: number,
    count = this.batchSize,
  ): Promise<Uint8Array[]> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await net.requestBlocksByRange(peer, from, count);
      } catch (err) {
        if (!hasCode(err, 'P2P_RATE_LIMITED') || attempt >= RATE_LIMITED_RETRIES || this.stopped) throw err;
        await new Promise((r) => setTimeout(r, RATE_LIMITED_BACKOFF_MS));
      }
    }
  }

  stop(): void {
    this.stopped = true;
    this.onboardingSync?.stop();
  }
}
