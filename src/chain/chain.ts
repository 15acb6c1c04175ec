// The sidechain as seen by one validateer in a set: authors in its Aura slots, imports blocks from
// peers (gossip and sync), keeps side branches, follows the fork choice, and reorgs by rebuilding the
// enclave state from the event log. Every change of the head runs under one lock, so the enclave's
// head and the store's head move together.
import type { Enclave } from '../enclave/boundary/host.ts';
import { EnclaveError } from '../enclave/boundary/host.ts';
import type { BlockStore } from '../sidechain/store.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { BlockTree, describeBlock, type TreeBlock } from '../sidechain/block-tree.ts';
import { isBetter } from './fork-choice.ts';
import { headerSigningPayload, type SignedBlock } from '../protocol/block.ts';
import { PROPOSAL_SHARE, slotStartMs } from '../protocol/aura.ts';
import { ParentWait } from '../consensus/parent-wait.ts';
import { ed25519Verify } from '../crypto/primitives.ts';
import type { ChainStatus, Network, Validation } from '../p2p/network.ts';
import type { CallRelay } from '../calls/relay.ts';
import { authorBlock } from '../consensus/author.ts';
import { bootstrap, createGenesis } from './bootstrap.ts';
import type { Logger } from '../node/logger.ts';
import { Onboarding } from '../sync/onboarding.ts';
import type { ProgressSink } from '../sync/progress.ts';
import { hexKey, same } from '../protocol/bytes.ts';

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
   * Whether a signing key (0x hex) is or was an authority of the shard: other authors' blocks are
   * dropped unverified. undefined = cannot tell yet (the registration may not be finalized here).
   */
  isAuthority: (key: string) => boolean | undefined;
  /** The last anchored block (final; possibly not in our chain yet), null before the first anchor. */
  anchor: () => { number: number; hash: Uint8Array } | null;
  /** Called after a block became part of the canonical chain (authored or imported) and after reorgs. */
  onHeadChanged?: (e: { number: number; authored: boolean }) => void;
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
  syncBatch: number;
  /** Side and pending blocks kept in memory. */
  treeLimit: number;
}

/** Enclave rejections that mean "not yet" rather than "invalid": the block is kept and retried. */
const TRANSIENT = new Set(['PARENTCHAIN_BLOCK_UNKNOWN', 'BLOCK_FROM_FUTURE', 'STATE_KEY_UNKNOWN']);
const RETRY_MS = 200;
const EQUIVOCATION_SLOTS_KEPT = 4096;
/** Share of its slot an author waits for the previous slot's block; longer when it is known to come late (ParentWait). */
const PARENT_WAIT_SHARE = 0.12;
const LATE_PARENT_WAIT_SHARE = 0.45;
/**
 * A restarted validateer with a chain does not author until a peer has told it its head, or this long
 * after the network came up: on a stale head (e.g. killed while onboarding) its block would only
 * fork, and its onboarding would then start from that block. Alone, it authors after the wait.
 */
const STARTUP_STATUS_WAIT_MS = 3_000;
/** Calls are added to a block until this share of the slot (then it is stored, committed and published). */
const BUILD_SHARE = 0.5;
/** A peer that rate-limits our sync requests is asked again after a pause, this many times. */
const RATE_LIMITED_RETRIES = 20;
const RATE_LIMITED_BACKOFF_MS = 300;


export class ChainService {
  private readonly d: ChainDeps;
  private readonly o: ChainOptions;
  private readonly tree: BlockTree;
  private network: Network | null = null;
  private lock: Promise<unknown> = Promise.resolve();
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly seenSlots = new Map<string, string>();
  private syncing = false;
  /** Peers to sync with, and the height to start looking at (their chain may be shorter than ours). */
  private readonly syncQueue = new Map<string, number>();
  private stopped = false;
  /** Off until the enclave holds the shard secrets (a joining validateer could not decrypt a block). */
  private active = true;
  /** The head's slot and the blocks under import: the slot's author waits for its parent. */
  private readonly parentWait = new ParentWait();
  /** Peers' reported heads, and the onboarding sync in progress (when far behind). */
  private readonly peerHeads = new Map<string, number>();
  private onboarding: Onboarding | null = null;
  /** When the network was attached, and whether any peer has reported its chain since (STARTUP_STATUS_WAIT_MS). */
  private attachedAt = 0;
  private heardPeerStatus = false;
  /** Number of the newest snapshot; null until read from the store. */
  private lastSnapshot: number | null = null;

