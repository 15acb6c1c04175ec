// The enclave proper: keys, state, pool and block authoring. Reached only through the message
// interface (api.ts / worker.ts); nothing here is handed to untrusted code except encodings below.
import { Bytes, Struct, u64 } from 'scale-ts';
import { HpkeSuite } from '../crypto/hpke.ts';
import { aesGcmOpen, aesGcmSeal, ed25519Sign, ed25519Verify, randomNonce } from '../crypto/primitives.ts';
import {
  GetterReply, HPKE_INFO_GETTER, HPKE_INFO_REPLY, SealedReply, ShieldedRequest, TrustedGetterSigned,
  decodeExact, getterAccount, getterSigningPayload, type GetterReply as GetterReplyT, type TrustedGetter,
} from '../codec/wire.ts';
import { SignedBlock, bodyRoot, headerHash, headerSigningPayload, transitionsAad, type Header, type SignedBlock as SignedBlockT } from '../sidechain/block.ts';
import { simulatedProvider, type AttestationProvider } from './attestation.ts';
import { EnclaveError, RejectCode } from './errors.ts';
import { loadOrCreateKeys, type EnclaveKeys } from './keys.ts';
import type { LtHash } from './lthash.ts';
import { computeMeasurement } from './measurement.ts';
import { CallPool, type PoolLimits } from './pool.ts';
import { SIM_SIGNER_ID, Sealer } from './sealing.ts';
import { Overlay, State, hexKey, joinItems, splitItems, type Item } from './state.ts';
import { hashThreads, type HashThreads } from './lthash-pool.ts';
import { execute, precheck } from './stf.ts';
import { CryptoPool } from './crypto-pool.ts';
import { CallVerifier } from './verifier.ts';

export interface EnclaveOptions {
  dataDir: string;
  shard: Uint8Array;
  workers: number;
  pool: PoolLimits;
  /** Block authors' signing keys; empty = this enclave alone. */
  authorities: Uint8Array[];
}

export interface SubmitResult { hash?: string; status: 'ready' | 'future' | 'invalid'; code?: string; message?: string }
export interface Rejection { hash: string; code: string; message: string }

const SnapshotFile = Struct({ number: u64, hash: Bytes(32), state: Bytes() });
const getterSuite = new HpkeSuite(HPKE_INFO_GETTER);
const replySuite = new HpkeSuite(HPKE_INFO_REPLY);
const GETTER_MAX_SKEW_MS = 5 * 60_000;
const ZERO32 = new Uint8Array(32);

interface Proposal { hash: Uint8Array; number: bigint; items: Item[]; lthash: LtHash; included: string[] }

export class EnclaveCore {
  readonly measurement: Uint8Array;
  private readonly opts: EnclaveOptions;
  private readonly keys: EnclaveKeys;
  private readonly sealer: Sealer;
  private readonly attestation: AttestationProvider;
  private readonly crypto: CryptoPool;
  private readonly localVerifier: CallVerifier;
  private readonly pool: CallPool;
  private state = new State();
  private head: { hash: Uint8Array; number: bigint; commitment: Uint8Array } | null = null;
  private proposal: Proposal | null = null;
  private replaying: { acc: ReturnType<State['replay']>; verifyEach: boolean; blocks: number; transitions: number; finishing: boolean; hash: HashThreads } | null = null;

  private constructor(opts: EnclaveOptions) {
    this.opts = opts;
    this.measurement = computeMeasurement();
    this.sealer = Sealer.simulated(opts.dataDir, this.measurement);
    this.keys = loadOrCreateKeys(opts.dataDir, this.sealer).keys;
    this.attestation = simulatedProvider(this.measurement, SIM_SIGNER_ID);
    const key = { keyId: this.keys.shieldingKeyId, secret: this.keys.shieldingSecret, publicKey: this.keys.shieldingPublic };
    this.crypto = new CryptoPool(key, opts.workers);
    this.localVerifier = new CallVerifier({ ...key, secret: this.keys.shieldingKey });
    this.pool = new CallPool(opts.pool);
  }

  static open(opts: EnclaveOptions): EnclaveCore {
    return new EnclaveCore(opts);
  }

