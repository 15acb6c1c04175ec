// Block authoring for one slot: ask the enclave to propose, persist atomically, then let the enclave
// commit. Only after the block is durable are callers told their call is in a block.
import type { Enclave } from '../enclave/boundary/host.ts';
import type { BlockStore } from '../sidechain/store.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { Logger } from '../node/logger.ts';
import type { CallRelay } from '../calls/relay.ts';
import { toHex } from '../protocol/bytes.ts';

export interface AuthorDeps { enclave: Enclave; store: BlockStore; metrics: Metrics; logger: Logger; relay: CallRelay }
/**
 * deadlineMs: wall-clock time after which the enclave stops adding calls to the block. onStored: the
 * block is durable (it may leave now: the enclave's commit and the callers' notifications follow).
 */
export interface AuthorOptions { maxCalls: number; deadlineMs: number; onStored?: (bytes: Uint8Array) => void }

export async function authorBlock(deps: AuthorDeps, opts: AuthorOptions, slot: bigint): Promise<{ number: number; hash: string; calls: number; bytes: Uint8Array }> {
  const { enclave, store, metrics, logger, relay } = deps;
  const started = performance.now();
  const p = await enclave.call('propose', { slot, timestampMs: Date.now(), maxCalls: opts.maxCalls, deadlineMs: Math.round(opts.deadlineMs) });
  await store.append({ number: p.number, hash: p.hash, bytes: p.block, callHashes: p.included.map((h) => Buffer.from(h, 'hex')) });
  opts.onStored?.(p.block);
  const status = await enclave.call('commit', { hash: p.hash });
  const seconds = (performance.now() - started) / 1000;

  const blockHash = toHex(p.hash);
  relay.settleInBlock(p.included, blockHash, p.number);
  for (const r of p.rejected) relay.settle(r.hash, { status: 'invalid', code: r.code, message: r.message });
  metrics.blockProductionSeconds.observe(seconds);
  metrics.sidechainBlocksProduced.inc();
  metrics.sidechainHeadNumber.set(p.number);
  metrics.eventLogEntries.set(p.number + 1);
  metrics.observeState(status);
  metrics.callPoolSize.set(status.poolSize);
  metrics.countCall('included', p.included.length);
  for (const r of p.rejected) metrics.countCall(r.code === 'NONCE_GAP_EXPIRED' ? 'future_dropped' : 'invalid');
  logger.debug({ number: p.number, calls: p.included.length, rejected: p.rejected.length, ms: Math.round(seconds * 1000) }, 'block produced');
  return { number: p.number, hash: blockHash, calls: p.included.length, bytes: p.block };
}
