// Builds this enclave's blocks: genesis, and a proposal for one of its slots (parentchain effects
// first, then pool calls in nonce order, then a new state key epoch when one is due), sealed and
// signed, staged until the host has stored it. An enclave signs at most one block per slot, across
// rewinds and restarts: the slot is sealed in the signing guard before the block is signed.
import { randomBytes } from 'node:crypto';
import { aesGcmSeal, ed25519Sign, randomNonce } from '../../crypto/primitives.ts';
import { slotAuthor } from '../../protocol/aura.ts';
import {
  SignedBlock,
  bodyRoot,
  headerHash,
  headerSigningPayload,
  signatureHash,
  transitionsAad,
  type Header,
  type KeyRotation,
} from '../../protocol/block.ts';
import { same } from '../../protocol/bytes.ts';
import { EnclaveError } from '../boundary/errors.ts';
import { membersHash, rotationDue, sealRotation, type Recipient } from '../keys/rotation.ts';
import type { StateKeyring } from '../keys/state-keys.ts';
import type { CallPool } from '../calls/pool.ts';
import { Overlay, joinItems, type EpochRecord, type Item } from '../state/state.ts';
import { execute, type StfContext } from '../state/stf.ts';
import type { Effect } from '../parentchain/registry.ts';
import type { EffectResult } from '../parentchain/duties.ts';
import { ZERO32, currentEpoch, stfContext, type EnclaveContext } from '../context.ts';
import type { ChainHead, Head } from './head.ts';
import { NO_EFFECTS_ROOT, effectsBetween, effectsRoot } from './effects.ts';

export interface Rejection {
  hash: string;
  code: string;
  message: string;
}
export interface ProposeInput {
  slot: bigint;
  timestampMs: number;
  maxCalls: number;
  deadlineMs?: number;
}

/** How often proposing also drops the pool's stale and expired calls (and reports them invalid). */
const PRUNE_INTERVAL_MS = 1000;

export interface BlockBuilderDeps {
  ctx: EnclaveContext;
  head: ChainHead;
  pool: CallPool;
  keyring: StateKeyring;
  /** Executes one parentchain effect in the block being built (parentchain/duties.ts). */
  applyEffect: (overlay: Overlay, e: Effect, number: bigint, stf: StfContext) => EffectResult;
}

export class BlockBuilder {
  private readonly ctx: EnclaveContext;
  private readonly head: ChainHead;
  private readonly pool: CallPool;
  private readonly keyring: StateKeyring;
  private readonly applyEffect: BlockBuilderDeps['applyEffect'];
  private lastPruneMs = -Infinity;

  constructor(deps: BlockBuilderDeps) {
    this.ctx = deps.ctx;
    this.head = deps.head;
    this.pool = deps.pool;
    this.keyring = deps.keyring;
    this.applyEffect = deps.applyEffect;
  }

  /** Creates block 0 from the genesis endowments; the state becomes the genesis state. */
  genesis(
    balances: { account: Uint8Array; amount: bigint }[],
    timestampMs: number,
  ): { block: Uint8Array; hash: Uint8Array } {
    if (this.head.current) throw new EnclaveError('ALREADY_INITIALISED', 'state already has a head');
    const { state, keys } = this.ctx;
    const overlay = new Overlay(state);
    for (const b of balances) {
      const a = overlay.account(b.account);
      overlay.setAccount(b.account, { ...a, balance: a.balance + b.amount });
    }
    // Epoch 0: the genesis key, sealed to nobody yet (the first block with members begins epoch 1).
    const keyId = keys.currentStateKeyId;
    overlay.setEpoch({ epoch: 0, keyId, startNumber: 0n, membersHash: ZERO32 });
    const items = overlay.items();
    const lthash = state.preview(items);
    const header = {
      parentHash: ZERO32,
      parentSignatureHash: ZERO32,
      number: 0n,
      shard: this.ctx.opts.shard,
      slot: 0n,
      author: keys.signingPublic,
      stateCommitment: lthash.digest(),
      parentchainNumber: 0,
      parentchainHash: ZERO32,
      effectsRoot: NO_EFFECTS_ROOT,
      timestampMs: BigInt(timestampMs),
    };
    const { bytes, hash, signatureHash: sigHash } = this.sealBlock(header, items, [], keyId);
    state.apply(items, lthash);
    this.head.set(
      {
        hash,
        signatureHash: sigHash,
        number: 0n,
        slot: 0n,
        commitment: header.stateCommitment,
        parentchainNumber: 0,
        parentchainHash: ZERO32,
      },
      items,
    );
    return { block: bytes, hash };
  }

