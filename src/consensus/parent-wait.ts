// An author's wait for the previous slot's block before it builds its own. Building on the parent
// instead of the grandparent is what keeps a set from forking when a block is a little late. Under
// load a block can come late in its slot and take a good part of the next to import, so the author
// waits longer when that slot's author is live (a block of its was seen lately) or while a block of
// that slot is being imported: a block built beside it would fork and cost every validateer a reorg.
// An author that has gone quiet is waited for briefly, so its slots cost the chain little.

/** An author with a block in this many recent slots counts as live. */
const LIVE_SLOTS = 32n;

export class ParentWait {
  private headSlot = -1n;
  private changed = Promise.withResolvers<void>();
  /** Blocks received whose import is under way: hash -> slot. */
  private readonly arriving = new Map<string, bigint>();
  /** Each author's newest slot with a block seen (hex key). */
  private readonly lastSlotOf = new Map<string, bigint>();
  private stopped = false;

  /** The head is now a block of `slot`. */
  headIs(slot: bigint): void {
    this.headSlot = slot;
    this.wake();
  }

  /**
   * A block of `slot` by `author` (whose signature was checked) was received and goes to import; call
   * the returned function once the import is done, either way.
   */
  importing(hash: string, slot: bigint, author: string): () => void {
    if (slot > (this.lastSlotOf.get(author) ?? -1n)) this.lastSlotOf.set(author, slot);
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
   * Resolves once the head's slot is at least `slot` (whose author is `author`, hex, if known), at
   * `shortDeadlineMs`, or at `longDeadlineMs` while that author is live or a block of `slot` or later
   * is being imported.
   */
  async until(slot: bigint, author: string | null, shortDeadlineMs: number, longDeadlineMs: number): Promise<void> {
    const last = author === null ? undefined : this.lastSlotOf.get(author);
    const live = last !== undefined && last >= slot - LIVE_SLOTS;
    while (this.headSlot < slot && !this.stopped) {
      const long = live || this.isArriving(slot);
      const left = (long ? Math.max(shortDeadlineMs, longDeadlineMs) : shortDeadlineMs) - Date.now();
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
