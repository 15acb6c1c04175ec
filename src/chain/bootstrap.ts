// Brings the enclave's state up to the stored head: genesis on an empty store, otherwise the newest
// usable sealed snapshot plus the tail of the event log (falling back to older snapshots, then genesis).
import type { Enclave } from '../enclave/boundary/host.ts';
import type { BlockStore } from '../sidechain/store.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { Logger } from 'pino';
import { EnclaveError } from '../enclave/boundary/host.ts';
import { fillsItsBuffer, same, toHex } from '../protocol/bytes.ts';
import { codeOf } from '../protocol/errors.ts';

type GenesisDeps = { enclave: Enclave; store: BlockStore; logger: Logger };

/** Creates block 0 from the genesis endowments and stores it (the enclave state becomes the genesis state). */
export async function createGenesis(
  { enclave, store, logger }: GenesisDeps,
  balances: { account: Uint8Array; amount: bigint }[],
): Promise<{ block: Uint8Array; hash: Uint8Array }> {
  const g = await enclave.call('genesis', { balances, timestampMs: Date.now() });
  await store.append({ number: 0, hash: g.hash, bytes: g.block, callHashes: [] });
  logger.info({ hash: toHex(g.hash) }, 'genesis block created');
  return g;
}

async function blockHashAt(store: BlockStore, n: number): Promise<Uint8Array> {
  const hash = await store.hashAt(n);
  if (!hash) throw new EnclaveError('REPLAY_BROKEN_CHAIN', `block ${n} is not in the store`);
  return hash;
}

export interface BootstrapResult {
  mode: 'genesis' | 'replay' | 'empty';
  headNumber: number;
  replayedBlocks: number;
  transitions: number;
  fromSnapshot: number | null;
  ms: number;
}

export async function bootstrap(
  deps: { enclave: Enclave; store: BlockStore; metrics: Metrics; logger: Logger },
  /** Creates block 0 on an empty store; null = leave it empty (block 0 comes from the set's first authority). */
  genesisBalances: (() => Promise<{ account: Uint8Array; amount: bigint }[]>) | null,
  opts: { verifyEach?: boolean; ignoreSnapshots?: boolean; upTo?: number } = {},
): Promise<BootstrapResult> {
  const { enclave, store, metrics, logger } = deps;
  const started = performance.now();
  const stored = store.head();
  const head =
    stored && opts.upTo !== undefined && opts.upTo < stored.number
      ? { number: opts.upTo, hash: await blockHashAt(store, opts.upTo) }
      : stored;
  if (!head && !genesisBalances)
    return { mode: 'empty', headNumber: -1, replayedBlocks: 0, transitions: 0, fromSnapshot: null, ms: 0 };
  if (!head) {
    await createGenesis(deps, await genesisBalances!());
    return {
      mode: 'genesis',
      headNumber: 0,
      replayedBlocks: 1,
      transitions: 0,
      fromSnapshot: null,
      ms: performance.now() - started,
    };
  }

  const snapshots = (await store.snapshots()).filter((s) => s.number <= head.number);
  const candidates: ({ number: number; sealed: Uint8Array } | null)[] =
    opts.verifyEach || opts.ignoreSnapshots ? [null] : [...snapshots, null];
  for (const snap of candidates) {
    try {
      await enclave.call('beginReplay', { snapshot: snap?.sealed, verifyEach: opts.verifyEach ?? false });
      let replayed = 0;
      for await (const blocks of store.blocksFrom(snap ? snap.number + 1 : 0, 512, head.number)) {
        // Handed over, not copied: a replay's blocks are read once.
        await enclave.call('replayBlocks', { blocks }, ownBuffers(blocks));
        replayed += blocks.length;
        metrics.replayBlocks.inc(blocks.length);
      }
      const done = await enclave.call('finishReplay', {});
      if (done.headNumber !== head.number || !same(done.headHash, head.hash)) {
        throw new EnclaveError(
          'REPLAY_HEAD_MISMATCH',
          `replay ended at ${done.headNumber}, store head is ${head.number}`,
        );
      }
      const ms = performance.now() - started;
      logger.info(
        {
          head: head.number,
          fromSnapshot: snap?.number ?? null,
          replayed,
          transitions: done.transitions,
          ms: Math.round(ms),
        },
        'state rebuilt from the event log',
      );
      return {
        mode: 'replay',
        headNumber: head.number,
        replayedBlocks: replayed,
        transitions: done.transitions,
        fromSnapshot: snap?.number ?? null,
        ms,
      };
    } catch (err) {
      if (!snap) throw err;
      logger.warn(
        { snapshot: snap.number, code: codeOf(err), err: err instanceof Error ? err.message : String(err) },
        'snapshot unusable, trying an older one',
      );
    }
  }
  throw new Error('unreachable');
}

/** The buffers of blocks that each fill their own (a view into a shared one cannot be handed over). */
function ownBuffers(blocks: Uint8Array[]): ArrayBuffer[] {
  const out: ArrayBuffer[] = [];
  for (const b of blocks) if (b.buffer instanceof ArrayBuffer && fillsItsBuffer(b)) out.push(b.buffer);
  return out;
}
