// The signing guard: one small sealed record of what this enclave has signed and must never sign again
// (a block per slot, a finality vote per sidechain number), written and fsynced before a signature
// leaves the enclave. The sealed parentchain view is written through it and the two vouch for each
// other: each view write carries a sequence number and a copy of the guard's record, and the guard
// records that number after it. A view older than the guard's number was put back by the host (a
// rollback that drops the duties sealed in flight); a view more than one write ahead of the guard, or
// with a newer record, shows the guard itself was put back.
//
// Residual risk (simulation mode, and any TEE without a hardware monotonic counter), for the threat model:
// - the host can put back BOTH files together, as a consistent older pair (or delete both): nothing
//   inside the enclave tells that from the real latest state;
// - a guard put back to a state after the view's last write is not seen (the host decides when the view
//   is written, by when it feeds parentchain blocks), nor any guard rollback in a set without a parentchain;
// - the host can run two enclave instances from copies of one data directory (a fork of the sealed
//   state): each signs as if it were the only one;
// - rolling back the guard re-allows the slots signed since; the enclave still refuses a slot not after its
//   head's, so a second block for a slot also needs the head rewound (a rewind, or a replay the host cuts short).
// Closing these takes a monotonic counter bound into every sealed write (SGX's platform counters were
// withdrawn; a TPM NV counter, or a quorum of peers that remember the last sequence number, are options).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Bytes, Struct, u8, u32, u64 } from 'scale-ts';
import { decodeExact } from '../../protocol/wire.ts';
import { hasCode } from '../../protocol/errors.ts';
import { same } from '../../protocol/bytes.ts';
import { EnclaveError } from '../boundary/errors.ts';
import { writeFileAtomic, type Sealer } from './sealing.ts';

/** The fields of version 1 of the record (before finality votes). The first byte is the version. */
const V1_FIELDS = {
  version: u8,
  /** The lowest slot a block may still be signed for: one past the highest slot signed (0: none yet). */
  blockSlot: u64,
  /** Sequence number of the last parentchain view sealed (0: none under a guard yet). */
  viewSeq: u64,
  /** Its light client head (for messages). */
  viewHead: u32,
  /** A parentchain block by which every duty signed so far can no longer be included. */
  dutiesLiveUntil: u32,
  /** Rollbacks detected so far (sticky: shown in the status). */
  rollbacks: u32,
  /** After a view rollback: duties are refused while the light client is below this block. */
  dutiesRefusedUntil: u32,
};
const GuardV1 = Struct(V1_FIELDS);
/**
 * Version 2 adds the finality vote: the highest sidechain number voted for and the hash voted there. Votes only go up,
 * so one record refuses a second hash at a number and any number below.
 */
const GuardV2 = Struct({
  ...V1_FIELDS,
  /** The highest sidechain number this enclave voted for (0: none yet; no vote is ever for block 0). */
  voteNumber: u64,
  voteHash: Bytes(32),
});
type GuardRecord = ReturnType<typeof GuardV2.dec>;
const GUARD_V1 = 1;
const GUARD_V2 = 2;
const GUARD_LABEL = 'signing-guard';
const NO_VOTE = { voteNumber: 0n, voteHash: new Uint8Array(32) };

function decodeGuard(bytes: Uint8Array): GuardRecord {
  if (bytes[0] === GUARD_V2) return decodeExact(GuardV2, bytes, 'sealed signing guard');
  if (bytes[0] === GUARD_V1)
    return { ...decodeExact(GuardV1, bytes, 'sealed signing guard'), version: GUARD_V2, ...NO_VOTE };
  throw new EnclaveError('UNSEAL_FAILED', `sealed signing guard: unknown version ${bytes[0]}`);
}

/** The newer of two votes: the higher number (at one number both records hold the same hash). */
function laterVote(a: GuardRecord, b: GuardRecord): Pick<GuardRecord, 'voteNumber' | 'voteHash'> {
  const v = b.voteNumber > a.voteNumber ? b : a;
  return { voteNumber: v.voteNumber, voteHash: v.voteHash };
}
const max = (a: bigint, b: bigint): bigint => (a > b ? a : b);
/** One past the largest slot a block may be signed for: the next signable slot must still fit a u64. */
const MAX_SLOT = 2n ** 64n - 1n;

/** The sealed view with its sequence number and a copy of the guard's record at the time of writing. */
export const ViewEnvelope = Struct({ seq: u64, guard: Bytes(), view: Bytes() });
export const VIEW_LABEL = 'parentchain/v2';
/** Views sealed before the guard existed: the bare view under this label. */
const LEGACY_VIEW_LABEL = 'parentchain';

