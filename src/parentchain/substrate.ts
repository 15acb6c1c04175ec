// Parentchain adapter on @polkadot/api for any Substrate chain with System, Balances, Utility and
// Proxy. Blocks are read with raw RPCs (one chain_getBlock, plus System.Events when needed) and
// decoded with the registry of the runtime that produced them; every RPC is retried across
// connection loss (WsProvider reconnects by itself), so scanning and submission survive an outage.
import '@polkadot/api-augment'; // types of api.query/consts/tx/createType for the standard pallets
import { ApiPromise, WsProvider } from '@polkadot/api';
import type { SubmittableExtrinsic } from '@polkadot/api/types';
import type { Registry, SignerPayloadRaw, SignerResult } from '@polkadot/types/types';
import type { Call, DispatchError, EventRecord, Extrinsic, Header } from '@polkadot/types/interfaces';
import { u8aToHex, hexToU8a, u8aConcat, u8aEq } from '@polkadot/util';
import { blake2AsU8a, decodeAddress, encodeAddress } from '@polkadot/util-crypto';
import { ValidateerError } from '../protocol/errors.ts';
import type {
  Balance, BlockOptions, CallSpec, ExtrinsicSigner, FinalizedScanner, Parentchain, ParentchainBlock, ParentchainCall,
  ParentchainEvent, ParentchainExtrinsic, ParentchainHeader, ScanOptions, SubmitOptions, SubmitResult,
} from './api.ts';
import { bytesView } from '../protocol/bytes.ts';

export interface SubstrateParentchainOptions {
  /** WebSocket endpoint(s) of a Substrate node (several: WsProvider rotates on reconnection). */
  endpoint: string | string[];
  /** Delay between reconnection attempts (default 1000 ms). */
  reconnectMs?: number;
  /** Initial connection must succeed within this (default 60 s), else PARENTCHAIN_UNREACHABLE. */
  connectTimeoutMs?: number;
  /** How long one read keeps retrying across connection loss before giving up (default 120 s). */
  retryMs?: number;
  /** Mortality of submitted extrinsics in blocks (default 64). */
  mortalityBlocks?: number;
  /** Told about connection trouble and retries (default: silent). */
  onWarning?: (message: string) => void;
}

type RawBlock = { block: { header: Record<string, unknown>; extrinsics: string[] } };
type Decoded = { registry: Registry; upgraded: boolean };
const MULTISIG_ED25519 = 0;
const MULTISIG_SR25519 = 1;
const CONNECTION_ERROR = /disconnected|not connected|Abnormal Closure|ECONNREFUSED|ECONNRESET|socket hang up|No response received|WebSocket is closed|timeout/i;

