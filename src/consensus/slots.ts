// Wakes up at the start of every slot and hands the slot to the author callback, one slot at a time:
// if a slot's work overruns, the missed slots are skipped rather than queued.
import { slotAt, slotStartMs } from '../protocol/aura.ts';

export interface SlotWorkerOptions {
  slotDurationMs: number;
  onSlot: (slot: bigint, slotStartMs: number) => Promise<void>;
  onError: (err: unknown) => void;
  now?: () => number;
}

export class SlotWorker {
  private readonly opts: SlotWorkerOptions;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private current: Promise<void> = Promise.resolve();
  private lastSlot = -1n;

  constructor(opts: SlotWorkerOptions) {
    this.opts = opts;
  }

  start(): void {
    this.running = true;
    this.schedule();
  }

  private schedule(): void {
    if (!this.running) return;
    const now = (this.opts.now ?? Date.now)();
    const next = slotStartMs(slotAt(now, this.opts.slotDurationMs) + 1n, this.opts.slotDurationMs);
    this.timer = setTimeout(() => this.tick(), Math.max(0, next - now));
  }

  private tick(): void {
    const now = (this.opts.now ?? Date.now)();
    const slot = slotAt(now, this.opts.slotDurationMs);
    if (slot > this.lastSlot) {
      this.lastSlot = slot;
      this.current = this.opts
        .onSlot(slot, slotStartMs(slot, this.opts.slotDurationMs))
        .catch(this.opts.onError)
        .finally(() => this.schedule());
    } else {
      this.schedule();
    }
  }

  /** Stops scheduling and waits for the slot in progress to finish. */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    await this.current;
  }
}
