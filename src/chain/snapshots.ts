// When to seal a state snapshot: when a block crosses a multiple of the interval, shifted by a phase
// of this validateer's own (from its signing key): a set whose members all sealed at the same block
// would stall together for that moment.
import type { Enclave } from '../enclave/boundary/host.ts';
import type { BlockStore } from '../sidechain/store.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { Logger } from 'pino';

export interface SnapshotDeps {
  enclave: Enclave;
  store: BlockStore;
  metrics: Metrics;
  logger: Logger;
  signingKey: Uint8Array;
}

export class SnapshotPolicy {
  private readonly deps: SnapshotDeps;
  private readonly snapshotsKept: number;
  /** Number of the newest snapshot; null until read from the store. */
  private lastSnapshot: number | null = null;

  constructor(deps: SnapshotDeps, snapshotsKept: number) {
    this.deps = deps;
    this.snapshotsKept = snapshotsKept;
  }

  /** Seals a snapshot if block `number` crosses a multiple of `every` (shifted by this validateer's phase). */
  async maybeSnapshot(number: number, every: number): Promise<void> {
    const { enclave, store, metrics, logger, signingKey } = this.deps;
    // Runs detached from the slot (nothing awaits it): every failure, the store read included, is logged here.
    try {
      if (this.lastSnapshot === null) this.lastSnapshot = (await store.newestSnapshotNumber()) ?? 0;
      const phase = Buffer.from(signingKey).readUInt32LE(0) % every;
      if (Math.floor((number - phase) / every) <= Math.floor((this.lastSnapshot - phase) / every)) return;
      this.lastSnapshot = number;
      const snap = await enclave.call('snapshot', {});
      await store.putSnapshot(snap.number, snap.sealed, this.snapshotsKept);
      metrics.snapshots.inc();
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'snapshot failed');
    }
  }
}
