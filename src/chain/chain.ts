// The sidechain as seen by one validateer in a set, wired from small parts: the slot author
// (consensus/slot-author.ts), block import with fork choice and reorgs (chain/import.ts), gossip
// validation (chain/gossip-validation.ts) and the range and onboarding syncs (sync/range-sync.ts).
// Every change of the head runs under one lock (chain/head-lock.ts), so the enclave's head and the
// store's head move together.
import type { Enclave } from '../enclave/boundary/host.ts';
import type { BlockStore } from '../sidechain/store.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { Logger } from 'pino';
import type { ChainStatus, Network, Validation } from '../p2p/network.ts';
import type { CallRelay } from '../calls/relay.ts';
import type { ProgressSink } from '../sync/progress.ts';
import { ParentWait } from '../consensus/parent-wait.ts';
import { SlotAuthor } from '../consensus/slot-author.ts';
import { RangeSync } from '../sync/range-sync.ts';
import { hexKey } from '../protocol/bytes.ts';
import { HeadLock } from './head-lock.ts';
import { SnapshotPolicy } from './snapshots.ts';
import { BlockImport } from './import.ts';
import { GossipValidation } from './gossip-validation.ts';
import type { HeadEvents } from './head-events.ts';

export interface ChainDeps {
  enclave: Enclave;
  store: BlockStore;
  metrics: Metrics;
  logger: Logger;
  relay: CallRelay;
  signingKey: Uint8Array;
  /** Genesis endowments, for when this validateer creates block 0. */
  genesisBalances: () => Promise<{ account: Uint8Array; amount: bigint }[]>;
  /**
   * Whether a signing key (0x hex) is or was an authority of the shard, for a block built on that parentchain block
   * (null: genesis). false: rejected unverified, its sender penalised. undefined = cannot tell yet (the registration
   * may not be finalized here): dropped unverified without blame.
   */
  isAuthority: (key: string, parentchainNumber: number | null) => boolean | undefined;
  /** The last anchored block (final; possibly not in our chain yet), null before the first anchor. */
  anchor: () => { number: number; hash: Uint8Array } | null;
  /** Emitted to whenever the head moves (authored, imported, reorg, onboarding sync). */
  heads: HeadEvents;
  /** Onboarding progress bar (a terminal); log lines and metrics are written either way. */
  progress?: ProgressSink;
  /** A block's state key epoch was not sealed to this enclave: ask a member for the shard's keys again. */
  onMissingStateKey?: () => Promise<unknown>;
}

export interface ChainOptions {
  slotDurationMs: number;
  maxCalls: number;
  snapshotInterval: number;
  snapshotsKept: number;
  shard: Uint8Array;
  /** Blocks asked per blocks-by-range request while syncing. */
  rangeBatch: number;
  /** Side and pending blocks kept in memory. */
  treeLimit: number;
}

export class ChainService {
  private readonly deps: ChainDeps;
  private readonly lock = new HeadLock();
  /** The head's slot and the blocks under import: the slot's author waits for its parent. */
  private readonly parentWait = new ParentWait();
  private readonly blockImport: BlockImport;
  private readonly gossip: GossipValidation;
  private readonly rangeSync: RangeSync;
  private readonly author: SlotAuthor;
  private network: Network | null = null;
  /** Off until the enclave holds the shard secrets (a joining validateer could not decrypt a block). */
  private active = true;
  /** Set by stop(): nothing is imported, authored or synced after it. */
  private stopped = false;

