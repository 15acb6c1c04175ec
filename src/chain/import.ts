// Block import: blocks whose author's signature checked out go into the block tree, and the head
// moves to the best connected chain they allow (chain/fork-choice.ts): by extending the head block by
// block, or by a reorg (chain/reorg.ts). A block the enclave refuses as invalid is dropped with its
// descendants and its sender penalised; one that is "not yet" valid (its parentchain block is not here
// yet) waits in the tree and is retried. A local fault (the store's write, the enclave's own error) is
// not the sender's: the block stays in the tree, tried again with the next import, and no one is blamed.
import type { Enclave } from '../enclave/boundary/host.ts';
import type { BlockStore } from '../sidechain/store.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { Logger } from 'pino';
import type { CallRelay } from '../calls/relay.ts';
import type { SignedBlock } from '../protocol/block.ts';
import { BlockTree, type TreeBlock } from '../sidechain/block-tree.ts';
import { headerSigningPayload } from '../protocol/block.ts';
import { slotStartMs } from '../protocol/aura.ts';
import { ed25519Verify } from '../crypto/primitives.ts';
import { codeOf, hasCode, provesBlockInvalid } from '../protocol/errors.ts';
import { hexKey, same } from '../protocol/bytes.ts';
import { anchorVerdict, chooseTip, type Candidate } from './fork-choice.ts';
import type { HeadLock } from './head-lock.ts';
import type { SnapshotPolicy } from './snapshots.ts';
import type { HeadEvents, HeadStatus } from './head-events.ts';
import { reorgTo, type ImportOutcome } from './reorg.ts';

export type { ImportOutcome };

/** What import asks of the range sync: whether it owns the head now, and fetching a missing ancestry. */
export interface AncestryFetcher {
  /** The onboarding sync owns the head while it runs: nothing else moves it. */
  onboarding(): boolean;
  /** Fetch `peer`'s chain from `from` (queued; run by fetchQueued). */
  queue(peer: string, from: number): void;
  fetchQueued(): void;
}

export interface BlockImportDeps {
  enclave: Enclave;
  store: BlockStore;
  metrics: Metrics;
  logger: Logger;
  relay: CallRelay;
  lock: HeadLock;
  snapshots: SnapshotPolicy;
  ancestry: AncestryFetcher;
  /** The last anchored block (final; possibly not in our chain yet), null before the first anchor. */
  anchor: () => { number: number; hash: Uint8Array } | null;
  /** As ChainDeps.isAuthority. */
  isAuthority: (key: string, parentchainNumber: number | null) => boolean | undefined;
  penalize: (peer: string | null, reason: string, code?: string) => void;
  heads: HeadEvents;
  onMissingStateKey?: () => Promise<unknown>;
}

export interface BlockImportOptions {
  shard: Uint8Array;
  slotDurationMs: number;
  snapshotInterval: number;
  treeLimit: number;
}

/** A block refused before any import work: the sender is penalised. */
export type PrecheckCode = 'BLOCK_WRONG_SHARD' | 'NOT_AUTHORITY' | 'BLOCK_BAD_SIGNATURE';
/** The result of the cheap checks: 'old' = not for us now (below the last anchor, or an author we do not know yet). */
export type Precheck = 'ok' | 'known' | 'old' | { invalid: PrecheckCode };

/** Enclave rejections that mean "not yet" rather than "invalid": the block is kept and retried. */
const TRANSIENT = ['PARENTCHAIN_BLOCK_UNKNOWN', 'BLOCK_FROM_FUTURE', 'STATE_KEY_UNKNOWN'] as const;
const RETRY_MS = 200;

export class BlockImport {
  private readonly deps: BlockImportDeps;
  private readonly options: BlockImportOptions;
  /** Side branches and blocks waiting for their parent. */
  readonly tree: BlockTree;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(deps: BlockImportDeps, options: BlockImportOptions) {
    this.deps = deps;
    this.options = options;
    this.tree = new BlockTree(options.treeLimit);
  }

