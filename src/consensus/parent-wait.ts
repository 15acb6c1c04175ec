// An author's wait for the previous slot's block before it builds its own. Building on the parent
// instead of the grandparent is what keeps a set from forking when a block is a little late. The wait
// is short (an author may be offline, or may have skipped its slot), except when that block is known
// to be coming late: while a block of that slot is being imported, or when the same author's last
// block, in the recent past, reached us only after a short wait would have ended (under load blocks
// leave late and take a good part of a slot to import). A block built beside it would fork and cost
// every validateer a reorg; an author that is on time, or gone quiet, costs the chain little.

/** An author's last block counts for this many slots. */
const RECENT_SLOTS = 32n;

export class ParentWait {
  private headSlot = -1n;
  private changed = Promise.withResolvers<void>();
  /** Blocks received whose import is under way: hash -> slot. */
  private readonly arriving = new Map<string, bigint>();
  /** Each author's (hex) newest block imported: its slot, and how long after its slot start the import ended here. */
  private readonly lastOf = new Map<string, { slot: bigint; doneAfterMs: number }>();
  private stopped = false;

  /** The head is now a block of `slot`. */
  headIs(slot: bigint): void {
    this.headSlot = slot;
    this.wake();
  }

  /**
   * A block of `slot` (starting at `slotStartMs`) by `author` (hex; its signature was checked) was
   * received and goes to import; call the returned function once the import is done, either way.
   */
  importing(hash: string, slot: bigint, author: string, slotStartMs: number): () => void {
    this.arriving.set(hash, slot);
    return () => {
      const last = this.lastOf.get(author);
      if (!last || slot >= last.slot) this.lastOf.set(author, { slot, doneAfterMs: Date.now() - slotStartMs });
      if (this.arriving.delete(hash)) this.wake();
    };
  }

  stop(): void {
    this.stopped = true;
    this.wake();
  }

  /**
   * Resolves once the head's slot is at least `slot` (which starts at `slotStartMs`; its author is
   * `author`, hex, if known), at `shortDeadlineMs`, or at `longDeadlineMs` when that block is known to
   * come late (see above).
   */
  async until(
    slot: bigint,
    author: string | null,
    slotStartMs: number,
    shortDeadlineMs: number,
    longDeadlineMs: number,
  ): Promise<void> {
    const last = author === null ? undefined : this.lastOf.get(author);
    const late =
      last !== undefined && last.slot >= slot - RECENT_SLOTS && last.doneAfterMs > shortDeadlineMs - slotStartMs;
    while (this.headSlot < slot && !this.stopped) {
      const long = late || this.isArriving(slot);
      const left = (long ? Math.max(shortDeadlineMs, longDeadlineMs) : shortDeadlineMs) - Date.now();
      if (left <= 0) return;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.changed.promise,
        new Promise((r) => {
          timer = setTimeout(r, left);
        }),
      ]);
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