export function isConnectionError(err: unknown): boolean {
  return CONNECTION_ERROR.test((err as Error)?.message ?? String(err));
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Connects (waiting until the endpoint answers) and returns a ready adapter. */
export async function connectParentchain(options: SubstrateParentchainOptions): Promise<SubstrateParentchain> {
  const provider = new WsProvider(options.endpoint, options.reconnectMs ?? 1000, undefined, 30_000);
  const api = new ApiPromise({ provider, noInitWarn: true, throwOnConnect: false });
  const timeoutMs = options.connectTimeoutMs ?? 60_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      api.isReadyOrError,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new ValidateerError('PARENTCHAIN_UNREACHABLE', `no parentchain at ${String(options.endpoint)} within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (err) {
    await api.disconnect().catch(() => undefined);
    throw err instanceof ValidateerError ? err : new ValidateerError('PARENTCHAIN_UNREACHABLE', `cannot connect to ${String(options.endpoint)}: ${(err as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
  return new SubstrateParentchain(api, provider, options);
}

export class SubstrateParentchain implements Parentchain {
  readonly #api: ApiPromise;
  readonly #provider: WsProvider;
  readonly #retryMs: number;
  readonly #mortality: number;
  readonly #warn: (message: string) => void;
  readonly #eventsKey: string;
  /** Registry and runtime-upgrade flag of recently decoded blocks, so sequential reads need no lookups. */
  readonly #decoded = new Map<string, Decoded>();
  /** Registry lookups in flight: a block fetched in parallel with its parent waits for the parent's instead of asking too. */
  readonly #decoding = new Map<string, Promise<Decoded>>();
  readonly #nonces = new Map<string, number>();
  readonly #locks = new Map<string, Promise<unknown>>();
  readonly #scanners = new Set<FinalizedScanner>();
  #closed = false;

  constructor(api: ApiPromise, provider: WsProvider, options: SubstrateParentchainOptions) {
    this.#api = api;
    this.#provider = provider;
    this.#retryMs = options.retryMs ?? 120_000;
    this.#mortality = options.mortalityBlocks ?? 64;
    this.#warn = options.onWarning ?? (() => undefined);
    this.#eventsKey = api.query.system.events.key();
  }

  /** The underlying ApiPromise, for tools that need more than this interface. */
  get api(): ApiPromise {
    return this.#api;
  }

  genesisHash(): Uint8Array {
    return this.#api.genesisHash.toU8a();
  }

  ss58Prefix(): number {
    return this.#api.registry.chainSS58 ?? 42;
  }

  existentialDeposit(): bigint {
    return this.#api.consts.balances.existentialDeposit.toBigInt();
  }

  proxyDepositFactor(): bigint {
    return this.#proxyConst('proxyDepositFactor');
  }

  #proxyConst(name: 'proxyDepositBase' | 'proxyDepositFactor'): bigint {
    const consts = this.#api.consts.proxy as unknown as Record<string, { toBigInt(): bigint } | undefined> | undefined;
    return consts?.[name]?.toBigInt() ?? 0n;
  }

  callIndices() {
    const tx = this.#api.tx;
    const proxy = tx.proxy as unknown as Record<string, { callIndex: Uint8Array } | undefined>;
    const pick = (fn: { callIndex: Uint8Array } | undefined, name: string) => {
      if (!fn) throw new ValidateerError('PARENTCHAIN_UNSUPPORTED', `the runtime has no ${name}`);
      return { pallet: fn.callIndex[0], call: fn.callIndex[1] };
    };
    return {
      remarkWithEvent: pick(tx.system.remarkWithEvent, 'system.remarkWithEvent'),
      transferKeepAlive: pick(tx.balances.transferKeepAlive, 'balances.transferKeepAlive'),
      batchAll: pick(tx.utility.batchAll, 'utility.batchAll'),
      proxy: pick(tx.proxy.proxy, 'proxy.proxy'),
      createPure: pick(proxy.createPure ?? proxy.anonymous, 'proxy.createPure'),
      addProxy: pick(tx.proxy.addProxy, 'proxy.addProxy'),
      removeProxy: pick(tx.proxy.removeProxy, 'proxy.removeProxy'),
      proxyRealAccountId: accountIdArg(tx.proxy.proxy),
      addProxyDelegateAccountId: accountIdArg(tx.proxy.addProxy),
    };
  }

  address(account: Uint8Array): string {
    return encodeAddress(account, this.ss58Prefix());
  }

  // ---------- reading ----------

  async finalizedHead(): Promise<ParentchainHeader> {
    const hash = await this.#rpc<string>('chain_getFinalizedHead', []);
    const header = await this.header(hexToU8a(hash));
    if (!header) throw new ValidateerError('PARENTCHAIN_MISSING_BLOCK', `finalized head ${hash} not found`);
    return header;
  }

  async subscribeFinalizedHeads(cb: (header: ParentchainHeader) => void): Promise<() => void> {
    // polkadot-js re-subscribes by itself after a reconnection.
    const unsub = await this.#retry('subscribeFinalizedHeads', () => this.#api.rpc.chain.subscribeFinalizedHeads((h) => cb(toHeader(h))));
    return () => unsub();
  }

  async blockHash(number: number): Promise<Uint8Array | undefined> {
    const hash = await this.#rpc<string | null>('chain_getBlockHash', [number]);
    return hash ? hexToU8a(hash) : undefined;
  }

  async header(at: number | Uint8Array): Promise<ParentchainHeader | undefined> {
    const hash = typeof at === 'number' ? await this.blockHash(at) : at;
    if (!hash) return undefined;
    const raw = await this.#rpc<Record<string, unknown> | null>('chain_getHeader', [u8aToHex(hash)]);
    return raw ? toHeader(this.#api.registry.createType('Header', raw), hash) : undefined;
  }

  async block(hash: Uint8Array, options: BlockOptions = {}): Promise<ParentchainBlock> {
    const hex = u8aToHex(hash);
    const raw = await this.#rpc<RawBlock | null>('chain_getBlock', [hex]);
    if (!raw) throw new ValidateerError('PARENTCHAIN_MISSING_BLOCK', `block ${hex} not found`);
    const header = this.#api.registry.createType('Header', raw.block.header);
    const { registry } = await this.#registryFor(hex, header);
    const encoded = raw.block.extrinsics.map((x) => hexToU8a(x));
    const needle = options.decodeOnly ? Buffer.from(options.decodeOnly) : undefined;
    const wanted = encoded.flatMap((x, i) => (!needle || bytesView(x).indexOf(needle) >= 0 ? [i] : []));
    const extrinsics = wanted.map((i) => registry.createType('Extrinsic', encoded[i]));
    const wantEvents = (options.events ?? 'all') === 'all' || extrinsics.some((x) => x.isSigned);
    const records = wantEvents ? await this.#events(registry, hex) : undefined;
    const events = records?.map(toEvent); // converted once: an extrinsic's events are these same objects
    return {
      header: toHeader(header, hash),
      raw: encoded,
      extrinsics: extrinsics.map((x, k) => toExtrinsic(registry, x, wanted[k], encoded[wanted[k]], records, events)),
      events: events ?? [],
    };
  }

  async balance(account: Uint8Array): Promise<Balance> {
    const info = await this.#retry('balance', () => this.#api.query.system.account(u8aToHex(account)));
    const data = info.data as unknown as Record<string, { toBigInt(): bigint } | undefined>;
    const frozen = data.frozen?.toBigInt() ?? bigMax(data.miscFrozen?.toBigInt() ?? 0n, data.feeFrozen?.toBigInt() ?? 0n);
    return { free: data.free!.toBigInt(), reserved: data.reserved!.toBigInt(), frozen };
  }

  scanFinalized(fromNumber: number, onBlock: (block: ParentchainBlock) => Promise<void> | void, options: ScanOptions = {}): FinalizedScanner {
    const prefetch = Math.max(1, options.prefetch ?? 32);
    const blockOptions: BlockOptions = { events: options.events ?? 'signed', ...(options.decodeOnly ? { decodeOnly: options.decodeOnly } : {}) };
    let next = fromNumber;
    let previous = options.fromParentHash;
    let stopped = false;
    let wake: (() => void) | undefined;
    const waitForHead = (ms: number) => new Promise<void>((r) => {
      const t = setTimeout(r, ms);
      wake = () => { clearTimeout(t); r(); };
    });
    const unsub = this.subscribeFinalizedHeads(() => wake?.()).catch(() => undefined);

    const run = async (): Promise<void> => {
      let failures = 0;
      while (!stopped && !this.#closed) {
        try {
          const finalized = (await this.finalizedHead()).number;
          // A sliding window: up to `prefetch` blocks are being fetched while the oldest is processed.
          const fetches: Promise<ParentchainBlock>[] = [];
          let requested = next;
          while (!stopped && next <= finalized) {
            for (; requested <= finalized && requested < next + prefetch; requested++) {
              const p = this.#blockAt(requested, blockOptions);
              p.catch(() => undefined); // awaited below in order; avoid unhandled rejections
              fetches.push(p);
            }
            const block = await fetches.shift()!;
            if (stopped) return;
            if (previous && !u8aEq(block.header.parentHash, previous)) {
              throw new ScanFatal(new ValidateerError('PARENTCHAIN_BROKEN_CHAIN', `block ${block.header.number} does not extend the previous block`));
            }
            try {
              await onBlock(block);
            } catch (err) {
              throw new ScanFatal(err as Error);
            }
            previous = block.header.hash;
            next = block.header.number + 1;
          }
          failures = 0;
        } catch (err) {
          if (err instanceof ScanFatal) throw err.cause;
          if (this.#closed) return;
          failures++;
          options.onError?.(err as Error);
          await sleep(Math.min(5000, 200 * 2 ** Math.min(failures, 5)));
          continue;
        }
        // The subscription wakes us early; polling covers missed notifications and reconnections.
        await waitForHead(1000);
      }
    };
    const done = run().finally(() => void unsub.then((u) => u?.()));
    const scanner: FinalizedScanner = {
      get next() {
        return next;
      },
      done,
      stop: async () => {
        stopped = true;
        wake?.();
        await done.catch(() => undefined);
        this.#scanners.delete(scanner);
      },
    };
    this.#scanners.add(scanner);
    return scanner;
  }

  async #blockAt(number: number, options: BlockOptions): Promise<ParentchainBlock> {
    const hash = await this.blockHash(number);
    if (!hash) throw new ValidateerError('PARENTCHAIN_MISSING_BLOCK', `no block ${number} yet`);
    return this.block(hash, options);
  }

  async #events(registry: Registry, blockHashHex: string): Promise<EventRecord[]> {
    const raw = await this.#rpc<string | null>('state_getStorage', [this.#eventsKey, blockHashHex]);
    return raw ? [...registry.createType('Vec<EventRecord>', raw)] as EventRecord[] : [];
  }

  /**
   * A block runs the runtime of its parent's state; the runtime only changes after a block whose
   * digest carries RuntimeEnvironmentUpdated. Sequential reads reuse the parent's registry; anything
   * else asks polkadot-js (runtime version at the parent, cached per spec version).
   */
  #registryFor(hashHex: string, header: Header): Promise<Decoded> {
    const known = this.#decoded.get(hashHex);
    if (known) return Promise.resolve(known);
    let pending = this.#decoding.get(hashHex);
    if (!pending) {
      pending = this.#lookupRegistry(hashHex, header).finally(() => this.#decoding.delete(hashHex));
      this.#decoding.set(hashHex, pending);
    }
    return pending;
  }

  async #lookupRegistry(hashHex: string, header: Header): Promise<Decoded> {
    const parentHex = header.parentHash.toHex();
    // No await when the parent is known: sequential reads stay synchronous here.
    const parent = this.#decoded.get(parentHex) ?? (await this.#decoding.get(parentHex)?.catch(() => undefined));
    const registry = parent && !parent.upgraded
      ? parent.registry
      : (await this.#retry('registry', () => this.#api.getBlockRegistry(hexToU8a(hashHex)))).registry;
    const decoded = { registry, upgraded: header.digest.logs.some((l) => l.isRuntimeEnvironmentUpdated) };
    this.#decoded.set(hashHex, decoded);
    if (this.#decoded.size > 256) this.#decoded.delete(this.#decoded.keys().next().value!);
    return decoded;
  }

  // ---------- writing ----------

  encodeCall(spec: CallSpec): Uint8Array {
    return this.#build(spec).method.toU8a();
  }

  #build(spec: CallSpec): SubmittableExtrinsic<'promise'> {
    const tx = this.#api.tx;
    switch (spec.kind) {
      case 'remark': {
        // As hex: polkadot-js reads a Uint8Array for Bytes as already length-prefixed.
        const remark = u8aToHex(spec.remark);
        return spec.withEvent === false ? tx.system.remark(remark) : tx.system.remarkWithEvent(remark);
      }
      case 'transferKeepAlive':
        return tx.balances.transferKeepAlive(u8aToHex(spec.dest), spec.amount);
      case 'batchAll':
        return tx.utility.batchAll(spec.calls.map((c) => this.#build(c)));
      case 'proxy':
        return tx.proxy.proxy(u8aToHex(spec.real), null, this.#build(spec.call));
      case 'createPure': {
        // Renamed from proxy.anonymous (same arguments) in 2022; the Rococo Asset Hub genesis runtime has the old name.
        const create = tx.proxy.createPure ?? (tx.proxy as unknown as Record<string, typeof tx.proxy.createPure>).anonymous;
        if (!create) throw new ValidateerError('PARENTCHAIN_UNSUPPORTED', 'the runtime has no proxy.createPure');
        return create('Any', spec.delay ?? 0, spec.index ?? 0);
      }
      case 'addProxy':
        return tx.proxy.addProxy(u8aToHex(spec.delegate), 'Any', spec.delay ?? 0);
      case 'removeProxy':
        return tx.proxy.removeProxy(u8aToHex(spec.delegate), 'Any', spec.delay ?? 0);
      case 'raw':
        return tx(this.#api.createType('Call', spec.callData));
    }
  }

  async estimateFee(signer: ExtrinsicSigner, spec: CallSpec): Promise<bigint> {
    const address = this.address(signer.publicKey);
    const tx = this.#build(spec);
    const info = await this.#retry('paymentInfo', () => tx.paymentInfo(address));
    return info.partialFee.toBigInt();
  }

  /**
   * Signs, submits and waits for inclusion. Nonces come from a local cache (resynced from the chain
   * on any nonce error). After a connection loss the same signed bytes are resubmitted: with the
   * same nonce at most one copy can ever be included, and inclusion is found by scanning blocks for
   * the extrinsic hash, so an outage never causes a second execution.
   */
  async submit(signer: ExtrinsicSigner, spec: CallSpec, options: SubmitOptions = {}): Promise<SubmitResult> {
    const deadline = Date.now() + (options.timeoutMs ?? 120_000);
    const account = u8aToHex(signer.publicKey);
    for (let attempt = 0; ; attempt++) {
      const sent = await this.#withLock(account, () => this.#signAndSend(signer, spec, options, deadline));
      try {
        return await this.#awaitInclusion(sent, options.waitFor ?? 'inBlock', deadline);
      } catch (err) {
        // Expired unincluded: nothing was executed, so a fresh signature with a fresh nonce is safe.
        if ((err as ValidateerError).code !== 'PARENTCHAIN_TX_DROPPED' || attempt >= 2) throw err;
        this.#nonces.delete(account);
        this.#warn(`extrinsic ${u8aToHex(sent.hash)} expired without inclusion; resubmitting`);
      }
    }
  }

  async #signAndSend(signer: ExtrinsicSigner, spec: CallSpec, options: SubmitOptions, deadline: number): Promise<Sent> {
    const account = u8aToHex(signer.publicKey);
    const address = this.address(signer.publicKey);
    for (let nonceRetry = 0; ; nonceRetry++) {
      const nonce = this.#nonces.get(account) ?? await this.#chainNonce(address);
      const birth = await this.finalizedHead();
      const tx = this.#build(spec);
      await this.#retry('sign', () => tx.signAsync(address, {
        nonce,
        tip: options.tip ?? 0n,
        blockHash: birth.hash,
        era: this.#api.createType('ExtrinsicEra', { current: birth.number, period: this.#mortality }),
        signer: { signRaw: (raw: SignerPayloadRaw) => signRaw(signer, raw) },
      }));
      const fee = (await this.#retry('paymentInfo', () => this.#api.call.transactionPaymentApi.queryInfo(tx.toU8a(), tx.encodedLength))).partialFee.toBigInt();
      await this.#checkFunds(signer.publicKey, spec, fee + (options.tip ?? 0n));
      const sent: Sent = { hash: tx.hash.toU8a(), nonce, fee, fromNumber: birth.number, deathNumber: birth.number + this.#mortality };
      const outcome = await this.#send(tx.toHex(), address, fee, deadline);
      if (outcome === 'nonceRejected') {
        this.#nonces.delete(account);
        if (nonceRetry < 3) continue;
        throw new ValidateerError('PARENTCHAIN_SUBMIT_REJECTED', `nonce ${nonce} of ${address} rejected repeatedly`);
      }
      if (outcome === 'accepted') this.#nonces.set(account, nonce + 1);
      else this.#nonces.delete(account);
      return sent;
    }
  }

  /**
   * Submits signed bytes, resubmitting the identical bytes across connection loss. 'maybeIncluded':
   * the nonce is now used, and an earlier copy that reached the node before the connection dropped
   * may be what used it, so the caller must look for it rather than sign again.
   */
  async #send(hex: string, address: string, fee: bigint, deadline: number): Promise<'accepted' | 'maybeIncluded' | 'nonceRejected'> {
    let mayHaveArrived = false;
    for (;;) {
      try {
        await this.#provider.send('author_submitExtrinsic', [hex]);
        return 'accepted';
      } catch (err) {
        const message = (err as Error).message ?? String(err);
        if (isConnectionError(err)) {
          if (Date.now() > deadline) throw new ValidateerError('PARENTCHAIN_SUBMIT_TIMEOUT', `could not submit within the timeout: ${message}`);
          mayHaveArrived = true;
          this.#warn(`submit: ${message}; retrying`);
          await sleep(500);
          continue;
        }
        if (/already imported|1013/i.test(message)) return 'accepted'; // an earlier copy is in the pool
        if (/payment|Inability to pay/i.test(message)) {
          throw new ValidateerError('PARENTCHAIN_INSUFFICIENT_FUNDS', `${address} cannot pay the fee of ${fee}: ${message}`);
        }
        if (/stale|outdated|Priority is too low|1014|future/i.test(message)) return mayHaveArrived ? 'maybeIncluded' : 'nonceRejected';
        throw new ValidateerError('PARENTCHAIN_SUBMIT_REJECTED', `extrinsic rejected: ${message}`);
      }
    }
  }

  async #chainNonce(address: string): Promise<number> {
    // system_accountNextIndex counts the node's pool too.
    return Number(await this.#rpc<number>('system_accountNextIndex', [address]));
  }

  async #checkFunds(account: Uint8Array, spec: CallSpec, fee: bigint): Promise<void> {
    const { free, frozen } = await this.balance(account);
    const need = fee + this.#spends(spec) + this.existentialDeposit(); // fees are withdrawn keep-alive
    if (free - frozen < need) {
      throw new ValidateerError('PARENTCHAIN_INSUFFICIENT_FUNDS', `${this.address(account)} has ${free - frozen} spendable but needs ${need} (fee ${fee})`);
    }
  }

  /** What the call itself takes from the signer's free balance (transfers, proxy deposits). */
  #spends(spec: CallSpec): bigint {
    const proxyDeposit = this.#proxyConst('proxyDepositBase') + this.#proxyConst('proxyDepositFactor');
    switch (spec.kind) {
      case 'transferKeepAlive': return spec.amount;
      case 'batchAll': return spec.calls.reduce((sum, c) => sum + this.#spends(c), 0n);
      case 'createPure': case 'addProxy': return proxyDeposit;
      default: return 0n;
    }
  }

  /**
   * Finds the extrinsic by hash walking blocks by number from the one after its birth. A dropped
   * verdict is only given after the finalized chain up to its death block was searched, since a
   * best-chain reorg can move an extrinsic to a block the best-chain walk already passed.
   */
  async #awaitInclusion(sent: Sent, waitFor: 'inBlock' | 'finalized', deadline: number): Promise<SubmitResult> {
    let finalizedOnly = waitFor === 'finalized';
    let next = sent.fromNumber + 1;
    for (;;) {
      if (Date.now() > deadline) throw new ValidateerError('PARENTCHAIN_SUBMIT_TIMEOUT', `extrinsic ${u8aToHex(sent.hash)} not included in time (it may still be until block ${sent.deathNumber})`);
      try {
        const top = finalizedOnly ? (await this.finalizedHead()).number : await this.#bestNumber();
        for (; next <= Math.min(top, sent.deathNumber); next++) {
          const block = await this.#blockAt(next, { events: 'signed' });
          const found = block.extrinsics.find((x) => u8aEq(x.hash, sent.hash));
          if (found) {
            return {
              extrinsicHash: sent.hash, blockHash: block.header.hash, blockNumber: block.header.number, index: found.index,
              nonce: sent.nonce, success: found.success ?? false, error: found.error, events: found.events, estimatedFee: sent.fee,
            };
          }
        }
        if (next > sent.deathNumber) {
          if (finalizedOnly) throw new ValidateerError('PARENTCHAIN_TX_DROPPED', `extrinsic ${u8aToHex(sent.hash)} expired at block ${sent.deathNumber} without inclusion`);
          finalizedOnly = true;
          next = sent.fromNumber + 1;
          continue;
        }
      } catch (err) {
        // connection loss, or a block number the node does not know yet: try again shortly
        if (!isConnectionError(err) && (err as ValidateerError).code !== 'PARENTCHAIN_MISSING_BLOCK') throw err;
      }
      await sleep(250);
    }
  }

  async #bestNumber(): Promise<number> {
    const header = await this.#rpc<{ number: string }>('chain_getHeader', []);
    return Number(header.number);
  }

  async #withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(key) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.#locks.set(key, tail);
    try {
      return await run;
    } finally {
      if (this.#locks.get(key) === tail) this.#locks.delete(key);
    }
  }

  // ---------- plumbing ----------

  /** A raw JSON-RPC call, retried across connection loss for up to retryMs. */
  #rpc<T>(method: string, params: unknown[]): Promise<T> {
    return this.#retry(method, () => this.#provider.send<T>(method, params));
  }

  async #retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.#retryMs;
    for (let attempt = 0; ; attempt++) {
      if (this.#closed) throw new ValidateerError('PARENTCHAIN_CLOSED', 'parentchain connection is closed');
      try {
        return await fn();
      } catch (err) {
        if (!isConnectionError(err)) throw err;
        if (Date.now() > deadline) throw new ValidateerError('PARENTCHAIN_UNAVAILABLE', `${what}: parentchain unreachable for ${this.#retryMs} ms: ${(err as Error).message}`);
        if (attempt === 0) this.#warn(`${what}: ${(err as Error).message}; retrying`);
        await sleep(Math.min(2000, 100 * 2 ** Math.min(attempt, 5)));
      }
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await Promise.all([...this.#scanners].map((s) => s.stop()));
    this.#closed = true;
    await this.#api.disconnect();
  }
}

interface Sent { hash: Uint8Array; nonce: number; fee: bigint; fromNumber: number; deathNumber: number }

class ScanFatal extends Error {
  override readonly cause: Error;
  constructor(cause: Error) {
    super(cause.message);
    this.cause = cause;
  }
}

async function signRaw(signer: ExtrinsicSigner, raw: SignerPayloadRaw): Promise<SignerResult> {
  const signature = await signer.sign(hexToU8a(raw.data));
  const type = signer.scheme === 'ed25519' ? MULTISIG_ED25519 : MULTISIG_SR25519;
  // MultiSignature: the variant byte then the 64-byte signature.
  return { id: 0, signature: u8aToHex(u8aConcat(Uint8Array.of(type), signature)) };
}

function bigMax(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

// ---------- decoding into plain objects ----------

function toHeader(h: Header, hash?: Uint8Array): ParentchainHeader {
  const encoded = h.toU8a();
  return {
    number: h.number.toNumber(),
    hash: hash ?? blake2AsU8a(encoded, 256),
    parentHash: h.parentHash.toU8a(),
    stateRoot: h.stateRoot.toU8a(),
    extrinsicsRoot: h.extrinsicsRoot.toU8a(),
    encoded,
  };
}

function accountBytes(value: unknown): Uint8Array | undefined {
  const v = value as { type?: string; value?: { toU8a(): Uint8Array }; toU8a?(): Uint8Array; isEmpty?: boolean } | undefined;
  if (!v) return undefined;
  // MultiAddress: only the AccountId32 forms name an account directly.
  if (typeof v.type === 'string' && v.value) return v.type === 'Id' || v.type === 'Address32' ? v.value.toU8a() : undefined;
  const bytes = v.toU8a?.();
  return bytes?.length === 32 ? bytes : undefined;
}

function isCall(value: unknown): value is Call {
  return !!value && typeof (value as Call).callIndex !== 'undefined' && typeof (value as Call).section === 'string';
}

/**
 * Makes `key` of `obj` a value computed on its first read (an ordinary property from then on).
 * toJSON of polkadot-js values is a large part of decoding a block, and scanning rarely needs it.
 */
function lazily<T extends object>(obj: T, key: keyof T & string, compute: () => unknown): T {
  const set = (value: unknown) => Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
  return Object.defineProperty(obj, key, { get: () => { const value = compute(); set(value); return value; }, set, enumerable: true, configurable: true });
}

function toCall(registry: Registry, call: Call): ParentchainCall {
  const nested: ParentchainCall[] = [];
  for (const value of call.args) {
    if (isCall(value)) nested.push(toCall(registry, value));
    else if (Array.isArray(value) && value.every(isCall)) nested.push(...value.map((c) => toCall(registry, c as Call)));
  }
  const out: ParentchainCall = lazily({ pallet: call.section, method: call.method, args: {} }, 'args', () => {
    const args: Record<string, unknown> = {};
    call.meta.args.forEach((meta, i) => {
      args[camel(meta.name.toString())] = call.args[i].toJSON();
    });
    return args;
  });
  if (nested.length > 0) out.calls = nested;
  if (call.section === 'system' && (call.method === 'remark' || call.method === 'remarkWithEvent')) {
    out.remark = (call.args[0] as unknown as { toU8a(bare: boolean): Uint8Array }).toU8a(true);
  }
  if (call.section === 'balances' && call.method.startsWith('transfer') && call.args.length === 2) {
    const dest = accountBytes(call.args[0]);
    if (dest) out.transfer = { dest, amount: (call.args[1] as unknown as { toBigInt(): bigint }).toBigInt() };
  }
  if (call.section === 'proxy' && (call.method === 'proxy' || call.method === 'proxyAnnounced')) {
    const real = accountBytes(call.args[call.method === 'proxy' ? 0 : 1]);
    if (real) out.real = real;
  }
  return out;
}

function toEvent(record: EventRecord): ParentchainEvent {
  const { event, phase } = record;
  const out = { pallet: event.section, name: event.method, data: {}, extrinsicIndex: phase.isApplyExtrinsic ? phase.asApplyExtrinsic.toNumber() : null };
  return lazily(out, 'data', () => {
    const names = event.data.names;
    const data: Record<string, unknown> = {};
    event.data.forEach((d, i) => {
      data[names?.[i] ? camel(names[i]) : String(i)] = d.toJSON();
    });
    return data;
  });
}

function toExtrinsic(registry: Registry, x: Extrinsic, index: number, encoded: Uint8Array, records: EventRecord[] | undefined, events: ParentchainEvent[] | undefined): ParentchainExtrinsic {
  const mine = events?.flatMap((e, k) => (e.extrinsicIndex === index ? [k] : []));
  const own = mine?.map((k) => records![k]);
  const out: ParentchainExtrinsic = {
    index,
    hash: x.hash.toU8a(),
    encoded,
    call: toCall(registry, x.method as Call),
    events: mine?.map((k) => events![k]) ?? [],
  };
  if (x.isSigned) {
    out.signer = accountBytes(x.signer);
    out.nonce = x.nonce.toNumber();
  }
  if (own) {
    const failure = dispatchFailure(registry, own);
    out.success = failure === undefined;
    if (failure !== undefined) out.error = failure;
  }
  return out;
}

/** The first failure among an extrinsic's events: its own dispatch, a proxied call, or a batch item. */
function dispatchFailure(registry: Registry, records: EventRecord[]): string | undefined {
  for (const { event } of records) {
    const key = `${event.section}.${event.method}`;
    if (key === 'system.ExtrinsicFailed') return dispatchErrorText(registry, event.data[0] as DispatchError);
    if (key === 'proxy.ProxyExecuted') {
      const result = event.data[0] as unknown as { isErr: boolean; asErr: DispatchError };
      if (result.isErr) return dispatchErrorText(registry, result.asErr);
    }
    if (key === 'utility.BatchInterrupted') return dispatchErrorText(registry, event.data[1] as DispatchError);
    if (key === 'utility.ItemFailed') return dispatchErrorText(registry, event.data[0] as DispatchError);
  }
  if (!records.some(({ event }) => event.section === 'system' && event.method === 'ExtrinsicSuccess')) return 'NoOutcome';
  return undefined;
}

function dispatchErrorText(registry: Registry, err: DispatchError): string {
  if (err.isModule) {
    try {
      const meta = registry.findMetaError(err.asModule);
      return `${meta.section}.${meta.name}`;
    } catch {
      return `Module(${err.asModule.index.toNumber()}, ${err.asModule.error.toHex()})`;
    }
  }
  const inner = (err as unknown as { value?: { type?: string; isEmpty?: boolean } }).value;
  return inner?.type && !inner.isEmpty ? `${err.type}.${inner.type}` : err.type;
}

function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** Whether a call's first argument is a bare AccountId32 (older pallet_proxy) rather than a MultiAddress. */
function accountIdArg(fn: { meta: { args: { type: { toString(): string } }[] } }): boolean {
  return /^AccountId(32)?$/.test(fn.meta.args[0]?.type.toString() ?? '');
}

/** AccountId32 from an SS58 address or 0x hex. */
export function accountId(address: string): Uint8Array {
  return decodeAddress(address);
}

// ---------- pure proxy helpers (the shard vault) ----------

/** Creates a pure proxy account controlled by `signer` (proxy type Any); returns its AccountId32. */
export async function createPureProxy(chain: Parentchain, signer: ExtrinsicSigner, options: { index?: number } & SubmitOptions = {}): Promise<{ pure: Uint8Array; result: SubmitResult }> {
  const result = await chain.submit(signer, { kind: 'createPure', index: options.index }, options);
  if (!result.success) throw new ValidateerError('PARENTCHAIN_DISPATCH_FAILED', `createPure failed: ${result.error}`);
  const created = result.events.find((e) => e.pallet === 'proxy' && (e.name === 'PureCreated' || e.name === 'AnonymousCreated'));
  const pure = created?.data.pure ?? created?.data.anonymous ?? created?.data['0'];
  if (typeof pure !== 'string') throw new ValidateerError('PARENTCHAIN_DISPATCH_FAILED', 'createPure emitted no PureCreated event');
  return { pure: decodeAddress(pure), result };
}

/** `signer` (a proxy of `pure`) sends balances.transferKeepAlive(dest, amount) as `pure`. */
export async function proxyTransfer(chain: Parentchain, signer: ExtrinsicSigner, pure: Uint8Array, dest: Uint8Array, amount: bigint, options: SubmitOptions = {}): Promise<SubmitResult> {
  return chain.submit(signer, { kind: 'proxy', real: pure, call: { kind: 'transferKeepAlive', dest, amount } }, options);
}