  propose(input: ProposeInput) {
    if (this.ctx.replaying) throw new EnclaveError('REPLAYING', 'cannot propose during a replay');
    const head = this.head.current;
    if (!head) throw new EnclaveError('NOT_INITIALISED', 'no head: create genesis or replay first');
    const pc = this.ctx.parentchain;
    const parentchainNumber = this.head.nextParentchainNumber(head);
    const parentchainHash = pc ? pc.lightClient.hash : head.parentchainHash;
    this.checkAuthoring(head, input.slot, parentchainNumber);
    const number = head.number + 1n;
    const epoch = currentEpoch(this.ctx);
    const members = this.head.recipientsAt(parentchainNumber);
    const rotate = rotationDue(epoch, members, number, this.ctx.opts.keyRotationBlocks ?? 0) !== null;
    // Only a member makes a new epoch's key: one that is leaving must not know it.
    if (rotate && !members.some((m) => same(m.signingKey, this.ctx.keys.signingPublic))) {
      throw new EnclaveError(
        'NOT_RECIPIENT',
        'a new state key epoch is due and this enclave is no longer among the members it is sealed to',
      );
    }
    const stf = stfContext(this.ctx);
    const rejected: Rejection[] = [];
    this.pruneStale(input.timestampMs, rejected);
    const overlay = new Overlay(this.ctx.state);
    const included: string[] = [];
    const callHashes: Uint8Array[] = [];
    // Parentchain effects first, in parentchain order: they happened before anything in the pool. The header
    // commits to exactly these (importers derive them from their own light client).
    const effects = effectsBetween(this.ctx, head.parentchainNumber, parentchainNumber);
    for (const e of effects) {
      const r = this.applyEffect(overlay, e, number, stf);
      if (r.hash && r.ok) {
        included.push(r.hash);
        callHashes.push(Buffer.from(r.hash, 'hex'));
      }
      if (!r.ok)
        rejected.push({ hash: r.hash ?? `parentchain:${e.parentchainNumber}`, code: r.code, message: r.message });
    }
    this.addPoolCalls(overlay, number, stf, input, included, callHashes, rejected);
    const rotation = rotate ? this.rotateKey(overlay, epoch, number, members) : undefined;
    const keyId = rotation?.keyId ?? epoch.keyId;
    const { items, known } = overlay.changes();
    const lthash = this.ctx.state.preview(items, known);
    const header = {
      parentHash: head.hash,
      parentSignatureHash: head.signatureHash,
      number,
      shard: this.ctx.opts.shard,
      slot: input.slot,
      author: this.ctx.keys.signingPublic,
      stateCommitment: lthash.digest(),
      parentchainNumber,
      parentchainHash,
      effectsRoot: effectsRoot(effects),
      timestampMs: BigInt(input.timestampMs),
    };
    const { bytes, hash, signatureHash: sigHash } = this.sealBlock(header, items, callHashes, keyId, rotation);
    this.ctx.staged = {
      hash,
      signatureHash: sigHash,
      number,
      slot: input.slot,
      items,
      known,
      lthash,
      included,
      parentchainNumber,
      parentchainHash,
    };
    return { block: bytes, hash, number: Number(number), included, rejected };
  }

  /** Called once the host has durably stored the proposed (or imported) block. */
  commit(hash: Uint8Array): void {
    const p = this.head.commit(hash);
    for (const h of p.included) this.pool.remove(h);
  }