export interface RollbackStatus {
  /** Rollbacks detected (sealed, so a restart does not hide them). */
  rollbacks: number;
  /** Duties are refused while the light client is below this parentchain block (0: not refused). */
  dutiesRefusedUntil: number;
  /** What the last rollback detected since this start was (null: none since this start). */
  lastRollback: string | null;
}

export class SigningGuard {
  private r: GuardRecord;
  private readonly path: string;
  private readonly sealer: Sealer;
  private lastRollback: string | null = null;

  private constructor(path: string, sealer: Sealer, r: GuardRecord) {
    this.path = path;
    this.sealer = sealer;
    this.r = r;
  }

  /** Opens the sealed record under dataDir, or starts an empty one (first start, or deleted: readView may tell). */
  static open(dataDir: string, sealer: Sealer): SigningGuard {
    const path = join(dataDir, 'enclave', 'signing-guard.sealed');
    if (!existsSync(path)) {
      const r = { version: GUARD_V2, blockSlot: 0n, viewSeq: 0n, viewHead: 0, dutiesLiveUntil: 0 };
      return new SigningGuard(path, sealer, { ...r, rollbacks: 0, dutiesRefusedUntil: 0, ...NO_VOTE });
    }
    return new SigningGuard(path, sealer, decodeGuard(sealer.unseal(GUARD_LABEL, new Uint8Array(readFileSync(path)))));
  }

  private persist(): void {
    writeFileAtomic(this.path, this.sealer.seal('signer', GUARD_LABEL, GuardV2.enc(this.r)));
  }

  /**
   * Seals `next`, then adopts it: a write that fails leaves the record as it was, so a signature it was to allow is
   * not made later on the strength of a record that is not on disk.
   */
  private commit(next: GuardRecord): void {
    writeFileAtomic(this.path, this.sealer.seal('signer', GUARD_LABEL, GuardV2.enc(next)));
    this.r = next;
  }

  // ---------- blocks ----------

  /** Refuses a slot this enclave may already have signed a block for (checked again by signBlock). */
  checkBlock(slot: bigint): void {
    // A header's slot is a u64, and so is the record of the next one: a larger slot would wrap when encoded
    // (a block for an old slot, and a record of 0 that allows every slot again).
    if (slot < 0n || slot >= MAX_SLOT) throw new EnclaveError('BAD_REQUEST', `slot ${slot} is out of range`);
    if (slot < this.r.blockSlot)
      throw new EnclaveError(
        'SLOT_ALREADY_SIGNED',
        `this enclave already signed a block for a slot at or after ${slot} (next signable slot ${this.r.blockSlot})`,
      );
  }

  /** Records a block signature for `slot`, sealed and fsynced: call before the signature is made. */
  signBlock(slot: bigint): void {
    this.checkBlock(slot);
    this.commit({ ...this.r, blockSlot: slot + 1n });
  }

  // ---------- finality votes ----------

  /** Refuses a vote at `number` below the last one, or for another hash at its number (checked again by signVote). */
  checkVote(number: bigint, hash: Uint8Array): void {
    if (number <= 0n || number >= MAX_SLOT)
      throw new EnclaveError('BAD_REQUEST', `vote number ${number} is out of range`);
    const { voteNumber, voteHash } = this.r;
    if (number < voteNumber || (number === voteNumber && !same(hash, voteHash)))
      throw new EnclaveError(
        'VOTE_ALREADY_SIGNED',
        `this enclave already voted at ${voteNumber}: no other vote at or below that number`,
      );
  }

  /** The highest number this enclave voted at, and the hash (null: no vote yet). */
  lastVote(): { number: number; hash: Uint8Array } | null {
    const { voteNumber, voteHash } = this.r;
    return voteNumber > 0n ? { number: Number(voteNumber), hash: voteHash } : null;
  }

  /** Records a vote for `hash` at `number`, sealed and fsynced: call before the signature is made. */
  signVote(number: bigint, hash: Uint8Array): void {
    this.checkVote(number, hash);
    if (number === this.r.voteNumber) return; // the same vote again: already sealed
    this.commit({ ...this.r, voteNumber: number, voteHash: new Uint8Array(hash) });
  }

  // ---------- the parentchain view ----------

