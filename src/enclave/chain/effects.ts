// The parentchain effects a sidechain block executes (shields, invocations, payouts), committed in its header
// (effectsRoot), and the rule an importer checks them by. Importers apply the author's encrypted transitions without
// re-executing them, so with the state commitment alone one lying host could mint: it reports a failed shield to its
// own enclave as a success, the block credits it, and the others would import and later pay it out. Instead every
// member derives the effects from its own light client and registry, and refuses a block whose effects differ.
//
// Threat model: the effects are as true as the parentchain blocks and the extrinsic outcomes each member's own host
// reports (events, until storage proofs are verified); one lying host convinces only its own enclave. That enclave
// may vote for its own branch, but an anchor needs the votes of a strict majority of the set (parentchain/finality.ts),
// so the branch becomes final in no registry, its own included, and nothing it credited is paid out.
import { Vector } from 'scale-ts';
import { sha256 } from '../../crypto/primitives.ts';
import type { Header } from '../../protocol/block.ts';
import { concatBytes, same } from '../../protocol/bytes.ts';
import { EnclaveError } from '../boundary/errors.ts';
import { Effect } from '../parentchain/registry-data.ts';
import type { EnclaveContext } from '../context.ts';

/** v1: the SCALE list of effects, each with its parentchain number, kind, account, amount, withdrawal and request. */
const EFFECTS_DOMAIN = new TextEncoder().encode('validateer/effects/v1');
const EffectList = Vector(Effect);

export function effectsRoot(effects: Effect[]): Uint8Array {
  return sha256(concatBytes(EFFECTS_DOMAIN, EffectList.enc(effects)));
}
/** What genesis, and every block without a parentchain, commits to. */
export const NO_EFFECTS_ROOT = effectsRoot([]);

/** The effects a block building on parentchain block `upTo` executes after a parent that built on `after`. */
export function effectsBetween(ctx: EnclaveContext, after: number, upTo: number): Effect[] {
  return ctx.parentchain?.effectsBetween(after, upTo) ?? [];
}

/**
 * Import: the block's effectsRoot must be the digest of the effects this enclave derived itself for the block's
 * parentchain range (its parent's parentchainNumber, its own]; the light client has verified that range already
 * (checkChild). Where this enclave cannot know them, what is checked instead:
 * - effects settled by an anchor (dropped once an anchored block executed them: a member lagging behind the anchor,
 *   or onboarding): the block must be on the way to the anchored block, i.e. at most its number, that block itself at
 *   its number, and within the parentchain range it executed. The signed chain up to the anchor is trusted there.
 * - effects read before this enclave's shard secrets arrived (provisionedAt): it read shields with its own shielding
 *   key and cannot tell which it missed. The signed chain is trusted for those blocks (a joining member's onboarding);
 *   this enclave authors only past them (NOT_CAUGHT_UP), and checks every block after them.
 * Replay of stored blocks (chain/replay.ts) does not check effects: it re-verifies, by signatures, links and state
 * commitments, blocks this enclave checked when it imported or built them.
 */
export function checkEffects(
  ctx: EnclaveContext,
  parentParentchainNumber: number | null,
  h: Header,
  hash: Uint8Array,
): void {
  if (parentParentchainNumber === null) {
    if (!same(h.effectsRoot, NO_EFFECTS_ROOT))
      throw new EnclaveError('EFFECTS_MISMATCH', 'genesis must execute no parentchain effects');
    return;
  }
  const pc = ctx.parentchain;
  const from = parentParentchainNumber;
  if (pc && from < pc.effectsSettled) {
    const anchor = pc.registry.data.lastAnchor;
    if (
      !anchor ||
      h.parentchainNumber > pc.effectsSettled ||
      h.number > anchor.number ||
      (h.number === anchor.number && !same(hash, anchor.hash))
    ) {
      throw new EnclaveError(
        'EFFECTS_UNKNOWN',
        `block ${h.number} executes parentchain effects from before #${pc.effectsSettled}, which the anchored ` +
          `block ${anchor?.number ?? '?'} settled, and is not on the way to that block`,
      );
    }
    return;
  }
  if (pc && from < ctx.keys.provisionedAt) return;
  if (!same(effectsRoot(effectsBetween(ctx, from, h.parentchainNumber)), h.effectsRoot)) {
    throw new EnclaveError(
      'EFFECTS_MISMATCH',
      `block ${h.number} executes other parentchain effects of #${from + 1}..#${h.parentchainNumber} than this ` +
        'enclave derived from its light client',
    );
  }
}