  /** Whether this enclave may author `slot` on `head`: a member, the slot's author, after the head, caught up. */
  private checkAuthoring(head: Head, slot: bigint, parentchainNumber: number): void {
    const set = this.head.authoritiesAfter(head, parentchainNumber);
    const me = this.ctx.keys.signingPublic;
    if (!set.some((k) => same(me, k)))
      throw new EnclaveError('NOT_AUTHORITY', "this enclave is not in the shard's validateer set");
    // One block per slot, and only in our own slots: an enclave never equivocates.
    if (!same(me, slotAuthor(slot, set)!))
      throw new EnclaveError('NOT_SLOT_AUTHOR', `slot ${slot} belongs to another authority`);
    if (slot <= head.slot)
      throw new EnclaveError('SLOT_NOT_AFTER_PARENT', `slot ${slot} is not after the head's slot ${head.slot}`);
    // After a rewind, a restart or a proposal the host threw away, the head says nothing of what was signed.
    this.ctx.guard.checkBlock(slot);
    const from = this.ctx.keys.provisionedAt;
    if (head.parentchainNumber < from) {
      throw new EnclaveError(
        'NOT_CAUGHT_UP',
        `the chain has executed the parentchain to #${head.parentchainNumber}; this enclave authors from #${from}, where its shard secrets arrived`,
      );
    }
  }

  /**
   * Stale and expired calls are never picked (a sender's run starts at its account nonce), so the walk
   * over every pending sender (thousands under load) runs once per PRUNE_INTERVAL_MS, not every block.
   */
  private pruneStale(timestampMs: number, rejected: Rejection[]): void {
    if (timestampMs - this.lastPruneMs < PRUNE_INTERVAL_MS) return;
    this.lastPruneMs = timestampMs;
    const state = this.ctx.state;
    for (const d of this.pool.prune(timestampMs, (s) => state.accountAt(s).nonce)) {
      rejected.push({ hash: d.entry.hash, code: d.code, message: d.message });
    }
  }

  /** Each sender's calls from its account nonce on, until a call fails, the block is full or the deadline passes. */
  private addPoolCalls(
    overlay: Overlay,
    number: bigint,
    stf: StfContext,
    input: ProposeInput,
    included: string[],
    callHashes: Uint8Array[],
    rejected: Rejection[],
  ): void {
    for (const [, calls] of this.pool.senders()) {
      const first = calls.values().next().value!;
      let nonce = overlay.account(first.call.value.from).nonce;
      for (let e = calls.get(nonce); e; e = calls.get(nonce)) {
        if (included.length >= input.maxCalls) return;
        // The block must leave in time for the next author to build on it: stop adding calls at the deadline.
        if (input.deadlineMs !== undefined && included.length % 64 === 63 && Date.now() >= input.deadlineMs) return;
        const r = execute(overlay, e.call, e.nonce, number, stf);
        if (!r.ok) {
          rejected.push({ hash: e.hash, code: r.code, message: r.message });
          this.pool.remove(e.hash);
          break;
        }
        included.push(e.hash);
        callHashes.push(Buffer.from(e.hash, 'hex'));
        nonce++;
      }
    }
  }

  /**
   * A new epoch's key, sealed to the members and to disk before the block exists (replay of our own store needs it).
   */
  private rotateKey(overlay: Overlay, epoch: EpochRecord, number: bigint, members: Recipient[]): KeyRotation {
    const keyId = this.keyring.freshId();
    const key = new Uint8Array(randomBytes(32));
    const rotation = sealRotation(this.ctx.opts.shard, number, keyId, key, members);
    this.keyring.add([{ id: keyId, key }], keyId);
    overlay.setEpoch({ epoch: epoch.epoch + 1, keyId, startNumber: number, membersHash: membersHash(members) });
    return rotation;
  }

  private sealBlock(
    header: Omit<Header, 'transitionsRoot'>,
    items: Item[],
    calls: Uint8Array[],
    keyId: number,
    rotation?: KeyRotation,
  ) {
    const keys = this.ctx.keys;
    const nonce = randomNonce();
    const ciphertext = aesGcmSeal(
      keys.stateKeys.get(keyId)!,
      nonce,
      joinItems(items),
      transitionsAad(this.ctx.opts.shard, header.number),
    );
    const body = { transitions: { keyId, nonce, ciphertext }, calls, rotation };
    const full: Header = { ...header, transitionsRoot: bodyRoot(body) };
    this.ctx.guard.signBlock(full.slot); // sealed and fsynced before the signature exists
    const signature = ed25519Sign(keys.signingKey, headerSigningPayload(full));
    return {
      bytes: SignedBlock.enc({ header: full, body, signature }),
      hash: headerHash(full),
      signatureHash: signatureHash(signature),
    };
  }
}
