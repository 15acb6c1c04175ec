// Parentchain adapter on @polkadot/api for any Substrate chain with System, Balances, Utility and
// Proxy. Blocks are read with raw RPCs (one chain_getBlock, plus System.Events when needed) and
// decoded with the registry of the runtime that produced them; every RPC is retried across
// connection loss (WsProvider reconnects by itself), so scanning and submission survive an outage.
// The work is split by concern under substrate/: connection, blocks (reading), decode, scan,
// calls (building CallSpecs), submit (signing, sending, watching) and pure-proxy helpers.
import '@polkadot/api-augment'; // types of api.query/consts/tx/createType for the standard pallets
import { ApiPromise, WsProvider } from '@polkadot/api';
import { hexToU8a, u8aToHex } from '@polkadot/util';
import { encodeAddress } from '@polkadot/util-crypto';
import { ValidateerError } from '../protocol/errors.ts';
import type {
  Balance,
  BlockOptions,
  CallSpec,
  ExtrinsicSigner,
  FinalizedScanner,
  Parentchain,
  ParentchainBlock,
  ParentchainHeader,
  ScanOptions,
  SubmitOptions,
  SubmitResult,
} from './api.ts';
import { RpcConnection } from './substrate/connection.ts';
import { BlockReader } from './substrate/blocks.ts';
import { startScan } from './substrate/scan.ts';
import { buildCall, callIndices, proxyConst } from './substrate/calls.ts';
import { ExtrinsicSubmitter } from './substrate/submit.ts';

export { isConnectionError } from './substrate/connection.ts';
export { accountId, createPureProxy, proxyTransfer } from './substrate/pure-proxy.ts';

export interface SubstrateParentchainOptions {
  /** WebSocket endpoint(s) of a Substrate node (several: WsProvider rotates on reconnection). */
  endpoint: string | string[];
  /** Delay between reconnection attempts (default 1000 ms). */
  reconnectMs?: number;
  /** Initial connection must succeed within this (default 60 s), else PARENTCHAIN_UNREACHABLE. */
  connectTimeoutMs?: number;
  /** How long one read keeps retrying across connection loss before giving up (default 120 s). */
  retryMs?: number;
  /** Mortality of submitted extrinsics in blocks (default 64; the enclave signs duties for at most 256). */
  mortalityBlocks?: number;
  /** Told about connection trouble and retries (default: silent). */
  onWarning?: (message: string) => void;
}

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
        timer = setTimeout(
          () =>
            reject(
              new ValidateerError(
                'PARENTCHAIN_UNREACHABLE',
                `no parentchain at ${String(options.endpoint)} within ${timeoutMs} ms`,
              ),
            ),
          timeoutMs,
        );
      }),
    ]);
  } catch (err) {
    await api.disconnect().catch(() => undefined);
    throw err instanceof ValidateerError
      ? err
      : new ValidateerError(
          'PARENTCHAIN_UNREACHABLE',
          `cannot connect to ${String(options.endpoint)}: ${(err as Error).message}`,
        );
  } finally {
    clearTimeout(timer);
  }
  return new SubstrateParentchain(api, provider, options);
}

export class SubstrateParentchain implements Parentchain {
  readonly #api: ApiPromise;
  readonly #connection: RpcConnection;
  readonly #reader: BlockReader;
  readonly #submitter: ExtrinsicSubmitter;
  readonly #scanners = new Set<FinalizedScanner>();

  constructor(api: ApiPromise, provider: WsProvider, options: SubstrateParentchainOptions) {
    this.#api = api;
    this.#connection = new RpcConnection(provider, options.retryMs ?? 120_000, options.onWarning ?? (() => undefined));
    this.#reader = new BlockReader(api, this.#connection);
    this.#submitter = new ExtrinsicSubmitter(
      { api, connection: this.#connection, reader: this.#reader, accounts: this },
      options.mortalityBlocks ?? 64,
    );
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
    return proxyConst(this.#api, 'proxyDepositFactor');
  }

  async metadata(at?: Uint8Array): Promise<Uint8Array> {
    return hexToU8a(await this.#connection.rpc<string>('state_getMetadata', at ? [u8aToHex(at)] : []));
  }

  callIndices(): ReturnType<Parentchain['callIndices']> {
    return callIndices(this.#api);
  }

  address(account: Uint8Array): string {
    return encodeAddress(account, this.ss58Prefix());
  }

  // ---------- reading ----------

  finalizedHead(): Promise<ParentchainHeader> {
    return this.#reader.finalizedHead();
  }

  subscribeFinalizedHeads(cb: (header: ParentchainHeader) => void): Promise<() => void> {
    return this.#reader.subscribeFinalizedHeads(cb);
  }

  blockHash(number: number): Promise<Uint8Array | undefined> {
    return this.#reader.blockHash(number);
  }

  header(at: number | Uint8Array): Promise<ParentchainHeader | undefined> {
    return this.#reader.header(at);
  }

  block(hash: Uint8Array, options: BlockOptions = {}): Promise<ParentchainBlock> {
    return this.#reader.block(hash, options);
  }

  accountNonce(account: Uint8Array): Promise<number> {
    return this.#submitter.chainNonce(this.address(account));
  }

  async balance(account: Uint8Array): Promise<Balance> {
    const info = await this.#connection.retry('balance', () => this.#api.query.system.account(u8aToHex(account)));
    const data = info.data as unknown as Record<string, { toBigInt(): bigint } | undefined>;
    const frozen =
      data.frozen?.toBigInt() ?? bigMax(data.miscFrozen?.toBigInt() ?? 0n, data.feeFrozen?.toBigInt() ?? 0n);
    return { free: data.free!.toBigInt(), reserved: data.reserved!.toBigInt(), frozen };
  }

  scanFinalized(
    fromNumber: number,
    onBlock: (block: ParentchainBlock) => Promise<void> | void,
    options: ScanOptions = {},
  ): FinalizedScanner {
    const reader = this.#reader;
    const connection = this.#connection;
    const source = {
      finalizedHead: () => reader.finalizedHead(),
      subscribeFinalizedHeads: (cb: (header: ParentchainHeader) => void) => reader.subscribeFinalizedHeads(cb),
      blockAt: (number: number, blockOptions: BlockOptions) => reader.blockAt(number, blockOptions),
      get closed() {
        return connection.closed;
      },
    };
    const scanner = startScan(source, fromNumber, onBlock, options, (stopped) => this.#scanners.delete(stopped));
    this.#scanners.add(scanner);
    return scanner;
  }

  // ---------- writing ----------

  encodeCall(spec: CallSpec): Uint8Array {
    return buildCall(this.#api, spec).method.toU8a();
  }

  estimateFee(signer: ExtrinsicSigner, spec: CallSpec): Promise<bigint> {
    return this.#submitter.estimateFee(signer, spec);
  }

  /** See ExtrinsicSubmitter.submit: signed once per nonce, resubmitted unchanged across connection loss. */
  submit(signer: ExtrinsicSigner, spec: CallSpec, options: SubmitOptions = {}): Promise<SubmitResult> {
    return this.#submitter.submit(signer, spec, options);
  }

  async close(): Promise<void> {
    if (this.#connection.closed) return;
    await Promise.all([...this.#scanners].map((s) => s.stop()));
    this.#connection.markClosed();
    await this.#api.disconnect();
  }
}

function bigMax(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}
