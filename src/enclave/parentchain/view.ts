// Everything the enclave knows of the parentchain, sealed to the data directory after every change:
// the light client head, the registry, the effects waiting for a sidechain block, the duties
// (extrinsics the enclave wants sent) with the ones in flight, and the account's nonces. Every
// signature names a nonce the enclave chose. A duty is signed at most once per mortality window: its
// birth block, period and nonce are sealed before the signature leaves the enclave, and it is offered
// again only once the light client has passed its death, or its nonce is consumed, without seeing it
// done. A payout stays bound to its nonce until the verified chain consumes that nonce (nonces.ts), so
// it is included at most once whatever the host shows or withholds, across crashes of either side.
// The signing guard numbers every sealed write, so a view the host puts back older is detected
// (keys/signing-guard.ts).
import { join } from 'node:path';
import { encodeMessage } from '../../protocol/parentchain-messages.ts';
import { EnclaveError } from '../boundary/errors.ts';
import { LightClient } from './light-client.ts';
import { CallIndices, payloadMortality, remarkCall } from './calls.ts';
import { EFFECT, Effect, Registry, type Observation, type RegistryContext } from './registry.ts';
import { MAX_DUTY_PERIOD, RECENT_KEPT, dutyCalls, type DutyInput } from './duty-calls.ts';
import { AccountNonces, EMPTY_NONCES, UNKNOWN_NONCE } from './nonces.ts';
import { payloadNonce } from './extrinsic-prefix.ts';
import { ParentchainRuntime } from './runtime.ts';
import type { SigningGuard } from '../keys/signing-guard.ts';
import { blockCandidates, readExtrinsic } from './extrinsic.ts';
import { hexKey, same } from '../../protocol/bytes.ts';
import {
  InFlight,
  SealedView,
  decodeSealedView,
  type Duty,
  type ImportedBlock,
  type ParentchainInitParams,
} from './view-format.ts';

export type { Duty, ImportedBlock, ParentchainInitParams } from './view-format.ts';

const AUTHORIZED_KEPT = 64;

export class ParentchainView {
  readonly lightClient: LightClient;
  readonly registry: Registry;
  /** Derived from the runtime's metadata (runtime.ts), shared with the registry and updated in place. */
  readonly callIndices: CallIndices;
  readonly runtime: ParentchainRuntime;
  readonly existentialDeposit: bigint;
  /**
   * What pallet_proxy reserves from the vault for each proxy it adds (see ParentchainInitParams): only what this
   * enclave's own account pays in; a refund out of the vault is the registry's recorded deposit.
   */
  readonly proxyDepositFactor: bigint;
  private pending: Effect[];
  /** Parentchain block up to which effects were settled (dropped): see effectsSettled. */
  private settled: number;
  private readonly inFlight: Map<string, InFlight>;
  private readonly recent: Map<string, number>;
  /**
   * Call bytes this enclave built, by hex, with the duty they serve (null: no exactly-once tracking, e.g. anchors)
   * and the nonce they are to be signed at.
   */
  private readonly authorized = new Map<string, { callData: Uint8Array; duty: string | null; nonce: number }>();
  private readonly nonces: AccountNonces;
  private readonly path: string;
  /** Seals this view with a sequence number it records, and refuses duties after a rollback of it. */
  private readonly guard: SigningGuard;
  readonly signingKey: Uint8Array;
  private readonly shard: Uint8Array;

  private constructor(
    path: string,
    guard: SigningGuard,
    signingKey: Uint8Array,
    ctx: RegistryContext,
    s: ReturnType<typeof decodeSealedView>,
    runtime: ParentchainRuntime,
    proxyDepositFactor: bigint,
  ) {
    this.path = path;
    this.guard = guard;
    this.signingKey = signingKey;
    this.shard = ctx.shard;
    this.runtime = runtime;
    this.callIndices = runtime.callIndices;
    this.existentialDeposit = s.existentialDeposit;
    this.proxyDepositFactor = proxyDepositFactor;
    this.lightClient = new LightClient(s.genesisHash, { number: s.head.number, hash: s.head.hash });
    this.registry = new Registry(ctx, s.registry);
    this.pending = s.pending;
    this.settled = s.settled;
    this.inFlight = new Map(s.inFlight.map((f) => [f.duty, f]));
    this.recent = new Map(s.recent.map((r) => [hexKey(r.hash), r.number]));
    this.nonces = new AccountNonces(s.nonces, signingKey, (w) => this.payoutRemark(w));
  }

