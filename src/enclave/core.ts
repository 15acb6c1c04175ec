// The enclave proper, as one facade over its parts: it builds them around a shared context
// (context.ts) and delegates each message of the API to the part that owns it. Reached only through
// the message interface (api.ts / worker.ts); nothing here is handed to untrusted code except encodings.
import { keysQuoteBinding, simulatedProvider, type AttestationProvider } from './keys/attestation.ts';
import { EnclaveError } from './boundary/errors.ts';
import { loadOrCreateKeys } from './keys/keys.ts';
import { computeMeasurement } from './keys/measurement.ts';
import { openTrustRoots } from './keys/trust-roots.ts';
import { CallPool } from './calls/pool.ts';
import { SIM_SIGNER_ID, Sealer } from './keys/sealing.ts';
import { SigningGuard } from './keys/signing-guard.ts';
import { State } from './state/state.ts';
import { CryptoThreads } from './calls/crypto-threads.ts';
import { CallVerifier } from './calls/call-verifier.ts';
import { StateKeyring } from './keys/state-keys.ts';
import { ShardSecretsExchange, type ProvisionOutcome } from './keys/shard-secrets.ts';
import { ChainHead } from './chain/head.ts';
import { BlockBuilder, type ProposeInput } from './chain/block-builder.ts';
import { BlockVerifier } from './chain/block-verifier.ts';
import { Replay } from './chain/replay.ts';
import { Admission, type RequeueResult, type SubmitResult } from './calls/admission.ts';
import { Getters } from './calls/getters.ts';
import { ParentchainDuties } from './parentchain/duties.ts';
import { Finality, type SignedVote } from './parentchain/finality.ts';
import type { ImportedBlock, ParentchainInitParams, ParentchainView } from './parentchain/view.ts';
import { ed25519Sign } from '../crypto/primitives.ts';
import { shieldingKeyDigest } from '../protocol/enclave-proofs.ts';
import { same } from '../protocol/bytes.ts';
import { STATE_LAYERS, ZERO32, currentEpoch, type EnclaveContext, type EnclaveOptions } from './context.ts';

export type { EnclaveOptions } from './context.ts';
export type { SubmitResult } from './calls/admission.ts';
export type { Rejection } from './chain/block-builder.ts';
export type { ProvisionOutcome } from './keys/shard-secrets.ts';

export class EnclaveCore {
  readonly measurement: Uint8Array;
  private readonly ctx: EnclaveContext;
  private readonly attestation: AttestationProvider;
  private readonly pool: CallPool;
  private readonly head: ChainHead;
  private readonly keyring: StateKeyring;
  private readonly builder: BlockBuilder;
  private readonly verifier: BlockVerifier;
  private readonly replay: Replay;
  private readonly admission: Admission;
  private readonly getters: Getters;
  private readonly duties: ParentchainDuties;
  private readonly finality: Finality;
  private readonly secrets: ShardSecretsExchange;
  /** The last shielding key signed for clients, with its signature. */
  private vouched: { id: number; key: Uint8Array; signature: Uint8Array } | undefined;

