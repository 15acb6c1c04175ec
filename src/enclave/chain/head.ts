// The head of this enclave's chain and what is decided from it: the recent blocks (anchors and
// rewinds), which block is final, and who may author the next block.
import { slotAuthor } from '../../protocol/aura.ts';
import { same } from '../../protocol/bytes.ts';
import { EnclaveError } from '../boundary/errors.ts';
import { unpaidWithdrawalId, type Item } from '../state/state.ts';
import type { Recipient } from '../keys/rotation.ts';
import { ZERO32, type EnclaveContext, type StagedBlock } from '../context.ts';

/** signatureHash: of the block's signature, which its child's header names. */
export interface Head {
  hash: Uint8Array;
  signatureHash: Uint8Array;
  number: bigint;
  slot: bigint;
  commitment: Uint8Array;
  parentchainNumber: number;
  parentchainHash: Uint8Array;
}
export const RECENT_BLOCKS_KEPT = 256;
/** Older blocks kept as known ancestors of the head (ancestors below). */
const ANCESTORS_KEPT = 64;

export class ChainHead {
  /** The newest applied block: null before genesis or a replay's first block, and after a failed rebuild. */
  current: Head | null = null;
  /** Recently committed or replayed blocks, in chain order, for anchors and rewinds. */
  readonly recentBlocks = new Map<bigint, Head>();
  /**
   * Blocks of this chain that may be older than the recent blocks, known to be ancestors of the head: the last
   * anchored block, kept while it was recent, and the blocks this enclave voted for. Whether an older anchor is on
   * this chain is read here, never assumed from its age: a host may give its enclave a branch that forked below the
   * anchored block and is longer than the recent blocks.
   */
  private readonly ancestors = new Map<bigint, Uint8Array>();
  /** Sidechain block that created each withdrawal (since start); older ones count as at `withdrawalBase`. */
  readonly withdrawalBlocks = new Map<bigint, bigint>();
  withdrawalBase = 0n;
  private readonly ctx: EnclaveContext;

  constructor(ctx: EnclaveContext) {
    this.ctx = ctx;
  }

  set(h: Head, items?: Item[]): void {
    this.current = h;
    this.recentBlocks.delete(h.number); // re-inserted last: the map stays in insertion (chain) order
    this.recentBlocks.set(h.number, h);
    if (this.recentBlocks.size > RECENT_BLOCKS_KEPT) this.recentBlocks.delete(this.recentBlocks.keys().next().value!);
    this.finalNumber(); // keeps the last anchored block while it is recent
    for (const item of items ?? []) {
      const id = unpaidWithdrawalId(item);
      if (id !== undefined) this.withdrawalBlocks.set(id, h.number);
    }
  }

  /** Applies the staged block once the host has stored it, and returns it. */
  commit(hash: Uint8Array): StagedBlock {
    const p = this.ctx.staged;
    if (!p || !same(p.hash, hash))
      throw new EnclaveError('NO_SUCH_PROPOSAL', 'commit does not match the pending proposal');
    this.ctx.state.apply(p.items, p.lthash, p.known);
    this.set(
      {
        hash: p.hash,
        signatureHash: p.signatureHash,
        number: p.number,
        slot: p.slot,
        commitment: p.lthash.digest(),
        parentchainNumber: p.parentchainNumber,
        parentchainHash: p.parentchainHash,
      },
      p.items,
    );
    this.ctx.staged = null;
    return p;
  }

  /** The parentchain block a child of `head` builds on: the light client's, or the head's without a parentchain. */
  nextParentchainNumber(head: Head): number {
    return this.ctx.parentchain ? this.ctx.parentchain.lightClient.number : head.parentchainNumber;
  }

  /** The last anchored block if it is in this enclave's chain (final), else -1. */
  finalNumber(): bigint {
    const a = this.ctx.parentchain?.registry.data.lastAnchor;
    const head = this.current;
    if (!a || !head || a.number > head.number) return -1n;
    const b = this.recentBlocks.get(a.number);
    if (!b) return same(this.ancestors.get(a.number) ?? ZERO32, a.hash) ? a.number : -1n;
    if (!same(b.hash, a.hash)) return -1n;
    this.keepAncestor(a.number, a.hash);
    return a.number;
  }

