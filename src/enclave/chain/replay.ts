// Rebuilding the state: a shallow rewind through the state's layers, a replay of stored blocks from
// genesis or from a sealed snapshot, and the sealing of snapshots. While a replay runs, nothing else
// reads or builds on the state (ctx.replaying); submissions wait for its end.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Bytes, Struct, Vector, u8, u32, u64 } from 'scale-ts';
import { decodeReceivedBlock, linksTo } from '../../protocol/block.ts';
import { same } from '../../protocol/bytes.ts';
import { decodeExact, headBeforeLastBytes } from '../../protocol/wire.ts';
import { EnclaveError } from '../boundary/errors.ts';
import { State } from '../state/state.ts';
import { ltHashThreads, type LtHashThreads } from '../state/lthash-threads.ts';
import { STATE_LAYERS, ZERO32, type EnclaveContext } from '../context.ts';
import type { BlockVerifier } from './block-verifier.ts';
import { NO_PARENT } from './block-verifier.ts';
import type { ChainHead } from './head.ts';

/**
 * A sealed state snapshot: the head (with its slot, which a child's must exceed, and its signature's
 * hash, which a child's header names), the parentchain block it built on (which parentchain effects
 * are in the state), the hashes of the blocks before it (anchors and finality are checked against
 * them after a restart from the snapshot) and the state. Older versions are not read: the node then
 * replays from genesis.
 */
const RecentHashes = Vector(Struct({ number: u64, hash: Bytes(32) }));
const SnapshotFile = Struct({
  version: u8,
  number: u64,
  hash: Bytes(32),
  signatureHash: Bytes(32),
  parentchainNumber: u32,
  parentchainHash: Bytes(32),
  slot: u64,
  recent: RecentHashes,
  state: Bytes(),
});
const SNAPSHOT_VERSION = 5; // 5: element hashes of the state commitment by ChaCha20 (4: SHAKE128)
/** How long a submission waits for a replay (a reorg's rebuild) before it is refused. */
const REPLAY_WAIT_MS = 30_000;

function decodeSnapshot(bytes: Uint8Array): ReturnType<typeof SnapshotFile.dec> {
  if (bytes[0] !== SNAPSHOT_VERSION)
    throw new EnclaveError(
      'SNAPSHOT_UNSUPPORTED',
      `snapshot version ${bytes[0]} is not read by this enclave (${SNAPSHOT_VERSION})`,
    );
  return decodeExact(SnapshotFile, bytes, 'snapshot');
}

/** A replay under way: `finishing` once its final hashing began (no more blocks). */
export interface ReplayRun {
  acc: ReturnType<State['replay']>;
  verifyEach: boolean;
  blocks: number;
  transitions: number;
  finishing: boolean;
  hash: LtHashThreads;
}

export interface ReplayDeps {
  ctx: EnclaveContext;
  head: ChainHead;
  verifier: BlockVerifier;
}

export class Replay {
  private readonly ctx: EnclaveContext;
  private readonly head: ChainHead;
  private readonly verifier: BlockVerifier;
  private ended = Promise.withResolvers<void>();

  constructor(deps: ReplayDeps) {
    this.ctx = deps.ctx;
    this.head = deps.head;
    this.verifier = deps.verifier;
  }

  /**
   * Returns the state to block `number` (an ancestor of the head, within the state's layers) for a
   * reorg; REWIND_UNAVAILABLE when it is deeper (the host then rebuilds from the event log).
   */
  rewind(number: number, hash: Uint8Array): void {
    const ctx = this.ctx;
    if (ctx.replaying) throw new EnclaveError('REPLAYING', 'cannot rewind during a replay');
    const head = this.head.current;
    if (!head) throw new EnclaveError('NOT_INITIALISED', 'no head to rewind');
    const target = this.head.recentBlocks.get(BigInt(number));
    const depth = Number(head.number) - number;
    if (depth < 0 || !target || !same(target.hash, hash) || depth > ctx.state.depth) {
      throw new EnclaveError(
        'REWIND_UNAVAILABLE',
        `block ${number} is not within the ${ctx.state.depth} blocks the state can rewind`,
      );
    }
    ctx.staged = null;
    ctx.state.rewind(depth);
    this.head.truncate(BigInt(number));
    for (const [id, n] of this.head.withdrawalBlocks) if (n > BigInt(number)) this.head.withdrawalBlocks.delete(id);
    this.head.current = target;
    if (!same(ctx.state.commitment(), target.commitment)) {
      this.head.current = null; // cannot happen with intact layers; the host rebuilds from the event log
      throw new EnclaveError(
        'REWIND_COMMITMENT_MISMATCH',
        `state after rewinding to ${number} does not match its commitment`,
      );
    }
  }

