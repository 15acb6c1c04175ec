// Fork choice, as pure functions: the longest chain wins, ties go to the lowest head hash, and a chain
// that does not contain the last anchored block never wins (anchors are final). Import (chain/import.ts)
// gathers the candidates and asks the store what these functions cannot know.
export interface ChainTip {
  number: number;
  hash: Uint8Array;
}

/** Whether tip `a` is preferred over tip `b`. */
export function isBetter(a: ChainTip, b: ChainTip | null): boolean {
  if (!b) return true;
  if (a.number !== b.number) return a.number > b.number;
  return Buffer.compare(Buffer.from(a.hash), Buffer.from(b.hash)) < 0;
}

/**
 * Whether a chain contains the last anchored block `anchor`: the chain is the canonical chain up to
 * `ancestor`, then `path` (blocks in order, hex hashes). true/false, or 'ask_store' when the anchor is at or
 * below the ancestor (then the canonical block at the anchor's number decides).
 */
export function anchorVerdict(
  anchor: ChainTip | null,
  ancestor: number,
  path: readonly { number: number; hash: string }[],
  anchorHashHex: string | null,
): boolean | 'ask_store' {
  if (!anchor) return true;
  const top = path.at(-1)?.number ?? ancestor;
  if (top < anchor.number) return true; // not there yet: may still grow into it
  if (anchor.number <= ancestor) return 'ask_store';
  return path.some((b) => b.number === anchor.number && b.hash === anchorHashHex);
}

/** A chain that could become canonical: its tip, and whether it contains the last anchored block. */
export interface Candidate<T> {
  tip: ChainTip;
  onAnchoredChain: boolean;
  value: T;
}

/**
 * The candidate to switch to, or null to keep the head: the best tip among those on the anchored
 * chain, if it beats the head. A head that is not on the anchored chain does not count (any anchored
 * candidate beats it), and candidates are never compared against it.
 */
export function chooseTip<T>(
  head: { tip: ChainTip; onAnchoredChain: boolean } | null,
  candidates: Iterable<Candidate<T>>,
): Candidate<T> | null {
  let best: Candidate<T> | null = null;
  for (const c of candidates) {
    if (!c.onAnchoredChain) continue;
    const current = best ? best.tip : head?.onAnchoredChain ? head.tip : null;
    if (isBetter(c.tip, current)) best = c;
  }
  return best;
}
