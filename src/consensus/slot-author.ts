// One validateer's Aura slots: authors a block in the slots it owns (or creates block 0 if it is the
// set's first authority), after waiting a share of the slot for the previous slot's block, and not at
// all while a sync moves the head, before any peer has reported its head after a restart, on a chain
// that lost to an anchor, or too late in the slot to reach the others.
import type { Enclave } from '../enclave/boundary/host.ts';
import type { BlockStore } from '../sidechain/store.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { Logger } from 'pino';
import type { CallRelay } from '../calls/relay.ts';
import type { HeadLock } from '../chain/head-lock.ts';
import type { SnapshotPolicy } from '../chain/snapshots.ts';
import type { HeadEvents } from '../chain/head-events.ts';
import { createGenesis } from '../chain/bootstrap.ts';
import { PROPOSAL_SHARE, slotStartMs } from '../protocol/aura.ts';
import { hexKey, same } from '../protocol/bytes.ts';
import { hasCode } from '../protocol/errors.ts';
import { authorBlock } from './author.ts';
import type { ParentWait } from './parent-wait.ts';

/**
 * Share of its slot an author waits for the previous slot's block; longer when it is known to come late (ParentWait).
 */
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

export interface SlotAuthorDeps {
  enclave: Enclave;
  store: BlockStore;
  metrics: Metrics;
  logger: Logger;
  relay: CallRelay;
  lock: HeadLock;
  parentWait: ParentWait;
  snapshots: SnapshotPolicy;
  signingKey: Uint8Array;
  genesisBalances: () => Promise<{ account: Uint8Array; amount: bigint }[]>;
  /** Off while the enclave lacks the shard secrets or a sync moves the head. */
  mayAuthor: () => boolean;
  /** Whether the stored head's chain contains the last anchored block. */
  onAnchoredChain: () => Promise<boolean>;
  /** Sends a block to the set (when a network is attached). */
  publish: (bytes: Uint8Array) => Promise<void>;
  heads: HeadEvents;
}

export interface SlotAuthorOptions {
  slotDurationMs: number;
  maxCalls: number;
  snapshotInterval: number;
}

export class SlotAuthor {
  private readonly deps: SlotAuthorDeps;
  private readonly options: SlotAuthorOptions;
  /** When the network came up (0: no network), and whether any peer has reported its chain since. */
  private networkUpAt = 0;
  private heardPeerStatus = false;
  private stopped = false;

  constructor(deps: SlotAuthorDeps, options: SlotAuthorOptions) {
    this.deps = deps;
    this.options = options;
  }

  networkAttached(now = Date.now()): void {
    this.networkUpAt = now;
  }

  peerReportedHead(): void {
    this.heardPeerStatus = true;
  }

  /**
   * Runs one Aura slot. If the previous slot's block has not arrived yet, the author waits for it for a
   * share of the slot, a longer one while it is being imported (outside the lock, so the import can
   * run): building on it instead of its parent is what keeps the chain from forking when a block is late.
   */
  async onSlot(slot: bigint): Promise<void> {
    const { enclave, logger, metrics, signingKey } = this.deps;
    if (!this.deps.mayAuthor()) return;
    const slotMs = this.options.slotDurationMs;
    const start = slotStartMs(slot, slotMs);
    const hint = await enclave.call('slotAuthor', { slot });
    if (hint.author && same(signingKey, hint.author)) {
      const prev = (await enclave.call('slotAuthor', { slot: slot - 1n })).author;
      await this.deps.parentWait.until(
        slot - 1n,
        prev && hexKey(prev),
        start - slotMs,
        start + slotMs * PARENT_WAIT_SHARE,
        start + slotMs * LATE_PARENT_WAIT_SHARE,
      );
    }
    return this.deps.lock.run(async () => {
      // Checked again under the lock: a sync may have started while this slot waited.
      if (this.stopped || !this.deps.mayAuthor()) return;
      const { author, genesisAuthor } = await enclave.call('slotAuthor', { slot });
      if (!this.deps.store.head()) {
        if (genesisAuthor && same(signingKey, genesisAuthor)) await this.createGenesis();
        return;
      }
      if (!author || !same(signingKey, author)) return;
      if (this.networkUpAt > 0 && !this.heardPeerStatus && Date.now() - this.networkUpAt < STARTUP_STATUS_WAIT_MS) {
        logger.debug({ slot: String(slot) }, 'slot left empty: no peer has reported its head yet');
        return;
      }
      if (!(await this.deps.onAnchoredChain())) return; // a chain that lost to an anchor is not worth extending
      // Too late to reach the others before the next slot: a block now would most likely be orphaned.
      if (Date.now() > start + slotMs * PROPOSAL_SHARE) {
        metrics.slotsMissed.inc();
        logger.debug({ slot: String(slot), lateMs: Date.now() - start }, 'slot skipped: too late to propose');
        return;
      }
      let block: Awaited<ReturnType<typeof authorBlock>>;
      try {
        // Published once stored, while the enclave commits: the others' import is on the critical path, our bookkeeping
        // is not.
        const opts = {
          maxCalls: this.options.maxCalls,
          deadlineMs: start + slotMs * BUILD_SHARE,
          onStored: (bytes: Uint8Array) => void this.deps.publish(bytes),
        };
        block = await authorBlock(this.deps, opts, slot);
      } catch (err) {
        // The enclave signed a block for this slot or a later one before (a restart within the slot, or a
        // clock that went back): it never signs a second one.
        if (hasCode(err, 'SLOT_ALREADY_SIGNED')) {
          logger.warn({ slot: String(slot), err: err.message }, 'slot left empty: already signed a block for it');
          return;
        }
        if (!hasCode(err, 'NOT_CAUGHT_UP')) throw err;
        logger.debug({ slot: String(slot), err: err.message }, 'slot left empty: not caught up');
        return;
      }
      this.deps.heads.emit({
        number: block.number,
        hash: block.hash,
        slot,
        cause: 'authored',
        status: block.status,
        calls: block.included,
      });
      // After the block left, and outside the lock: the next block's import must not wait for a snapshot.
      void this.deps.snapshots.maybeSnapshot(block.number, this.options.snapshotInterval);
    });
  }

  private async createGenesis(): Promise<void> {
    const genesis = await createGenesis(this.deps, await this.deps.genesisBalances());
    this.deps.heads.emit({ number: 0, hash: genesis.hash, slot: null, cause: 'authored', status: null, calls: [] });
    await this.deps.publish(genesis.block);
  }

  stop(): void {
    this.stopped = true;
  }
}
