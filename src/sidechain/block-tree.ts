// Blocks known but not in the canonical chain: side branches (which may win later) and blocks whose
// parent has not arrived yet. Kept in memory, bounded; the canonical chain lives in the BlockStore.
import { decodeBlock, type SignedBlock } from '../protocol/block.ts';
import { sha256 } from '../crypto/primitives.ts';
import { hexKey } from '../protocol/bytes.ts';

export interface TreeBlock {
  hash: string; // hex, no 0x
  hashBytes: Uint8Array;
  parent: string;
  number: number;
  slot: bigint;
  author: string;
  bytes: Uint8Array;
  callHashes: Uint8Array[];
  /** Peer that sent it (penalised if it turns out invalid); null = this node. */
  from: string | null;
  /** When it was received through gossip (for propagation latency), else null. */
  gossipAtMs: number | null;
}

/**
 * Strict (exactly one canonical block, else DECODE_FAILED), and without re-encoding the block: it runs for every block
 * gossiped.
 */
export function describeBlock(
  bytes: Uint8Array,
  from: string | null,
  gossipAtMs: number | null,
): { block: TreeBlock; signed: SignedBlock } {
  const { block: signed, headerBytes } = decodeBlock(bytes);
  const h = signed.header;
  const hashBytes = sha256(headerBytes); // = headerHash(h): a header has exactly one encoding
  return {
    signed,
    block: {
      hash: hexKey(hashBytes),
      hashBytes,
      parent: hexKey(h.parentHash),
      number: Number(h.number),
      slot: h.slot,
      author: hexKey(h.author),
      bytes,
      callHashes: signed.body.calls,
      from,
      gossipAtMs,
    },
  };
}

export class BlockTree {
  private readonly blocks = new Map<string, TreeBlock>();
  private readonly children = new Map<string, Set<string>>();
  private readonly limit: number;

  constructor(limit: number) {
    this.limit = limit;
  }

  get size(): number {
    return this.blocks.size;
  }

  has(hash: string): boolean {
    return this.blocks.has(hash);
  }

  get(hash: string): TreeBlock | undefined {
    return this.blocks.get(hash);
  }

  add(b: TreeBlock): void {
    if (this.blocks.has(b.hash)) return;
    // Bounded: the oldest entries go first (a branch that old has long lost or is refetched).
    while (this.blocks.size >= this.limit) this.delete(this.blocks.keys().next().value!);
    this.blocks.set(b.hash, b);
    let set = this.children.get(b.parent);
    if (!set) this.children.set(b.parent, (set = new Set()));
    set.add(b.hash);
  }

  /** Removes one block (its children stay, as blocks with a missing parent). */
  delete(hash: string): TreeBlock | undefined {
    const b = this.blocks.get(hash);
    if (!b) return undefined;
    this.blocks.delete(hash);
    const set = this.children.get(b.parent);
    set?.delete(hash);
    if (set?.size === 0) this.children.delete(b.parent);
    return b;
  }

  /** Removes a block and everything built on it. */
  deleteWithDescendants(hash: string): TreeBlock[] {
    const out: TreeBlock[] = [];
    const stack = [hash];
    while (stack.length > 0) {
      const h = stack.pop()!;
      stack.push(...(this.children.get(h) ?? []));
      const b = this.delete(h);
      if (b) out.push(b);
    }
    return out;
  }

  /** Blocks with no child in the tree. */
  leaves(): TreeBlock[] {
    return [...this.blocks.values()].filter((b) => !this.children.get(b.hash)?.size);
  }
}
