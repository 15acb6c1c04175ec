// An author's wait for the previous slot's block before it builds its own. Building on the parent
// instead of the grandparent is what keeps a set from forking when a block is a little late; under
// load a block can take a good part of a slot to import, so while one for the awaited slot is being
// imported the author waits longer for it (a block built beside it would fork and cost every
// validateer a reorg).

export class ParentWait {
  private headSlot = -1n;
  private changed = Promise.withResolvers<void>();
  /** Blocks received whose import is under way: hash -> slot. */
  private readonly arriving = new Map<string, bigint>();
  private stopped = false;

  /** The head is now a block of `slot`. */
  headIs(slot: bigint): void {
    this.headSlot = slot;
    this.wake();
  }

  /** A block of `slot` was received and goes to import; call the returned function once it is done (either way). */
  importing(hash: string, slot: bigint): () => void {
    this.arriving.set(hash, slot);
    return () => {
      if (this.arriving.delete(hash)) this.wake();
    };
  }

  stop(): void {
    this.stopped = true;
    this.wake();
  }

  /**
   * Resolves once the head's slot is at least `slot`, at `deadlineMs`, or, while a block of `slot`
   * or later is being imported, at `importDeadlineMs`.
   */
  async until(slot: bigint, deadlineMs: number, importDeadlineMs: number): Promise<void> {
    while (this.headSlot < slot && !this.stopped) {
      const left = (this.isArriving(slot) ? Math.max(deadlineMs, importDeadlineMs) : deadlineMs) - Date.now();
      if (left <= 0) return;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.changed.promise, new Promise((r) => { timer = setTimeout(r, left); })]);
      clearTimeout(timer);
    }
  }

  private isArriving(slot: bigint): boolean {
    for (const s of this.arriving.values()) if (s >= slot) return true;
    return false;
  }

  private wake(): void {
    this.changed.resolve();
    this.changed = Promise.withResolvers<void>();
  }
}
