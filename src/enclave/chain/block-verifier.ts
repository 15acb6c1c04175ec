// Verifies blocks other enclaves built: one as the head's child (gossip), a run of them (onboarding),
// and the opening of a block's transitions (which replay shares). The host is the adversary here: a
// block is refused with a code unless every check passes, in the order below.
import { aesGcmOpen, ed25519Verify } from '../../crypto/primitives.ts';
import { slotAt, slotAuthor } from '../../protocol/aura.ts';
import {
  decodeReceivedBlock,
  linksTo,
  transitionsAad,
  type Header,
  type ReceivedBlock,
  type SignedBlock,
} from '../../protocol/block.ts';
import { hexKey, same } from '../../protocol/bytes.ts';
import { codeOf } from '../../protocol/errors.ts';
import { EnclaveError } from '../boundary/errors.ts';
import { checkRecipients, membersHash, rotationDue, type Recipient } from '../keys/rotation.ts';
import { epochOf, splitItems, type EpochRecord, type Item } from '../state/state.ts';
import { ZERO32, currentEpoch, type EnclaveContext } from '../context.ts';
import type { StateKeyring } from '../keys/state-keys.ts';
import type { ChainHead, Head } from './head.ts';
import { checkEffects } from './effects.ts';

/** Blocks per signature batch in importBlocks (one batch is checked while the previous one is applied). */
const SIGNATURE_CHUNK = 128;
/** What genesis names as its parent. */
export const NO_PARENT = { hash: ZERO32, signatureHash: ZERO32 };

export interface ImportFailure {
  index: number;
  code: string;
  message: string;
}
export interface ImportedRef {
  hash: Uint8Array;
  number: number;
  calls: string[];
}

const sameEpoch = (a: EpochRecord, b: EpochRecord): boolean =>
  a.epoch === b.epoch && a.keyId === b.keyId && a.startNumber === b.startNumber && same(a.membersHash, b.membersHash);

const failureOf = (index: number, err: unknown, fallback: string): ImportFailure => ({
  index,
  code: codeOf(err) ?? fallback,
  message: (err as Error).message,
});

export interface BlockVerifierDeps {
  ctx: EnclaveContext;
  head: ChainHead;
  keyring: StateKeyring;
  /** Applies the staged block (and drops its calls from the pool), as the host's commit does. */
  commit: (hash: Uint8Array) => void;
}

export class BlockVerifier {
  private readonly ctx: EnclaveContext;
  private readonly head: ChainHead;
  private readonly keyring: StateKeyring;
  private readonly commit: (hash: Uint8Array) => void;

  constructor(deps: BlockVerifierDeps) {
    this.ctx = deps.ctx;
    this.head = deps.head;
    this.keyring = deps.keyring;
    this.commit = deps.commit;
  }

  /**
   * Verifies a block from another validateer as the child of the head: shard, author of its slot in
   * the set the parent's parentchain block names, signature, slot after the parent's and not ahead
   * of the clock, parentchain block verified by the light client, body root, decryption, the parentchain
   * effects it executes (effects.ts), and the state commitment after applying its transitions. Staged like
   * a proposal: `commit` applies it once the host has stored it.
   */
  importBlock(bytes: Uint8Array, nowMs: number) {
    return this.importDecoded(decodeReceivedBlock(bytes), nowMs, false);
  }

