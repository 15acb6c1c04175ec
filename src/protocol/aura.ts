// Aura: time is cut into slots; the author of a slot is authorities[slot mod n].
export function slotAt(timeMs: number, slotDurationMs: number): bigint {
  return BigInt(Math.floor(timeMs / slotDurationMs));
}

export function slotStartMs(slot: bigint, slotDurationMs: number): number {
  return Number(slot) * slotDurationMs;
}

export function slotAuthor<T>(slot: bigint, authorities: readonly T[]): T | undefined {
  if (authorities.length === 0) return undefined;
  return authorities[Number(slot % BigInt(authorities.length))];
}

/** Blocks are proposed within this share of the slot, leaving the rest for propagation. */
export const PROPOSAL_SHARE = 0.7;
