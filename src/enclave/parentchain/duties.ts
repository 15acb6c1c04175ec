// The enclave's side of the parentchain: its light client and registry (opened, loaded, fed blocks),
// the extrinsics it builds and signs (registration, unregistration, payouts; anchors: finality.ts), and the
// parentchain effects a block executes.
import { ed25519Sign } from '../../crypto/primitives.ts';
import { hexKey, same } from '../../protocol/bytes.ts';
import { RejectCode } from '../../protocol/errors.ts';
import { EnclaveError } from '../boundary/errors.ts';
import { checkParentchainAllowed, type TrustRoots } from '../keys/trust-roots.ts';
import { creditShield, execute, refundWithdrawal, settlePayout, type StfContext } from '../state/stf.ts';
import type { Overlay } from '../state/state.ts';
import { EFFECT, type Effect, type RegistryContext } from './registry.ts';
import { blake2_256 } from './trie.ts';
import { ParentchainView, type ImportedBlock, type ParentchainInitParams } from './view.ts';
import type { EnclaveContext } from '../context.ts';
import type { ChainHead } from '../chain/head.ts';

/** An effect's outcome; invocations (calls posted on the parentchain) report their call hash. */
export type EffectResult = { ok: true; hash?: string } | { ok: false; hash?: string; code: string; message: string };

export interface ParentchainDutiesDeps {
  ctx: EnclaveContext;
  head: ChainHead;
  /** The shard policy's roots of trust, as narrowed by config (keys/trust-roots.ts). */
  roots: TrustRoots;
  /** The shielding key as the registry reads it: provisioning swaps its fields in place. */
  shielding: { secretKey: Uint8Array; publicKey: Uint8Array };
  quote: (userData: Uint8Array) => Uint8Array;
}

export class ParentchainDuties {
  private readonly ctx: EnclaveContext;
  private readonly head: ChainHead;
  private readonly roots: TrustRoots;
  private readonly shielding: { secretKey: Uint8Array; publicKey: Uint8Array };
  private readonly quote: (userData: Uint8Array) => Uint8Array;

  constructor(deps: ParentchainDutiesDeps) {
    this.ctx = deps.ctx;
    this.head = deps.head;
    this.roots = deps.roots;
    this.shielding = deps.shielding;
    this.quote = deps.quote;
  }

  /** Roots of trust come from the shard policy the shard id names (narrowed by config), never from a message. */
  registryContext(): Omit<RegistryContext, 'callIndices'> {
    return {
      shard: this.ctx.opts.shard,
      trustedAuthorities: this.roots.trustedAuthorities,
      allowedMeasurements: this.roots.allowedMeasurements,
      shielding: this.shielding,
    };
  }

  init(params: ParentchainInitParams) {
    const { opts, guard, keys } = this.ctx;
    checkParentchainAllowed(this.roots, opts, params);
    this.ctx.parentchain = ParentchainView.open(
      opts.dataDir,
      guard,
      keys.signingPublic,
      this.registryContext(),
      params,
    );
    return this.info();
  }

  /** The metadata of the runtime after an upgrade the light client verified (see runtime.ts). */
  updateMetadata(metadata: Uint8Array) {
    this.view().updateMetadata(metadata);
    return this.info();
  }

  /**
   * Loads the sealed parentchain view without a chain (offline replay); false when this data directory never had one.
   */
  load(): boolean {
    const { opts, guard, keys } = this.ctx;
    const view = ParentchainView.load(opts.dataDir, guard, keys.signingPublic, this.registryContext());
    if (view) checkParentchainAllowed(this.roots, opts, { genesisHash: view.lightClient.genesisHash });
    this.ctx.parentchain = view;
    return view !== null;
  }

  private view(): ParentchainView {
    if (!this.ctx.parentchain) throw new EnclaveError('NO_PARENTCHAIN', 'the enclave was not given a parentchain');
    return this.ctx.parentchain;
  }