  /**
   * Cheap checks before the lock: shard, author's signature (any author: which authority owns the
   * slot is the enclave's to check), not already known, not below the last anchor.
   */
  async precheck(b: TreeBlock, signed: SignedBlock): Promise<Precheck> {
    const h = signed.header;
    if (!same(h.shard, this.options.shard)) return { invalid: 'BLOCK_WRONG_SHARD' };
    // Only authorities' blocks get any further work (a stranger's block could otherwise cost a reorg attempt).
    const authority = this.deps.isAuthority('0x' + b.author, b.number === 0 ? null : h.parentchainNumber);
    if (authority === false) return { invalid: 'NOT_AUTHORITY' };
    if (authority === undefined) return 'old';
    if (await this.isKnown(b)) {
      this.deps.metrics.countImport('duplicate');
      return 'known';
    }
    const anchor = this.deps.anchor();
    if (anchor && b.number <= anchor.number && b.hash !== hexKey(anchor.hash)) {
      this.deps.metrics.countImport('below_finalized');
      return 'old';
    }
    if (!ed25519Verify(h.author, headerSigningPayload(h), signed.signature)) return { invalid: 'BLOCK_BAD_SIGNATURE' };
    return 'ok';
  }

  private async isKnown(b: TreeBlock): Promise<boolean> {
    return this.tree.has(b.hash) || (await this.deps.store.isCanonical(b.number, b.hashBytes));
  }

  /**
   * Adds verified-signature blocks to the tree and moves the head to the best chain they allow; runs
   * under the head lock. Returns which of them were already known, which turned out invalid, and which failed to
   * import by a local fault (kept, not the sender's fault).
   */
  ingest(blocks: TreeBlock[]): Promise<{ known: string[]; invalid: string[]; failed: string[] }> {
    return this.deps.lock.run(async () => {
      // Queued before stop() and run after it: the blocks are dropped, not imported into a stopping store.
      if (this.stopped) return { known: blocks.map((b) => b.hash), invalid: [], failed: [] };
      const known: string[] = [];
      for (const b of blocks) {
        if (await this.isKnown(b)) known.push(b.hash);
        else this.tree.add(b);
      }
      return { known, ...(await this.chooseHead()) };
    });
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
    if (first.number === 0) return this.deps.store.head() ? null : { ancestor: -1, path };
    const ancestor = first.number - 1;
    return (await this.deps.store.isCanonical(ancestor, Buffer.from(first.parent, 'hex'))) ? { ancestor, path } : null;
  }

  /** Whether the chain through `path` above canonical `ancestor` contains the last anchored block. */
  private async containsAnchor(ancestor: number, path: TreeBlock[]): Promise<boolean> {
    const anchor = this.deps.anchor();
    const verdict = anchorVerdict(anchor, ancestor, path, anchor && hexKey(anchor.hash));
    return verdict === 'ask_store' ? this.deps.store.isCanonical(anchor!.number, anchor!.hash) : verdict;
  }

  /**
   * Whether the stored head's chain contains the last anchored block (a chain that lost to an anchor is not extended).
   */
  async onAnchoredChain(): Promise<boolean> {
    const head = this.deps.store.head();
    return head ? this.containsAnchor(head.number, []) : true;
  }

  /** Switches to the best connected chain if it beats the head; returns blocks found invalid or failed locally. */
  private async chooseHead(): Promise<{ invalid: string[]; failed: string[] }> {
    const invalid: string[] = [];
    const failed: string[] = [];
    // The onboarding sync owns the head while it runs (a gossip import or retry queued before it started).
    if (this.deps.ancestry.onboarding()) return { invalid, failed };
    for (;;) {
      const head = this.deps.store.head();
      const headOnAnchoredChain = await this.onAnchoredChain();
      const candidates: Candidate<{ ancestor: number; path: TreeBlock[] }>[] = [];
      for (const leaf of this.tree.leaves()) {
        const p = await this.pathTo(leaf);
        if (!p) continue;
        candidates.push({
          tip: { number: leaf.number, hash: leaf.hashBytes },
          onAnchoredChain: await this.containsAnchor(p.ancestor, p.path),
          value: p,
        });
      }
      const best = chooseTip(head && { tip: head, onAnchoredChain: headOnAnchoredChain }, candidates)?.value;
      if (!best) {
        await this.fetchMissingAncestry(head?.number ?? -1);
        return { invalid, failed };
      }
      const r =
        best.ancestor === (head?.number ?? -1)
          ? await this.extend(best.path)
          : await this.deps.relay.hold(() => reorgTo(this.reorgDeps(), best.ancestor, best.path));
      invalid.push(...r.invalid);
      if (r.localFault) failed.push(r.localFault);
      if (r.stalled) return { invalid, failed }; // a block waits (for the parentchain, or after a local fault)
    }
  }