  /** Starts a replay from genesis (no snapshot) or from a sealed snapshot. */
  begin(sealedSnapshot: Uint8Array | undefined, verifyEach: boolean) {
    const ctx = this.ctx;
    ctx.staged = null; // a proposal made on the old state must never be committed on the new one
    if (sealedSnapshot) {
      const snap = decodeSnapshot(ctx.sealer.unseal('snapshot', sealedSnapshot));
      ctx.state = State.fromSnapshot(snap.state, STATE_LAYERS);
      this.head.clearChain();
      // Only number and hash are known of the blocks before the snapshot: enough for anchors (and, after the recent
      // ones, the older ancestors it kept: the head's set() keeps the last anchored block again).
      for (const r of snap.recent) {
        this.head.recentBlocks.set(r.number, {
          hash: r.hash,
          signatureHash: ZERO32,
          number: r.number,
          slot: -1n,
          commitment: ZERO32,
          parentchainNumber: 0,
          parentchainHash: ZERO32,
        });
      }
      this.head.set({
        hash: snap.hash,
        signatureHash: snap.signatureHash,
        number: snap.number,
        slot: snap.slot,
        commitment: ctx.state.commitment(),
        parentchainNumber: snap.parentchainNumber,
        parentchainHash: snap.parentchainHash,
      });
      this.head.withdrawalBase = snap.number;
    } else {
      this.head.clearChain();
      this.head.withdrawalBase = 0n;
      ctx.state = new State(STATE_LAYERS);
      this.head.current = null;
    }
    void ctx.replaying?.hash.close();
    // A replay ends by hashing the items it touched, on more threads when they are many.
    const hash = ltHashThreads(ctx.opts.workers);
    ctx.replaying = { acc: ctx.state.replay(), verifyEach, blocks: 0, transitions: 0, finishing: false, hash };
    return { fromNumber: this.head.current ? Number(this.head.current.number) : -1 };
  }

  /**
   * Verifies and applies stored blocks in order: author, linkage (hash and signature hash), body
   * root, decryption; the signature of the last block of each call vouches for the others (as in
   * importBlocks), unless every block is to be verified.
   */
  blocks(blocks: Uint8Array[]) {
    const r = this.ctx.replaying;
    if (!r || r.finishing) throw new EnclaveError('NOT_REPLAYING', 'replayBlocks before beginReplay');
    for (const [i, bytes] of blocks.entries()) {
      const received = decodeReceivedBlock(bytes);
      const h = received.block.header;
      const head = this.head.current;
      const expectedNumber = head ? head.number + 1n : 0n;
      if (h.number !== expectedNumber || !linksTo(h, head ?? NO_PARENT)) {
        throw new EnclaveError('REPLAY_BROKEN_CHAIN', `block ${h.number} does not extend ${expectedNumber - 1n}`);
      }
      const items = this.verifier.openBlock(received, !r.verifyEach && i < blocks.length - 1);
      if (r.verifyEach) {
        const { lthash: lt, known } = this.ctx.state.previewKnowing(items);
        this.ctx.state.apply(items, lt, known);
        if (!same(lt.digest(), h.stateCommitment)) {
          throw new EnclaveError('REPLAY_COMMITMENT_MISMATCH', `state commitment mismatch at block ${h.number}`);
        }
      } else {
        r.acc.apply(items);
      }
      r.blocks++;
      r.transitions += items.length;
      this.head.set(
        {
          hash: received.hash,
          signatureHash: received.signatureHash,
          number: h.number,
          slot: h.slot,
          commitment: h.stateCommitment,
          parentchainNumber: h.parentchainNumber,
          parentchainHash: h.parentchainHash,
        },
        items,
      );
    }
    return { headNumber: Number(this.head.current?.number ?? -1) };
  }

