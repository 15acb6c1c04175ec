// Gossip validation of a block: decode, cheap checks and the author's signature, equivocation, then
// import. The result decides forwarding: accept (new and imported or kept), ignore (known, not for us
// now, or a second block of an author's slot, or not imported by a local fault of ours), reject (undecodable, forged,
// by an author our registry shows was no member at the block's parentchain block, or refused by the enclave as
// invalid).
import type { Metrics } from '../metrics/metrics.ts';
import type { Logger } from 'pino';
import type { Validation } from '../p2p/network.ts';
import type { ParentWait } from '../consensus/parent-wait.ts';
import { describeBlock, type TreeBlock } from '../sidechain/block-tree.ts';
import type { SignedBlock } from '../protocol/block.ts';
import { slotStartMs } from '../protocol/aura.ts';
import type { BlockImport } from './import.ts';

const EQUIVOCATION_SLOTS_KEPT = 4096;

export interface GossipValidationDeps {
  metrics: Metrics;
  logger: Logger;
  blockImport: Pick<BlockImport, 'precheck' | 'ingest'>;
  parentWait: ParentWait;
  /** Off until the enclave holds the shard secrets. */
  isActive: () => boolean;
  /** The onboarding sync fetches blocks itself while it runs; the head moves only there. */
  onboarding: () => boolean;
  penalize: (peer: string | null, reason: string, code?: string) => void;
}

export class GossipValidation {
  private readonly deps: GossipValidationDeps;
  private readonly slotDurationMs: number;
  /** author:slot -> the hash of the first block seen for it. */
  private readonly seenSlots = new Map<string, string>();

  constructor(deps: GossipValidationDeps, slotDurationMs: number) {
    this.deps = deps;
    this.slotDurationMs = slotDurationMs;
  }

  async onGossipBlock(bytes: Uint8Array, from: string): Promise<Validation> {
    if (!this.deps.isActive()) return 'ignore';
    const at = Date.now();
    let b: TreeBlock;
    let signed: SignedBlock;
    try {
      ({ block: b, signed } = describeBlock(bytes, from, at));
    } catch {
      return this.invalid(from, 'undecodable block');
    }
    const pre = await this.deps.blockImport.precheck(b, signed);
    if (typeof pre === 'object') return this.invalid(from, 'bad block signature or shard', pre.invalid);
    if (pre !== 'ok') return 'ignore';
    if (this.isEquivocation(b)) return 'ignore';
    if (this.deps.onboarding()) return 'ignore'; // onboarding fetches it; the head moves only there meanwhile
    const done = this.deps.parentWait.importing(b.hash, b.slot, b.author, slotStartMs(b.slot, this.slotDurationMs));
    const result = await this.deps.blockImport.ingest([b]).finally(done);
    if (result.invalid.includes(b.hash)) return 'reject'; // counted and penalised where it failed
    if (result.failed.includes(b.hash)) return 'ignore'; // our fault, not the sender's: neither forwarded nor blamed
    return result.known.includes(b.hash) ? 'ignore' : 'accept';
  }

  /** Two different blocks signed by one author for one slot: logged and counted (the second is not forwarded). */
  private isEquivocation(b: TreeBlock): boolean {
    const key = `${b.author}:${b.slot}`;
    const seen = this.seenSlots.get(key);
    if (seen === undefined) {
      this.seenSlots.set(key, b.hash);
      if (this.seenSlots.size > EQUIVOCATION_SLOTS_KEPT) this.seenSlots.delete(this.seenSlots.keys().next().value!);
      return false;
    }
    if (seen === b.hash) return false;
    this.deps.metrics.equivocations.inc();
    const fields = { author: '0x' + b.author, slot: String(b.slot), first: '0x' + seen, second: '0x' + b.hash };
    this.deps.logger.warn(fields, 'equivocation: two blocks by one author for one slot');
    return true;
  }

  private invalid(peer: string, reason: string, code = 'DECODE_FAILED'): Validation {
    this.deps.metrics.countImport('invalid');
    this.deps.penalize(peer, reason, code);
    return 'reject';
  }
}
