// Block authoring for one slot: ask the enclave to propose, persist atomically, then let the enclave
// commit. Only after the block is durable are callers told their call is in a block (by the head event
// the caller emits with the block's calls: chain/head-events.ts).
import type { Enclave } from '../enclave/boundary/host.ts';
import type { BlockStore } from '../sidechain/store.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { Logger } from 'pino';
import type { CallRelay } from '../calls/relay.ts';
import type { HeadStatus } from '../chain/head-events.ts';

export interface AuthorDeps {
  enclave: Enclave;
  store: BlockStore;
  metrics: Metrics;
  logger: Logger;
  relay: CallRelay;
}
/**
 * deadlineMs: wall-clock time after which the enclave stops adding calls to the block. onStored: the
 * block is durable (it may leave now: the enclave's commit and the callers' notifications follow).
 */
export interface AuthorOptions {
  maxCalls: number;
  deadlineMs: number;
  onStored?: (bytes: Uint8Array) => void;
}

export interface AuthoredBlock {
  number: number;
  hash: Uint8Array;
  included: string[];
  bytes: Uint8Array;
  status: HeadStatus;
}

export async function authorBlock(deps: AuthorDeps, opts: AuthorOptions, slot: bigint): Promise<AuthoredBlock> {
  const { enclave, store, metrics, logger, relay } = deps;
  const started = performance.now();
  const p = await enclave.call('propose', {
    slot,
    timestampMs: Date.now(),
    maxCalls: opts.maxCalls,
    deadlineMs: Math.round(opts.deadlineMs),
  });
  await store.append({
    number: p.number,
    hash: p.hash,
    bytes: p.block,
    callHashes: p.included.map((h) => Buffer.from(h, 'hex')),
  });
  opts.onStored?.(p.block);
  const status = await enclave.call('commit', { hash: p.hash });
  const seconds = (performance.now() - started) / 1000;

  for (const r of p.rejected) relay.settle(r.hash, { status: 'invalid', code: r.code, message: r.message });
  metrics.blockProductionSeconds.observe(seconds);
  metrics.sidechainBlocksProduced.inc();
  metrics.countCall('included', p.included.length);
  for (const r of p.rejected) metrics.countCall(r.code === 'NONCE_GAP_EXPIRED' ? 'future_dropped' : 'invalid');
  logger.debug(
    { number: p.number, calls: p.included.length, rejected: p.rejected.length, ms: Math.round(seconds * 1000) },
    'block produced',
  );
  return { number: p.number, hash: p.hash, included: p.included, bytes: p.block, status };
}