  /** Finishes the replay: the rebuilt state must match the head's committed state. */
  async finish(): Promise<{ blocks: number; transitions: number; commitment: Uint8Array }> {
    const r = this.ctx.replaying;
    if (!r || r.finishing) throw new EnclaveError('NOT_REPLAYING', 'finishReplay before beginReplay');
    // Stays "replaying" until the commitment is complete: no proposal may see a half-hashed state.
    r.finishing = true;
    try {
      if (!r.verifyEach) await r.acc.finish(r.hash.hasher);
    } finally {
      await r.hash.close();
    }
    if (this.ctx.replaying !== r)
      throw new EnclaveError('REPLAY_ABORTED', 'a new replay began before this one finished');
    this.ctx.replaying = null;
    this.ended.resolve();
    this.ended = Promise.withResolvers<void>();
    const head = this.head.current;
    if (head && !same(this.ctx.state.commitment(), head.commitment)) {
      this.head.current = null;
      throw new EnclaveError(
        'REPLAY_COMMITMENT_MISMATCH',
        'replayed state does not match the head block state commitment',
      );
    }
    return { blocks: r.blocks, transitions: r.transitions, commitment: this.ctx.state.commitment() };
  }

  /** Calls are checked against a complete state: submissions during a replay (a reorg) wait for its end. */
  async done(): Promise<void> {
    const deadline = Date.now() + REPLAY_WAIT_MS;
    while (this.ctx.replaying) {
      const left = deadline - Date.now();
      if (left <= 0) throw new EnclaveError('REPLAYING', 'the state is being rebuilt; try again');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.ended.promise,
        new Promise((r) => {
          timer = setTimeout(r, left);
        }),
      ]);
      clearTimeout(timer);
    }
  }

  /**
   * Seals the state at the head. A big state is read in pieces, letting blocks be imported in
   * between (a snapshot must not hold up the next block); what is sealed is the head of the call.
   */
  async snapshot(): Promise<{ sealed: Uint8Array; number: number }> {
    if (this.ctx.replaying) throw new EnclaveError('REPLAYING', 'cannot snapshot during a replay');
    const h = this.head.current;
    if (!h) throw new EnclaveError('NOT_INITIALISED', 'no head to snapshot');
    const recent = [...this.head.recentBlocks.values()]
      .filter((b) => b.number < h.number)
      .map((b) => ({ number: b.number, hash: b.hash }));
    const older = this.head.keptAncestors().filter((a) => a.number < h.number && !this.head.recentBlocks.has(a.number));
    recent.push(...older);
    const state = await this.ctx.state.encodeSnapshotInPieces(() => nextTurn());
    // The state is SnapshotFile's last field: the other fields, then the state's parts, sealed a part at a time.
    const fields = SnapshotFile.enc({
      version: SNAPSHOT_VERSION,
      number: h.number,
      hash: h.hash,
      signatureHash: h.signatureHash,
      parentchainNumber: h.parentchainNumber,
      parentchainHash: h.parentchainHash,
      slot: h.slot,
      recent,
      state: new Uint8Array(0),
    });
    const parts = [
      headBeforeLastBytes(
        fields,
        state.reduce((n, p) => n + p.length, 0),
      ),
      ...state,
    ];
    return {
      sealed: await this.ctx.sealer.sealParts('signer', 'snapshot', parts, () => nextTurn()),
      number: Number(h.number),
    };
  }

  async close(): Promise<void> {
    await this.ctx.replaying?.hash.close();
  }
}
