// A parentchain without a chain, and enclaves following it as their hosts would, for in-process enclave tests:
// synthetic SCALE headers over extrinsics whose call bytes the enclave decodes itself (FakeChain), a Host driving one
// EnclaveCore through its API (import, duties, sign, include, anchor), and a set of registered, provisioned members.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compact, u32 } from 'scale-ts';
import { EnclaveCore, type EnclaveOptions } from '../../src/enclave/core.ts';
import {
  addProxyCall,
  batchAllCall,
  createPureCall,
  proxyCall,
  remarkCall,
  removeProxyCall,
  transferKeepAliveCall,
} from '../../src/enclave/parentchain/calls.ts';
import { CHOPSTICKS_GENESIS } from '../../src/enclave/parentchain/light-client.ts';
import type { ImportedBlock } from '../../src/enclave/parentchain/view.ts';
import { decodeCall as decodeEnclaveCall, type Call as DecodedCall } from '../../src/enclave/parentchain/extrinsic.ts';
import { blake2_256, orderedTrieRoot } from '../../src/enclave/parentchain/trie.ts';
import { ed25519Verify } from '../../src/crypto/primitives.ts';
import { encodeMessage, type ParentchainMessage } from '../../src/protocol/parentchain-messages.ts';
import { buildGetter, type ShieldingKey } from '../../src/client/calls.ts';
import type { Account } from '../../src/client/accounts.ts';
import { concatBytes, hexKey } from '../../src/protocol/bytes.ts';
import { DEV_CALL_INDICES, devMetadata } from './metadata.ts';
import { testShard } from './shard.ts';

const te = new TextEncoder();
export const { shard: SHARD, shardPolicy: POLICY } = testShard('parentchain test shard');
export const POOL = { maxPending: 1000, maxNonceAhead: 16, futureTtlMs: 30000 };
export const IX = DEV_CALL_INDICES;
/** The dev runtime's metadata with pallet_proxy taking MultiAddress arguments: IX, as the enclave derives it. */
export const METADATA = devMetadata({ multiAddressProxy: true });
export const ED = 3_333_333n;
/** pallet_proxy's deposit per proxy: the proxy duty pays it into the vault. */
export const PROXY_FACTOR = 1_234_567n;
export const GENESIS = blake2_256(te.encode('a real-looking parentchain genesis'));
export const PEER = '12D3KooWParentchainTestPeer';
export const ADDRS = ['/ip4/127.0.0.1/tcp/30333'];