  /**
   * Onboarding: verifies a run of consecutive blocks and applies each as the head's child at once.
   * Stops at the first failure; the blocks before it stay applied (the host stores them before it
   * asks for more).
   *
   * Authenticity costs one signature per run: each block must name the previous one's hash and
   * signature hash, so the last block's signature, by an enclave of the shard, covers the whole run,
   * signatures included (that enclave built on exactly these blocks, after verifying each). Every
   * block is still checked for its slot's author, slot order, parentchain block, epoch rules and
   * state commitment. A run whose last signature fails is checked block by block (on the crypto
   * threads) to find the bad one.
   */
  async importBlocks(
    blocks: Uint8Array[],
    nowMs: number,
  ): Promise<{ imported: ImportedRef[]; failure?: ImportFailure }> {
    if (this.ctx.replaying) throw new EnclaveError('REPLAYING', 'cannot import during a replay');
    const imported: ImportedRef[] = [];
    const decoded: ReceivedBlock[] = [];
    let failure = this.decodeAll(blocks, decoded);
    const linked = this.linkedLength(decoded);
    const runSigned = this.signsRun(decoded[linked - 1]);
    // Otherwise, block by block: the next chunk's signatures on the crypto threads while this thread applies the
    // current one.
    let pending = runSigned ? null : this.verifyChunk(decoded, 0);
    let signed: boolean[] = [];
    const count = runSigned ? linked : decoded.length;
    for (let i = 0; i < count; i++) {
      const b = decoded[i];
      if (pending && i % SIGNATURE_CHUNK === 0) {
        signed = await pending;
        pending = this.verifyChunk(decoded, i + SIGNATURE_CHUNK);
      }
      try {
        if (!runSigned && !signed[i % SIGNATURE_CHUNK]) {
          throw new EnclaveError('BLOCK_BAD_SIGNATURE', `block ${b.block.header.number} signature does not verify`);
        }
        const r = this.importDecoded(b, nowMs, true);
        this.commit(r.hash);
        imported.push({ hash: r.hash, number: r.number, calls: r.calls });
      } catch (err) {
        failure = failureOf(i, err, 'INTERNAL');
        break;
      }
    }
    // Blocks after the signed run are left for the next request (the earliest failure is the one reported).
    if (count < decoded.length && (!failure || failure.index > count)) {
      const number = decoded[count].block.header.number;
      failure = { index: count, code: 'BLOCK_NOT_CHILD', message: `block ${number} does not extend the run before it` };
    }
    return failure ? { imported, failure } : { imported };
  }

  /** Decodes blocks into `into` up to the first that does not decode, whose failure it returns. */
  private decodeAll(blocks: Uint8Array[], into: ReceivedBlock[]): ImportFailure | undefined {
    for (let i = 0; i < blocks.length; i++) {
      try {
        into.push(decodeReceivedBlock(blocks[i]));
      } catch (err) {
        return failureOf(i, err, 'DECODE_FAILED');
      }
    }
    return undefined;
  }

  /** How many blocks from the first form a run, each naming the one before as its parent. */
  private linkedLength(decoded: ReceivedBlock[]): number {
    for (let i = 1; i < decoded.length; i++) {
      if (!linksTo(decoded[i].block.header, decoded[i - 1])) return i;
    }
    return decoded.length;
  }

  /** Whether the run's last block is signed by a known author: then it vouches for the run. */
  private signsRun(tip: ReceivedBlock | undefined): boolean {
    if (tip === undefined) return false;
    const h = tip.block.header;
    return this.head.isKnownAuthor(h.author) && ed25519Verify(h.author, tip.signingPayload, tip.block.signature);
  }

  private verifyChunk(decoded: ReceivedBlock[], from: number): Promise<boolean[]> {
    const chunk = decoded
      .slice(from, from + SIGNATURE_CHUNK)
      .map((r) => ({ publicKey: r.block.header.author, message: r.signingPayload, signature: r.block.signature }));
    const p = this.ctx.crypto.verifySignatures(chunk);
    void p.catch(() => undefined); // a chunk after a failure is never awaited
    return p;
  }

  private importDecoded(received: ReceivedBlock, nowMs: number, signatureChecked: boolean) {
    if (this.ctx.replaying) throw new EnclaveError('REPLAYING', 'cannot import during a replay');
    const h = received.block.header;
    if (h.number === 0n) this.checkGenesis(h);
    else this.checkChild(h, nowMs);
    const items = this.openBlock(received, signatureChecked, true);
    checkEffects(this.ctx, h.number === 0n ? null : this.head.current!.parentchainNumber, h, received.hash);
    const { lthash, known } = this.ctx.state.previewKnowing(items);
    if (!same(lthash.digest(), h.stateCommitment)) {
      throw new EnclaveError(
        'BLOCK_BAD_COMMITMENT',
        `block ${h.number} state commitment does not match its transitions`,
      );
    }
    const included = received.block.body.calls.map(hexKey);
    this.ctx.staged = {
      hash: received.hash,
      signatureHash: received.signatureHash,
      number: h.number,
      slot: h.slot,
      items,
      known,
      lthash,
      included,
      parentchainNumber: h.parentchainNumber,
      parentchainHash: h.parentchainHash,
    };
    return { hash: received.hash, number: Number(h.number), slot: h.slot, author: h.author, calls: included };
  }

