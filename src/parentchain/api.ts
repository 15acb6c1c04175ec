// The parentchain as the rest of the validateer sees it: finalized headers, decoded blocks and a way
// to submit calls. Everything is bytes, numbers and plain objects (no @polkadot/api types leak out),
// so the enclave side can consume blocks and a test can fake the whole chain.

/** A header with the exact SCALE bytes it hashes from: blake2_256(encoded) == hash. */
export interface ParentchainHeader {
  number: number;
  hash: Uint8Array;
  parentHash: Uint8Array;
  stateRoot: Uint8Array;
  extrinsicsRoot: Uint8Array;
  /** SCALE-encoded header (what a light client re-hashes and checks). */
  encoded: Uint8Array;
}

/** A decoded call; nested calls of utility batches and proxy.proxy are decoded too. */
export interface ParentchainCall {
  /** camelCase as in polkadot-js: 'system', 'balances', 'utility', 'proxy', ... */
  pallet: string;
  /** camelCase: 'remarkWithEvent', 'transferKeepAlive', 'batchAll', 'proxy', ... */
  method: string;
  /** All arguments as JSON-safe values (numbers above 2^53 as strings), for logs and generic use. */
  args: Record<string, unknown>;
  /** system.remark / system.remarkWithEvent: the remark bytes. */
  remark?: Uint8Array;
  /** balances.transfer* to an AccountId32: recipient and amount. */
  transfer?: { dest: Uint8Array; amount: bigint };
  /** proxy.proxy: the account the call is dispatched as. */
  real?: Uint8Array;
  /** utility.batch / batchAll / forceBatch: the batched calls; proxy.proxy: the one proxied call. */
  calls?: ParentchainCall[];
}

export interface ParentchainEvent {
  pallet: string;
  /** PascalCase event name: 'Remarked', 'Transfer', 'ExtrinsicSuccess', ... */
  name: string;
  /** Event fields as JSON-safe values (named when the metadata names them, else '0', '1', ...). */
  data: Record<string, unknown>;
  /** Index of the extrinsic that emitted it, or null for initialization/finalization. */
  extrinsicIndex: number | null;
}

export interface ParentchainExtrinsic {
  index: number;
  /** blake2_256 of the extrinsic bytes (what author_submitExtrinsic returns). */
  hash: Uint8Array;
  /** The extrinsic as stored in the block (SCALE, with its length prefix): what extrinsicsRoot commits to. */
  encoded: Uint8Array;
  /** AccountId32 of the signer; undefined for inherents/unsigned. */
  signer?: Uint8Array;
  nonce?: number;
  /** The decoded call; pallet and method are empty when the runtime's types could not decode the extrinsic. */
  call: ParentchainCall;
  /** Where the call starts in `encoded` (after length, version, signature, extensions); undefined when undecodable. */
  callOffset?: number;
  /**
   * Whether the intended effect happened: the extrinsic dispatched without error, and no nested
   * proxy call failed (proxy.ProxyExecuted Err) and no utility.batch was interrupted. Undefined when
   * the block was fetched without events.
   */
  success?: boolean;
  /** Dispatch error as 'pallet.Error' (module errors) or the error kind, when not successful. */
  error?: string;
  events: ParentchainEvent[];
}

export interface ParentchainBlock {
  header: ParentchainHeader;
  /** Every extrinsic's bytes, in block order (what the extrinsics root commits to). */
  raw: Uint8Array[];
  /**
   * Decoded extrinsics (all of them, or those matching BlockOptions.decodeOnly); `index` names their place in `raw`.
   */
  extrinsics: ParentchainExtrinsic[];
  /** All events of the block (empty when fetched with events: 'signed' and nothing was signed). */
  events: ParentchainEvent[];
}

export interface BlockOptions {
  /** 'all' (default): always read System.Events; 'signed': only when the block has a signed extrinsic. */
  events?: 'all' | 'signed';
  /**
   * Decode only extrinsics whose bytes contain these bytes (e.g. a message magic); the rest stay raw,
   * and events are read only for decoded signed ones. Scanning for one protocol's messages then
   * costs no decoding and one RPC less for the blocks without any.
   */
  decodeOnly?: Uint8Array;
}

/**
 * A call to submit. `raw` carries call bytes encoded elsewhere (e.g. built inside the enclave);
 * the other kinds are the few calls the protocol uses, built by the adapter for the chain's runtime.
 */
export type CallSpec =
  | { kind: 'remark'; remark: Uint8Array; withEvent?: boolean }
  | { kind: 'transferKeepAlive'; dest: Uint8Array; amount: bigint }
  | { kind: 'batchAll'; calls: CallSpec[] }
  | { kind: 'proxy'; real: Uint8Array; call: CallSpec }
  /** proxy.createPure (proxy.anonymous on older runtimes) with proxy type 'Any'. */
  | { kind: 'createPure'; delay?: number; index?: number }
  | { kind: 'addProxy'; delegate: Uint8Array; delay?: number }
  | { kind: 'removeProxy'; delegate: Uint8Array; delay?: number }
  | { kind: 'raw'; callData: Uint8Array };