  /** The remark a payout of withdrawal `w` ends with. */
  private payoutRemark(w: bigint): Uint8Array {
    return remarkCall(this.callIndices, encodeMessage({ tag: 'payout', value: { shard: this.shard, withdrawal: w } }));
  }

  /**
   * Opens the sealed view, or starts one from the trusted genesis (or checkpoint) on first use. A
   * sealed view for another genesis is refused: the data directory belongs to another parentchain.
   */
  static open(
    dataDir: string,
    guard: SigningGuard,
    signingKey: Uint8Array,
    ctx: Omit<RegistryContext, 'callIndices'>,
    init: ParentchainInitParams,
  ): ParentchainView {
    const path = join(dataDir, 'enclave', 'parentchain.sealed');
    let s: ReturnType<typeof decodeSealedView>;
    // The indices come from metadata, never from the host directly (runtime.ts).
    let runtime: ParentchainRuntime;
    const sealed = guard.readView(path);
    if (sealed) {
      s = decodeSealedView(sealed);
      if (!same(s.genesisHash, init.genesisHash)) {
        throw new EnclaveError(
          'PARENTCHAIN_GENESIS_MISMATCH',
          `this data directory follows parentchain 0x${hexKey(s.genesisHash)}, not 0x${hexKey(init.genesisHash)}`,
        );
      }
      runtime = ParentchainRuntime.open(s, init.metadata, init.genesisHash);
    } else {
      const head = init.checkpoint ?? { number: 0, hash: init.genesisHash };
      const first = ParentchainRuntime.open({}, init.metadata, init.genesisHash);
      s = {
        genesisHash: init.genesisHash,
        ...first.toSealed(),
        existentialDeposit: init.existentialDeposit,
        head,
        registry: new Registry({ ...ctx, callIndices: first.callIndices }).data,
        pending: [],
        inFlight: [],
        recent: [],
        settled: 0,
        nonces: EMPTY_NONCES,
      };
      runtime = first;
    }
    const view = new ParentchainView(
      path,
      guard,
      signingKey,
      { ...ctx, callIndices: runtime.callIndices },
      s,
      runtime,
      init.proxyDepositFactor,
    );
    view.nonces.floor = init.accountNonce ?? 0;
    view.persist();
    return view;
  }

  /** The sealed view as last written, or null (offline use: replay needs the registry to know the authors). */
  static load(
    dataDir: string,
    guard: SigningGuard,
    signingKey: Uint8Array,
    ctx: Omit<RegistryContext, 'callIndices'>,
  ): ParentchainView | null {
    const path = join(dataDir, 'enclave', 'parentchain.sealed');
    const sealed = guard.readView(path);
    if (!sealed) return null;
    const s = decodeSealedView(sealed);
    // offline: no duties (a view sealed by an earlier build gets its runtime at the next parentchain start)
    const runtime = ParentchainRuntime.fromSealed(s.callIndices, s.runtime);
    return new ParentchainView(path, guard, signingKey, { ...ctx, callIndices: runtime.callIndices }, s, runtime, 0n);
  }

  /**
   * Seals the view again, so that its copy of the signing guard carries a record just made (a finality vote): a guard
   * put back alone, to before that record, is then detected at the next start.
   */
  sealGuardCopy(): void {
    this.persist();
  }

  private persist(): void {
    const recent = [...this.recent].map(([h, number]) => ({ number, hash: new Uint8Array(Buffer.from(h, 'hex')) }));
    const bytes = SealedView.enc({
      genesisHash: this.lightClient.genesisHash,
      ...this.runtime.toSealed(),
      existentialDeposit: this.existentialDeposit,
      head: { number: this.lightClient.number, hash: this.lightClient.hash },
      registry: this.registry.data,
      pending: this.pending,
      inFlight: [...this.inFlight.values()],
      recent,
      settled: this.settled,
      nonces: this.nonces.data,
    });
    this.guard.writeView(this.path, bytes, this.lightClient.number);
  }

