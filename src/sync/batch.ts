// The onboarding sync's units of work, after lodestar's range sync (beacon-node/src/sync/range/batch.ts):
// a Batch is a range of block numbers with an explicit state, and a SyncPeer is one peer serving ranges.
//
//   awaiting_download -> downloading -> awaiting_processing -> processing -> done
//          ^                  |                                   |
//          +------------------+-----------------------------------+   (failed download or verification)
// A sync that gives up marks the batches it did not apply as failed.

export type BatchState = 'awaiting_download' | 'downloading' | 'awaiting_processing' | 'processing' | 'done' | 'failed';

export class Batch {
  /** First block number and number of blocks; both shrink when a peer serves part of the range. */
  start: number;
  count: number;
  state: BatchState = 'awaiting_download';
  /** Downloads started for this range (a rate-limited request does not count). */
  attempts = 0;
  /** The peer downloading or that served the blocks. */
  peer: string | null = null;
  blocks: Uint8Array[] = [];

  constructor(start: number, count: number) {
    this.start = start;
    this.count = count;
  }

  /** The last block number of the range. */
  get end(): number {
    return this.start + this.count - 1;
  }

  startDownload(peer: string): void {
    this.expect('awaiting_download');
    this.state = 'downloading';
    this.peer = peer;
    this.attempts++;
  }

  /**
   * Blocks served for the range (the first at `start`). Fewer than asked: the batch covers what came,
   * and a new batch for the rest is returned.
   */
  downloaded(blocks: Uint8Array[]): Batch | null {
    this.expect('downloading');
    this.state = 'awaiting_processing';
    this.blocks = blocks;
    if (blocks.length >= this.count) return null;
    const rest = new Batch(this.start + blocks.length, this.count - blocks.length);
    this.count = blocks.length;
    return rest;
  }

  /** The download failed, or its blocks were not usable: the range goes back to be asked again. */
  retry(opts: { countAttempt: boolean } = { countAttempt: true }): void {
    if (!opts.countAttempt) this.attempts--;
    this.state = 'awaiting_download';
    this.peer = null;
    this.blocks = [];
  }

  startProcessing(): void {
    this.expect('awaiting_processing');
    this.state = 'processing';
  }

  /**
   * `applied` of its blocks are canonical now. All of them: done. Fewer: the batch becomes the range
   * of the rest, to be downloaded again.
   */
  processed(applied: number): void {
    this.expect('processing');
    if (applied >= this.count) {
      this.state = 'done';
      this.blocks = [];
      return;
    }
    this.start += applied;
    this.count -= applied;
    this.retry();
  }

  fail(): void {
    this.state = 'failed';
    this.blocks = [];
  }

  private expect(state: BatchState): void {
    if (this.state !== state) throw new Error(`batch ${this.start}+${this.count} is ${this.state}, not ${state}`);
  }
}

/** A peer serving the onboarding sync: its reported head, its requests in flight, and whether it was dropped. */
export class SyncPeer {
  readonly id: string;
  head: number;
  inFlight = 0;
  dropped = false;

  constructor(id: string, head: number) {
    this.id = id;
    this.head = head;
  }

  /** Whether it can take another request now. */
  hasCapacity(perPeer: number): boolean {
    return !this.dropped && this.inFlight < perPeer;
  }
}