  private constructor(opts: EnclaveOptions) {
    this.measurement = computeMeasurement();
    // First, before any key is made or unsealed: the policy must be the one the shard id names.
    const roots = openTrustRoots(opts, this.measurement);
    const sealer = Sealer.simulated(opts.dataDir, this.measurement);
    const devShard = opts.devShardSecrets ? opts.shard : undefined;
    const keys = loadOrCreateKeys(opts.dataDir, sealer, { shard: opts.shard, devShard }).keys;
    this.attestation = simulatedProvider(this.measurement, SIM_SIGNER_ID);
    const key = { keyId: keys.shieldingKeyId, secret: keys.shieldingSecret, publicKey: keys.shieldingPublic };
    const ctx: EnclaveContext = (this.ctx = {
      opts,
      sealer,
      guard: SigningGuard.open(opts.dataDir, sealer),
      keys,
      state: new State(STATE_LAYERS),
      parentchain: null,
      replaying: null,
      staged: null,
      crypto: new CryptoThreads(key, opts.workers, opts.workerNice),
      localVerifier: new CallVerifier(key),
    });
    // One object the registry reads the shielding key from: provisioning swaps its fields in place.
    const shielding = { secretKey: keys.shieldingSecret, publicKey: keys.shieldingPublic };
    // Quotes only over report data the parts compute themselves (registration, provisioning request and
    // response): no message lets the host choose what is attested.
    const quote = (binding: Uint8Array) => this.quoteOver(binding);
    this.pool = new CallPool(opts.pool);
    const head = (this.head = new ChainHead(ctx));
    const keyring = (this.keyring = new StateKeyring(ctx));
    this.duties = new ParentchainDuties({ ctx, head, roots, shielding, quote });
    this.finality = new Finality({ ctx, head });
    this.secrets = new ShardSecretsExchange({
      ctx,
      head,
      keyring,
      policy: this.duties.registryContext(),
      shielding,
      quote,
    });
    this.builder = new BlockBuilder({
      ctx,
      head,
      pool: this.pool,
      keyring,
      applyEffect: (overlay, e, number, stf) => this.duties.applyEffect(overlay, e, number, stf),
    });
    this.verifier = new BlockVerifier({ ctx, head, keyring, commit: (hash) => this.builder.commit(hash) });
    this.replay = new Replay({ ctx, head, verifier: this.verifier });
    this.admission = new Admission({ ctx, pool: this.pool, keyring, replayDone: () => this.replay.done() });
    this.getters = new Getters(ctx);
  }

  static open(opts: EnclaveOptions): EnclaveCore {
    return new EnclaveCore(opts);
  }

  // Read by tests through the facade: the parts' shared state, not an API.
  private get keys() {
    return this.ctx.keys;
  }
  private get state(): State {
    return this.ctx.state;
  }
  private get parentchain(): ParentchainView | null {
    return this.ctx.parentchain;
  }
  private get crypto(): CryptoThreads {
    return this.ctx.crypto;
  }
  private finalNumber(): bigint {
    return this.head.finalNumber();
  }

  info() {
    const keys = this.ctx.keys;
    const holds = this.secrets.holds();
    return {
      signingKey: keys.signingPublic,
      shieldingKey: keys.shieldingPublic,
      shieldingKeyId: keys.shieldingKeyId,
      // A joining enclave's own key is not the shard's: it vouches only for the key it was provisioned.
      shieldingKeySignature: holds ? this.shieldingKeySignature() : null,
      stateKeyId: currentEpoch(this.ctx).keyId,
      encryptionKey: keys.encryptionPublic,
      measurement: this.measurement,
      signer: SIM_SIGNER_ID,
      attestation: this.attestation.kind,
      cryptoThreads: this.ctx.crypto.threads,
      secretsOrigin: keys.secretsOrigin,
      holdsShardSecrets: holds,
    };
  }

  /**
   * The signature over (shard, key id, shielding key) that clients check; made once per key (info() answers every
   * author_getShieldingKey), again only when provisioning replaced the key.
   */
  private shieldingKeySignature(): Uint8Array {
    const { shieldingKeyId: id, shieldingPublic: key, signingKey } = this.ctx.keys;
    const v = this.vouched;
    if (v && v.id === id && same(v.key, key)) return v.signature;
    const signature = ed25519Sign(signingKey, shieldingKeyDigest(this.ctx.opts.shard, id, key));
    this.vouched = { id, key, signature };
    return signature;
  }

  status() {
    const head = this.head.current;
    return {
      headNumber: head ? Number(head.number) : -1,
      headHash: head?.hash ?? ZERO32,
      accounts: this.ctx.state.accountCount,
      poolSize: this.pool.size,
      stateKeyEpoch: currentEpoch(this.ctx).epoch,
    };
  }

  /** A quote over this enclave's public keys only (fixed, enclave-computed report data), for operators to show. */
  keysQuote(): Uint8Array {
    return this.quoteOver(keysQuoteBinding(this.ctx.opts.shard, this.ctx.keys));
  }

  private quoteOver(binding: Uint8Array): Uint8Array {
    if (binding.length !== 32) throw new EnclaveError('QUOTE_REPORT_DATA', 'binding must be 32 bytes');
    return this.attestation.quote(new Uint8Array([...this.ctx.keys.signingPublic, ...binding]));
  }

  slotAuthor(slot: bigint) {
    return this.head.slotAuthor(slot);
  }

  // ---------- parentchain (parentchain/duties.ts) ----------