  /** Verifies and applies finalized blocks in order; persists once at the end. */
  importBlocks(blocks: ImportedBlock[]): { observations: Observation[]; effects: number } {
    const observations: Observation[] = [];
    let effects = 0;
    try {
      for (const b of blocks) {
        // Checked before the header is accepted: a block is applied whole or not at all.
        const candidates = blockCandidates(b, this.shard, this.lightClient.number + 1);
        const h = this.runtime.follow(b.header, () => this.lightClient.import(b.header, b.extrinsics));
        this.remember(h.number, h.hash);
        // Our own extrinsics, from the verified body itself: nonces consumed, payouts included.
        this.nonces.observe(b.extrinsics, this.payoutsInFlight(), h.number);
        for (const { index, outcome } of candidates) {
          // Decoded here from the verified bytes; what is not one of our calls is ignored, never an error.
          const x = readExtrinsic(this.callIndices, b.extrinsics[index], outcome.callOffset);
          if (typeof x === 'string') {
            observations.push({ kind: 'ignored', detail: `extrinsic ${h.number}-${index}: ${x}` });
            continue;
          }
          const found = this.registry.apply(h.number, { index, ...x, success: outcome.success }, observations);
          this.pending.push(...found);
          effects += found.length;
        }
        this.expireDuties(h.number);
      }
      // Effects are dropped only once a final block executed them: a reorg of unfinalized blocks
      // must find them again.
      if (this.registry.anchoredProcessed !== undefined) this.settledUpTo(this.registry.anchoredProcessed);
    } finally {
      this.persist(); // what was verified before a bad block stays verified
    }
    return { observations, effects };
  }

  private remember(number: number, hash: Uint8Array): void {
    this.recent.set(hexKey(hash), number);
    if (this.recent.size > RECENT_KEPT) this.recent.delete(this.recent.keys().next().value!);
    for (const f of this.inFlight.values()) {
      if (f.death === undefined && same(f.birthHash, hash)) f.death = number + f.period;
    }
  }

  /**
   * Duties whose extrinsic can no longer be included (past death) and duties seen done are dropped.
   * A done duty's call bytes lose their authorization too (done by us or, like the reserve, by
   * anyone): a payout stops looking done once its effect is settled, and must not be signable then.
   */
  private expireDuties(number: number): void {
    for (const [key, f] of this.inFlight) {
      const consumed = f.nonce !== UNKNOWN_NONCE && f.nonce < this.nonces.next;
      if (this.dutyDone(key) || consumed || (f.death !== undefined && number >= f.death)) this.inFlight.delete(key);
    }
    for (const [h, a] of this.authorized) if (a.duty !== null && this.dutyDone(a.duty)) this.authorized.delete(h);
  }

  /** Whether the registry (or, for a payout, its own bytes at its nonce) shows duty `key` done. */
  dutyDone(key: string): boolean {
    const r = this.registry;
    if (key === 'register') return r.isActive(this.signingKey, this.lightClient.number);
    if (key === 'vault') return r.data.vault !== undefined;
    if (key === 'reserve') return r.data.reserveFunded !== undefined;
    if (key.startsWith('proxy:')) return r.isVaultProxy(new Uint8Array(Buffer.from(key.slice(6), 'hex')));
    if (key.startsWith('unproxy:')) return !r.isVaultProxy(new Uint8Array(Buffer.from(key.slice(8), 'hex')));
    if (key.startsWith('payout:'))
      return (
        this.nonces.included(BigInt(key.slice(7))) ||
        this.pending.some(
          (e) => (e.kind === EFFECT.payout || e.kind === EFFECT.payoutFailed) && `payout:${e.withdrawal}` === key,
        )
      );
    return false;
  }

