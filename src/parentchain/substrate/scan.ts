// The finalized-block scan behind Parentchain.scanFinalized: walks by number up to the finalized
// head with a window of blocks fetched ahead, checks that each block extends the previous one, and
// keeps retrying (resuming where it was) across connection loss.
import { u8aEq } from '@polkadot/util';
import { ValidateerError } from '../../protocol/errors.ts';
import type { BlockOptions, FinalizedScanner, ParentchainBlock, ParentchainHeader, ScanOptions } from '../api.ts';
import { sleep } from './connection.ts';

/** What a scan reads from the adapter. */
export interface ScanSource {
  finalizedHead(): Promise<ParentchainHeader>;
  subscribeFinalizedHeads(cb: (header: ParentchainHeader) => void): Promise<() => void>;
  blockAt(number: number, options: BlockOptions): Promise<ParentchainBlock>;
  /** True once the adapter is closed: the scan ends quietly. */
  readonly closed: boolean;
}

/** An error that ends the scan (a broken chain, or onBlock threw) rather than being retried. */
class ScanFatal extends Error {
  override readonly cause: Error;
  constructor(cause: Error) {
    super(cause.message);
    this.cause = cause;
  }
}

/** Starts a scan; `onStopped` is told once stop() has finished (the adapter stops tracking it). */
export function startScan(
  source: ScanSource,
  fromNumber: number,
  onBlock: (block: ParentchainBlock) => Promise<void> | void,
  options: ScanOptions,
  onStopped: (scanner: FinalizedScanner) => void,
): FinalizedScanner {
  const prefetch = Math.max(1, options.prefetch ?? 32);
  const blockOptions: BlockOptions = {
    events: options.events ?? 'signed',
    ...(options.decodeOnly ? { decodeOnly: options.decodeOnly } : {}),
  };
  let next = fromNumber;
  let previous = options.fromParentHash;
  let stopped = false;
  let wake: (() => void) | undefined;
  const waitForHead = (ms: number) =>
    new Promise<void>((r) => {
      const t = setTimeout(r, ms);
      wake = () => {
        clearTimeout(t);
        r();
      };
    });
  const unsub = source.subscribeFinalizedHeads(() => wake?.()).catch(() => undefined);

  const run = async (): Promise<void> => {
    let failures = 0;
    while (!stopped && !source.closed) {
      try {
        const finalized = (await source.finalizedHead()).number;
        // A sliding window: up to `prefetch` blocks are being fetched while the oldest is processed.
        const fetches: Promise<ParentchainBlock>[] = [];
        let requested = next;
        while (!stopped && next <= finalized) {
          for (; requested <= finalized && requested < next + prefetch; requested++) {
            const p = source.blockAt(requested, blockOptions);
            p.catch(() => undefined); // awaited below in order; avoid unhandled rejections
            fetches.push(p);
          }
          const block = await fetches.shift()!;
          if (stopped) return;
          if (previous && !u8aEq(block.header.parentHash, previous)) {
            throw new ScanFatal(
              new ValidateerError(
                'PARENTCHAIN_BROKEN_CHAIN',
                `block ${block.header.number} does not extend the previous block`,
              ),
            );
          }
          try {
            await onBlock(block);
          } catch (err) {
            throw new ScanFatal(err as Error);
          }
          previous = block.header.hash;
          next = block.header.number + 1;
        }
        failures = 0;
      } catch (err) {
        if (err instanceof ScanFatal) throw err.cause;
        if (source.closed) return;
        failures++;
        options.onError?.(err as Error);
        await sleep(Math.min(5000, 200 * 2 ** Math.min(failures, 5)));
        continue;
      }
      // The subscription wakes us early; polling covers missed notifications and reconnections.
      await waitForHead(1000);
    }
  };
  const done = run().finally(() => void unsub.then((u) => u?.()));
  const scanner: FinalizedScanner = {
    get next() {
      return next;
    },
    done,
    stop: async () => {
      stopped = true;
      wake?.();
      await done.catch(() => undefined);
      onStopped(scanner);
    },
  };
  return scanner;
}