  info() {
    return {
      signingKey: this.keys.signingPublic,
      shieldingKey: this.keys.shieldingPublic,
      shieldingKeyId: this.keys.shieldingKeyId,
      stateKeyId: this.keys.currentStateKeyId,
      measurement: this.measurement,
      signer: SIM_SIGNER_ID,
      attestation: this.attestation.kind,
      cryptoThreads: this.crypto.threads,
    };
  }

  status() {
    return {
      headNumber: this.head ? Number(this.head.number) : -1,
      headHash: this.head?.hash ?? ZERO32,
      accounts: this.state.accounts.size,
      poolSize: this.pool.size,
    };
  }

  quote(userData: Uint8Array): Uint8Array {
    if (userData.length !== 32) throw new EnclaveError('QUOTE_REPORT_DATA', 'user data must be 32 bytes');
    return this.attestation.quote(new Uint8Array([...this.keys.signingPublic, ...userData]));
  }

  private authorities(): Uint8Array[] {
    return this.opts.authorities.length > 0 ? this.opts.authorities : [this.keys.signingPublic];
  }

  // ---------- blocks ----------

  private sealBlock(header: Omit<Header, 'transitionsRoot'>, items: Item[], calls: Uint8Array[]): { bytes: Uint8Array; hash: Uint8Array } {
    const nonce = randomNonce();
    const keyId = this.keys.currentStateKeyId;
    const ciphertext = aesGcmSeal(this.keys.stateKeys.get(keyId)!, nonce, joinItems(items), transitionsAad(this.opts.shard, header.number));
    const body = { transitions: { keyId, nonce, ciphertext }, calls };
    const full: Header = { ...header, transitionsRoot: bodyRoot(body) };
    const signature = ed25519Sign(this.keys.signingKey, headerSigningPayload(full));
    return { bytes: SignedBlock.enc({ header: full, body, signature }), hash: headerHash(full) };
  }

  /** Creates block 0 from the genesis endowments; the state becomes the genesis state. */
  genesis(balances: { account: Uint8Array; amount: bigint }[], timestampMs: number): { block: Uint8Array; hash: Uint8Array } {
    if (this.head) throw new EnclaveError('ALREADY_INITIALISED', 'state already has a head');
    const overlay = new Overlay(this.state);
    for (const b of balances) {
      const a = overlay.account(b.account);
      overlay.setAccount(b.account, { ...a, balance: a.balance + b.amount });
    }
    const items = overlay.items();
    const lthash = this.state.preview(items);
    const header = {
      parentHash: ZERO32, number: 0n, shard: this.opts.shard, slot: 0n, author: this.keys.signingPublic,
      stateCommitment: lthash.digest(), parentchainNumber: 0, parentchainHash: ZERO32, timestampMs: BigInt(timestampMs),
    };
    const { bytes, hash } = this.sealBlock(header, items, []);
    this.state.apply(items, lthash);
    this.head = { hash, number: 0n, commitment: header.stateCommitment };
    return { block: bytes, hash };
  }