  /** Withdrawals whose payout is in flight (records of earlier builds may have no nonce binding). */
  private payoutsInFlight(): bigint[] {
    return [...this.inFlight.keys()].filter((k) => k.startsWith('payout:')).map((k) => BigInt(k.slice(7)));
  }

  /** The light client head's number. */
  get number(): number {
    return this.lightClient.number;
  }

  // ---------- effects for sidechain blocks ----------

  /** Whether (number, hash) is a verified parentchain block; undefined when it is older than what is remembered. */
  knowsBlock(number: number, hash: Uint8Array): boolean | undefined {
    if (number > this.lightClient.number) return false;
    if (number === this.lightClient.number) return same(hash, this.lightClient.hash);
    const n = this.recent.get(hexKey(hash));
    if (n !== undefined) return n === number;
    return this.recent.size === 0 || number < Math.min(...this.recent.values()) ? undefined : false;
  }

  /** Effects from parentchain blocks after `afterNumber` (what the sidechain has not executed yet). */
  effectsAfter(afterNumber: number): Effect[] {
    return this.pending.filter((e) => e.parentchainNumber > afterNumber);
  }

  /** Effects of parentchain blocks in (afterNumber, upTo], in order; complete only from effectsSettled on. */
  effectsBetween(afterNumber: number, upTo: number): Effect[] {
    return this.pending.filter((e) => e.parentchainNumber > afterNumber && e.parentchainNumber <= upTo);
  }

  /** Effects of parentchain blocks up to here were executed by an anchored block and dropped (chain/effects.ts). */
  get effectsSettled(): number {
    return this.settled;
  }

  /** A final sidechain block executed effects up to `number`: drop them. */
  settledUpTo(number: number): void {
    const before = this.pending.length;
    for (const e of this.pending)
      if (e.parentchainNumber <= number && (e.kind === EFFECT.payout || e.kind === EFFECT.payoutFailed))
        this.nonces.forget(e.withdrawal); // paid (or refunded) in a final block: its binding is no longer needed
    this.pending = this.pending.filter((e) => e.parentchainNumber > number);
    const moved = number > this.settled;
    if (moved) this.settled = number;
    if (moved || this.pending.length !== before) this.persist();
  }

  // ---------- duties and signing ----------

  /** What this enclave should send now (duty-calls.ts), without what is in flight, each with its nonce. */
  duties(input: DutyInput): Duty[] {
    const out: Duty[] = [];
    // Fresh nonces skip those that sealed records and recent signatures hold; a payout keeps its bound one.
    const taken = this.nonces.taken(this.inFlight.values());
    dutyCalls(this, input, (key, callData, description) => {
      if (this.inFlight.has(key)) return;
      const bound = key.startsWith('payout:') ? this.nonces.bound(BigInt(key.slice(7))) : undefined;
      const nonce = bound ?? this.nonces.fresh(taken);
      this.authorize(callData, key, nonce);
      out.push({ key, callData, description, nonce });
    });
    this.nonces.offered = new Set(out.map((d) => d.nonce));
    return out;
  }

  /** The runtime's metadata after a verified upgrade (runtime.ts): call bytes built before it are void. */
  updateMetadata(metadata: Uint8Array): void {
    if (this.runtime.update(metadata, this.lightClient.genesisHash)) this.authorized.clear();
    this.persist();
  }

  /** Call bytes of this enclave's unregistration (the operator's `validateer leave`) and the nonce to sign it at. */
  unregisterCall(shard: Uint8Array): { callData: Uint8Array; nonce: number } {
    if (!this.registry.isActive(this.signingKey, this.lightClient.number))
      throw new EnclaveError('NOT_MEMBER', 'this enclave is not a registered member of the shard');
    const callData = remarkCall(
      this.callIndices,
      encodeMessage({ tag: 'unregister', value: { shard, signingKey: this.signingKey } }),
    );
    return this.authorizeLoose(callData);
  }

  /**
   * Call bytes for an anchor remark and the nonce to sign it at (signed without exactly-once tracking: a lost anchor is
   * just re-sent later).
   */
  anchorCall(message: Uint8Array): { callData: Uint8Array; nonce: number } {
    return this.authorizeLoose(remarkCall(this.callIndices, message));
  }

