// Fork choice: the longest chain wins, ties go to the lowest head hash, and a chain that does not
// contain the last anchored block never wins (anchors are final).
export interface ChainTip { number: number; hash: Uint8Array }

/** Whether tip `a` is preferred over tip `b`. */
export function isBetter(a: ChainTip, b: ChainTip | null): boolean {
  if (!b) return true;
  if (a.number !== b.number) return a.number > b.number;
  return Buffer.compare(Buffer.from(a.hash), Buffer.from(b.hash)) < 0;
}