  propose(input: { slot: bigint; timestampMs: number; maxCalls: number }) {
    if (this.replaying) throw new EnclaveError('REPLAYING', 'cannot propose during a replay');
    if (!this.head) throw new EnclaveError('NOT_INITIALISED', 'no head: create genesis or replay first');
    const number = this.head.number + 1n;
    const rejected: Rejection[] = this.pool.prune(input.timestampMs, (s) => this.state.account(Buffer.from(s, 'hex')).nonce)
      .map((d) => ({ hash: d.entry.hash, code: d.code, message: d.message }));
    const overlay = new Overlay(this.state);
    const included: string[] = [];
    const callHashes: Uint8Array[] = [];
    outer: for (const [, calls] of this.pool.senders()) {
      const first = calls.values().next().value!;
      let nonce = overlay.account(first.call.value.from).nonce;
      for (let e = calls.get(nonce); e; e = calls.get(nonce)) {
        if (included.length >= input.maxCalls) break outer;
        const r = execute(overlay, e.call, e.nonce, number);
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
    const items = overlay.items();
    const lthash = this.state.preview(items);
    const header = {
      parentHash: this.head.hash, number, shard: this.opts.shard, slot: input.slot, author: this.keys.signingPublic,
      stateCommitment: lthash.digest(), parentchainNumber: 0, parentchainHash: ZERO32, timestampMs: BigInt(input.timestampMs),
    };
    const { bytes, hash } = this.sealBlock(header, items, callHashes);
    this.proposal = { hash, number, items, lthash, included };
    return { block: bytes, hash, number: Number(number), included, rejected };
  }

  /** Called once the host has durably stored the proposed block. */
  commit(hash: Uint8Array) {
    const p = this.proposal;
    if (!p || !Buffer.from(p.hash).equals(Buffer.from(hash))) throw new EnclaveError('NO_SUCH_PROPOSAL', 'commit does not match the pending proposal');
    this.state.apply(p.items, p.lthash);
    this.head = { hash: p.hash, number: p.number, commitment: p.lthash.digest() };
    for (const h of p.included) this.pool.remove(h);
    this.proposal = null;
    return this.status();
  }

  // ---------- replay ----------

  /** Starts a replay from genesis (no snapshot) or from a sealed snapshot. */
  beginReplay(sealedSnapshot: Uint8Array | undefined, verifyEach: boolean) {
    this.proposal = null; // a proposal made on the old state must never be committed on the new one
    if (sealedSnapshot) {
      const snap = decodeExact(SnapshotFile, this.sealer.unseal('snapshot', sealedSnapshot), 'snapshot');
      this.state = State.fromSnapshot(snap.state);
      this.head = { hash: snap.hash, number: snap.number, commitment: this.state.commitment() };
    } else {
      this.state = new State();
      this.head = null;
    }
    void this.replaying?.hash.close();
    // A replay from genesis ends by hashing every item: start the hash threads now, in parallel.
    const hash = hashThreads(this.opts.workers, !verifyEach && !sealedSnapshot);
    this.replaying = { acc: this.state.replay(), verifyEach, blocks: 0, transitions: 0, finishing: false, hash };
    return { fromNumber: this.head ? Number(this.head.number) : -1 };
  }

  /** Verifies and applies stored blocks in order: signature, author, linkage, body root, decryption. */
  replayBlocks(blocks: Uint8Array[]) {
    const r = this.replaying;
    if (!r || r.finishing) throw new EnclaveError('NOT_REPLAYING', 'replayBlocks before beginReplay');
    for (const bytes of blocks) {
      const b = decodeExact(SignedBlock, bytes, 'stored block');
      const expectedNumber = this.head ? this.head.number + 1n : 0n;
      const expectedParent = this.head?.hash ?? ZERO32;
      if (b.header.number !== expectedNumber || !Buffer.from(b.header.parentHash).equals(Buffer.from(expectedParent))) {
        throw new EnclaveError('REPLAY_BROKEN_CHAIN', `block ${b.header.number} does not extend ${expectedNumber - 1n}`);
      }
      const items = this.openBlock(b);
      if (r.verifyEach) {
        const lt = this.state.preview(items);
        this.state.apply(items, lt);
        if (!Buffer.from(lt.digest()).equals(Buffer.from(b.header.stateCommitment))) {
          throw new EnclaveError('REPLAY_COMMITMENT_MISMATCH', `state commitment mismatch at block ${b.header.number}`);
        }
      } else {
        r.acc.apply(items);
      }
      r.blocks++;
      r.transitions += items.length;
      this.head = { hash: headerHash(b.header), number: b.header.number, commitment: b.header.stateCommitment };
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
    if (this.head && !Buffer.from(this.state.commitment()).equals(Buffer.from(this.head.commitment))) {
      this.head = null;
      throw new EnclaveError('REPLAY_COMMITMENT_MISMATCH', 'replayed state does not match the head block state commitment');
    }
    return { ...this.status(), blocks: r.blocks, transitions: r.transitions, commitment: this.state.commitment() };
  }

  private openBlock(b: SignedBlockT): Item[] {
    const h = b.header;
    if (!Buffer.from(h.shard).equals(Buffer.from(this.opts.shard))) throw new EnclaveError('BLOCK_WRONG_SHARD', `block ${h.number} is for another shard`);
    if (!this.authorities().some((a) => Buffer.from(a).equals(Buffer.from(h.author)))) throw new EnclaveError('BLOCK_UNKNOWN_AUTHOR', `block ${h.number} author is not an authority`);
    if (!ed25519Verify(h.author, headerSigningPayload(h), b.signature)) throw new EnclaveError('BLOCK_BAD_SIGNATURE', `block ${h.number} signature does not verify`);
    if (!Buffer.from(bodyRoot(b.body)).equals(Buffer.from(h.transitionsRoot))) throw new EnclaveError('BLOCK_BAD_BODY', `block ${h.number} body does not match its header`);
    const t = b.body.transitions;
    const key = this.keys.stateKeys.get(t.keyId);
    if (!key) throw new EnclaveError('STATE_KEY_UNKNOWN', `block ${h.number} uses unknown state key ${t.keyId}`);
    const plain = aesGcmOpen(key, t.nonce, t.ciphertext, transitionsAad(h.shard, h.number));
    if (!plain) throw new EnclaveError('BLOCK_BAD_TRANSITIONS', `block ${h.number} transitions do not decrypt`);
    // Authenticated under the state key inside a signed block: only an enclave wrote these bytes,
    // so they are split into items, not decoded, on this hot path.
    try {
      return splitItems(plain);
    } catch {
      throw new EnclaveError('BLOCK_BAD_TRANSITIONS', `block ${h.number} transitions do not decode`);
    }
  }

  // ---------- snapshots ----------

  snapshot(): { sealed: Uint8Array; number: number } {
    if (this.replaying) throw new EnclaveError('REPLAYING', 'cannot snapshot during a replay');
    if (!this.head) throw new EnclaveError('NOT_INITIALISED', 'no head to snapshot');
    const bytes = SnapshotFile.enc({ number: this.head.number, hash: this.head.hash, state: this.state.encodeSnapshot() });
    return { sealed: this.sealer.seal('signer', 'snapshot', bytes), number: Number(this.head.number) };
  }

  // ---------- calls ----------

  async submit(requests: Uint8Array[], nowMs: number): Promise<SubmitResult[]> {
    const verified = requests.length >= 8 ? await this.crypto.verify(requests) : requests.map((r) => this.localVerifier.verify(r));
    return verified.map((v) => {
      if (!v.ok) return { status: 'invalid', code: v.code, message: v.message };
      const hash = Buffer.from(v.hash).toString('hex');
      if (!Buffer.from(v.shard).equals(Buffer.from(this.opts.shard))) return { hash, status: 'invalid', code: RejectCode.WRONG_SHARD, message: 'call is for another shard' };
      const sender = this.state.account(v.call.value.from);
      const pre = precheck(v.call, sender);
      if (!pre.ok) return { hash, status: 'invalid', code: pre.code, message: pre.message };
      const r = this.pool.add({ hash, sender: hexKey(v.call.value.from), nonce: v.nonce, call: v.call, addedAtMs: nowMs }, sender.nonce);
      return r.status === 'invalid' ? { hash, status: 'invalid', code: r.code, message: r.message } : { hash, status: r.status };
    });
  }

  // ---------- getters ----------

  executeGetter(requestBytes: Uint8Array, nowMs: number): Uint8Array {
    let req;
    try {
      req = decodeExact(ShieldedRequest, requestBytes, 'shielded request');
    } catch {
      throw new EnclaveError(RejectCode.DECODE_FAILED, 'malformed shielded request envelope');
    }
    if (!Buffer.from(req.shard).equals(Buffer.from(this.opts.shard))) throw new EnclaveError(RejectCode.WRONG_SHARD, 'getter is for another shard');
    const plain = getterSuite.open({ secretKey: this.keys.shieldingKey, publicKey: this.keys.shieldingPublic }, req.enc, req.ciphertext, req.shard);
    if (!plain) throw new EnclaveError(RejectCode.DECRYPT_FAILED, 'getter does not decrypt with the shielding key');
    const g = decodeExact(TrustedGetterSigned, plain, 'trusted getter');
    if (!ed25519Verify(getterAccount(g.getter), getterSigningPayload(g), g.signature)) throw new EnclaveError(RejectCode.BAD_SIGNATURE, 'getter signature does not verify for the account');
    if (!Buffer.from(g.shard).equals(Buffer.from(this.opts.shard))) throw new EnclaveError(RejectCode.WRONG_SHARD, 'getter is signed for another shard');
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

