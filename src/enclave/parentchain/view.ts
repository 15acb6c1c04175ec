// Everything the enclave knows of the parentchain, sealed to the data directory after every change:
// the light client head, the registry, the effects waiting for a sidechain block, and the duties
// (extrinsics the enclave wants sent) with the ones in flight. A duty is signed at most once per
// mortality window: its birth block and period are sealed before the signature leaves the enclave,
// and it is offered again only once the light client has passed its death without seeing it done.
// That makes payouts exactly-once across crashes of the host or the enclave. The signing guard numbers
// every sealed write, so a view the host puts back older is detected (keys/signing-guard.ts).
import { join } from 'node:path';
import { encodeMessage } from '../../protocol/parentchain-messages.ts';
import { EnclaveError } from '../boundary/errors.ts';
import { LightClient } from './light-client.ts';
import {
  CallIndices,
  addProxyCall,
  batchAllCall,
  createPureCall,
  payloadMortality,
  proxyCall,
  remarkCall,
  removeProxyCall,
  transferKeepAliveCall,
} from './calls.ts';
import { ParentchainRuntime } from './runtime.ts';
import { EFFECT, Effect, Registry, registrationUserData, type Observation, type RegistryContext } from './registry.ts';
import type { SigningGuard } from '../keys/signing-guard.ts';
import { blockCandidates, readExtrinsic } from './extrinsic.ts';
import type { Withdrawal } from '../state/state.ts';
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