  constructor(deps: ChainDeps, options: ChainOptions) {
    this.deps = deps;
    const { lock, parentWait } = this;
    // The relay settles the head block's calls; the author's wait for its parent learns the head's slot.
    deps.heads.on((e) => deps.relay.onHead(e));
    deps.heads.on((e) => {
      if (e.slot !== null) parentWait.headIs(e.slot);
    });
    const snapshots = new SnapshotPolicy(deps, options.snapshotsKept);
    const penalize = (peer: string | null, reason: string, code?: string) => this.penalize(peer, reason, code);
    // Import asks the range sync for missing ancestry; the range sync imports what it fetched.
    const ancestry = {
      onboarding: () => this.rangeSync.onboarding(),
      queue: (peer: string, from: number) => this.rangeSync.queue(peer, from),
      fetchQueued: () => this.rangeSync.fetchQueued(),
    };
    this.blockImport = new BlockImport(
      { ...deps, lock, snapshots, ancestry, penalize },
      {
        shard: options.shard,
        slotDurationMs: options.slotDurationMs,
        snapshotInterval: options.snapshotInterval,
        treeLimit: options.treeLimit,
      },
    );
    const isActive = () => this.active && !this.stopped;
    this.rangeSync = new RangeSync(
      {
        ...deps,
        lock,
        blockImport: this.blockImport,
        network: () => this.network,
        isActive,
        penalize,
      },
      options.rangeBatch,
    );
    this.gossip = new GossipValidation(
      {
        ...deps,
        blockImport: this.blockImport,
        parentWait,
        isActive,
        onboarding: () => this.rangeSync.onboarding(),
        penalize,
      },
      options.slotDurationMs,
    );
    this.author = new SlotAuthor(
      {
        ...deps,
        lock,
        parentWait,
        snapshots,
        mayAuthor: () => this.active && !this.rangeSync.busy(),
        onAnchoredChain: () => this.blockImport.onAnchoredChain(),
        publish: (bytes) => this.publish(bytes),
      },
      {
        slotDurationMs: options.slotDurationMs,
        maxCalls: options.maxCalls,
        snapshotInterval: options.snapshotInterval,
      },
    );
  }

  attach(network: Network): void {
    this.network = network;
    this.author.networkAttached();
  }

  setActive(active: boolean): void {
    this.active = active;
  }

  status(): ChainStatus {
    const head = this.deps.store.head();
    const anchor = this.deps.anchor();
    // No head yet (or no anchor yet): number 0 with the zero hash.
    return {
      headNumber: head?.number ?? 0,
      headHash: head?.hash ?? new Uint8Array(32),
      finalizedNumber: anchor?.number ?? 0,
      finalizedHash: anchor?.hash ?? new Uint8Array(32),
    };
  }

  onSlot(slot: bigint): Promise<void> {
    return this.author.onSlot(slot);
  }

  /** Gossip validation of a block: decode, signature, then import or keep; the result decides forwarding. */
  onGossipBlock(bytes: Uint8Array, from: string): Promise<Validation> {
    return this.gossip.onGossipBlock(bytes, from);
  }

  /** A peer's status: if it is ahead, or final where we are not, fetch its chain. */
  onPeerStatus(peer: string, s: ChainStatus): void {
    if (!this.active) return;
    this.author.peerReportedHead();
    this.rangeSync.onPeerStatus(peer, s);
  }

  /** New parentchain blocks were verified: blocks waiting for them may import now. */
  parentchainAdvanced(): void {
    this.blockImport.parentchainAdvanced();
  }

  /** Served to peers: canonical blocks by number. */
  blocksByRange(from: number, count: number): Promise<Uint8Array[]> {
    return this.deps.store.blockRange(from, count);
  }

  /** Served to peers: canonical or side blocks by hash. */
  async blocksByHash(hashes: Uint8Array[]): Promise<Uint8Array[]> {
    const out: Uint8Array[] = [];
    for (const h of hashes) {
      const side = this.blockImport.tree.get(hexKey(h));
      if (side) {
        out.push(side.bytes);
        continue;
      }
      const n = await this.deps.store.numberOf(h);
      const bytes = n === undefined ? undefined : await this.deps.store.blockByNumber(n);
      if (bytes) out.push(bytes);
    }
    return out;
  }

  private async publish(bytes: Uint8Array): Promise<void> {
    await this.network
      ?.publishBlock(bytes)
      .catch((err: Error) => this.deps.logger.debug({ err: err.message }, 'block not published'));
  }

  /** `code`: what was wrong with the peer's block (logged, so a penalty can be traced to its cause). */
  private penalize(peer: string | null, reason: string, code?: string): void {
    if (!peer) return;
    this.deps.metrics.p2pPenalties.inc();
    this.deps.logger.warn({ peer, reason, code }, 'peer penalised');
    this.network?.penalize(peer, reason);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.author.stop();
    this.rangeSync.stop();
    this.parentWait.stop();
    this.blockImport.stop();
    await this.lock.idle();
  }
}