  /** Keeps block `number` (`hash`) of this chain as an ancestor of the head, beyond the recent blocks. */
  keepAncestor(number: bigint, hash: Uint8Array): void {
    if (same(this.ancestors.get(number) ?? ZERO32, hash)) return;
    this.ancestors.delete(number);
    this.ancestors.set(number, hash);
    if (this.ancestors.size > ANCESTORS_KEPT) this.ancestors.delete(this.ancestors.keys().next().value!);
  }

  /** Ancestors kept beyond the recent blocks (a snapshot carries them). */
  keptAncestors(): { number: bigint; hash: Uint8Array }[] {
    return [...this.ancestors].map(([number, hash]) => ({ number, hash }));
  }

  /** The head goes back to block `number` (a rewind): what was above it is no longer on this chain. */
  truncate(number: bigint): void {
    for (const n of [...this.recentBlocks.keys()]) if (n > number) this.recentBlocks.delete(n);
    for (const n of [...this.ancestors.keys()]) if (n > number) this.ancestors.delete(n);
  }

  /** A replay rebuilds the chain: nothing of the old one is known to be on it. */
  clearChain(): void {
    this.recentBlocks.clear();
    this.ancestors.clear();
  }

  /** Keys whose blocks replay accepts: configured authorities, this enclave, and every registered member. */
  isKnownAuthor(key: Uint8Array): boolean {
    if (same(key, this.ctx.keys.signingPublic)) return true;
    if (this.ctx.opts.authorities.some((a) => same(key, a))) return true;
    return this.ctx.parentchain?.registry.everMember(key) ?? false;
  }

  /**
   * The parentchain block whose active members author children of `parent` building on parentchain block
   * `parentchainNumber`: the parent's; for a shard with nobody registered there yet, the child's own (its first
   * members). A finality vote names it: the set that must vote is the set whose slots made the block.
   */
  authoritySetAt(parent: Head, parentchainNumber: number): number {
    const registry = this.ctx.parentchain?.registry;
    return registry && registry.activeAt(parent.parentchainNumber).length === 0
      ? parentchainNumber
      : parent.parentchainNumber;
  }

  /** Signing keys that author children of `parent` building on parentchain block `parentchainNumber`, in Aura order. */
  authoritiesAfter(parent: Head, parentchainNumber: number): Uint8Array[] {
    const pc = this.ctx.parentchain;
    if (!pc) return this.ctx.opts.authorities.length > 0 ? this.ctx.opts.authorities : [this.ctx.keys.signingPublic];
    return pc.registry.keysAt(this.authoritySetAt(parent, parentchainNumber));
  }

  /** Who creates block 0: the first configured authority, or the first member ever registered. */
  genesisAuthor(): Uint8Array | undefined {
    const pc = this.ctx.parentchain;
    if (!pc) return this.ctx.opts.authorities[0] ?? this.ctx.keys.signingPublic;
    return pc.registry.data.members[0]?.signingKey;
  }

  /** The author of `slot` on top of the head (null without a head or authorities), and of block 0. */
  slotAuthor(slot: bigint): { author: Uint8Array | null; genesisAuthor: Uint8Array | null } {
    const genesisAuthor = this.genesisAuthor() ?? null;
    const head = this.current;
    if (!head || this.ctx.replaying) return { author: null, genesisAuthor };
    return {
      author: slotAuthor(slot, this.authoritiesAfter(head, this.nextParentchainNumber(head))) ?? null,
      genesisAuthor,
    };
  }

  /** Members as of parentchain block `n` with the keys rotated state keys are sealed to; none without a parentchain. */
  recipientsAt(n: number): Recipient[] {
    return (
      this.ctx.parentchain?.registry
        .activeAt(n)
        .map((m) => ({ signingKey: m.signingKey, encryptionKey: m.encryptionKey })) ?? []
    );
  }
}
