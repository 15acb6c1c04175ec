// The enclave proper: keys, state, pool and block authoring. Reached only through the message
// interface (api.ts / worker.ts); nothing here is handed to untrusted code except encodings below.
import { Bytes, Struct, Vector, u8, u32, u64 } from 'scale-ts';
import { HpkeSuite } from '../crypto/hpke.ts';
import { aesGcmOpen, aesGcmSeal, ed25519Sign, ed25519Verify, randomNonce } from '../crypto/primitives.ts';
import { GetterReply, HPKE_INFO_GETTER, HPKE_INFO_REPLY, SealedReply, ShieldedRequest, TrustedGetterSigned, decodeExact, getterAccount, getterSigningPayload, headBeforeLastBytes, type GetterReply as GetterReplyT, type TrustedGetter } from '../protocol/wire.ts';
import { SignedBlock, bodyRoot, decodeReceivedBlock, headerHash, headerSigningPayload, linksTo, signatureHash, transitionsAad, type Header, type KeyRotation, type ReceivedBlock, type SignedBlock as SignedBlockT } from '../protocol/block.ts';
import { simulatedProvider, type AttestationProvider } from './keys/attestation.ts';
import { EnclaveError } from './boundary/errors.ts';
import { RejectCode } from '../protocol/errors.ts';
import { addStateKeys, installShardSecrets, loadOrCreateKeys, shardSecretsOf, type EnclaveKeys } from './keys/keys.ts';
import { checkRecipients, membersHash, openRotation, rotationDue, sealRotation, type Recipient } from './keys/rotation.ts';
import type { LtHash } from './state/lthash.ts';
import { computeMeasurement } from './keys/measurement.ts';
import { CallPool, type PoolLimits } from './calls/pool.ts';
import { SIM_SIGNER_ID, Sealer } from './keys/sealing.ts';
import { Overlay, State, epochOf, accountKey, joinItems, splitItems, unpaidWithdrawalId, type EpochRecord, type Item, type Known } from './state/state.ts';
import { slotAt, slotAuthor } from '../protocol/aura.ts';
import { hashThreads, type HashThreads } from './state/lthash-threads.ts';
import { NO_PARENTCHAIN, creditShield, execute, precheck, refundWithdrawal, settlePayout, type StfContext } from './state/stf.ts';
import { ParentchainView, type ImportedBlock, type ParentchainInitParams } from './parentchain/view.ts';
import { EFFECT, type Effect } from './parentchain/registry.ts';
import { DEV_AUTHORITY_PUBLIC } from './keys/attestation.ts';
import { blake2_256 } from './parentchain/trie.ts';
import { encodeMessage } from '../protocol/parentchain-messages.ts';
import { CryptoPool } from './calls/crypto-threads.ts';
import { CallVerifier } from './calls/call-verifier.ts';
import { forwardKey, openForwarded, sealForwarded, type ForwardedCall } from './calls/forwarding.ts';
import { ProvisionRefusal, Provisioning } from './keys/provisioning.ts';
import { createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { LRUCache } from 'lru-cache';
import { bytesView, same } from '../protocol/bytes.ts';

export interface EnclaveOptions {
  dataDir: string;
  shard: Uint8Array;
  workers: number;
  /** Niceness of the crypto worker threads (config enclave.workerNice); 0 or absent = unchanged. */
  workerNice?: number;
  pool: PoolLimits;
  /** Block authors' signing keys when there is no parentchain; empty = this enclave alone. */
  authorities: Uint8Array[];
  /** Attestation authorities whose quotes count in registrations; empty = the simulated dev authority. */
  trustedAuthorities?: Uint8Array[];
  /** Measurements a registered enclave may have; empty = this enclave's own. */
  allowedMeasurements?: Uint8Array[];
  /** Aura slot length: a block's slot may be at most `maxDriftMs` ahead of the enclave's clock. */
  slotDurationMs?: number;
  maxDriftMs?: number;
  /** Derive the shard secrets from the shard id (dev set without provisioning; simulation only). */
  devShardSecrets?: boolean;
  /** A new state key epoch after this many blocks (0: only when the member set changes). A shard-wide parameter. */
  keyRotationBlocks?: number;
}

export interface SubmitResult { hash?: string; status: 'ready' | 'future' | 'invalid'; code?: string; message?: string }
export interface Rejection { hash: string; code: string; message: string }
/** verification: the other side's quote check ('ok', a refusal code, or null when not reached). */
export type ProvisionOutcome<T> = ({ ok: true } & T & { verification: string | null }) | { ok: false; code: string; message: string; verification: string | null };

/**
 * A sealed state snapshot: the head (with its slot, which a child's must exceed, and its signature's
 * hash, which a child's header names), the parentchain block it built on (which parentchain effects
 * are in the state), the hashes of the blocks before it (anchors and finality are checked against
 * them after a restart from the snapshot) and the state. Older versions are not read: the node then
 * replays from genesis.
 */
const RecentHashes = Vector(Struct({ number: u64, hash: Bytes(32) }));
const SnapshotFile = Struct({
  version: u8, number: u64, hash: Bytes(32), signatureHash: Bytes(32), parentchainNumber: u32, parentchainHash: Bytes(32), slot: u64, recent: RecentHashes, state: Bytes(),
});
const SNAPSHOT_VERSION = 5; // 5: element hashes of the state commitment by ChaCha20 (4: SHAKE128)
const getterSuite = new HpkeSuite(HPKE_INFO_GETTER);
const replySuite = new HpkeSuite(HPKE_INFO_REPLY);
const GETTER_MAX_SKEW_MS = 5 * 60_000;
const ZERO32 = new Uint8Array(32);
/** What genesis names as its parent. */
const NO_PARENT = { hash: ZERO32, signatureHash: ZERO32 };

interface Proposal { hash: Uint8Array; signatureHash: Uint8Array; number: bigint; slot: bigint; items: Item[]; known: Known; lthash: LtHash; included: string[]; parentchainNumber: number; parentchainHash: Uint8Array }
/** signatureHash: of the block's signature, which its child's header names. */
interface Head { hash: Uint8Array; signatureHash: Uint8Array; number: bigint; slot: bigint; commitment: Uint8Array; parentchainNumber: number; parentchainHash: Uint8Array }
const RECENT_BLOCKS_KEPT = 256;
/** Newest blocks kept as state layers: a reorg this shallow rewinds them instead of rebuilding from the event log. */
const STATE_LAYERS = 8;
/** Blocks per signature batch in importBlocks (one batch is checked while the previous one is applied). */
const SIGNATURE_CHUNK = 128;
/** Verified calls kept for requeueing after a reorg (newest win; a few hundred bytes each). */
const RECENT_CALLS_KEPT = 65_536;
/** Calls admitted between two turns of the enclave thread's other work. */
const ADMIT_SLICE = 256;
/** How often proposing also drops the pool's stale and expired calls (and reports them invalid). */
const PRUNE_INTERVAL_MS = 1000;
/** How long a submission waits for a replay (a reorg's rebuild) before it is refused. */
const REPLAY_WAIT_MS = 30_000;

const sameEpoch = (a: EpochRecord, b: EpochRecord): boolean =>
  a.epoch === b.epoch && a.keyId === b.keyId && a.startNumber === b.startNumber && same(a.membersHash, b.membersHash);

function decodeSnapshot(bytes: Uint8Array): ReturnType<typeof SnapshotFile.dec> {
  if (bytes[0] !== SNAPSHOT_VERSION) throw new EnclaveError('SNAPSHOT_UNSUPPORTED', `snapshot version ${bytes[0]} is not read by this enclave (${SNAPSHOT_VERSION})`);
  return decodeExact(SnapshotFile, bytes, 'snapshot');
}

export class EnclaveCore {
  readonly measurement: Uint8Array;
  private readonly opts: EnclaveOptions;
  private keys: EnclaveKeys;
  private readonly sealer: Sealer;
  private readonly attestation: AttestationProvider;
  private crypto: CryptoPool;
  private localVerifier: CallVerifier;
  /** One object the registry reads the shielding key from: provisioning swaps its fields in place. */
  private readonly shielding: { secretKey: Uint8Array; publicKey: Uint8Array };
  private readonly provisioning: Provisioning;
  private readonly pool: CallPool;
  private state = new State(STATE_LAYERS);
  private head: Head | null = null;
  /** Recently committed or replayed blocks, for anchors. */
  private readonly recentBlocks = new Map<bigint, Head>();
  private parentchain: ParentchainView | null = null;
  private proposal: Proposal | null = null;
  private replaying: { acc: ReturnType<State['replay']>; verifyEach: boolean; blocks: number; transitions: number; finishing: boolean; hash: HashThreads } | null = null;
  /** Sidechain block that created each withdrawal (since start); older ones count as at `withdrawalBase`. */
  private readonly withdrawalBlocks = new Map<bigint, bigint>();
  /** An LRU, not a Map trimmed from its front: a Map's first key is found past every deleted slot, ~30 us at this size. */
  private readonly recentCalls = new LRUCache<string, ForwardedCall>({ max: RECENT_CALLS_KEPT });
  private readonly forwardKeys = new Map<number, Uint8Array>();
  private readonly stateKeyObjects = new Map<number, KeyObject>();
  private replayEnded = Promise.withResolvers<void>();
  private lastVerification: string | null = null;
  private withdrawalBase = 0n;
  private lastPruneMs = -Infinity;
  private readonly shardBytes: Buffer;

  private constructor(opts: EnclaveOptions) {
    this.opts = opts;
    this.shardBytes = Buffer.from(opts.shard);
    this.measurement = computeMeasurement();
    this.sealer = Sealer.simulated(opts.dataDir, this.measurement);
    this.keys = loadOrCreateKeys(opts.dataDir, this.sealer, opts.devShardSecrets ? opts.shard : undefined).keys;
    this.attestation = simulatedProvider(this.measurement, SIM_SIGNER_ID);
    const key = { keyId: this.keys.shieldingKeyId, secret: this.keys.shieldingSecret, publicKey: this.keys.shieldingPublic };
    this.crypto = new CryptoPool(key, opts.workers, opts.workerNice);
    this.localVerifier = new CallVerifier(key);
    this.shielding = { secretKey: this.keys.shieldingSecret, publicKey: this.keys.shieldingPublic };
    this.pool = new CallPool(opts.pool);
    const policy = this.registryContext();
    this.provisioning = new Provisioning({
      shard: opts.shard, signingKey: this.keys.signingPublic, policy,
      quote: (userData) => this.quote(userData),
      memberMeasurement: (k) => {
        const pc = this.parentchain;
        return pc?.registry.activeAt(pc.lightClient.number).find((m) => same(m.signingKey, k))?.measurement;
      },
      onVerification: (result) => { this.lastVerification = result; },
    });
  }

  static open(opts: EnclaveOptions): EnclaveCore {
    return new EnclaveCore(opts);
  }

  info() {
    return {
      signingKey: this.keys.signingPublic,
      shieldingKey: this.keys.shieldingPublic,
      shieldingKeyId: this.keys.shieldingKeyId,
      stateKeyId: this.currentEpoch().keyId,
      encryptionKey: this.keys.encryptionPublic,
      measurement: this.measurement,
      signer: SIM_SIGNER_ID,
      attestation: this.attestation.kind,
      cryptoThreads: this.crypto.threads,
      secretsOrigin: this.keys.secretsOrigin,
      holdsShardSecrets: this.holdsShardSecrets(),
    };
  }

  status() {
    return {
      headNumber: this.head ? Number(this.head.number) : -1,
      headHash: this.head?.hash ?? ZERO32,
      accounts: this.state.accountCount,
      poolSize: this.pool.size,
      stateKeyEpoch: this.currentEpoch().epoch,
    };
  }

  quote(userData: Uint8Array): Uint8Array {
    if (userData.length !== 32) throw new EnclaveError('QUOTE_REPORT_DATA', 'user data must be 32 bytes');
    return this.attestation.quote(new Uint8Array([...this.keys.signingPublic, ...userData]));
  }

  /** Keys whose blocks replay accepts: configured authorities, this enclave, and every registered member. */
  private isKnownAuthor(key: Uint8Array): boolean {
    const k = Buffer.from(key);
    if (k.equals(Buffer.from(this.keys.signingPublic))) return true;
    if (this.opts.authorities.some((a) => k.equals(Buffer.from(a)))) return true;
    return this.parentchain?.registry.everMember(key) ?? false;
  }

  private setHead(h: Head, items?: Item[]): void {
    this.head = h;
    this.recentBlocks.delete(h.number); // re-inserted last: the map stays in insertion (chain) order
    this.recentBlocks.set(h.number, h);
    if (this.recentBlocks.size > RECENT_BLOCKS_KEPT) this.recentBlocks.delete(this.recentBlocks.keys().next().value!);
    for (const item of items ?? []) {
      const id = unpaidWithdrawalId(item);
      if (id !== undefined) this.withdrawalBlocks.set(id, h.number);
    }
  }

  /** Signing keys that author children of `parent` building on parentchain block `parentchainNumber`, in Aura order. */
  private authoritiesAfter(parent: Head, parentchainNumber: number): Uint8Array[] {
    const pc = this.parentchain;
    if (!pc) return this.opts.authorities.length > 0 ? this.opts.authorities : [this.keys.signingPublic];
    // As of the parentchain block the parent built on; a shard with nobody registered there yet
    // takes the set as of the block the child builds on (its first members).
    let set = pc.registry.activeAt(parent.parentchainNumber);
    if (set.length === 0) set = pc.registry.activeAt(parentchainNumber);
    return set.map((m) => m.signingKey);
  }

  /** Who creates block 0: the first configured authority, or the first member ever registered. */
  private genesisAuthor(): Uint8Array | undefined {
    const pc = this.parentchain;
    if (!pc) return this.opts.authorities[0] ?? this.keys.signingPublic;
    return pc.registry.data.members[0]?.signingKey;
  }

  /** The author of `slot` on top of the head (null without a head or authorities), and of block 0. */
  slotAuthor(slot: bigint): { author: Uint8Array | null; genesisAuthor: Uint8Array | null } {
    const genesisAuthor = this.genesisAuthor() ?? null;
    if (!this.head || this.replaying) return { author: null, genesisAuthor };
    const pcNumber = this.parentchain ? this.parentchain.lightClient.number : this.head.parentchainNumber;
    return { author: slotAuthor(slot, this.authoritiesAfter(this.head, pcNumber)) ?? null, genesisAuthor };
  }

  /** The last anchored block if it is in this enclave's chain (final), else -1. */
  private finalNumber(): bigint {
    const a = this.parentchain?.registry.data.lastAnchor;
    if (!a || !this.head || a.number > this.head.number) return -1n;
    const b = this.recentBlocks.get(a.number);
    if (b) return same(b.hash, a.hash) ? a.number : -1n;
    return a.number < this.head.number - BigInt(RECENT_BLOCKS_KEPT) ? a.number : -1n;
  }

  private stfContext(): StfContext {
    const pc = this.parentchain;
    return pc ? { vault: pc.registry.data.vault !== undefined } : NO_PARENTCHAIN;
  }

  // ---------- parentchain ----------

  private registryContext() {
    return {
      shard: this.opts.shard,
      trustedAuthorities: this.opts.trustedAuthorities?.length ? this.opts.trustedAuthorities : [DEV_AUTHORITY_PUBLIC],
      allowedMeasurements: this.opts.allowedMeasurements?.length ? this.opts.allowedMeasurements : [this.measurement],
      shielding: this.shielding,
    };
  }

  parentchainInit(params: ParentchainInitParams) {
    this.parentchain = ParentchainView.open(this.opts.dataDir, this.sealer, this.keys.signingPublic, this.registryContext(), params);
    return this.parentchainInfo();
  }

  /** Loads the sealed parentchain view without a chain (offline replay); false when this data directory never had one. */
  parentchainLoad(): boolean {
    this.parentchain = ParentchainView.load(this.opts.dataDir, this.sealer, this.keys.signingPublic, this.registryContext());
    return this.parentchain !== null;
  }

  private view(): ParentchainView {
    if (!this.parentchain) throw new EnclaveError('NO_PARENTCHAIN', 'the enclave was not given a parentchain');
    return this.parentchain;
  }

  parentchainImport(blocks: ImportedBlock[]) {
    const r = this.view().importBlocks(blocks);
    return { number: this.view().lightClient.number, hash: this.view().lightClient.hash, effects: r.effects, observations: r.observations };
  }

  parentchainInfo() {
    const pc = this.view();
    const d = pc.registry.data;
    return {
      number: pc.lightClient.number,
      hash: pc.lightClient.hash,
      genesisHash: pc.lightClient.genesisHash,
      members: d.members.map((m) => ({ ...m, unregisteredAt: m.unregisteredAt ?? null })),
      vault: d.vault?.account ?? null,
      reserveFunded: d.reserveFunded !== undefined,
      vaultProxies: d.vaultProxies,
      lastAnchor: d.lastAnchor ? { number: Number(d.lastAnchor.number), hash: d.lastAnchor.hash, parentchainNumber: d.lastAnchor.parentchainNumber } : null,
      dutiesInFlight: pc.dutiesInFlight(),
      pendingEffects: pc.effectsAfter(this.head?.parentchainNumber ?? 0).length,
      shieldedSupply: this.state.shard().shieldedSupply,
      unpaidWithdrawals: this.state.unpaidWithdrawals().length,
    };
  }

  parentchainDuties(input: { peerId: string; p2pAddresses: string[] }) {
    if (this.replaying) return [];
    return this.view().duties({
      quote: (userData) => this.quote(userData), shard: this.opts.shard, peerId: input.peerId, p2pAddresses: input.p2pAddresses, encryptionKey: this.keys.encryptionPublic,
      // Only withdrawals of final blocks are paid: a burn in a block that a reorg abandons must not
      // have been paid out (and its id may name another withdrawal on the chain that wins).
      unpaid: this.state.unpaidWithdrawals().filter((w) => (this.withdrawalBlocks.get(w.id) ?? this.withdrawalBase) <= this.finalNumber()),
    });
  }

  unregisterCall(): Uint8Array {
    return this.view().unregisterCall(this.opts.shard);
  }

  /** Call bytes of an anchor for block `number` of this enclave's chain. */
  anchorCall(number: number): Uint8Array {
    const pc = this.view();
    const b = this.recentBlocks.get(BigInt(number));
    // (slot -1: only the hash is known, from a snapshot; not enough to build an anchor)
    if (!b || !this.head || b.number > this.head.number || b.slot < 0n) throw new EnclaveError('UNKNOWN_BLOCK', `block ${number} is not a recent block of this chain`);
    // Only a block that descends from the last anchor: finality never moves to another fork.
    const last = pc.registry.data.lastAnchor;
    if (last) {
      const anchored = this.recentBlocks.get(last.number);
      if (last.number >= b.number || (anchored && !same(anchored.hash, last.hash)) || (!anchored && this.finalNumber() < 0n)) {
        throw new EnclaveError('ANCHOR_NOT_DESCENDANT', `block ${number} does not descend from the last anchored block ${last.number}`);
      }
    }
    const message = encodeMessage({ tag: 'anchor', value: {
      shard: this.opts.shard, sidechainNumber: b.number, sidechainHash: b.hash, previousAnchor: pc.registry.data.lastAnchor?.hash ?? ZERO32,
      parentchainProcessed: { number: b.parentchainNumber, hash: b.parentchainHash },
    } });
    return pc.anchorCall(message);
  }

  /** Signs an extrinsic payload, only for calls this enclave built (Substrate signs blake2_256 of payloads over 256 bytes). */
  signExtrinsic(payload: Uint8Array): Uint8Array {
    this.view().admitPayload(payload);
    return ed25519Sign(this.keys.signingKey, payload.length > 256 ? blake2_256(payload) : payload);
  }


  // ---------- blocks ----------

  private sealBlock(header: Omit<Header, 'transitionsRoot'>, items: Item[], calls: Uint8Array[], keyId: number, rotation?: KeyRotation): { bytes: Uint8Array; hash: Uint8Array; signatureHash: Uint8Array } {
    const nonce = randomNonce();
    const ciphertext = aesGcmSeal(this.keys.stateKeys.get(keyId)!, nonce, joinItems(items), transitionsAad(this.opts.shard, header.number));
    const body = { transitions: { keyId, nonce, ciphertext }, calls, rotation };
    const full: Header = { ...header, transitionsRoot: bodyRoot(body) };
    const signature = ed25519Sign(this.keys.signingKey, headerSigningPayload(full));
    return { bytes: SignedBlock.enc({ header: full, body, signature }), hash: headerHash(full), signatureHash: signatureHash(signature) };
  }

  /** Creates block 0 from the genesis endowments; the state becomes the genesis state. */
  genesis(balances: { account: Uint8Array; amount: bigint }[], timestampMs: number): { block: Uint8Array; hash: Uint8Array } {
    if (this.head) throw new EnclaveError('ALREADY_INITIALISED', 'state already has a head');
    const overlay = new Overlay(this.state);
    for (const b of balances) {
      const a = overlay.account(b.account);
      overlay.setAccount(b.account, { ...a, balance: a.balance + b.amount });
    }
    // Epoch 0: the genesis key, sealed to nobody yet (the first block with members begins epoch 1).
    const keyId = this.keys.currentStateKeyId;
    overlay.setEpoch({ epoch: 0, keyId, startNumber: 0n, membersHash: ZERO32 });
    const items = overlay.items();
    const lthash = this.state.preview(items);
    const header = {
      parentHash: ZERO32, parentSignatureHash: ZERO32, number: 0n, shard: this.opts.shard, slot: 0n, author: this.keys.signingPublic,
      stateCommitment: lthash.digest(), parentchainNumber: 0, parentchainHash: ZERO32, timestampMs: BigInt(timestampMs),
    };
    const { bytes, hash, signatureHash: sigHash } = this.sealBlock(header, items, [], keyId);
    this.state.apply(items, lthash);
    this.setHead({ hash, signatureHash: sigHash, number: 0n, slot: 0n, commitment: header.stateCommitment, parentchainNumber: 0, parentchainHash: ZERO32 }, items);
    return { block: bytes, hash };
  }

  propose(input: { slot: bigint; timestampMs: number; maxCalls: number; deadlineMs?: number }) {
    if (this.replaying) throw new EnclaveError('REPLAYING', 'cannot propose during a replay');
    if (!this.head) throw new EnclaveError('NOT_INITIALISED', 'no head: create genesis or replay first');
    const pcNumber = this.parentchain ? this.parentchain.lightClient.number : this.head.parentchainNumber;
    const set = this.authoritiesAfter(this.head, pcNumber);
    const me = Buffer.from(this.keys.signingPublic);
    if (!set.some((k) => me.equals(Buffer.from(k)))) throw new EnclaveError('NOT_AUTHORITY', 'this enclave is not in the shard\'s validateer set');
    // One block per slot, and only in our own slots: an enclave never equivocates.
    if (!me.equals(Buffer.from(slotAuthor(input.slot, set)!))) throw new EnclaveError('NOT_SLOT_AUTHOR', `slot ${input.slot} belongs to another authority`);
    if (input.slot <= this.head.slot) throw new EnclaveError('SLOT_NOT_AFTER_PARENT', `slot ${input.slot} is not after the head's slot ${this.head.slot}`);
    if (this.head.parentchainNumber < this.keys.provisionedAt) {
      throw new EnclaveError('NOT_CAUGHT_UP', `the chain has executed the parentchain to #${this.head.parentchainNumber}; this enclave authors from #${this.keys.provisionedAt}, where its shard secrets arrived`);
    }
    const number = this.head.number + 1n;
    const epoch = this.currentEpoch();
    const members = this.recipientsAt(pcNumber);
    const rotate = rotationDue(epoch, members, number, this.opts.keyRotationBlocks ?? 0) !== null;
    // Only a member makes a new epoch's key: one that is leaving must not know it.
    if (rotate && !members.some((m) => me.equals(Buffer.from(m.signingKey)))) {
      throw new EnclaveError('NOT_RECIPIENT', 'a new state key epoch is due and this enclave is no longer among the members it is sealed to');
    }
    const ctx = this.stfContext();
    const rejected: Rejection[] = [];
    // Stale and expired calls are never picked (a sender's run starts at its account nonce), so the walk
    // over every pending sender (thousands under load) runs once per PRUNE_INTERVAL_MS, not every block.
    if (input.timestampMs - this.lastPruneMs >= PRUNE_INTERVAL_MS) {
      this.lastPruneMs = input.timestampMs;
      for (const d of this.pool.prune(input.timestampMs, (s) => this.state.accountAt(s).nonce)) rejected.push({ hash: d.entry.hash, code: d.code, message: d.message });
    }
    const overlay = new Overlay(this.state);
    const included: string[] = [];
    const callHashes: Uint8Array[] = [];
    // Parentchain effects first, in parentchain order: they happened before anything in the pool.
    const pc = this.parentchain;
    const parentchainNumber = pc ? pc.lightClient.number : this.head.parentchainNumber;
    const parentchainHash = pc ? pc.lightClient.hash : this.head.parentchainHash;
    for (const e of pc?.effectsAfter(this.head.parentchainNumber) ?? []) {
      const r = this.applyEffect(overlay, e, number, ctx);
      if (r.hash && r.ok) { included.push(r.hash); callHashes.push(Buffer.from(r.hash, 'hex')); }
      if (!r.ok) rejected.push({ hash: r.hash ?? `parentchain:${e.parentchainNumber}`, code: r.code, message: r.message });
    }
    outer: for (const [, calls] of this.pool.senders()) {
      const first = calls.values().next().value!;
      let nonce = overlay.account(first.call.value.from).nonce;
      for (let e = calls.get(nonce); e; e = calls.get(nonce)) {
        if (included.length >= input.maxCalls) break outer;
        // The block must leave in time for the next author to build on it: stop adding calls at the deadline.
        if (input.deadlineMs !== undefined && included.length % 64 === 63 && Date.now() >= input.deadlineMs) break outer;
        const r = execute(overlay, e.call, e.nonce, number, ctx);
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
    let keyId = epoch.keyId;
    let rotation: KeyRotation | undefined;
    if (rotate) {
      keyId = this.freshStateKeyId();
      const key = new Uint8Array(randomBytes(32));
      rotation = sealRotation(this.opts.shard, number, keyId, key, members);
      // Sealed to disk before the block exists: replay of our own store needs it.
      this.keys = addStateKeys(this.opts.dataDir, this.sealer, this.keys, [{ id: keyId, key }], keyId);
      overlay.setEpoch({ epoch: epoch.epoch + 1, keyId, startNumber: number, membersHash: membersHash(members) });
    }
    const { items, known } = overlay.changes();
    const lthash = this.state.preview(items, known);
    const header = {
      parentHash: this.head.hash, parentSignatureHash: this.head.signatureHash, number, shard: this.opts.shard, slot: input.slot, author: this.keys.signingPublic,
      stateCommitment: lthash.digest(), parentchainNumber, parentchainHash, timestampMs: BigInt(input.timestampMs),
    };
    const { bytes, hash, signatureHash: sigHash } = this.sealBlock(header, items, callHashes, keyId, rotation);
    this.proposal = { hash, signatureHash: sigHash, number, slot: input.slot, items, known, lthash, included, parentchainNumber, parentchainHash };
    return { block: bytes, hash, number: Number(number), included, rejected };
  }

  /** Called once the host has durably stored the proposed block. */
  commit(hash: Uint8Array) {
    const p = this.proposal;
    if (!p || !same(p.hash, hash)) throw new EnclaveError('NO_SUCH_PROPOSAL', 'commit does not match the pending proposal');
    this.state.apply(p.items, p.lthash, p.known);
    this.setHead({ hash: p.hash, signatureHash: p.signatureHash, number: p.number, slot: p.slot, commitment: p.lthash.digest(), parentchainNumber: p.parentchainNumber, parentchainHash: p.parentchainHash }, p.items);
    for (const h of p.included) this.pool.remove(h);
    this.proposal = null;
    return this.status();
  }

  /**
   * Verifies a block from another validateer as the child of the head: shard, author of its slot in
   * the set the parent's parentchain block names, signature, slot after the parent's and not ahead
   * of the clock, parentchain block verified by the light client, body root, decryption, and the
   * state commitment after applying its transitions. Staged like a proposal: `commit` applies it
   * once the host has stored it.
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
   * signatures included (that enclave built on exactly these blocks, after verifying each). Every block is still checked for
   * its slot's author, slot order, parentchain block, epoch rules and state commitment. A run whose
   * last signature fails is checked block by block (on the crypto threads) to find the bad one.
   */
  async importBlocks(blocks: Uint8Array[], nowMs: number) {
    if (this.replaying) throw new EnclaveError('REPLAYING', 'cannot import during a replay');
    const imported: { hash: Uint8Array; number: number; calls: string[] }[] = [];
    const decoded: ReceivedBlock[] = [];
    let failure: { index: number; code: string; message: string } | undefined;
    for (const [i, bytes] of blocks.entries()) {
      try {
        decoded.push(decodeReceivedBlock(bytes));
      } catch (err) {
        failure = { index: i, code: (err as EnclaveError).code ?? 'DECODE_FAILED', message: (err as Error).message };
        break;
      }
    }
    // The linked run, and its last block's signature: when that verifies, it vouches for the run.
    let linked = decoded.length;
    for (let i = 1; i < decoded.length; i++) {
      if (!linksTo(decoded[i].block.header, decoded[i - 1])) { linked = i; break; }
    }
    const tip = decoded[linked - 1];
    const runSigned = tip !== undefined && this.isKnownAuthor(tip.block.header.author) && ed25519Verify(tip.block.header.author, tip.signingPayload, tip.block.signature);
    // Otherwise, block by block: the next chunk's signatures on the crypto threads while this thread applies the current one.
    const verify = (from: number) => {
      const p = this.crypto.verifySignatures(decoded.slice(from, from + SIGNATURE_CHUNK).map((r) => ({ publicKey: r.block.header.author, message: r.signingPayload, signature: r.block.signature })));
      void p.catch(() => undefined); // a chunk after a failure is never awaited
      return p;
    };
    let pending = runSigned ? null : verify(0);
    let signed: boolean[] = [];
    const count = runSigned ? linked : decoded.length;
    for (let i = 0; i < count; i++) {
      const b = decoded[i];
      if (pending && i % SIGNATURE_CHUNK === 0) {
        signed = await pending;
        pending = verify(i + SIGNATURE_CHUNK);
      }
      try {
        if (!runSigned && !signed[i % SIGNATURE_CHUNK]) throw new EnclaveError('BLOCK_BAD_SIGNATURE', `block ${b.block.header.number} signature does not verify`);
        const r = this.importDecoded(b, nowMs, true);
        this.commit(r.hash);
        imported.push({ hash: r.hash, number: r.number, calls: r.calls });
      } catch (err) {
        failure = { index: i, code: (err as EnclaveError).code ?? 'INTERNAL', message: (err as Error).message };
        break;
      }
    }
    // Blocks after the signed run are left for the next request (the earliest failure is the one reported).
    if (count < decoded.length && (!failure || failure.index > count)) {
      failure = { index: count, code: 'BLOCK_NOT_CHILD', message: `block ${decoded[count].block.header.number} does not extend the run before it` };
    }
    return { imported, ...(failure ? { failure } : {}), status: this.status() };
  }

  private importDecoded(received: ReceivedBlock, nowMs: number, signatureChecked: boolean) {
    if (this.replaying) throw new EnclaveError('REPLAYING', 'cannot import during a replay');
    const b = received.block;
    const h = b.header;
    const hash = received.hash;
    const author = Buffer.from(h.author);
    if (h.number === 0n) {
      if (this.head) throw new EnclaveError('BLOCK_NOT_CHILD', 'a genesis block cannot extend a chain');
      if (!linksTo(h, NO_PARENT) || h.slot !== 0n) throw new EnclaveError('BLOCK_BAD_GENESIS', 'genesis must have no parent and slot 0');
      const g = this.genesisAuthor();
      if (!g || !author.equals(Buffer.from(g))) throw new EnclaveError('BLOCK_WRONG_AUTHOR', 'genesis is not by the shard\'s first authority');
    } else {
      const parent = this.head;
      if (!parent) throw new EnclaveError('NOT_INITIALISED', 'no head: import genesis first');
      if (h.number !== parent.number + 1n || !linksTo(h, parent)) {
        throw new EnclaveError('BLOCK_NOT_CHILD', `block ${h.number} does not extend the head ${parent.number}`);
      }
      if (h.slot <= parent.slot) throw new EnclaveError('BLOCK_SLOT_NOT_INCREASING', `block ${h.number} slot ${h.slot} is not after its parent's ${parent.slot}`);
      const slotMs = this.opts.slotDurationMs ?? 1000;
      if (h.slot > slotAt(nowMs + (this.opts.maxDriftMs ?? slotMs), slotMs)) throw new EnclaveError('BLOCK_FROM_FUTURE', `block ${h.number} slot ${h.slot} is ahead of the clock`);
      if (h.parentchainNumber < parent.parentchainNumber) throw new EnclaveError('BLOCK_PARENTCHAIN_BACKWARDS', `block ${h.number} builds on an older parentchain block than its parent`);
      const pc = this.parentchain;
      if (pc) {
        const known = pc.knowsBlock(h.parentchainNumber, h.parentchainHash);
        if (h.parentchainNumber > pc.lightClient.number) throw new EnclaveError('PARENTCHAIN_BLOCK_UNKNOWN', `block ${h.number} builds on parentchain #${h.parentchainNumber}, the light client is at #${pc.lightClient.number}`);
        if (known === false) throw new EnclaveError('BLOCK_BAD_PARENTCHAIN', `block ${h.number} names a parentchain block the light client did not verify`);
      } else if (h.parentchainNumber !== parent.parentchainNumber) {
        throw new EnclaveError('BLOCK_BAD_PARENTCHAIN', `block ${h.number} names a parentchain block without a parentchain`);
      }
      const expected = slotAuthor(h.slot, this.authoritiesAfter(parent, h.parentchainNumber));
      if (!expected || !author.equals(Buffer.from(expected))) throw new EnclaveError('BLOCK_WRONG_AUTHOR', `block ${h.number} is not by the author of slot ${h.slot}`);
    }
    const items = this.openBlock(received, signatureChecked, true);
    const { lthash, known } = this.state.previewKnowing(items);
    if (!same(lthash.digest(), h.stateCommitment)) {
      throw new EnclaveError('BLOCK_BAD_COMMITMENT', `block ${h.number} state commitment does not match its transitions`);
    }
    const included = b.body.calls.map((c) => bytesView(c).toString('hex'));
    this.proposal = { hash, signatureHash: received.signatureHash, number: h.number, slot: h.slot, items, known, lthash, included, parentchainNumber: h.parentchainNumber, parentchainHash: h.parentchainHash };
    return { hash, number: Number(h.number), slot: h.slot, author: h.author, calls: included };
  }

  /**
   * Returns the state to block `number` (an ancestor of the head, within the state's layers) for a
   * reorg; REWIND_UNAVAILABLE when it is deeper (the host then rebuilds from the event log).
   */
  rewind(number: number, hash: Uint8Array) {
    if (this.replaying) throw new EnclaveError('REPLAYING', 'cannot rewind during a replay');
    const head = this.head;
    if (!head) throw new EnclaveError('NOT_INITIALISED', 'no head to rewind');
    const target = this.recentBlocks.get(BigInt(number));
    const depth = Number(head.number) - number;
    if (depth < 0 || !target || !same(target.hash, hash) || depth > this.state.depth) {
      throw new EnclaveError('REWIND_UNAVAILABLE', `block ${number} is not within the ${this.state.depth} blocks the state can rewind`);
    }
    this.proposal = null;
    this.state.rewind(depth);
    for (let n = BigInt(number) + 1n; n <= head.number; n++) this.recentBlocks.delete(n);
    for (const [id, n] of this.withdrawalBlocks) if (n > BigInt(number)) this.withdrawalBlocks.delete(id);
    this.head = target;
    if (!same(this.state.commitment(), target.commitment)) {
      this.head = null; // cannot happen with intact layers; the host rebuilds from the event log
      throw new EnclaveError('REWIND_COMMITMENT_MISMATCH', `state after rewinding to ${number} does not match its commitment`);
    }
    return this.status();
  }

  // ---------- replay ----------

  /** Starts a replay from genesis (no snapshot) or from a sealed snapshot. */
  beginReplay(sealedSnapshot: Uint8Array | undefined, verifyEach: boolean) {
    this.proposal = null; // a proposal made on the old state must never be committed on the new one
    if (sealedSnapshot) {
      const snap = decodeSnapshot(this.sealer.unseal('snapshot', sealedSnapshot));
      this.state = State.fromSnapshot(snap.state, STATE_LAYERS);
      this.recentBlocks.clear();
      // Only number and hash are known of the blocks before the snapshot: enough for anchors.
      for (const r of snap.recent) this.recentBlocks.set(r.number, { hash: r.hash, signatureHash: ZERO32, number: r.number, slot: -1n, commitment: ZERO32, parentchainNumber: 0, parentchainHash: ZERO32 });
      this.setHead({ hash: snap.hash, signatureHash: snap.signatureHash, number: snap.number, slot: snap.slot, commitment: this.state.commitment(), parentchainNumber: snap.parentchainNumber, parentchainHash: snap.parentchainHash });
      this.withdrawalBase = snap.number;
    } else {
      this.recentBlocks.clear();
      this.withdrawalBase = 0n;
      this.state = new State(STATE_LAYERS);
      this.head = null;
    }
    void this.replaying?.hash.close();
    // A replay ends by hashing the items it touched, on more threads when they are many.
    const hash = hashThreads(this.opts.workers);
    this.replaying = { acc: this.state.replay(), verifyEach, blocks: 0, transitions: 0, finishing: false, hash };
    return { fromNumber: this.head ? Number(this.head.number) : -1 };
  }

  /**
   * Verifies and applies stored blocks in order: author, linkage (hash and signature hash), body
   * root, decryption; the signature of the last block of each call vouches for the others (as in
   * importBlocks), unless every block is to be verified.
   */
  replayBlocks(blocks: Uint8Array[]) {
    const r = this.replaying;
    if (!r || r.finishing) throw new EnclaveError('NOT_REPLAYING', 'replayBlocks before beginReplay');
    for (const [i, bytes] of blocks.entries()) {
      const received = decodeReceivedBlock(bytes);
      const b = received.block;
      const expectedNumber = this.head ? this.head.number + 1n : 0n;
      if (b.header.number !== expectedNumber || !linksTo(b.header, this.head ?? NO_PARENT)) {
        throw new EnclaveError('REPLAY_BROKEN_CHAIN', `block ${b.header.number} does not extend ${expectedNumber - 1n}`);
      }
      const items = this.openBlock(received, !r.verifyEach && i < blocks.length - 1);
      if (r.verifyEach) {
        const { lthash: lt, known } = this.state.previewKnowing(items);
        this.state.apply(items, lt, known);
        if (!same(lt.digest(), b.header.stateCommitment)) {
          throw new EnclaveError('REPLAY_COMMITMENT_MISMATCH', `state commitment mismatch at block ${b.header.number}`);
        }
      } else {
        r.acc.apply(items);
      }
      r.blocks++;
      r.transitions += items.length;
      this.setHead({ hash: received.hash, signatureHash: received.signatureHash, number: b.header.number, slot: b.header.slot, commitment: b.header.stateCommitment, parentchainNumber: b.header.parentchainNumber, parentchainHash: b.header.parentchainHash }, items);
    }
    return { headNumber: Number(this.head?.number ?? -1) };
  }

  /** Finishes the replay: the rebuilt state must match the head's committed state. */
  async finishReplay() {
    const r = this.replaying;
    if (!r || r.finishing) throw new EnclaveError('NOT_REPLAYING', 'finishReplay before beginReplay');
    // Stays "replaying" until the commitment is complete: no proposal may see a half-hashed state.
    r.finishing = true;
    try {
      if (!r.verifyEach) await r.acc.finish(r.hash.hasher);
    } finally {
      await r.hash.close();
    }
    if (this.replaying !== r) throw new EnclaveError('REPLAY_ABORTED', 'a new replay began before this one finished');
    this.replaying = null;
    this.replayEnded.resolve();
    this.replayEnded = Promise.withResolvers<void>();
    if (this.head && !same(this.state.commitment(), this.head.commitment)) {
      this.head = null;
      throw new EnclaveError('REPLAY_COMMITMENT_MISMATCH', 'replayed state does not match the head block state commitment');
    }
    return { ...this.status(), blocks: r.blocks, transitions: r.transitions, commitment: this.state.commitment() };
  }

  /** Decrypts a block's transitions (learning a new epoch's key from it); `enforce`: imports check the epoch rules too. */
  private openBlock(received: ReceivedBlock, signatureChecked = false, enforce = false): Item[] {
    const b = received.block;
    const h = b.header;
    if (!same(h.shard, this.opts.shard)) throw new EnclaveError('BLOCK_WRONG_SHARD', `block ${h.number} is for another shard`);
    if (!this.isKnownAuthor(h.author)) throw new EnclaveError('BLOCK_UNKNOWN_AUTHOR', `block ${h.number} author is not an authority`);
    if (!signatureChecked && !ed25519Verify(h.author, received.signingPayload, b.signature)) throw new EnclaveError('BLOCK_BAD_SIGNATURE', `block ${h.number} signature does not verify`);
    if (!same(received.bodyRoot, h.transitionsRoot)) throw new EnclaveError('BLOCK_BAD_BODY', `block ${h.number} body does not match its header`);
    const t = b.body.transitions;
    const epoch = h.number === 0n ? undefined : this.currentEpoch();
    const rotation = b.body.rotation;
    const members = enforce && epoch ? this.checkRotation(b, epoch) : undefined;
    if (rotation) this.learnStateKey(rotation, h.number);
    // Each epoch's transitions are under its key and no other: older keys open nothing newer.
    const expected = rotation?.keyId ?? epoch?.keyId;
    if (expected !== undefined && t.keyId !== expected) throw new EnclaveError('BLOCK_WRONG_STATE_KEY', `block ${h.number} transitions are under key ${t.keyId}, not the epoch's key ${expected}`);
    const key = this.stateKeyObject(t.keyId);
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

  // ---------- state key epochs (key-rotation.ts) ----------

  private currentEpoch(): EpochRecord {
    return this.state.epoch() ?? { epoch: 0, keyId: this.keys.currentStateKeyId, startNumber: 0n, membersHash: ZERO32 };
  }

  /** Members as of parentchain block `n` with the keys rotated state keys are sealed to; none without a parentchain. */
  private recipientsAt(n: number): Recipient[] {
    return this.parentchain?.registry.activeAt(n).map((m) => ({ signingKey: m.signingKey, encryptionKey: m.encryptionKey })) ?? [];
  }

  private freshStateKeyId(): number {
    for (;;) {
      const id = randomBytes(4).readUInt32LE(0);
      if (id > 1 && !this.keys.stateKeys.has(id)) return id;
    }
  }

  /** Import: a block rotates exactly when a new epoch is due, sealed to exactly the members, by one of them. */
  private checkRotation(b: SignedBlockT, epoch: EpochRecord): Recipient[] {
    const h = b.header;
    const members = this.recipientsAt(h.parentchainNumber);
    const due = rotationDue(epoch, members, h.number, this.opts.keyRotationBlocks ?? 0);
    const r = b.body.rotation;
    if (due && !r) throw new EnclaveError('BLOCK_MISSING_ROTATION', `block ${h.number} must begin a new state key epoch (${due})`);
    if (!due && r) throw new EnclaveError('BLOCK_UNEXPECTED_ROTATION', `block ${h.number} begins a state key epoch that is not due`);
    if (r) {
      checkRecipients(r, members, h.number);
      if (!members.some((m) => same(m.signingKey, h.author))) throw new EnclaveError('BLOCK_BAD_ROTATION', `block ${h.number}: a state key made by a non-member`);
    }
    return members;
  }

  /** The epoch record the block writes: epoch 0 in genesis, the next epoch in a rotating block, nothing otherwise. */
  private checkEpochRecord(b: SignedBlockT, items: Item[], before: EpochRecord | undefined, members: Recipient[] | undefined): void {
    const h = b.header;
    const written = items.flatMap((i) => epochOf(i) ?? []);
    const r = b.body.rotation;
    let expected: EpochRecord | undefined;
    if (h.number === 0n) expected = { epoch: 0, keyId: b.body.transitions.keyId, startNumber: 0n, membersHash: ZERO32 };
    else if (r && before && members) expected = { epoch: before.epoch + 1, keyId: r.keyId, startNumber: h.number, membersHash: membersHash(members) };
    const ok = expected
      ? written.length === 1 && sameEpoch(written[0], expected)
      : written.length === 0;
    if (!ok) throw new EnclaveError('BLOCK_BAD_EPOCH', `block ${h.number} writes the wrong state key epoch record`);
  }

  /** A block's new key: known already (a provisioned epoch) or opened from this enclave's copy, then sealed to disk. */
  private learnStateKey(r: KeyRotation, number: bigint): void {
    const key = openRotation(r, this.opts.shard, number, { signingKey: this.keys.signingPublic, secretKey: this.keys.encryptionSecret, publicKey: this.keys.encryptionPublic });
    const known = this.keys.stateKeys.get(r.keyId);
    if (known && key && !same(known, key)) throw new EnclaveError('BLOCK_BAD_ROTATION', `block ${number}: state key ${r.keyId} differs from the one this enclave holds`);
    if (known) return;
    if (!key) throw new EnclaveError('STATE_KEY_UNKNOWN', `block ${number} begins state key epoch ${r.keyId}, which is not sealed to this enclave`);
    this.keys = addStateKeys(this.opts.dataDir, this.sealer, this.keys, [{ id: r.keyId, key }], r.keyId);
  }

  /** Executes one parentchain effect in the block being built; invocations report their call hash. */
  private applyEffect(overlay: Overlay, e: Effect, number: bigint, ctx: StfContext): { ok: true; hash?: string } | { ok: false; hash?: string; code: string; message: string } {
    if (e.kind === EFFECT.shield) {
      creditShield(overlay, e.account, e.amount);
      return { ok: true };
    }
    if (e.kind === EFFECT.payout) return settlePayout(overlay, e.withdrawal, e.account, e.amount);
    if (e.kind === EFFECT.payoutFailed) return refundWithdrawal(overlay, e.withdrawal);
    const v = this.localVerifier.verify(e.request);
    if (!v.ok) return v;
    const hash = Buffer.from(v.hash).toString('hex');
    if (!same(v.shard, this.opts.shard)) return { ok: false, hash, code: RejectCode.WRONG_SHARD, message: 'invoked call is for another shard' };
    const r = execute(overlay, v.call, v.nonce, number, ctx);
    return r.ok ? { ok: true, hash } : { ...r, hash };
  }

  // ---------- provisioning ----------

  /** Whether this enclave holds the shard's secrets: provisioned, dev-derived, or made by the shard's first member. */
  holdsShardSecrets(): boolean {
    if (this.keys.secretsOrigin !== 'generated') return true;
    const first = this.genesisAuthor();
    return first !== undefined && same(first, this.keys.signingPublic);
  }

  provisionRequest(nowMs: number): Uint8Array {
    return this.provisioning.request(nowMs);
  }

  /** Provider side; a refusal is a result (with the quote check's outcome), not an error, so the host can count both. */
  provisionServe(request: Uint8Array, nowMs: number): ProvisionOutcome<{ response: Uint8Array }> {
    return this.provisionStep(() => {
      if (!this.holdsShardSecrets()) throw new EnclaveError(ProvisionRefusal.NOT_READY, 'this enclave does not hold the shard secrets yet');
      return { response: this.provisioning.serve(request, shardSecretsOf(this.keys), nowMs) };
    });
  }

  /**
   * Requester side: checks the answer, then seals and installs the shard secrets (before any block was
   * imported). An enclave that holds them already asks again for an epoch's key it missed (a rotation
   * sealed before its registration counted): only state keys it lacks are added.
   */
  async provisionAccept(request: Uint8Array, response: Uint8Array, nowMs: number): Promise<ProvisionOutcome<{ stateKeyId: number }>> {
    const r = this.provisionStep(() => this.provisioning.accept(request, response, nowMs));
    if (!r.ok) return r;
    const { shieldingKeyId, shieldingSecret, stateKeys, currentStateKeyId } = r;
    if (this.head || this.holdsShardSecrets()) {
      if (!same(shieldingSecret, this.keys.shieldingSecret)) {
        return { ok: false, code: 'PROVISION_HAS_CHAIN', message: 'other shard secrets than the ones this enclave\'s chain uses', verification: r.verification };
      }
      const missing = stateKeys.filter((k) => !this.keys.stateKeys.has(k.id));
      if (missing.length > 0) this.keys = addStateKeys(this.opts.dataDir, this.sealer, this.keys, missing);
      return { ok: true, stateKeyId: this.currentEpoch().keyId, verification: r.verification };
    }
    this.keys = installShardSecrets(this.opts.dataDir, this.sealer, this.keys, { shieldingKeyId, shieldingSecret, stateKeys, currentStateKeyId }, this.parentchain?.lightClient.number ?? 0);
    // Everything that holds a shard key starts over with the new ones.
    const key = { keyId: this.keys.shieldingKeyId, secret: this.keys.shieldingSecret, publicKey: this.keys.shieldingPublic };
    await this.crypto.close();
    this.crypto = new CryptoPool(key, this.opts.workers, this.opts.workerNice);
    this.localVerifier = new CallVerifier(key);
    this.shielding.secretKey = this.keys.shieldingSecret;
    this.shielding.publicKey = this.keys.shieldingPublic;
    this.forwardKeys.clear();
    this.stateKeyObjects.clear();
    return { ok: true, stateKeyId: this.keys.currentStateKeyId, verification: r.verification };
  }

  private provisionStep<T extends object>(fn: () => T): ProvisionOutcome<T> {
    this.lastVerification = null;
    try {
      return { ok: true, ...fn(), verification: this.lastVerification };
    } catch (err) {
      const code = (err as EnclaveError).code;
      if (typeof code !== 'string' || !code.startsWith('PROVISION_')) throw err;
      return { ok: false, code, message: (err as Error).message, verification: this.lastVerification };
    }
  }

  // ---------- snapshots ----------

  /**
   * Seals the state at the head. A big state is read in pieces, letting blocks be imported in
   * between (a snapshot must not hold up the next block); what is sealed is the head of the call.
   */
  async snapshot(): Promise<{ sealed: Uint8Array; number: number }> {
    if (this.replaying) throw new EnclaveError('REPLAYING', 'cannot snapshot during a replay');
    if (!this.head) throw new EnclaveError('NOT_INITIALISED', 'no head to snapshot');
    const h = this.head;
    const recent = [...this.recentBlocks.values()].filter((b) => b.number < h.number).map((b) => ({ number: b.number, hash: b.hash }));
    const state = await this.state.encodeSnapshotInPieces(() => nextTurn());
    // The state is SnapshotFile's last field: the other fields, then the state's parts, sealed a part at a time.
    const fields = SnapshotFile.enc({ version: SNAPSHOT_VERSION, number: h.number, hash: h.hash, signatureHash: h.signatureHash, parentchainNumber: h.parentchainNumber, parentchainHash: h.parentchainHash, slot: h.slot, recent, state: new Uint8Array(0) });
    const parts = [headBeforeLastBytes(fields, state.reduce((n, p) => n + p.length, 0)), ...state];
    return { sealed: await this.sealer.sealParts('signer', 'snapshot', parts, () => nextTurn()), number: Number(h.number) };
  }

  // ---------- calls ----------

  /** Verifies client calls and adds them to the pool. */
  async submit(requests: Uint8Array[], nowMs: number): Promise<SubmitResult[]> {
    return (await this.submitAndForward(requests, nowMs, new Set())).results;
  }

  /** As submit; the accepted calls whose index is in `forward` come back re-sealed for the shard's other enclaves (forwarding.ts). */
  async submitAndForward(requests: Uint8Array[], nowMs: number, forward: ReadonlySet<number>): Promise<{ results: SubmitResult[]; forwarded: Uint8Array | null }> {
    await this.replayDone();
    const verified = requests.length >= 8 ? await this.crypto.verify(requests) : requests.map((r) => this.localVerifier.verify(r));
    const toForward: ForwardedCall[] = [];
    const results = await this.admitInTurns(verified, (v, i): SubmitResult => {
      if (!v.ok) return { status: 'invalid', code: v.code, message: v.message };
      if (!bytesView(v.shard).equals(this.shardBytes)) return { hash: bytesView(v.hash).toString('hex'), status: 'invalid', code: RejectCode.WRONG_SHARD, message: 'call is for another shard' };
      const r = this.admit({ hash: v.hash, nonce: v.nonce, call: v.call }, nowMs);
      if (r.status !== 'invalid' && forward.has(i)) toForward.push({ hash: v.hash, nonce: v.nonce, call: v.call, callBytes: v.callBytes });
      return r;
    });
    const key = this.currentEpoch().keyId;
    const forwarded = toForward.length > 0 ? sealForwarded({ id: key, key: this.forwardKey(key)! }, this.opts.shard, toForward) : null;
    return { results, forwarded };
  }

  /** Calls another enclave of the shard verified and forwarded; a batch that does not open is refused whole. */
  async submitForwarded(envelope: Uint8Array, nowMs: number): Promise<SubmitResult[]> {
    const opened = openForwarded(envelope, this.opts.shard, (id) => this.forwardKey(id));
    if (!opened.ok) throw new EnclaveError(opened.code, opened.message);
    await this.replayDone();
    return this.admitInTurns(opened.calls, (c) => this.admit(c, nowMs));
  }

  /**
   * Admits a batch a slice at a time, letting other messages run between slices: a batch of thousands
   * of calls takes tens of milliseconds, and a block import or proposal waiting behind it is what makes
   * blocks late under load. Each slice waits out a replay that began meanwhile (the state is rebuilt).
   */
  private async admitInTurns<T>(items: T[], admit: (item: T, index: number) => SubmitResult): Promise<SubmitResult[]> {
    const out: SubmitResult[] = [];
    for (let i = 0; i < items.length; i++) {
      if (i > 0 && i % ADMIT_SLICE === 0) {
        await nextTurn();
        await this.replayDone();
      }
      out.push(admit(items[i], i));
    }
    return out;
  }

  /** Puts verified calls seen recently back into the pool (calls of blocks a reorg abandoned); returns how many. */
  async requeue(hashes: string[], nowMs: number): Promise<number> {
    await this.replayDone();
    let n = 0;
    for (const h of hashes) {
      const c = this.recentCalls.get(h);
      if (c && this.admit(c, nowMs).status !== 'invalid') n++;
    }
    return n;
  }

  /** State keys as key objects: preparing a raw key for every block costs more than the decryption of a small one. */
  private stateKeyObject(id: number): KeyObject | undefined {
    let k = this.stateKeyObjects.get(id);
    const raw = this.keys.stateKeys.get(id);
    if (!k && raw) this.stateKeyObjects.set(id, (k = createSecretKey(raw)));
    return k;
  }

  private forwardKey(id: number): Uint8Array | undefined {
    let k = this.forwardKeys.get(id);
    const stateKey = this.keys.stateKeys.get(id);
    if (!k && stateKey) this.forwardKeys.set(id, (k = forwardKey(stateKey)));
    return k;
  }

  /** A verified call's checks against the current state, then into the pool (and the recent calls, for requeues). */
  private admit(c: ForwardedCall, nowMs: number): SubmitResult {
    const hash = bytesView(c.hash).toString('hex');
    const senderKey = accountKey(c.call.value.from);
    const sender = this.state.accountAt(senderKey);
    const pre = precheck(c.call, sender, this.stfContext());
    if (!pre.ok) return { hash, status: 'invalid', code: pre.code, message: pre.message };
    const r = this.pool.add({ hash, sender: senderKey, nonce: c.nonce, call: c.call, addedAtMs: nowMs }, sender.nonce);
    if (r.status === 'invalid') return { hash, status: 'invalid', code: r.code, message: r.message };
    this.recentCalls.set(hash, c);
    return { hash, status: r.status };
  }

  /** Calls are checked against a complete state: submissions during a replay (a reorg) wait for its end. */
  private async replayDone(): Promise<void> {
    const deadline = Date.now() + REPLAY_WAIT_MS;
    while (this.replaying) {
      const left = deadline - Date.now();
      if (left <= 0) throw new EnclaveError('REPLAYING', 'the state is being rebuilt; try again');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.replayEnded.promise, new Promise((r) => { timer = setTimeout(r, left); })]);
      clearTimeout(timer);
    }
  }

  // ---------- getters ----------

  executeGetter(requestBytes: Uint8Array, nowMs: number): Uint8Array {
    let req;
    try {
      req = decodeExact(ShieldedRequest, requestBytes, 'shielded request');
    } catch {
      throw new EnclaveError(RejectCode.DECODE_FAILED, 'malformed shielded request envelope');
    }
    if (!same(req.shard, this.opts.shard)) throw new EnclaveError(RejectCode.WRONG_SHARD, 'getter is for another shard');
    const plain = getterSuite.open({ secretKey: this.keys.shieldingSecret, publicKey: this.keys.shieldingPublic }, req.enc, req.ciphertext, req.shard);
    if (!plain) throw new EnclaveError(RejectCode.DECRYPT_FAILED, 'getter does not decrypt with the shielding key');
    const g = decodeExact(TrustedGetterSigned, plain, 'trusted getter');
    if (!ed25519Verify(getterAccount(g.getter), getterSigningPayload(g), g.signature)) throw new EnclaveError(RejectCode.BAD_SIGNATURE, 'getter signature does not verify for the account');
    if (!same(g.shard, this.opts.shard)) throw new EnclaveError(RejectCode.WRONG_SHARD, 'getter is signed for another shard');
    if (Math.abs(nowMs - Number(g.issuedAtMs)) > GETTER_MAX_SKEW_MS) throw new EnclaveError(RejectCode.GETTER_EXPIRED, 'getter timestamp is too far from the enclave clock');
    const { enc, ciphertext } = replySuite.seal(g.replyKey, GetterReply.enc(this.answer(g.getter)));
    return SealedReply.enc({ enc, ciphertext });
  }

  private answer(g: TrustedGetter): GetterReplyT {
    if (g.tag === 'balance') return { tag: 'balance', value: this.state.account(g.value).balance };
    if (g.tag === 'nonce') return { tag: 'nonce', value: this.state.account(g.value).nonce };
    const total = this.state.account(g.value.account).memoCount;
    const items = [];
    // Newest first: offset 0 is the latest memo.
    for (let i = total - 1 - g.value.offset; i >= 0 && items.length < Math.min(g.value.limit, 100); i--) {
      const m = this.state.memo(g.value.account, i);
      if (m) items.push(m);
    }
    return { tag: 'memos', value: { total, items } };
  }

  async close(): Promise<void> {
    await this.replaying?.hash.close();
    await this.crypto.close();
  }
}