  /**
   * Blocks whose ancestry is missing (e.g. we were cut off, or joined before block 0 existed): fetch their chain from
   * whoever sent them.
   */
  private async fetchMissingAncestry(headNumber: number): Promise<void> {
    for (const leaf of this.tree.leaves()) {
      if (leaf.number > headNumber && !(await this.pathTo(leaf))) {
        this.deps.metrics.countImport('pending');
        if (leaf.from) this.deps.ancestry.queue(leaf.from, leaf.number);
      }
    }
    this.deps.ancestry.fetchQueued();
  }

  private reorgDeps() {
    return {
      ...this.deps,
      tree: this.tree,
      importFailed: (b: TreeBlock, err: unknown) => this.importFailed(b, err),
      afterImport: (b: TreeBlock, calls: string[], status: HeadStatus) =>
        this.afterImport(b, calls, status, 0, 'reorg'),
      onAnchoredChain: () => this.onAnchoredChain(),
    };
  }

  /** Imports a path that builds on the head, block by block. */
  private async extend(path: TreeBlock[]): Promise<ImportOutcome> {
    const { enclave, store } = this.deps;
    for (const b of path) {
      const started = performance.now();
      try {
        const r = await enclave.call('importBlock', { block: b.bytes, nowMs: Date.now() });
        // Not fsynced: the author holds it synced already (see BlockStore.append).
        await store.append(
          { number: r.number, hash: r.hash, bytes: b.bytes, callHashes: b.callHashes },
          { fsync: false },
        );
        const status = await enclave.call('commit', { hash: r.hash });
        this.tree.delete(b.hash);
        this.afterImport(b, r.calls, status, performance.now() - started, 'imported');
      } catch (err) {
        return this.importFailed(b, err);
      }
    }
    return { invalid: [], stalled: false };
  }

  private afterImport(
    b: TreeBlock,
    calls: string[],
    status: HeadStatus,
    ms: number,
    cause: 'imported' | 'reorg',
  ): void {
    const m = this.deps.metrics;
    m.countImport('imported');
    m.blockImportSeconds.observe(ms / 1000);
    if (b.gossipAtMs !== null)
      m.blockPropagationSeconds.observe(
        Math.max(0, Date.now() - slotStartMs(b.slot, this.options.slotDurationMs)) / 1000,
      );
    this.deps.heads.emit({ number: b.number, hash: b.hashBytes, slot: b.slot, cause, status, calls });
    // Authors snapshot after their own blocks (off the propagation path); imports only when no own block came for long.
    if (b.number > 0) void this.deps.snapshots.maybeSnapshot(b.number, 2 * this.options.snapshotInterval);
  }

  private importFailed(b: TreeBlock, err: unknown): ImportOutcome {
    const code = codeOf(err);
    const fields = { number: b.number, hash: '0x' + b.hash, code, err: (err as Error).message };
    if (hasCode(err, ...TRANSIENT)) {
      if (code === 'STATE_KEY_UNKNOWN') void this.deps.onMissingStateKey?.();
      this.deps.metrics.countImport('pending');
      this.deps.logger.debug({ number: b.number, code }, 'block waits');
      this.scheduleRetry();
      return { invalid: [], stalled: true };
    }
    if (!provesBlockInvalid(code)) {
      // Ours, not the block's (a full disk, the enclave's INTERNAL error or closing): the sender is not blamed and
      // the block is kept, tried again with the next import (no retry timer: a full disk would spin on it).
      this.deps.metrics.countImport('local_fault');
      this.deps.logger.error({ ...fields, from: b.from }, 'block import failed by a local fault (sender not blamed)');
      return { invalid: [], stalled: true, localFault: b.hash };
    }
    const dropped = this.tree.deleteWithDescendants(b.hash);
    this.deps.logger.warn({ ...fields, dropped: dropped.length }, 'block rejected');
    if (b.from) this.deps.penalize(b.from, `invalid block: ${code}`, code);
    this.deps.metrics.countImport('invalid');
    return { invalid: dropped.map((x) => x.hash), stalled: false };
  }

  private scheduleRetry(): void {
    if (this.retryTimer || this.stopped) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.deps.lock
        .run(() => this.chooseHead())
        .catch((err: Error) => this.deps.logger.error({ err: err.message }, 'retry of pending blocks failed'));
    }, RETRY_MS);
  }

  /** New parentchain blocks were verified: blocks waiting for them may import now. */
  parentchainAdvanced(): void {
    if (this.tree.size > 0) this.scheduleRetry();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
  }
}