  /**
   * The sealed view's bytes at `path` (null: none), checked against the guard: a view older than the
   * last one sealed, or missing, or from before the guard while the guard has sealed one, is a rollback.
   */
  readView(path: string): Uint8Array | null {
    const seq = this.r.viewSeq;
    if (!existsSync(path)) {
      if (seq > 0n) this.rolledBack('view', `the sealed parentchain view #${seq} is missing`);
      return null;
    }
    const sealed = new Uint8Array(readFileSync(path));
    let env: ReturnType<typeof ViewEnvelope.dec>;
    try {
      env = decodeExact(ViewEnvelope, this.sealer.unseal(VIEW_LABEL, sealed), 'sealed parentchain view');
    } catch (err) {
      if (!hasCode(err, 'UNSEAL_FAILED')) throw err;
      const legacy = this.sealer.unseal(LEGACY_VIEW_LABEL, sealed);
      if (seq > 0n) this.rolledBack('view', `a parentchain view from before view #${seq} was put back`);
      return legacy;
    }
    if (env.seq < seq) this.rolledBack('view', `parentchain view #${env.seq} is older than the sealed #${seq}`);
    // The view vouches for the guard. Every view write is followed by the guard's, so a view more than one
    // ahead means an older guard; so does a record ahead of the guard in what the guard seals at once (a
    // block's slot, a rollback). The guard takes the newer of each field.
    const copy = decodeGuard(env.guard);
    const r = this.r;
    if (
      env.seq > seq + 1n ||
      copy.blockSlot > r.blockSlot ||
      copy.dutiesRefusedUntil > r.dutiesRefusedUntil ||
      copy.voteNumber > r.voteNumber ||
      (copy.voteNumber === r.voteNumber && !same(copy.voteHash, r.voteHash))
    )
      this.rolledBack('guard', `the signing guard (view #${seq}) is older than parentchain view #${env.seq}`);
    const merged: GuardRecord = {
      ...this.r,
      ...laterVote(copy, this.r),
      viewSeq: max(env.seq, this.r.viewSeq),
      blockSlot: max(copy.blockSlot, this.r.blockSlot),
      dutiesLiveUntil: Math.max(copy.dutiesLiveUntil, this.r.dutiesLiveUntil),
      dutiesRefusedUntil: Math.max(copy.dutiesRefusedUntil, this.r.dutiesRefusedUntil),
      rollbacks: Math.max(copy.rollbacks, this.r.rollbacks),
    };
    if (!same(GuardV2.enc(merged), GuardV2.enc(this.r))) {
      this.r = merged;
      this.persist();
    }
    return env.view;
  }

  /** Seals the view at `path` with the next sequence number, then records that number here (both fsynced). */
  writeView(path: string, view: Uint8Array, head: number): void {
    const seq = this.r.viewSeq + 1n;
    const env = ViewEnvelope.enc({ seq, guard: GuardV2.enc(this.r), view });
    writeFileAtomic(path, this.sealer.seal('signer', VIEW_LABEL, env));
    this.r = { ...this.r, viewSeq: seq, viewHead: head };
    this.persist();
  }

  /**
   * A duty that can be included until parentchain block `death` is about to be signed: sealed with the
   * view's next write (writeView), which comes before the signature leaves.
   */
  noteDuty(death: number): void {
    if (death > this.r.dutiesLiveUntil) this.r = { ...this.r, dutiesLiveUntil: death };
  }

  /**
   * Refuses to sign duties while a rolled-back view may have lost one in flight: until the light client
   * (at `number`) has passed the death of every duty signed before, so that each is either included,
   * and the view sees it done, or can never be.
   */
  checkDuties(number: number): void {
    if (number < this.r.dutiesRefusedUntil)
      throw new EnclaveError(
        'SEALED_STATE_ROLLED_BACK',
        `sealed parentchain view rolled back: no duty is signed before parentchain block #${this.r.dutiesRefusedUntil}`,
      );
  }

  status(): RollbackStatus {
    const { rollbacks, dutiesRefusedUntil } = this.r;
    return { rollbacks, dutiesRefusedUntil, lastRollback: this.lastRollback };
  }

  /** Another detector saw the view rolled back (e.g. the verified chain shows a duty it has no record of). */
  viewRolledBack(why: string): void {
    this.rolledBack('view', why);
  }

  private rolledBack(what: 'view' | 'guard', why: string): void {
    this.lastRollback = why;
    const refuse = what === 'view' && this.r.dutiesLiveUntil > this.r.dutiesRefusedUntil;
    this.r = {
      ...this.r,
      rollbacks: this.r.rollbacks + 1,
      dutiesRefusedUntil: refuse ? this.r.dutiesLiveUntil : this.r.dutiesRefusedUntil,
    };
    this.persist();
  }
}
