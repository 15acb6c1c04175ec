// One typed event for "the head moved", whatever moved it: a block authored here, imported from a
// peer, a reorg, the onboarding sync, or the replay at startup. The head metrics, the call relay's
// watchers, the author's wait for its parent and the parentchain duties subscribe to it, so that each
// reacts in one place instead of at every site that moves the head.
import type { Metrics } from '../metrics/metrics.ts';

/**
 * 'syncing': a run of the onboarding sync is durable (the sync goes on; nothing but the metrics
 * should react). 'synced': the onboarding sync ended with new blocks.
 */
export type HeadCause = 'authored' | 'imported' | 'reorg' | 'syncing' | 'synced' | 'bootstrap';

/** The enclave's state after the block, as its status reports it. */
export interface HeadStatus {
  accounts: number;
  poolSize: number;
  stateKeyEpoch: number;
}

export interface HeadEvent {
  number: number;
  hash: Uint8Array;
  /** The block's slot; null when not decoded (genesis, startup, a batch of the onboarding sync). */
  slot: bigint | null;
  cause: HeadCause;
  /** null when the enclave was not asked (then the state metrics keep their value). */
  status: HeadStatus | null;
  /** Hashes (hex) of the calls the block included; empty when not known (the onboarding sync). */
  calls: readonly string[];
}

export type HeadListener = (e: HeadEvent) => void;

export class HeadEvents {
  private readonly listeners: HeadListener[] = [];

  /** Listeners run synchronously, in the order they subscribed; returns the unsubscribe. */
  on(listener: HeadListener): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  emit(e: HeadEvent): void {
    for (const listener of [...this.listeners]) listener(e);
  }
}

/** The one place the head metrics are updated. */
export function headMetrics(metrics: Metrics): HeadListener {
  return (e) => {
    metrics.sidechainHeadNumber.set(e.number);
    metrics.eventLogEntries.set(e.number + 1);
    if (!e.status) return;
    metrics.observeState(e.status);
    metrics.callPoolSize.set(e.status.poolSize);
  };
}