const RECENT_KEPT = 512;
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
  private readonly proxyDepositFactor: bigint;
  private pending: Effect[];
  /** Parentchain block up to which effects were settled (dropped): see effectsSettled. */
  private settled: number;
  private readonly inFlight: Map<string, InFlight>;
  private readonly recent: Map<string, number>;
  /** Call bytes this enclave built, by hex, with the duty they serve (null: no exactly-once tracking, e.g. anchors). */
  private readonly authorized = new Map<string, { callData: Uint8Array; duty: string | null }>();
  private readonly path: string;
  /** Seals this view with a sequence number it records, and refuses duties after a rollback of it. */
  private readonly guard: SigningGuard;
  private readonly signingKey: Uint8Array;
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
    const sealed = guard.readView(path);
    if (sealed) {
      s = decodeSealedView(sealed);
      if (!same(s.genesisHash, init.genesisHash)) {
        throw new EnclaveError(
          'PARENTCHAIN_GENESIS_MISMATCH',
          `this data directory follows parentchain 0x${hexKey(s.genesisHash)}, not 0x${hexKey(init.genesisHash)}`,
        );
      }
    } else {
      const head = init.checkpoint ?? { number: 0, hash: init.genesisHash };
      const first = ParentchainRuntime.open({}, init.metadata);
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
      };
    }
    // The indices come from metadata, never from the host directly (runtime.ts).
    const runtime = ParentchainRuntime.open(s, init.metadata);
    const view = new ParentchainView(
      path,
      guard,
      signingKey,
      { ...ctx, callIndices: runtime.callIndices },
      s,
      runtime,
      init.proxyDepositFactor,
    );
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
      if (this.dutyDone(key) || (f.death !== undefined && number >= f.death)) this.inFlight.delete(key);
    }
    for (const [h, a] of this.authorized) if (a.duty !== null && this.dutyDone(a.duty)) this.authorized.delete(h);
  }

  private dutyDone(key: string): boolean {
    const r = this.registry;
    if (key === 'register') return r.isActive(this.signingKey, this.lightClient.number);
    if (key === 'vault') return r.data.vault !== undefined;
    if (key === 'reserve') return r.data.reserveFunded !== undefined;
    if (key.startsWith('proxy:')) return r.isVaultProxy(new Uint8Array(Buffer.from(key.slice(6), 'hex')));
    if (key.startsWith('unproxy:')) return !r.isVaultProxy(new Uint8Array(Buffer.from(key.slice(8), 'hex')));
    if (key.startsWith('payout:'))
      return this.pending.some(
        (e) => (e.kind === EFFECT.payout || e.kind === EFFECT.payoutFailed) && `payout:${e.withdrawal}` === key,
      );
    return false;
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
    this.pending = this.pending.filter((e) => e.parentchainNumber > number);
    const moved = number > this.settled;
    if (moved) this.settled = number;
    if (moved || this.pending.length !== before) this.persist();
  }

  // ---------- duties and signing ----------

  /**
   * What this enclave should send now. Registration while it is not a member; the first member
   * creates the vault, funds its keep-alive reserve, makes every member a proxy of the vault, and
   * pays out withdrawals.
   */
  duties(input: {
    quote: (userData: Uint8Array) => Uint8Array;
    shard: Uint8Array;
    peerId: string;
    p2pAddresses: string[];
    encryptionKey: Uint8Array;
    unpaid: Withdrawal[];
  }): Duty[] {
    const out: Duty[] = [];
    const r = this.registry;
    const number = this.lightClient.number;
    const offer = (key: string, callData: Uint8Array, description: string) => {
      if (this.inFlight.has(key)) return;
      this.authorize(callData, key);
      out.push({ key, callData, description });
    };
    if (!r.isActive(this.signingKey, number)) {
      const quote = input.quote(
        registrationUserData(input.shard, input.peerId, input.p2pAddresses, input.encryptionKey),
      );
      const message = encodeMessage({
        tag: 'register',
        value: {
          shard: input.shard,
          quote,
          signingKey: this.signingKey,
          p2pAddresses: input.p2pAddresses,
          peerId: input.peerId,
          encryptionKey: input.encryptionKey,
        },
      });
      offer('register', remarkCall(this.callIndices, message), 'register this enclave');
      return out;
    }
    const first = r.activeAt(number)[0];
    if (!first || !same(first.signingKey, this.signingKey)) return out;
    const ix = this.callIndices;
    const vault = r.data.vault;
    if (!vault) {
      offer(
        'vault',
        batchAllCall(ix, [
          createPureCall(ix),
          remarkCall(ix, encodeMessage({ tag: 'vault', value: { shard: input.shard } })),
        ]),
        'create the shard vault',
      );
      return out;
    }
    if (r.data.reserveFunded === undefined) {
      const remark = remarkCall(ix, encodeMessage({ tag: 'reserve', value: { shard: input.shard } }));
      offer(
        'reserve',
        batchAllCall(ix, [transferKeepAliveCall(ix, vault.account, this.existentialDeposit), remark]),
        'fund the vault keep-alive reserve',
      );
    }
    // Every member's enclave account becomes a proxy of the vault, so any of them can pay out later.
    // pallet_proxy reserves the proxy's deposit from the vault, which holds only the keep-alive reserve
    // and shielded funds: this enclave's account pays the deposit into the vault in the same batch.
    for (const m of r.activeAt(number)) {
      const key = `proxy:${hexKey(m.signingKey)}`;
      if (this.dutyDone(key)) continue;
      const remark = remarkCall(
        ix,
        encodeMessage({ tag: 'proxy', value: { shard: input.shard, delegate: m.signingKey } }),
      );
      const add = proxyCall(ix, vault.account, batchAllCall(ix, [addProxyCall(ix, m.signingKey), remark]));
      const callData =
        this.proxyDepositFactor > 0n
          ? batchAllCall(ix, [transferKeepAliveCall(ix, vault.account, this.proxyDepositFactor), add])
          : add;
      offer(key, callData, `add validateer ${hexKey(m.signingKey).slice(0, 8)}… as a vault proxy`);
    }
    // A member that left no longer controls the vault. Only a proxy can act for the vault, and this
    // member (never removed itself) stays one, so the vault always keeps a controller. The removal
    // frees the departed one's deposit in the vault: it goes back to this enclave's account, so the
    // vault still holds exactly the reserve and the shielded funds.
    if (r.isVaultProxy(this.signingKey)) {
      for (const p of r.data.vaultProxies) {
        const key = `unproxy:${hexKey(p)}`;
        if (r.isActive(p, number) || this.dutyDone(key)) continue;
        const remark = remarkCall(ix, encodeMessage({ tag: 'unproxy', value: { shard: input.shard, delegate: p } }));
        // Exactly what the batch that added it paid into the vault (the registry accepts no other refund).
        const refund = transferKeepAliveCall(ix, this.signingKey, r.proxyDeposit(p));
        offer(
          key,
          proxyCall(ix, vault.account, batchAllCall(ix, [removeProxyCall(ix, p), refund, remark])),
          `remove departed validateer ${hexKey(p).slice(0, 8)}… as a vault proxy`,
        );
      }
    }
    for (const w of input.unpaid) {
      const key = `payout:${w.id}`;
      if (this.dutyDone(key)) continue;
      const remark = remarkCall(ix, encodeMessage({ tag: 'payout', value: { shard: input.shard, withdrawal: w.id } }));
      offer(
        key,
        proxyCall(ix, vault.account, batchAllCall(ix, [transferKeepAliveCall(ix, w.beneficiary, w.amount), remark])),
        `pay withdrawal ${w.id}`,
      );
    }
    return out;
  }

  /** The runtime's metadata after a verified upgrade (runtime.ts): call bytes built before it are void. */
  updateMetadata(metadata: Uint8Array): void {
    if (this.runtime.update(metadata)) this.authorized.clear();
    this.persist();
  }

  /** Call bytes of this enclave's unregistration (the operator's `validateer leave`). */
  unregisterCall(shard: Uint8Array): Uint8Array {
    if (!this.registry.isActive(this.signingKey, this.lightClient.number))
      throw new EnclaveError('NOT_MEMBER', 'this enclave is not a registered member of the shard');
    const callData = remarkCall(
      this.callIndices,
      encodeMessage({ tag: 'unregister', value: { shard, signingKey: this.signingKey } }),
    );
    this.authorize(callData, null);
    return callData;
  }

  /** Call bytes for an anchor remark (signed without exactly-once tracking: a lost anchor is just re-sent later). */
  anchorCall(message: Uint8Array): Uint8Array {
    const callData = remarkCall(this.callIndices, message);
    this.authorize(callData, null);
    return callData;
  }

  private authorize(callData: Uint8Array, duty: string | null): void {
    this.authorized.set(hexKey(callData), { callData, duty });
    if (this.authorized.size > AUTHORIZED_KEPT) this.authorized.delete(this.authorized.keys().next().value!);
  }

  /**
   * Checks a signing payload before the enclave signs it: it must start with call bytes this enclave
   * built. For a duty the payload must be mortal; the duty is sealed as in flight before returning.
   */
  admitPayload(payload: Uint8Array): void {
    for (const { callData, duty } of this.authorized.values()) {
      if (payload.length <= callData.length || !same(payload.subarray(0, callData.length), callData)) continue;
      this.runtime.checkPayload(payload, callData.length, this.lightClient.genesisHash);
      if (duty === null) return;
      this.guard.checkDuties(this.lightClient.number);
      if (this.inFlight.has(duty))
        throw new EnclaveError('DUTY_IN_FLIGHT', `duty ${duty} was already signed and may still be included`);
      const mortality = payloadMortality(payload, callData.length, this.lightClient.genesisHash);
      if (!mortality) throw new EnclaveError('DUTY_IMMORTAL', `duty ${duty} must be signed as a mortal transaction`);
      const birth = this.recent.get(hexKey(mortality.birthHash));
      const death = birth === undefined ? undefined : birth + mortality.period;
      this.inFlight.set(duty, { duty, birthHash: mortality.birthHash, period: mortality.period, death });
      // A birth not among the recent verified blocks is older (then dead sooner) or not final yet (assumed
      // within RECENT_KEPT blocks of the verified head).
      this.guard.noteDuty(death ?? this.lightClient.number + RECENT_KEPT + mortality.period);
      this.persist();
      return;
    }
    throw new EnclaveError('SIGNING_REFUSED', 'the enclave signs only parentchain calls it built itself');
  }

  /** Duties signed and not yet seen done or expired (for status and tests). */
  dutiesInFlight(): string[] {
    return [...this.inFlight.keys()];
  }
}
