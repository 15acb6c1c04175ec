// A reorg: moves the canonical chain to `path` above `ancestor`. The enclave state is brought back to
// the ancestor (a shallow rewind of its newest state layers, or a rebuild from the event log), the path
// is verified and applied, and only if the new tip wins the fork choice is the store swapped, in one
// atomic batch. Otherwise the old chain is restored the same way (the store was not touched).
import type { Enclave } from '../enclave/boundary/host.ts';
import type { BlockStore } from '../sidechain/store.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { Logger } from 'pino';
import type { CallRelay } from '../calls/relay.ts';
import { describeBlock, type BlockTree, type TreeBlock } from '../sidechain/block-tree.ts';
import { hexKey } from '../protocol/bytes.ts';
import { bootstrap } from './bootstrap.ts';
import { isBetter } from './fork-choice.ts';
import type { HeadStatus } from './head-events.ts';

/**
 * Blocks found invalid, and whether a block waits (for the parentchain, or after a local fault: then `localFault` is
 * its hash); the rest is retried later.
 */
export interface ImportOutcome {
  invalid: string[];
  stalled: boolean;
  localFault?: string;
}

export interface ReorgDeps {
  enclave: Enclave;
  store: BlockStore;
  metrics: Metrics;
  logger: Logger;
  relay: CallRelay;
  tree: BlockTree;
  /** A block of the path failed: drops it (or keeps it to retry) and says which. */
  importFailed: (b: TreeBlock, err: unknown) => ImportOutcome;
  /** A block of the path is canonical now (metrics, watchers, the head's listeners). */
  afterImport: (b: TreeBlock, calls: string[], status: HeadStatus) => void;
  /** Whether the stored head's chain contains the last anchored block. */
  onAnchoredChain: () => Promise<boolean>;
}

export async function reorgTo(deps: ReorgDeps, ancestor: number, path: TreeBlock[]): Promise<ImportOutcome> {
  const { enclave, store, metrics, logger, tree } = deps;
  const old = store.head()!;
  const started = performance.now();
  // A shallow reorg drops the enclave's newest state layers; a deeper one rebuilds from the event log.
  const ancestorHash = await store.hashAt(ancestor);
  const rewound =
    ancestorHash !== undefined &&
    (await enclave.call('rewind', { number: ancestor, hash: ancestorHash }).then(
      () => true,
      () => false,
    ));
  if (!rewound) await bootstrap(deps, null, { upTo: ancestor });
  const applied: { b: TreeBlock; calls: string[] }[] = [];
  let failure: ImportOutcome | null = null;
  for (const b of path) {
    try {
      const r = await enclave.call('importBlock', { block: b.bytes, nowMs: Date.now() });
      await enclave.call('commit', { hash: r.hash });
      applied.push({ b, calls: r.calls });
    } catch (err) {
      failure = deps.importFailed(b, err);
      break;
    }
  }
  const tip = applied.at(-1)?.b;
  if (!tip || !isBetter({ number: tip.number, hash: tip.hashBytes }, (await deps.onAnchoredChain()) ? old : null)) {
    await bootstrap(deps, null); // back to the stored chain
    return failure ?? { invalid: [], stalled: false };
  }
  const stored = applied.map(({ b }) => ({
    number: b.number,
    hash: b.hashBytes,
    bytes: b.bytes,
    callHashes: b.callHashes,
  }));
  const abandoned = await store.reorg(ancestor, stored);
  const newCalls = new Set<string>();
  const status = await enclave.call('status', {}); // one state for the whole swap
  for (const { b, calls } of applied) {
    tree.delete(b.hash);
    for (const h of calls) newCalls.add(h);
    deps.afterImport(b, calls, status);
  }
  // The abandoned blocks stay known (their branch may win again), and their calls that the new
  // chain does not have go back to the pool; the enclave drops those no longer valid.
  const lost: string[] = [];
  for (const bytes of abandoned) {
    const { block } = describeBlock(bytes, null, null);
    tree.add(block);
    for (const c of block.callHashes) if (!newCalls.has(hexKey(c))) lost.push(hexKey(c));
  }
  const requeued = await deps.relay.resubmit(lost);
  const depth = old.number - ancestor;
  metrics.reorgs.inc();
  metrics.reorgDepth.observe(depth);
  const ms = Math.round(performance.now() - started);
  logger.warn(
    { from: old.number, to: tip.number, ancestor, depth, rewound, requeued, lostCalls: lost.length, ms },
    'reorg',
  );
  return failure ?? { invalid: [], stalled: false };
}