  private checkGenesis(h: Header): void {
    if (this.head.current) throw new EnclaveError('BLOCK_NOT_CHILD', 'a genesis block cannot extend a chain');
    if (!linksTo(h, NO_PARENT) || h.slot !== 0n)
      throw new EnclaveError('BLOCK_BAD_GENESIS', 'genesis must have no parent and slot 0');
    const g = this.head.genesisAuthor();
    if (!g || !same(h.author, g))
      throw new EnclaveError('BLOCK_WRONG_AUTHOR', "genesis is not by the shard's first authority");
  }

  /** The header checks of a block after genesis, as the head's child. */
  private checkChild(h: Header, nowMs: number): void {
    const parent: Head | null = this.head.current;
    if (!parent) throw new EnclaveError('NOT_INITIALISED', 'no head: import genesis first');
    if (h.number !== parent.number + 1n || !linksTo(h, parent)) {
      throw new EnclaveError('BLOCK_NOT_CHILD', `block ${h.number} does not extend the head ${parent.number}`);
    }
    if (h.slot <= parent.slot) {
      throw new EnclaveError(
        'BLOCK_SLOT_NOT_INCREASING',
        `block ${h.number} slot ${h.slot} is not after its parent's ${parent.slot}`,
      );
    }
    const slotMs = this.ctx.opts.slotDurationMs ?? 1000;
    if (h.slot > slotAt(nowMs + (this.ctx.opts.maxDriftMs ?? slotMs), slotMs)) {
      throw new EnclaveError('BLOCK_FROM_FUTURE', `block ${h.number} slot ${h.slot} is ahead of the clock`);
    }
    if (h.parentchainNumber < parent.parentchainNumber) {
      throw new EnclaveError(
        'BLOCK_PARENTCHAIN_BACKWARDS',
        `block ${h.number} builds on an older parentchain block than its parent`,
      );
    }
    const pc = this.ctx.parentchain;
    if (pc) {
      const known = pc.knowsBlock(h.parentchainNumber, h.parentchainHash);
      if (h.parentchainNumber > pc.lightClient.number) {
        const at = pc.lightClient.number;
        throw new EnclaveError(
          'PARENTCHAIN_BLOCK_UNKNOWN',
          `block ${h.number} builds on parentchain #${h.parentchainNumber}, the light client is at #${at}`,
        );
      }
      if (known === false)
        throw new EnclaveError(
          'BLOCK_BAD_PARENTCHAIN',
          `block ${h.number} names a parentchain block the light client did not verify`,
        );
    } else if (h.parentchainNumber !== parent.parentchainNumber) {
      throw new EnclaveError(
        'BLOCK_BAD_PARENTCHAIN',
        `block ${h.number} names a parentchain block without a parentchain`,
      );
    }
    const expected = slotAuthor(h.slot, this.head.authoritiesAfter(parent, h.parentchainNumber));
    if (!expected || !same(h.author, expected))
      throw new EnclaveError('BLOCK_WRONG_AUTHOR', `block ${h.number} is not by the author of slot ${h.slot}`);
  }