const dirs: string[] = [];
/** A temporary data directory, removed by removeTempDirs() (call it from the test file's after()). */
export function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'validateer-parentchain-'));
  dirs.push(d);
  return d;
}
export function removeTempDirs(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

// ---------- calls: the bytes the enclave decodes itself ----------

export interface Call {
  bytes: Uint8Array;
}
export const remark = (r: Uint8Array): Call => ({ bytes: remarkCall(IX, r) });
export const transfer = (dest: Uint8Array, amount: bigint): Call => ({
  bytes: transferKeepAliveCall(IX, dest, amount),
});
export const batch = (calls: Call[]): Call => ({
  bytes: batchAllCall(
    IX,
    calls.map((c) => c.bytes),
  ),
});
export const proxy = (real: Uint8Array, call: Call): Call => ({ bytes: proxyCall(IX, real, call.bytes) });
export const createPure = (): Call => ({ bytes: createPureCall(IX) });
export const addProxy = (delegate: Uint8Array): Call => ({ bytes: addProxyCall(IX, delegate) });
export const removeProxy = (delegate: Uint8Array): Call => ({ bytes: removeProxyCall(IX, delegate) });
export const msg = (m: ParentchainMessage): Call => remark(encodeMessage(m));

/** The call the enclave decodes from call bytes it built (its own decoder, over the sealed indices). */
export function decodeCall(bytes: Uint8Array): Call & { call: DecodedCall } {
  const call = decodeEnclaveCall(IX, bytes);
  assert.ok(call, 'the enclave decodes the call bytes it built');
  return { bytes, call };
}

/** Where the call starts in signedExtrinsic(): after its length prefix, version, signer, signature and extensions. */
export function callOffsetOf(encoded: Uint8Array, call: Uint8Array): number {
  return encoded.length - call.length;
}
/**
 * A signed v4 extrinsic as stored in a block: length, 0x84, MultiAddress::Id(signer), signature, extensions (era
 * immortal, nonce, tip 0, asset id None), call.
 */
export function signedExtrinsic(signer: Uint8Array, call: Uint8Array, nonce = 0): Uint8Array {
  const body = concatBytes(
    Uint8Array.of(0x84, 0x00),
    signer,
    Uint8Array.of(0x00),
    new Uint8Array(64).fill(0xee),
    Uint8Array.of(0x00),
    compact.enc(nonce),
    Uint8Array.of(0x00, 0x00),
    call,
  );
  return concatBytes(compact.enc(body.length), body);
}
/** An unsigned (inherent) extrinsic, e.g. timestamp.set. */
export function inherent(n: number): Uint8Array {
  const body = concatBytes(Uint8Array.of(0x04, 0x03, 0x00), compact.enc(BigInt(n) * 12_000n));
  return concatBytes(compact.enc(body.length), body);
}

// ---------- signing payloads ----------

/** sp_runtime Era::mortal(period, current) as two bytes. */
export function mortalEra(period: number, current: number): Uint8Array {
  const quantize = Math.max(period >> 12, 1);
  const phase = current % period;
  const encoded = Math.min(15, Math.max(1, Math.log2(period) - 1)) | ((phase / quantize) << 4);
  return Uint8Array.of(encoded & 0xff, encoded >> 8);
}

/** call ‖ era ‖ nonce ‖ tip ‖ asset id (None) ‖ spec version ‖ tx version ‖ genesis ‖ birth ‖ trailing. */
export function signingPayload(
  callData: Uint8Array,
  o: {
    genesis: Uint8Array;
    birth: { number: number; hash: Uint8Array } | null;
    period?: number;
    trailing?: Uint8Array;
    nonce?: number;
  },
): Uint8Array {
  const era = o.birth ? mortalEra(o.period ?? 64, o.birth.number) : Uint8Array.of(0);
  return concatBytes(
    callData,
    era,
    compact.enc(o.nonce ?? 7),
    compact.enc(0),
    Uint8Array.of(0),
    u32.enc(900),
    u32.enc(6),
    o.genesis,
    o.birth?.hash ?? o.genesis,
    o.trailing ?? new Uint8Array(0),
  );
}

// ---------- headers ----------

export function encodeHeader(h: {
  parentHash: Uint8Array;
  number: number;
  extrinsicsRoot: Uint8Array;
  digest?: Uint8Array;
}): Uint8Array {
  const stateRoot = blake2_256(te.encode(`state ${h.number}`));
  return concatBytes(h.parentHash, compact.enc(h.number), stateRoot, h.extrinsicsRoot, h.digest ?? compact.enc(0));
}

export interface Block extends ImportedBlock {
  number: number;
  hash: Uint8Array;
}
/** A parentchain of synthetic blocks: each holds an inherent at index 0 and then the given extrinsics. */
export class FakeChain {
  readonly genesis: Uint8Array;
  head: { number: number; hash: Uint8Array };
  private readonly root: (extrinsics: Uint8Array[]) => Uint8Array;

  constructor(genesis = GENESIS, checkpoint?: { number: number; hash: Uint8Array }) {
    this.genesis = genesis;
    this.head = checkpoint ?? { number: 0, hash: genesis };
    this.root = genesis === CHOPSTICKS_GENESIS ? (x) => blake2_256(concatBytes(...x)) : (x) => orderedTrieRoot(x, 0);
  }

  block(
    signed: { signer?: Uint8Array; call: Call; success?: boolean; nonce?: number }[] = [],
    digest?: Uint8Array,
  ): Block {
    const number = this.head.number + 1;
    const extrinsics = [
      inherent(number),
      ...signed.map((s) =>
        s.signer
          ? signedExtrinsic(s.signer, s.call.bytes, s.nonce)
          : concatBytes(compact.enc(s.call.bytes.length + 1), Uint8Array.of(4), s.call.bytes),
      ),
    ];
    const outcomes = signed.map((s, i) => ({
      index: i + 1,
      success: s.success ?? true,
      callOffset: callOffsetOf(extrinsics[i + 1], s.call.bytes),
    }));
    const header = encodeHeader({ parentHash: this.head.hash, number, extrinsicsRoot: this.root(extrinsics), digest });
    const hash = blake2_256(header);
    this.head = { number, hash };
    return { header, extrinsics, outcomes, number, hash };
  }

  blocks(n: number): Block[] {
    return Array.from({ length: n }, () => this.block());
  }
}

// ---------- an enclave and its host ----------

/** One enclave following a FakeChain as its host would: imports blocks, asks for duties, signs them, includes them. */
export class Host {
  readonly core: EnclaveCore;
  readonly chain: FakeChain;
  readonly dataDir: string;
  slot = 1n;
  /** The nonce the enclave named for call bytes (by hex): what an honest host signs them at. */
  readonly nonces = new Map<string, number>();

  constructor(chain: FakeChain, dataDir = tempDir(), options: Partial<EnclaveOptions> = {}) {
    this.chain = chain;
    this.dataDir = dataDir;
    this.core = EnclaveCore.open({
      dataDir,
      shard: SHARD,
      shardPolicy: POLICY,
      dev: true, // the test policy trusts the dev authority; the chain is not the dev chain
      workers: 0,
      pool: POOL,
      authorities: [],
      ...options,
    });
  }

  get key(): Uint8Array {
    return this.core.info().signingKey;
  }

  get shieldingKey(): ShieldingKey {
    const i = this.core.info();
    return { keyId: i.shieldingKeyId, publicKey: i.shieldingKey };
  }

  init(metadata = METADATA) {
    return this.core.parentchainInit({
      genesisHash: this.chain.genesis,
      metadata,
      existentialDeposit: ED,
      proxyDepositFactor: PROXY_FACTOR,
    });
  }

  info() {
    return this.core.parentchainInfo();
  }

  import(...blocks: Block[]) {
    return this.core.parentchainImport(blocks);
  }

  duties() {
    const duties = this.core.parentchainDuties({ peerId: PEER, p2pAddresses: ADDRS });
    for (const d of duties) this.nonces.set(hexKey(d.callData), d.nonce);
    return duties;
  }

  /**
   * The enclave's anchor call for sidechain block `number` with its own vote and `votes` of other members (alone, its
   * own vote is the majority); its nonce is remembered for sign().
   */
  anchorCall(number: number, votes: { signer: Uint8Array; signature: Uint8Array }[] = []): Uint8Array {
    const { callData, nonce } = this.core.anchorCall(number, [this.core.finalityVote(number), ...votes]);
    this.nonces.set(hexKey(callData), nonce);
    return callData;
  }

  unregisterCall(): Uint8Array {
    const { callData, nonce } = this.core.unregisterCall();
    this.nonces.set(hexKey(callData), nonce);
    return callData;
  }

  dutyKeys(): string[] {
    return this.duties().map((d) => d.key);
  }

  /** Signs a mortal payload born at the chain head (or `birth`) at the nonce named for it; checks the signature. */
  sign(
    callData: Uint8Array,
    birth: { number: number; hash: Uint8Array } | null = this.chain.head,
    period = 64,
    nonce = this.nonces.get(hexKey(callData)),
  ): Uint8Array {
    const payload = signingPayload(callData, { genesis: this.chain.genesis, birth, period, nonce });
    const signature = this.core.signExtrinsic(payload);
    assert.ok(
      ed25519Verify(this.key, payload.length > 256 ? blake2_256(payload) : payload, signature),
      'signature over the payload (its hash when long)',
    );
    return payload;
  }

  /** A block with one extrinsic of these call bytes, signed by this enclave (or `signer`) at the nonce named. */
  include(callData: Uint8Array, o: { signer?: Uint8Array; success?: boolean; nonce?: number } = {}) {
    const nonce = o.nonce ?? (o.signer ? 0 : this.nonces.get(hexKey(callData)));
    const b = this.chain.block([
      { signer: o.signer ?? this.key, call: decodeCall(callData), success: o.success, nonce },
    ]);
    return { block: b, ...this.import(b) };
  }

  /** Asks for the one duty `key`, signs it and includes it in the next block. */
  perform(key: string) {
    const duties = this.duties();
    assert.deepEqual(
      duties.map((d) => d.key),
      [key],
    );
    this.sign(duties[0].callData);
    return this.include(duties[0].callData);
  }

  /**
   * Anchors sidechain block `number` (the head by default): the enclave's anchor remark, signed by
   * this member, in the next parentchain block. The block is final once that block is imported.
   */
  anchor(number = this.core.status().headNumber, votes: { signer: Uint8Array; signature: Uint8Array }[] = []) {
    const callData = this.anchorCall(number, votes);
    this.sign(callData);
    const r = this.include(callData);
    assert.deepEqual(
      r.observations.map((o) => o.kind),
      ['anchor'],
    );
    assert.equal(this.info().lastAnchor?.number, number);
    return r;
  }

  /** Parentchain effects the view still keeps, executed or not: they are dropped only by an anchor. */
  keptEffects(): number {
    return this.core['parentchain']!.effectsAfter(0).length;
  }

  produce() {
    const p = this.core.propose({ slot: this.slot++, timestampMs: Date.now(), maxCalls: 100 });
    this.core.commit(p.hash);
    return p;
  }

  balance(a: Account): bigint {
    const g = buildGetter(a, { tag: 'balance', value: a.publicKey }, this.shieldingKey, SHARD);
    const r = g.open(this.core.executeGetter(g.request, Date.now()));
    assert.equal(r.tag, 'balance');
    return r.value as bigint;
  }

  close() {
    return this.core.close();
  }
}

// ---------- a set of members ----------

/**
 * n members reading `chain`: the first (shard secrets, vault, genesis) and the others, registered in order, provisioned
 * by it and following its genesis. Every registration is imported by all, so the authority set is all n from block 0.
 * `before` runs after the registrations and before the provisioning.
 */
export async function memberSet(chain: FakeChain, n: number, before?: (hosts: Host[]) => void) {
  const hosts = Array.from({ length: n }, () => new Host(chain));
  const [first, ...others] = hosts;
  for (const h of hosts) h.init();
  const seen = (blk: Block, by: Host) => {
    for (const h of hosts) if (h !== by) h.import(blk);
  };
  seen(first.perform('register').block, first);
  seen(first.perform('vault').block, first);
  for (const h of others) {
    const [d] = h.duties().filter((x) => x.key === 'register');
    h.sign(d.callData);
    seen(h.include(d.callData).block, h);
  }
  before?.(hosts);
  for (const h of others) {
    const req = h.core.provisionRequest(Date.now());
    const served = first.core.provisionServe(req, Date.now());
    assert.ok(served.ok);
    assert.ok((await h.core.provisionAccept(req, served.response, Date.now())).ok);
  }
  const g = first.core.genesis([], Date.now());
  for (const h of others) h.core.commit(h.core.importBlock(g.block, Date.now()).hash);
  return { hosts, vault: first.info().vault!, genesis: g };
}

/**
 * A (the first member: shard secrets, vault, genesis) and B (registered, provisioned by A, following A's genesis),
 * both reading `chain`. `before` runs after B's registration and before its provisioning.
 */
export async function memberPair(chain: FakeChain, before?: (a: Host, b: Host) => void) {
  const { hosts, vault } = await memberSet(chain, 2, before && (([a, b]) => before(a, b)));
  return { a: hosts[0], b: hosts[1], vault };
}

/**
 * `author` proposes in its next own slot (after every slot used so far by it and `others`) and commits; returns the
 * block.
 */
export function authored(author: Host, ...others: Host[]) {
  let slot = others.reduce((s, o) => (o.slot > s ? o.slot : s), author.slot);
  while (!Buffer.from(author.core.slotAuthor(slot).author ?? []).equals(Buffer.from(author.key))) slot++;
  for (const h of [author, ...others]) h.slot = slot + 1n;
  const p = author.core.propose({ slot, timestampMs: Date.now(), maxCalls: 10 });
  author.core.commit(p.hash);
  return p;
}

export const importInto = (h: Host, block: Uint8Array) => h.core.commit(h.core.importBlock(block, Date.now()).hash);