  parentchainInit(params: ParentchainInitParams) {
    return this.duties.init(params);
  }

  parentchainLoad(): boolean {
    return this.duties.load();
  }

  parentchainImport(blocks: ImportedBlock[]) {
    return this.duties.import(blocks);
  }

  parentchainInfo() {
    return this.duties.info();
  }

  parentchainMetadata(metadata: Uint8Array) {
    return this.duties.updateMetadata(metadata);
  }

  parentchainDuties(input: { peerId: string; p2pAddresses: string[] }) {
    return this.duties.duties(input);
  }

  unregisterCall(): { callData: Uint8Array; nonce: number } {
    return this.duties.unregisterCall();
  }

  /** A finality vote for block `number` of this enclave's chain (sealed in the signing guard first). */
  finalityVote(number: number): SignedVote {
    return this.finality.vote(number);
  }

  /** An anchor of block `number` carrying a majority of `votes` for it, and the nonce to sign it at. */
  anchorCall(
    number: number,
    votes: { signer: Uint8Array; signature: Uint8Array }[],
  ): { callData: Uint8Array; nonce: number } {
    return this.finality.anchorCall(number, votes);
  }

  signExtrinsic(payload: Uint8Array): Uint8Array {
    return this.duties.signExtrinsic(payload);
  }

  // ---------- blocks (chain/) ----------

  genesis(balances: { account: Uint8Array; amount: bigint }[], timestampMs: number) {
    return this.builder.genesis(balances, timestampMs);
  }

  propose(input: ProposeInput) {
    return this.builder.propose(input);
  }

  /** Called once the host has durably stored the proposed or imported block. */
  commit(hash: Uint8Array) {
    this.builder.commit(hash);
    return this.status();
  }

  importBlock(bytes: Uint8Array, nowMs: number) {
    return this.verifier.importBlock(bytes, nowMs);
  }

  async importBlocks(blocks: Uint8Array[], nowMs: number) {
    const r = await this.verifier.importBlocks(blocks, nowMs);
    return { ...r, status: this.status() };
  }

  rewind(number: number, hash: Uint8Array) {
    this.replay.rewind(number, hash);
    return this.status();
  }

  beginReplay(sealedSnapshot: Uint8Array | undefined, verifyEach: boolean) {
    return this.replay.begin(sealedSnapshot, verifyEach);
  }

  replayBlocks(blocks: Uint8Array[]) {
    return this.replay.blocks(blocks);
  }

  async finishReplay() {
    const r = await this.replay.finish();
    return { ...this.status(), ...r };
  }

  snapshot(): Promise<{ sealed: Uint8Array; number: number }> {
    return this.replay.snapshot();
  }

  // ---------- provisioning (keys/shard-secrets.ts) ----------

  holdsShardSecrets(): boolean {
    return this.secrets.holds();
  }

  provisionRequest(nowMs: number): Uint8Array {
    return this.secrets.request(nowMs);
  }

  provisionServe(request: Uint8Array, nowMs: number): ProvisionOutcome<{ response: Uint8Array }> {
    return this.secrets.serve(request, nowMs);
  }

  provisionAccept(
    request: Uint8Array,
    response: Uint8Array,
    nowMs: number,
  ): Promise<ProvisionOutcome<{ stateKeyId: number }>> {
    return this.secrets.accept(request, response, nowMs);
  }

  // ---------- calls (calls/admission.ts, calls/getters.ts) ----------

  submit(requests: Uint8Array[], nowMs: number): Promise<SubmitResult[]> {
    return this.admission.submit(requests, nowMs);
  }

  submitAndForward(requests: Uint8Array[], nowMs: number, forward: ReadonlySet<number>) {
    return this.admission.submitAndForward(requests, nowMs, forward);
  }

  submitForwarded(envelope: Uint8Array, nowMs: number): Promise<SubmitResult[]> {
    return this.admission.submitForwarded(envelope, nowMs);
  }

  requeue(hashes: string[], nowMs: number): Promise<RequeueResult> {
    return this.admission.requeue(hashes, nowMs);
  }

  executeGetter(requestBytes: Uint8Array, nowMs: number): Uint8Array {
    return this.getters.execute(requestBytes, nowMs);
  }

  async close(): Promise<void> {
    await this.replay.close();
    await this.ctx.crypto.close();
  }
}