  constructor(deps: ChainDeps, opts: ChainOptions) {
    this.d = deps;
    this.o = opts;
    this.tree = new BlockTree(opts.treeLimit);
  }

  attach(network: Network): void {
    this.network = network;
    this.attachedAt = Date.now();
  }

  setActive(active: boolean): void {
    this.active = active;
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  status(): ChainStatus {
    const head = this.d.store.head();
    const anchor = this.d.anchor();
    // No head yet (or no anchor yet): number 0 with the zero hash.
    return {
      headNumber: head?.number ?? 0, headHash: head?.hash ?? new Uint8Array(32),
      finalizedNumber: anchor?.number ?? 0, finalizedHash: anchor?.hash ?? new Uint8Array(32),
    };
  }

  // ---------- authoring ----------

  /**
   * Runs one Aura slot: authors if this validateer owns it (or creates block 0 if it is the first
   * authority). If the previous slot's block has not arrived yet, the author waits for it for a
   * share of the slot, a longer one while it is being imported (outside the lock, so the import can
   * run): building on it instead of its parent is what keeps the chain from forking when a block is late.
   */
  async onSlot(slot: bigint): Promise<void> {
    if (!this.mayAuthor()) return;
    const slotMs = this.o.slotDurationMs;
    const start = slotStartMs(slot, slotMs);
    const me = Buffer.from(this.d.signingKey);
    const hint = await this.d.enclave.call('slotAuthor', { slot });
    if (hint.author && me.equals(Buffer.from(hint.author))) {
      const prev = (await this.d.enclave.call('slotAuthor', { slot: slot - 1n })).author;
      await this.parentWait.until(slot - 1n, prev && hexKey(prev), start - slotMs, start + slotMs * PARENT_WAIT_SHARE, start + slotMs * LATE_PARENT_WAIT_SHARE);
    }
    return this.exclusive(async () => {
      // Checked again under the lock: a sync may have started while this slot waited.
      if (this.stopped || !this.mayAuthor()) return;
      const { author, genesisAuthor } = await this.d.enclave.call('slotAuthor', { slot });
      if (!this.d.store.head()) {
        if (genesisAuthor && me.equals(Buffer.from(genesisAuthor))) await this.createGenesis();
        return;
      }
      if (!author || !me.equals(Buffer.from(author))) return;
      if (this.network && !this.heardPeerStatus && Date.now() - this.attachedAt < STARTUP_STATUS_WAIT_MS) {
        this.d.logger.debug({ slot: String(slot) }, 'slot left empty: no peer has reported its head yet');
        return;
      }
      if (!(await this.onAnchoredChain())) return; // a chain that lost to an anchor is not worth extending
      // Too late to reach the others before the next slot: a block now would most likely be orphaned.
      if (Date.now() > start + slotMs * PROPOSAL_SHARE) {
        this.d.metrics.slotsMissed.inc();
        this.d.logger.debug({ slot: String(slot), lateMs: Date.now() - start }, 'slot skipped: too late to propose');
        return;
      }
      let block: Awaited<ReturnType<typeof authorBlock>>;
      try {
        // Published once stored, while the enclave commits: the others' import is on the critical path, our bookkeeping is not.
        block = await authorBlock(this.d, { maxCalls: this.o.maxCalls, deadlineMs: start + slotMs * BUILD_SHARE, onStored: (bytes) => void this.publish(bytes) }, slot);
      } catch (err) {
        if ((err as EnclaveError).code !== 'NOT_CAUGHT_UP') throw err;
        this.d.logger.debug({ slot: String(slot), err: (err as Error).message }, 'slot left empty: not caught up');
        return;
      }
      this.parentWait.headIs(slot);
      this.d.onHeadChanged?.({ number: block.number, authored: true });
      // After the block left, and outside the lock: the next block's import must not wait for a snapshot.
      void this.maybeSnapshot(block.number, this.o.snapshotInterval);
    });
  }

  /**
   * Not while fetching blocks above our head (onboarding, or an ordinary sync with a peer ahead or
   * on another branch): a block on a head we know to be behind would only fork.
   */
  private mayAuthor(): boolean {
    return this.active && !this.onboarding && !this.syncing;
  }

  /**
   * Seals a snapshot when block `number` crosses a multiple of `every`, shifted by a phase of this
   * validateer's own (from its signing key): a set whose members all sealed at the same block would
   * stall together for that moment.
   */
  private async maybeSnapshot(number: number, every: number): Promise<void> {
    // Runs detached from the slot (nothing awaits it): every failure, the store read included, is logged here.
    try {
      if (this.lastSnapshot === null) this.lastSnapshot = (await this.d.store.newestSnapshotNumber()) ?? 0;
      const phase = Buffer.from(this.d.signingKey).readUInt32LE(0) % every;
      if (Math.floor((number - phase) / every) <= Math.floor((this.lastSnapshot - phase) / every)) return;
      this.lastSnapshot = number;
      const snap = await this.d.enclave.call('snapshot', {});
      await this.d.store.putSnapshot(snap.number, snap.sealed, this.o.snapshotsKept);
      this.d.metrics.snapshots.inc();
    } catch (err) {
      this.d.logger.warn({ err: (err as Error).message }, 'snapshot failed');
    }
  }

  private async createGenesis(): Promise<void> {
    const g = await createGenesis(this.d, await this.d.genesisBalances());
    this.d.onHeadChanged?.({ number: 0, authored: true });
    await this.publish(g.block);
  }

  private async publish(bytes: Uint8Array): Promise<void> {
    await this.network?.publishBlock(bytes).catch((err: Error) => this.d.logger.debug({ err: err.message }, 'block not published'));
  }

  // ---------- blocks from peers ----------

  /** Gossip validation of a block: decode, signature, then import or keep; the result decides forwarding. */
  async onGossipBlock(bytes: Uint8Array, from: string): Promise<Validation> {
    if (!this.active) return 'ignore';
    const at = Date.now();
    let b: TreeBlock;
    let signed: SignedBlock;
    try {
      ({ block: b, signed } = describeBlock(bytes, from, at));
    } catch {
      return this.invalid(from, 'undecodable block');
    }
    const pre = await this.precheck(b, signed);
    if (pre !== 'ok') return pre === 'invalid' ? this.invalid(from, 'bad block signature or shard') : 'ignore';
    if (this.isEquivocation(b)) return 'ignore';
    if (this.onboarding) return 'ignore'; // onboarding fetches it; the head moves only there meanwhile
    const done = this.parentWait.importing(b.hash, b.slot, b.author, slotStartMs(b.slot, this.o.slotDurationMs));
    const result = await this.exclusive(() => this.ingest([b])).finally(done);
    if (result.invalid.includes(b.hash)) return 'reject'; // counted and penalised where it failed
    return result.known.includes(b.hash) ? 'ignore' : 'accept';
  }

  /**
   * Cheap checks before the lock: shard, author's signature (any author: which authority owns the
   * slot is the enclave's to check), not already known, not below the last anchor.
   */
  private async precheck(b: TreeBlock, signed: SignedBlock): Promise<'ok' | 'known' | 'invalid' | 'old'> {
    // 'old' = not for us now (below the last anchor, or by an author we do not know yet): ignored, no penalty.
    const h = signed.header;
    if (!same(h.shard, this.o.shard)) return 'invalid';
    // Only authorities' blocks get any further work (a stranger's block could otherwise cost a reorg attempt).
    const authority = this.d.isAuthority('0x' + b.author);
    if (authority === false) return 'invalid';
    if (authority === undefined) return 'old';
    if (await this.isKnown(b)) {
      this.d.metrics.countImport('duplicate');
      return 'known';
    }
    const anchor = this.d.anchor();
    if (anchor && b.number <= anchor.number && b.hash !== hexKey(anchor.hash)) {
      this.d.metrics.countImport('below_finalized');
      return 'old';
    }
    if (!ed25519Verify(h.author, headerSigningPayload(h), signed.signature)) return 'invalid';
    return 'ok';
  }

  private async isKnown(b: TreeBlock): Promise<boolean> {
    return this.tree.has(b.hash) || (await this.d.store.isCanonical(b.number, b.hashBytes));
  }

  /** Two different blocks signed by one author for one slot: logged and counted (the second is not forwarded). */
  private isEquivocation(b: TreeBlock): boolean {
    const key = `${b.author}:${b.slot}`;
    const seen = this.seenSlots.get(key);
    if (seen === undefined) {
      this.seenSlots.set(key, b.hash);
      if (this.seenSlots.size > EQUIVOCATION_SLOTS_KEPT) this.seenSlots.delete(this.seenSlots.keys().next().value!);
      return false;
    }
    if (seen === b.hash) return false;
    this.d.metrics.equivocations.inc();
    this.d.logger.warn({ author: '0x' + b.author, slot: String(b.slot), first: '0x' + seen, second: '0x' + b.hash }, 'equivocation: two blocks by one author for one slot');
    return true;
  }

  private invalid(peer: string, reason: string): Validation {
    this.d.metrics.countImport('invalid');
    this.penalize(peer, reason);
    return 'reject';
  }

  private penalize(peer: string | null, reason: string): void {
    if (!peer) return;
    this.d.metrics.p2pPenalties.inc();
    this.d.logger.warn({ peer, reason }, 'peer penalised');
    this.network?.penalize(peer, reason);
  }

  /**
   * Adds verified-signature blocks to the tree and moves the head to the best chain they allow.
   * Returns which of them were already known and which turned out invalid.
   */
  private async ingest(blocks: TreeBlock[]): Promise<{ known: string[]; invalid: string[] }> {
    const known: string[] = [];
    for (const b of blocks) {
      if (await this.isKnown(b)) known.push(b.hash);
      else this.tree.add(b);
    }
    const invalid = await this.chooseHead();
    return { known, invalid };
  }

  /** Canonical ancestor and the tree path above it, or null when the chain of `leaf` is not connected. */
  private async pathTo(leaf: TreeBlock): Promise<{ ancestor: number; path: TreeBlock[] } | null> {
    const path: TreeBlock[] = [];
    let b: TreeBlock | undefined = leaf;
    while (b) {
      path.unshift(b);
      const parent = this.tree.get(b.parent);
      if (!parent) break;
      b = parent;
    }
    const first = path[0];
    if (first.number === 0) return this.d.store.head() ? null : { ancestor: -1, path };
    const ancestor = first.number - 1;
    return (await this.d.store.isCanonical(ancestor, Buffer.from(first.parent, 'hex'))) ? { ancestor, path } : null;
  }

  /** Whether the chain through `path` above canonical `ancestor` contains the last anchored block. */
  private async containsAnchor(ancestor: number, path: TreeBlock[]): Promise<boolean> {
    const a = this.d.anchor();
    if (!a) return true;
    const top = path.at(-1)?.number ?? ancestor;
    if (top < a.number) return true; // not there yet: may still grow into it
    if (a.number <= ancestor) return this.d.store.isCanonical(a.number, a.hash);
    return path.some((b) => b.number === a.number && b.hash === hexKey(a.hash));
  }

  private async onAnchoredChain(): Promise<boolean> {
    const head = this.d.store.head();
    return head ? this.containsAnchor(head.number, []) : true;
  }

  /** Switches to the best connected chain if it beats the head; returns blocks found invalid. */
  private async chooseHead(): Promise<string[]> {
    const invalid: string[] = [];
    // The onboarding sync owns the head while it runs (a gossip import or retry queued before it started).
    if (this.onboarding) return invalid;
    for (;;) {
      const head = this.d.store.head();
      const headOk = await this.onAnchoredChain();
      let best: { ancestor: number; path: TreeBlock[] } | null = null;
      for (const leaf of this.tree.leaves()) {
        const p = await this.pathTo(leaf);
        if (!p || !(await this.containsAnchor(p.ancestor, p.path))) continue;
        const tip = { number: leaf.number, hash: leaf.hashBytes };
        const current = best ? { number: best.path.at(-1)!.number, hash: best.path.at(-1)!.hashBytes } : headOk ? head : null;
        if (isBetter(tip, current)) best = p;
      }
      if (!best) {
        // Blocks whose ancestry is missing (e.g. we were cut off, or joined before block 0 existed):
        // fetch their chain from whoever sent them.
        for (const leaf of this.tree.leaves()) {
          if (leaf.number > (head?.number ?? -1) && !(await this.pathTo(leaf))) {
            this.d.metrics.countImport('pending');
            if (leaf.from) this.queueSync(leaf.from, leaf.number);
          }
        }
        if (this.syncQueue.size > 0) void this.runSync();
        return invalid;
      }
      const r = best.ancestor === (head?.number ?? -1) ? await this.extend(best.path) : await this.d.relay.hold(() => this.reorg(best.ancestor, best.path));
      invalid.push(...r.invalid);
      if (r.stalled) return invalid; // a block waits for the parentchain: retried later
    }
  }

  /** Imports a path that builds on the head, block by block. */
  private async extend(path: TreeBlock[]): Promise<{ invalid: string[]; stalled: boolean }> {
    for (const b of path) {
      const started = performance.now();
      try {
        const r = await this.d.enclave.call('importBlock', { block: b.bytes, nowMs: Date.now() });
        // Not synced: the author holds it synced already (see BlockStore.append).
        await this.d.store.append({ number: r.number, hash: r.hash, bytes: b.bytes, callHashes: b.callHashes }, { sync: false });
        const status = await this.d.enclave.call('commit', { hash: r.hash });
        this.tree.delete(b.hash);
        this.afterImport(b, r.calls, status, performance.now() - started);
      } catch (err) {
        return this.importFailed(b, err);
      }
    }
    return { invalid: [], stalled: false };
  }

  private afterImport(b: TreeBlock, calls: string[], status: { accounts: number; poolSize: number; stateKeyEpoch: number }, ms: number): void {
    const m = this.d.metrics;
    m.countImport('imported');
    m.blockImportSeconds.observe(ms / 1000);
    if (b.gossipAtMs !== null) m.blockPropagationSeconds.observe(Math.max(0, Date.now() - slotStartMs(b.slot, this.o.slotDurationMs)) / 1000);
    m.sidechainHeadNumber.set(b.number);
    m.eventLogEntries.set(b.number + 1);
    m.observeState(status);
    m.callPoolSize.set(status.poolSize);
    this.d.relay.settleInBlock(calls, '0x' + b.hash, b.number);
    this.d.onHeadChanged?.({ number: b.number, authored: false });
    this.parentWait.headIs(b.slot);
    // Authors snapshot after their own blocks (off the propagation path); imports only when no own block came for long.
    if (b.number > 0) void this.maybeSnapshot(b.number, 2 * this.o.snapshotInterval);
  }

  private importFailed(b: TreeBlock, err: unknown): { invalid: string[]; stalled: boolean } {
    const code = (err as EnclaveError).code;
    if (TRANSIENT.has(code)) {
      if (code === 'STATE_KEY_UNKNOWN') void this.d.onMissingStateKey?.();
      this.d.metrics.countImport('pending');
      this.d.logger.debug({ number: b.number, code }, 'block waits');
      this.scheduleRetry();
      return { invalid: [], stalled: true };
    }
    const dropped = this.tree.deleteWithDescendants(b.hash);
    this.d.logger.warn({ number: b.number, hash: '0x' + b.hash, code, err: (err as Error).message, dropped: dropped.length }, 'block rejected');
    if (b.from) this.penalize(b.from, `invalid block: ${code}`);
    this.d.metrics.countImport('invalid');
    return { invalid: dropped.map((x) => x.hash), stalled: false };
  }

  /**
   * Moves the canonical chain to `path` above `ancestor`: rebuilds the enclave state at the ancestor
   * from the event log, verifies and applies the path, then swaps the store in one atomic batch.
   * If a block fails, the old chain is restored the same way (the store was not touched).
   */
  private async reorg(ancestor: number, path: TreeBlock[]): Promise<{ invalid: string[]; stalled: boolean }> {
    const { enclave, store, metrics, logger } = this.d;
    const old = store.head()!;
    const started = performance.now();
    // A shallow reorg drops the enclave's newest state layers; a deeper one rebuilds from the event log.
    const ancestorHash = await store.hashAt(ancestor);
    const rewound = ancestorHash !== undefined && (await enclave.call('rewind', { number: ancestor, hash: ancestorHash }).then(() => true, () => false));
    if (!rewound) await bootstrap(this.d, null, { upTo: ancestor });
    const applied: { b: TreeBlock; calls: string[] }[] = [];
    let failure: { invalid: string[]; stalled: boolean } | null = null;
    for (const b of path) {
      try {
        const r = await enclave.call('importBlock', { block: b.bytes, nowMs: Date.now() });
        await enclave.call('commit', { hash: r.hash });
        applied.push({ b, calls: r.calls });
      } catch (err) {
        failure = this.importFailed(b, err);
        break;
      }
    }
    const tip = applied.at(-1)?.b;
    if (!tip || !isBetter({ number: tip.number, hash: tip.hashBytes }, (await this.onAnchoredChain()) ? old : null)) {
      await bootstrap(this.d, null); // back to the stored chain
      return failure ?? { invalid: [], stalled: false };
    }
    const abandoned = await store.reorg(ancestor, applied.map(({ b }) => ({ number: b.number, hash: b.hashBytes, bytes: b.bytes, callHashes: b.callHashes })));
    const newCalls = new Set<string>();
    const status = await enclave.call('status', {}); // one state for the whole swap
    for (const { b, calls } of applied) {
      this.tree.delete(b.hash);
      for (const h of calls) newCalls.add(h);
      this.afterImport(b, calls, status, 0);
    }
    // The abandoned blocks stay known (their branch may win again), and their calls that the new
    // chain does not have go back to the pool; the enclave drops those no longer valid.
    const lost: string[] = [];
    for (const bytes of abandoned) {
      const { block } = describeBlock(bytes, null, null);
      this.tree.add(block);
      for (const c of block.callHashes) if (!newCalls.has(hexKey(c))) lost.push(hexKey(c));
    }
    const requeued = await this.d.relay.resubmit(lost);
    const depth = old.number - ancestor;
    metrics.reorgs.inc();
    metrics.reorgDepth.observe(depth);
    logger.warn({ from: old.number, to: tip.number, ancestor, depth, rewound, requeued, lostCalls: lost.length, ms: Math.round(performance.now() - started) }, 'reorg');
    return failure ?? { invalid: [], stalled: false };
  }

  private scheduleRetry(): void {
    if (this.retryTimer || this.stopped) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.exclusive(() => this.chooseHead()).catch((err: Error) => this.d.logger.error({ err: err.message }, 'retry of pending blocks failed'));
    }, RETRY_MS);
  }

  /** New parentchain blocks were verified: blocks waiting for them may import now. */
  parentchainAdvanced(): void {
    if (this.tree.size > 0) this.scheduleRetry();
  }

  // ---------- sync ----------

  private queueSync(peer: string, from: number): void {
    this.syncQueue.set(peer, Math.min(from, this.syncQueue.get(peer) ?? from));
  }

  /** A peer's status: if it is ahead, or final where we are not, fetch its chain. */
  onPeerStatus(peer: string, s: ChainStatus): void {
    if (!this.active) return;
    this.heardPeerStatus = true;
    void (async () => {
      if (s.headHash.every((x) => x === 0)) return; // the peer has no chain yet
      this.peerHeads.set(peer, s.headNumber);
      if (this.onboarding) return this.onboarding.addPeer(peer, s.headNumber);
      const head = this.d.store.head();
      if (s.headNumber - (head?.number ?? -1) > this.o.syncBatch) return this.onboard();
      const ahead = !head || isBetter({ number: s.headNumber, hash: s.headHash }, head);
      // Its final block is not in our chain: we are on a branch that lost (e.g. after a partition).
      const finalElsewhere = s.finalizedHash.some((x) => x !== 0) && !(await this.d.store.isCanonical(s.finalizedNumber, s.finalizedHash));
      if (!ahead && !finalElsewhere) return;
      this.queueSync(peer, Math.min(s.headNumber, (head?.number ?? -1) + 1));
      await this.runSync();
    })().catch((err: Error) => this.d.logger.debug({ peer, err: err.message }, 'status handling failed'));
  }

  /**
   * Far behind (more than one request's worth of blocks): fetch from every peer ahead of us at once,
   * then hand over to the ordinary sync and gossip for the last blocks.
   */
  private async onboard(): Promise<void> {
    const network = this.network;
    if (!network || this.syncing) return; // an ordinary sync is moving the head: it finishes the job
    const o = new Onboarding({
      enclave: this.d.enclave, store: this.d.store, metrics: this.d.metrics, logger: this.d.logger, network,
      anchor: this.d.anchor, progress: this.d.progress, serialize: (fn) => this.exclusive(fn), onMissingStateKey: this.d.onMissingStateKey,
    }, { batch: this.o.syncBatch, perPeer: 2, logEveryMs: 2000 });
    this.onboarding = o;
    // Every connected peer's head, fresh: the more peers serve, the faster this goes.
    const connected = network.connectedPeers();
    await Promise.allSettled(connected.map((p) => network.requestStatus(p).then((st) => this.peerHeads.set(p, st.headNumber))));
    const head = this.d.store.head()?.number ?? -1;
    const peers = new Map([...this.peerHeads].filter(([p, n]) => connected.includes(p) && n > head));
    try {
      if (peers.size === 0) return;
      const best = [...peers].reduce((a, b) => (b[1] > a[1] ? b : a))[0];
      if (!(await this.headOnChainOf(network, best))) {
        // The ordinary sync steps back to the fork point and switches branches; once on their chain
        // and still far behind, it hands back to the onboarding sync (runSync).
        this.d.logger.info({ peer: best, head }, 'our head is not on the chain of the peers ahead: finding the fork point');
        this.queueSync(best, head);
        peers.clear(); // no other peer's sync queued below: this one finds the fork point
        return;
      }
      const r = await o.run(peers);
      const top = this.d.store.head();
      if (top && r.blocks > 0) {
        const bytes = await this.d.store.blockByNumber(top.number);
        if (bytes) this.parentWait.headIs(describeBlock(bytes, null, null).block.slot);
        this.d.onHeadChanged?.({ number: top.number, authored: false });
      }
    } catch (err) {
      this.d.logger.error({ err: (err as Error).message }, 'onboarding sync failed');
      await this.exclusive(() => bootstrap(this.d, null)); // the enclave may be ahead of the store
    } finally {
      this.onboarding = null;
    }
    for (const [p] of peers) this.queueSync(p, (this.d.store.head()?.number ?? -1) + 1);
    await this.runSync();
  }

  /**
   * Whether our head is on `peer`'s chain: its block at our head's number is ours. A head that is not
   * (a block we authored or imported that lost, e.g. while cut off) cannot be extended by the
   * onboarding sync: the first block it fetched would not be a child of ours, and every honest peer
   * would be dropped for it.
   */
  private async headOnChainOf(net: Network, peer: string): Promise<boolean> {
    const head = this.d.store.head();
    if (!head) return true;
    try {
      const [theirs] = await this.rangeWithBackoff(net, peer, head.number, 1);
      // Nothing served, or not decodable: the onboarding sync finds out and deals with the peer.
      return !theirs || describeBlock(theirs, peer, null).block.hash === hexKey(head.hash);
    } catch {
      return true;
    }
  }

  private async runSync(): Promise<void> {
    if (this.syncing || this.onboarding) return;
    this.syncing = true;
    let farBehind = false;
    try {
      while (this.syncQueue.size > 0 && !this.stopped) {
        const [peer, from] = this.syncQueue.entries().next().value!;
        this.syncQueue.delete(peer);
        const r = await this.syncWith(peer, from).catch((err: Error & { code?: string }) => this.d.logger.info({ peer, code: err.code, err: err.message }, 'sync with peer failed'));
        if (r === 'far_behind') {
          farBehind = true;
          break;
        }
      }
    } finally {
      this.syncing = false;
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
    const net = this.network;
    if (!net) return;
    // Never look below our own final block; the last anchor may be on a branch we do not have yet.
    const anchor = this.d.anchor();
    const floor = anchor && (await this.d.store.isCanonical(anchor.number, anchor.hash)) ? anchor.number + 1 : 0;
    let from = Math.max(floor, Math.min(start, (this.d.store.head()?.number ?? -1) + 1));
    let back = 16;
    while (!this.stopped) {
      const bytes = await this.rangeWithBackoff(net, peer, from);
      if (bytes.length === 0) return;
      const blocks: TreeBlock[] = [];
      for (const x of bytes) {
        try {
          const { block, signed } = describeBlock(x, peer, null);
          const pre = await this.precheck(block, signed);
          if (pre === 'invalid') {
            this.penalize(peer, 'invalid block in blocks-by-range');
            return;
          }
          blocks.push(block);
        } catch {
          this.penalize(peer, 'undecodable block in blocks-by-range');
          return;
        }
      }
      const first = blocks[0];
      const connected = first.number === 0 || this.tree.has(first.parent) || (await this.d.store.isCanonical(first.number - 1, Buffer.from(first.parent, 'hex')));
      if (!connected) {
        if (from <= floor) {
          this.d.logger.warn({ peer, from }, 'peer chain does not connect above the last anchor');
          return;
        }
        from = Math.max(floor, from - back);
        back *= 2;
        continue;
      }
      const r = await this.exclusive(() => this.ingest(blocks));
      if (r.invalid.length > 0 || bytes.length < this.o.syncBatch) return;
      const head = this.d.store.head();
      const headHex = head && hexKey(head.hash);
      if (head && blocks.some((b) => b.hash === headHex) && (this.peerHeads.get(peer) ?? -1) - head.number > this.o.syncBatch) return 'far_behind';
      from = blocks.at(-1)!.number + 1;
    }
  }

  /** blocks-by-range, waiting and asking again while the peer says we ask too often. */
  private async rangeWithBackoff(net: Network, peer: string, from: number, count = this.o.syncBatch): Promise<Uint8Array[]> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await net.requestBlocksByRange(peer, from, count);
      } catch (err) {
        if ((err as { code?: string }).code !== 'P2P_RATE_LIMITED' || attempt >= RATE_LIMITED_RETRIES || this.stopped) throw err;
        await new Promise((r) => setTimeout(r, RATE_LIMITED_BACKOFF_MS));
      }
    }
  }

  /** Served to peers: canonical blocks by number. */
  blocksByRange(from: number, count: number): Promise<Uint8Array[]> {
    return this.d.store.blockRange(from, count);
  }

  /** Served to peers: canonical or side blocks by hash. */
  async blocksByHash(hashes: Uint8Array[]): Promise<Uint8Array[]> {
    const out: Uint8Array[] = [];
    for (const h of hashes) {
      const side = this.tree.get(hexKey(h));
      if (side) {
        out.push(side.bytes);
        continue;
      }
      const n = await this.d.store.numberOf(h);
      const bytes = n === undefined ? undefined : await this.d.store.blockByNumber(n);
      if (bytes) out.push(bytes);
    }
    return out;
  }

  // ---------- calls from peers ----------

  async stop(): Promise<void> {
    this.stopped = true;
    this.onboarding?.stop();
    this.parentWait.stop();
    clearTimeout(this.retryTimer);
    await this.lock;
  }
}