  import(blocks: ImportedBlock[]) {
    const r = this.view().importBlocks(blocks);
    return {
      number: this.view().lightClient.number,
      hash: this.view().lightClient.hash,
      effects: r.effects,
      observations: r.observations,
    };
  }

  info() {
    const pc = this.view();
    const d = pc.registry.data;
    const state = this.ctx.state;
    return {
      number: pc.lightClient.number,
      hash: pc.lightClient.hash,
      genesisHash: pc.lightClient.genesisHash,
      members: d.members.map((m) => ({ ...m, unregisteredAt: m.unregisteredAt ?? null })),
      vault: d.vault?.account ?? null,
      reserveFunded: d.reserveFunded !== undefined,
      vaultProxies: d.vaultProxies,
      lastAnchor: d.lastAnchor
        ? {
            number: Number(d.lastAnchor.number),
            hash: d.lastAnchor.hash,
            parentchainNumber: d.lastAnchor.parentchainNumber,
          }
        : null,
      dutiesInFlight: pc.dutiesInFlight(),
      accountNonce: pc.accountNonce(),
      pendingEffects: pc.effectsAfter(this.head.current?.parentchainNumber ?? 0).length,
      shieldedSupply: state.shard().shieldedSupply,
      unpaidWithdrawals: state.unpaidWithdrawals().length,
      sealedRollback: this.ctx.guard.status(),
      lastVote: this.ctx.guard.lastVote(),
    };
  }

  duties(input: { peerId: string; p2pAddresses: string[] }) {
    if (this.ctx.replaying) return [];
    // Not while a runtime upgrade is not followed: the call bytes would carry the old runtime's indices.
    if (this.view().runtime.upgradedAt !== undefined) return [];
    const final = this.head.finalNumber();
    const { withdrawalBlocks, withdrawalBase } = this.head;
    return this.view().duties({
      quote: this.quote,
      shard: this.ctx.opts.shard,
      peerId: input.peerId,
      p2pAddresses: input.p2pAddresses,
      encryptionKey: this.ctx.keys.encryptionPublic,
      // Only withdrawals of final blocks are paid: a burn in a block that a reorg abandons must not
      // have been paid out (and its id may name another withdrawal on the chain that wins).
      unpaid: this.ctx.state.unpaidWithdrawals().filter((w) => (withdrawalBlocks.get(w.id) ?? withdrawalBase) <= final),
    });
  }

  /** The unregistration's call bytes and the nonce to sign them at. */
  unregisterCall(): { callData: Uint8Array; nonce: number } {
    return this.view().unregisterCall(this.ctx.opts.shard);
  }

  /**
   * Signs an extrinsic payload, only for calls this enclave built (Substrate signs blake2_256 of payloads over 256
   * bytes).
   */
  signExtrinsic(payload: Uint8Array): Uint8Array {
    this.view().admitPayload(payload);
    return ed25519Sign(this.ctx.keys.signingKey, payload.length > 256 ? blake2_256(payload) : payload);
  }

  /** Executes one parentchain effect in the block being built; invocations report their call hash. */
  applyEffect(overlay: Overlay, e: Effect, number: bigint, stf: StfContext): EffectResult {
    if (e.kind === EFFECT.shield) {
      creditShield(overlay, e.account, e.amount);
      return { ok: true };
    }
    if (e.kind === EFFECT.payout) return settlePayout(overlay, e.withdrawal, e.account, e.amount);
    if (e.kind === EFFECT.payoutFailed) return refundWithdrawal(overlay, e.withdrawal);
    const v = this.ctx.localVerifier.verify(e.request);
    if (!v.ok) return v;
    const hash = hexKey(v.hash);
    if (!same(v.shard, this.ctx.opts.shard))
      return { ok: false, hash, code: RejectCode.WRONG_SHARD, message: 'invoked call is for another shard' };
    const r = execute(overlay, v.call, v.nonce, number, stf);
    return r.ok ? { ok: true, hash } : { ...r, hash };
  }
}
