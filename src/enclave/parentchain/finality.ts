// The enclave's side of finality: it votes for blocks of its own chain, and builds anchors only from a quorum of
// votes it checked itself. A vote is for a block this enclave verified or authored (its recent blocks), on its
// canonical chain, above and descending from the last anchor its light client accepted; the signing guard seals
// the vote before the signature leaves, so no rewind or restart gets two hashes at one number out of it.
import { ed25519Sign } from '../../crypto/primitives.ts';
import { same } from '../../protocol/bytes.ts';
import { encodeMessage } from '../../protocol/parentchain-messages.ts';
import {
  isQuorum,
  memberIndex,
  quorumFault,
  verifyVote,
  voteMessage,
  type IndexedVote,
  type VotePayload,
} from '../../protocol/finality.ts';
import { EnclaveError } from '../boundary/errors.ts';
import { ZERO32, type EnclaveContext } from '../context.ts';
import type { ChainHead } from '../chain/head.ts';
import type { ParentchainView } from './view.ts';

export interface SignedVote {
  payload: VotePayload;
  signer: Uint8Array;
  signature: Uint8Array;
}

export class Finality {
  private readonly ctx: EnclaveContext;
  private readonly head: ChainHead;

  constructor(deps: { ctx: EnclaveContext; head: ChainHead }) {
    this.ctx = deps.ctx;
    this.head = deps.head;
  }

  private view(): ParentchainView {
    if (!this.ctx.parentchain) throw new EnclaveError('NO_PARENTCHAIN', 'the enclave was not given a parentchain');
    return this.ctx.parentchain;
  }

  /**
   * The payload of a vote for this enclave's block `number`: only a recent block of its canonical chain (verified or
   * authored here), above the last anchor and descending from it.
   */
  payload(number: number): VotePayload {
    const pc = this.view();
    const head = this.head.current;
    const b = this.head.recentBlocks.get(BigInt(number));
    const parent = this.head.recentBlocks.get(BigInt(number) - 1n);
    // (slot -1: only the hash is known, from a snapshot; its parentchain block is not)
    if (this.ctx.replaying || !b || !parent || !head || b.number > head.number || b.slot < 0n || parent.slot < 0n)
      throw new EnclaveError('UNKNOWN_BLOCK', `block ${number} is not a recent block of this chain`);
    const last = pc.registry.data.lastAnchor;
    if (last) {
      const anchored = this.head.recentBlocks.get(last.number);
      if (
        last.number >= b.number ||
        (anchored && !same(anchored.hash, last.hash)) ||
        (!anchored && this.head.finalNumber() < 0n)
      ) {
        throw new EnclaveError(
          'ANCHOR_NOT_DESCENDANT',
          `block ${number} does not descend from the last anchored block ${last.number}`,
        );
      }
    }
    return {
      shard: this.ctx.opts.shard,
      number: b.number,
      hash: b.hash,
      previousAnchor: last?.hash ?? ZERO32,
      parentchainProcessed: { number: b.parentchainNumber, hash: b.parentchainHash },
      authoritySetAt: this.head.authoritySetAt(parent, b.parentchainNumber), // the set whose slots made it
    };
  }

  /** Votes for block `number` of this chain; the vote is sealed in the signing guard before it is signed. */
  vote(number: number): SignedVote {
    const payload = this.payload(number);
    const { keys, guard } = this.ctx;
    const set = this.view().registry.activeAt(payload.authoritySetAt);
    if (
      memberIndex(
        set.map((m) => m.signingKey),
        keys.signingPublic,
      ) < 0
    )
      throw new EnclaveError('NOT_AUTHORITY', `this enclave was not an authority of block ${number}`);
    guard.signVote(payload.number, payload.hash);
    // The view's copy of the guard carries the vote too: putting back the guard file alone is then detected.
    this.view().sealGuardCopy();
    // If this block is anchored once it is older than the recent blocks, the chain is still known to hold it.
    this.head.keepAncestor(payload.number, payload.hash);
    return { payload, signer: keys.signingPublic, signature: ed25519Sign(keys.signingKey, voteMessage(payload)) };
  }

  /**
   * Call bytes of an anchor for block `number` of this chain with the given votes for it, and the nonce to sign them
   * at. The votes must be a strict majority of the block's authority set for exactly this enclave's payload: a
   * fee is paid only for an anchor every member's registry accepts. Extra, unknown or bad votes are dropped.
   */
  anchorCall(number: number, votes: { signer: Uint8Array; signature: Uint8Array }[]) {
    const payload = this.payload(number);
    const registry = this.view().registry;
    const set = registry.keysAt(payload.authoritySetAt);
    // The registry also wants a majority of the members at the block that includes the anchor: the light client's
    // head is the best guess of those.
    const current = registry.keysAt(this.view().lightClient.number);
    const valid = new Map<number, Uint8Array>();
    for (const v of votes) {
      const index = memberIndex(set, v.signer);
      if (index < 0 || valid.has(index) || !verifyVote(payload, v.signer, v.signature)) continue;
      valid.set(index, v.signature);
    }
    // The fewest votes that are a majority of both sets (each vote more costs fees): members still active first.
    const isNow = (index: number) => memberIndex(current, set[index]) >= 0;
    const order = [...valid.keys()].sort((a, b) => Number(isNow(b)) - Number(isNow(a)) || a - b);
    const chosen: IndexedVote[] = [];
    for (const index of order) {
      if (
        isQuorum(
          chosen.map((c) => set[c.index]),
          set,
          current,
        )
      )
        break;
      chosen.push({ index, signature: valid.get(index)! });
    }
    chosen.sort((a, b) => a.index - b.index);
    const fault = quorumFault(payload, set, chosen, current);
    if (fault) throw new EnclaveError('ANCHOR_NO_QUORUM', `no anchor for block ${number}: ${fault}`);
    const message = encodeMessage({
      tag: 'anchor',
      value: {
        shard: payload.shard,
        sidechainNumber: payload.number,
        sidechainHash: payload.hash,
        previousAnchor: payload.previousAnchor,
        parentchainProcessed: payload.parentchainProcessed,
        authoritySetAt: payload.authoritySetAt,
        votes: chosen,
      },
    });
    return this.view().anchorCall(message);
  }
}