  /** Non-duty calls take the next free nonce too: one that burns a payout's nonce shows as a non-payout there. */
  private authorizeLoose(callData: Uint8Array): { callData: Uint8Array; nonce: number } {
    const taken = this.nonces.taken(this.inFlight.values());
    for (const n of this.nonces.offered) taken.add(n);
    const nonce = this.nonces.fresh(taken);
    this.authorize(callData, null, nonce);
    return { callData, nonce };
  }

  private authorize(callData: Uint8Array, duty: string | null, nonce: number): void {
    const key = hexKey(callData);
    this.authorized.delete(key); // re-inserted as the newest
    this.authorized.set(key, { callData, duty, nonce });
    if (this.authorized.size > AUTHORIZED_KEPT) this.authorized.delete(this.authorized.keys().next().value!);
  }

  /**
   * Checks a signing payload before the enclave signs it: it must start with call bytes this enclave
   * built and name the nonce the enclave gave them. For a duty the payload must be mortal; the duty (a
   * payout: also its nonce binding) is sealed as in flight before returning.
   */
  admitPayload(payload: Uint8Array): void {
    for (const { callData, duty, nonce } of this.authorized.values()) {
      if (payload.length <= callData.length || !same(payload.subarray(0, callData.length), callData)) continue;
      this.runtime.checkPayload(payload, callData.length, this.lightClient.genesisHash);
      if (duty !== null) this.guard.checkDuties(this.lightClient.number);
      if (duty !== null && this.inFlight.has(duty))
        throw new EnclaveError('DUTY_IN_FLIGHT', `duty ${duty} was already signed and may still be included`);
      const w = duty?.startsWith('payout:') ? BigInt(duty.slice(7)) : undefined;
      const named = payloadNonce(payload, callData.length);
      const expected = (w !== undefined ? this.nonces.bound(w) : undefined) ?? nonce;
      const holder = named === null ? undefined : this.nonces.holder(named, this.inFlight.values(), duty);
      if (named !== expected || named < this.nonces.next || holder !== undefined) {
        const why = holder !== undefined ? `held by ${holder}` : named === expected ? 'consumed' : 'another';
        throw new EnclaveError(
          'DUTY_WRONG_NONCE',
          `${duty ?? 'this call'} is signed only at nonce ${expected}, not at ${named} (${why})`,
        );
      }
      const mortality = payloadMortality(payload, callData.length, this.lightClient.genesisHash);
      const birth = mortality ? this.recent.get(hexKey(mortality.birthHash)) : undefined;
      const death = mortality && birth !== undefined ? birth + mortality.period : undefined;
      if (duty === null) {
        this.nonces.signedLoose(named, death, this.lightClient.number);
        return;
      }
      if (!mortality) throw new EnclaveError('DUTY_IMMORTAL', `duty ${duty} must be signed as a mortal transaction`);
      // Bounds how long a payout signed here can land after this enclave stops paying (duty-calls.ts).
      if (mortality.period > MAX_DUTY_PERIOD)
        throw new EnclaveError(
          'DUTY_MORTALITY_TOO_LONG',
          `duty ${duty} is signed for at most ${MAX_DUTY_PERIOD} blocks, not ${mortality.period}`,
        );
      this.inFlight.set(duty, { duty, birthHash: mortality.birthHash, period: mortality.period, death, nonce: named });
      if (w !== undefined) this.nonces.bind(w, named);
      // A birth not among the recent verified blocks is older (then dead sooner) or not final yet (assumed
      // within RECENT_KEPT blocks of the verified head).
      this.guard.noteDuty(death ?? this.lightClient.number + RECENT_KEPT + mortality.period);
      this.persist();
      return;
    }
    throw new EnclaveError('SIGNING_REFUSED', 'the enclave signs only parentchain calls it built itself');
  }

  /** The account's next nonce as the verified blocks show it. */
  accountNonce(): number {
    return this.nonces.next;
  }

  /** Duties signed and not yet seen done or expired (for status and tests). */
  dutiesInFlight(): string[] {
    return [...this.inFlight.keys()];
  }
}