  /**
   * Decrypts a block's transitions (learning a new epoch's key from it); `enforce`: imports check the epoch rules too.
   */
  openBlock(received: ReceivedBlock, signatureChecked = false, enforce = false): Item[] {
    const b = received.block;
    const h = b.header;
    if (!same(h.shard, this.ctx.opts.shard))
      throw new EnclaveError('BLOCK_WRONG_SHARD', `block ${h.number} is for another shard`);
    if (!this.head.isKnownAuthor(h.author))
      throw new EnclaveError('BLOCK_UNKNOWN_AUTHOR', `block ${h.number} author is not an authority`);
    if (!signatureChecked && !ed25519Verify(h.author, received.signingPayload, b.signature)) {
      throw new EnclaveError('BLOCK_BAD_SIGNATURE', `block ${h.number} signature does not verify`);
    }
    if (!same(received.bodyRoot, h.transitionsRoot))
      throw new EnclaveError('BLOCK_BAD_BODY', `block ${h.number} body does not match its header`);
    const t = b.body.transitions;
    const epoch = h.number === 0n ? undefined : currentEpoch(this.ctx);
    const rotation = b.body.rotation;
    const members = enforce && epoch ? this.checkRotation(b, epoch) : undefined;
    if (rotation) this.keyring.learn(rotation, h.number);
    // Each epoch's transitions are under its key and no other: older keys open nothing newer.
    const expected = rotation?.keyId ?? epoch?.keyId;
    if (expected !== undefined && t.keyId !== expected) {
      throw new EnclaveError(
        'BLOCK_WRONG_STATE_KEY',
        `block ${h.number} transitions are under key ${t.keyId}, not the epoch's key ${expected}`,
      );
    }
    const key = this.keyring.keyObject(t.keyId);
    if (!key) throw new EnclaveError('STATE_KEY_UNKNOWN', `block ${h.number} uses unknown state key ${t.keyId}`);
    const plain = aesGcmOpen(key, t.nonce, t.ciphertext, transitionsAad(h.shard, h.number));
    if (!plain) throw new EnclaveError('BLOCK_BAD_TRANSITIONS', `block ${h.number} transitions do not decrypt`);
    // Authenticated under the state key inside a signed block: only an enclave wrote these bytes,
    // so they are split into items, not decoded, on this hot path.
    let items: Item[];
    try {
      items = splitItems(plain);
    } catch {
      throw new EnclaveError('BLOCK_BAD_TRANSITIONS', `block ${h.number} transitions do not decode`);
    }
    if (enforce) this.checkEpochRecord(b, items, epoch, members);
    return items;
  }

  /** Import: a block rotates exactly when a new epoch is due, sealed to exactly the members, by one of them. */
  private checkRotation(b: SignedBlock, epoch: EpochRecord): Recipient[] {
    const h = b.header;
    const members = this.head.recipientsAt(h.parentchainNumber);
    const due = rotationDue(epoch, members, h.number, this.ctx.opts.keyRotationBlocks ?? 0);
    const r = b.body.rotation;
    if (due && !r)
      throw new EnclaveError('BLOCK_MISSING_ROTATION', `block ${h.number} must begin a new state key epoch (${due})`);
    if (!due && r)
      throw new EnclaveError('BLOCK_UNEXPECTED_ROTATION', `block ${h.number} begins a state key epoch that is not due`);
    if (r) {
      checkRecipients(r, members, h.number);
      if (!members.some((m) => same(m.signingKey, h.author))) {
        throw new EnclaveError('BLOCK_BAD_ROTATION', `block ${h.number}: a state key made by a non-member`);
      }
    }
    return members;
  }

  /** The epoch record the block writes: epoch 0 in genesis, the next epoch in a rotating block, nothing otherwise. */
  private checkEpochRecord(
    b: SignedBlock,
    items: Item[],
    before: EpochRecord | undefined,
    members: Recipient[] | undefined,
  ): void {
    const h = b.header;
    const written = items.flatMap((i) => epochOf(i) ?? []);
    const r = b.body.rotation;
    let expected: EpochRecord | undefined;
    if (h.number === 0n) expected = { epoch: 0, keyId: b.body.transitions.keyId, startNumber: 0n, membersHash: ZERO32 };
    else if (r && before && members)
      expected = { epoch: before.epoch + 1, keyId: r.keyId, startNumber: h.number, membersHash: membersHash(members) };
    const ok = expected ? written.length === 1 && sameEpoch(written[0], expected) : written.length === 0;
    if (!ok) throw new EnclaveError('BLOCK_BAD_EPOCH', `block ${h.number} writes the wrong state key epoch record`);
  }
}