/**
 * Signs extrinsic payloads for one AccountId32. The key never has to leave its owner: the adapter
 * hands over the SCALE signing payload and gets back the signature. As Substrate requires, the
 * signer signs `payload` itself when it is at most 256 bytes and blake2_256(payload) otherwise.
 */
export interface ExtrinsicSigner {
  /** 32-byte public key = AccountId32. */
  readonly publicKey: Uint8Array;
  readonly scheme: 'ed25519' | 'sr25519';
  sign(payload: Uint8Array): Uint8Array | Promise<Uint8Array>;
}

export interface SubmitOptions {
  /** 'inBlock' (default) resolves once included in a block; 'finalized' waits for finality. */
  waitFor?: 'inBlock' | 'finalized';
  /** Give up (PARENTCHAIN_SUBMIT_TIMEOUT) after this long; default 120 s. */
  timeoutMs?: number;
  tip?: bigint;
  /**
   * Sign at exactly this account nonce (the enclave names the nonce of everything it signs): never another one, and
   * PARENTCHAIN_NONCE_USED when the chain or its pool already has one at it; no resubmission after expiry.
   */
  nonce?: number;
}

export interface SubmitResult {
  extrinsicHash: Uint8Array;
  blockHash: Uint8Array;
  blockNumber: number;
  index: number;
  nonce: number;
  /** See ParentchainExtrinsic.success. */
  success: boolean;
  error?: string;
  events: ParentchainEvent[];
  /** Fee estimated before submission (paymentInfo.partialFee). */
  estimatedFee: bigint;
}

export interface Balance {
  free: bigint;
  reserved: bigint;
  frozen: bigint;
}

/** A running scan of finalized blocks; see Parentchain.scanFinalized. */
export interface FinalizedScanner {
  /** The next block number the scanner will deliver (last processed + 1). */
  readonly next: number;
  /** Resolves when stopped; rejects if onBlock threw (the scan stops at that block). */
  readonly done: Promise<void>;
  stop(): Promise<void>;
}

export interface ScanOptions extends BlockOptions {
  /** How many blocks to fetch ahead while earlier ones are processed (default 32). */
  prefetch?: number;
  /** Expected parent hash of the first block: a mismatch stops the scan with PARENTCHAIN_BROKEN_CHAIN. */
  fromParentHash?: Uint8Array;
  /** Called on connection trouble (the scan keeps retrying and resumes where it was). */
  onError?: (err: Error) => void;
}

export interface Parentchain {
  genesisHash(): Uint8Array;
  /** The SS58 prefix the chain uses for addresses. */
  ss58Prefix(): number;
  finalizedHead(): Promise<ParentchainHeader>;
  /** Finalized heads as they come; after a reconnection it continues (numbers may skip: scan by number). */
  subscribeFinalizedHeads(cb: (header: ParentchainHeader) => void): Promise<() => void>;
  header(at: number | Uint8Array): Promise<ParentchainHeader | undefined>;
  blockHash(number: number): Promise<Uint8Array | undefined>;
  block(hash: Uint8Array, options?: BlockOptions): Promise<ParentchainBlock>;
  /**
   * Delivers every finalized block from `fromNumber` on, in order, each exactly once, waiting for
   * onBlock before the next. Walks by number up to the finalized head, so heads skipped by the
   * subscription or produced during an RPC outage are delivered after reconnection.
   */
  scanFinalized(
    fromNumber: number,
    onBlock: (block: ParentchainBlock) => Promise<void> | void,
    options?: ScanOptions,
  ): FinalizedScanner;
  /** Signs with `signer`, submits and waits; throws PARENTCHAIN_INSUFFICIENT_FUNDS when fees cannot be paid. */
  submit(signer: ExtrinsicSigner, call: CallSpec, options?: SubmitOptions): Promise<SubmitResult>;
  estimateFee(signer: ExtrinsicSigner, call: CallSpec): Promise<bigint>;
  balance(account: Uint8Array): Promise<Balance>;
  /** The account's next nonce as the node sees it (its pool included). */
  accountNonce(account: Uint8Array): Promise<number>;
  /** Encodes a CallSpec to call bytes for this chain's current runtime. */
  encodeCall(call: CallSpec): Uint8Array;
  /** Existential deposit of the native token. */
  existentialDeposit(): bigint;
  /** pallet_proxy's deposit per proxy of an account (0 when the runtime has none). */
  proxyDepositFactor(): bigint;
  /**
   * The runtime's metadata bytes (`state_getMetadata`) at block `at` (default: the best block). The enclave
   * derives the call indices it signs with from them; the host gives nothing else about calls.
   */
  metadata(at?: Uint8Array): Promise<Uint8Array>;
  /**
   * For host-side tools: pallet and call indices of the calls the enclave builds, from the current runtime's
   * metadata, and whether proxy.proxy's `real` / proxy.addProxy's `delegate` are bare AccountId32s
   * (older pallet_proxy) rather than MultiAddresses.
   */
  callIndices(): Record<
    'remarkWithEvent' | 'transferKeepAlive' | 'batchAll' | 'proxy' | 'createPure' | 'addProxy' | 'removeProxy',
    { pallet: number; call: number }
  > & { proxyRealAccountId?: boolean; addProxyDelegateAccountId?: boolean };
  close(): Promise<void>;
}
