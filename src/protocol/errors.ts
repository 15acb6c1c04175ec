// Typed errors with stable codes. Each domain lists its codes once, as a union; `ValidateerError`
// accepts only a listed code, so a new code is added here or fails the type check, and code that
// reacts to an error asks `hasCode(err, ...)` instead of casting to read `.code`.

/** Why a call or getter is refused (the enclave's admission, the STF, the pool). Clients match on these. */
export const RejectCode = {
  DECRYPT_FAILED: 'DECRYPT_FAILED',
  DECODE_FAILED: 'DECODE_FAILED',
  BAD_SIGNATURE: 'BAD_SIGNATURE',
  WRONG_SHARD: 'WRONG_SHARD',
  UNKNOWN_SHIELDING_KEY: 'UNKNOWN_SHIELDING_KEY',
  STALE_NONCE: 'STALE_NONCE',
  NONCE_TOO_FAR: 'NONCE_TOO_FAR',
  INSUFFICIENT_BALANCE: 'INSUFFICIENT_BALANCE',
  MEMO_TOO_LONG: 'MEMO_TOO_LONG',
  DUPLICATE: 'DUPLICATE',
  POOL_FULL: 'POOL_FULL',
  NONCE_GAP_EXPIRED: 'NONCE_GAP_EXPIRED',
  // The sender already has the pool's most calls waiting on a nonce gap (pool.ts maxFuturePerSender).
  TOO_MANY_FUTURE: 'TOO_MANY_FUTURE',
  // A transfer of nothing: it would create accounts and store a memo for free.
  ZERO_AMOUNT: 'ZERO_AMOUNT',
  GETTER_EXPIRED: 'GETTER_EXPIRED',
  NO_VAULT: 'NO_VAULT',
  AMOUNT_TOO_SMALL: 'AMOUNT_TOO_SMALL',
  EXCEEDS_SHIELDED_SUPPLY: 'EXCEEDS_SHIELDED_SUPPLY',
  UNKNOWN_WITHDRAWAL: 'UNKNOWN_WITHDRAWAL',
  // A reorg abandoned the call's block and the enclave no longer holds the call to requeue it.
  REORG_DROPPED: 'REORG_DROPPED',
  // A forwarded batch (calls/forwarding.ts): not under the current state key epoch, not from a current
  // member, or not signed by its sender.
  FORWARD_WRONG_EPOCH: 'FORWARD_WRONG_EPOCH',
  FORWARD_NOT_MEMBER: 'FORWARD_NOT_MEMBER',
  FORWARD_BAD_SIGNATURE: 'FORWARD_BAD_SIGNATURE',
} as const;
export type RejectCode = (typeof RejectCode)[keyof typeof RejectCode];

/** Why a sidechain block is refused (authoring, import, gossip validation). */
export const BLOCK_CODES = [
  'BLOCK_BAD_BODY',
  'BLOCK_BAD_COMMITMENT',
  'BLOCK_BAD_EPOCH',
  'BLOCK_BAD_GENESIS',
  'BLOCK_BAD_PARENTCHAIN',
  'BLOCK_BAD_ROTATION',
  'BLOCK_BAD_SIGNATURE',
  'BLOCK_BAD_TRANSITIONS',
  'BLOCK_FROM_FUTURE',
  'BLOCK_MISSING_ROTATION',
  'BLOCK_NOT_CHILD',
  'BLOCK_PARENTCHAIN_BACKWARDS',
  'BLOCK_SLOT_NOT_INCREASING',
  'BLOCK_UNEXPECTED_ROTATION',
  'BLOCK_UNKNOWN_AUTHOR',
  'BLOCK_WRONG_AUTHOR',
  'BLOCK_WRONG_SHARD',
  'BLOCK_WRONG_STATE_KEY',
  'EFFECTS_MISMATCH',
  'EFFECTS_UNKNOWN',
  'SLOT_NOT_AFTER_PARENT',
  'SLOT_ALREADY_SIGNED',
  'NOT_SLOT_AUTHOR',
  'NOT_AUTHORITY',
  'NO_SUCH_PROPOSAL',
  'NOT_CAUGHT_UP',
  'STATE_KEY_UNKNOWN',
  'UNKNOWN_STATE_KEY',
  'UNKNOWN_BLOCK',
  'NO_KEY',
] as const;
export type BlockCode = (typeof BLOCK_CODES)[number];

/**
 * The codes that prove a received block invalid: only a failure with one of these counts against the peer that sent
 * it. Any other failure while importing it (the store's write, e.g. a full disk; the enclave's INTERNAL error, or it
 * closing; a timeout of ours) is a local fault and blames no one. Not here: "not yet" codes (BLOCK_FROM_FUTURE,
 * STATE_KEY_UNKNOWN) and those only our own authoring or state raises (NOT_CAUGHT_UP, SLOT_NOT_AFTER_PARENT, ...).
 */
const INVALID_BLOCK_CODES: ReadonlySet<string> = new Set<BlockCode | 'DECODE_FAILED'>([
  'DECODE_FAILED',
  'BLOCK_BAD_BODY',
  'BLOCK_BAD_COMMITMENT',
  'BLOCK_BAD_EPOCH',
  'BLOCK_BAD_GENESIS',
  'BLOCK_BAD_PARENTCHAIN',
  'BLOCK_BAD_ROTATION',
  'BLOCK_BAD_SIGNATURE',
  'BLOCK_BAD_TRANSITIONS',
  'BLOCK_MISSING_ROTATION',
  'BLOCK_NOT_CHILD',
  'BLOCK_PARENTCHAIN_BACKWARDS',
  'BLOCK_SLOT_NOT_INCREASING',
  'BLOCK_UNEXPECTED_ROTATION',
  'BLOCK_UNKNOWN_AUTHOR',
  'BLOCK_WRONG_AUTHOR',
  'BLOCK_WRONG_SHARD',
  'BLOCK_WRONG_STATE_KEY',
  'EFFECTS_MISMATCH',
  'EFFECTS_UNKNOWN',
  'NOT_AUTHORITY',
]);

/** Whether a block's import failed with `code` because the block is invalid (its sender's fault), not ours. */
export function provesBlockInvalid(code: string | undefined): boolean {
  return code !== undefined && INVALID_BLOCK_CODES.has(code);
}

/** Rebuilding state from the event log: replay, rewind, snapshots, the block store. */
export const REPLAY_CODES = [
  'REPLAY_ABORTED',
  'REPLAY_BROKEN_CHAIN',
  'REPLAY_COMMITMENT_MISMATCH',
  'REPLAY_HEAD_MISMATCH',
  'REPLAYING',
  'NOT_REPLAYING',
  'REWIND_COMMITMENT_MISMATCH',
  'REWIND_UNAVAILABLE',
  'SNAPSHOT_UNSUPPORTED',
  'STORE_BAD_REORG',
  'STORE_FORMAT_UNSUPPORTED',
  'STORE_NOT_NEXT',
  'STORE_OPEN_FAILED',
  'NO_CHAIN',
] as const;
export type ReplayCode = (typeof REPLAY_CODES)[number];

/** The network layer: frames, streams, request/response, peers. */
export const P2P_CODES = [
  'P2P_ALREADY_STARTED',
  'P2P_BAD_HANDLER_RESULT',
  'P2P_BAD_PEER_ID',
  'P2P_BAD_RESPONSE',
  'P2P_BAD_STATUS',
  'P2P_FRAME_TOO_LARGE',
  'P2P_INVALID_ARGUMENT',
  'P2P_INVALID_OPTIONS',
  'P2P_INVALID_REQUEST',
  'P2P_NOT_SERVED',
  'P2P_NOT_STARTED',
  'P2P_NO_PEER',
  'P2P_PEER_KEY_CORRUPT',
  'P2P_PUBLISH_FAILED',
  'P2P_RATE_LIMITED',
  'P2P_REFUSED',
  'P2P_REQUEST_FAILED',
  'P2P_RESPONSE_TOO_LARGE',
  'P2P_SERVER_ERROR',
  'P2P_STREAM_CLOSED',
  'P2P_STREAM_ERROR',
  'P2P_TIMEOUT',
  'P2P_TOO_LARGE',
  'BAD_RANGE',
] as const;
export type P2pCode = (typeof P2P_CODES)[number];

/** Attestation quotes and the provisioning of shard secrets between enclaves. */
export const PROVISION_CODES = [
  'PROVISION_DECRYPT_FAILED',
  'PROVISION_FORGED_QUOTE',
  'PROVISION_HAS_CHAIN',
  'PROVISION_MALFORMED',
  'PROVISION_NOT_READY',
  'PROVISION_REPLAYED',
  'PROVISION_STALE',
  'PROVISION_UNEXPECTED',
  'PROVISION_UNREGISTERED',
  'PROVISION_WRONG_MEASUREMENT',
  'PROVISION_WRONG_SHARD',
  'QUOTE_BAD_SIGNATURE',
  'QUOTE_MALFORMED',
  'QUOTE_MEASUREMENT_NOT_ALLOWED',
  'QUOTE_REPORT_DATA',
  'QUOTE_STALE',
  'QUOTE_UNTRUSTED_AUTHORITY',
  'NOT_MEMBER',
  'NOT_RECIPIENT',
  'PLATFORM_SECRET_CORRUPT',
  'UNSEAL_FAILED',
  'CONFIG_NO_SHARD_SECRETS',
  // the shard policy (protocol/shard-policy.ts): the shard's roots of trust
  'POLICY_MALFORMED',
  'POLICY_SHARD_MISMATCH',
  'POLICY_WIDENED',
  'POLICY_DEV_ONLY',
  'DEV_SECRETS_WITH_PARENTCHAIN',
] as const;
export type ProvisionCode = (typeof PROVISION_CODES)[number];

/** The parentchain: the adapter, the dev chain, the messages in remarks, the duties the enclave signs. */
export const PARENTCHAIN_CODES = [
  'PARENTCHAIN_BAD_ACCOUNT',
  'PARENTCHAIN_BAD_AMOUNT',
  'PARENTCHAIN_BAD_BODY',
  'PARENTCHAIN_BAD_HEADER',
  'PARENTCHAIN_BAD_SEED',
  'PARENTCHAIN_BAD_SIGNER',
  'PARENTCHAIN_BLOCK_UNKNOWN',
  'PARENTCHAIN_BROKEN_CHAIN',
  'PARENTCHAIN_CLOSED',
  'PARENTCHAIN_DEVCHAIN',
  'PARENTCHAIN_DEVCHAIN_EXITED',
  'PARENTCHAIN_DEVCHAIN_START',
  'PARENTCHAIN_DISPATCH_FAILED',
  'PARENTCHAIN_GENESIS_MISMATCH',
  'PARENTCHAIN_HIDDEN_EXTRINSIC',
  'PARENTCHAIN_INSUFFICIENT_FUNDS',
  'PARENTCHAIN_MESSAGE_MALFORMED',
  'PARENTCHAIN_MESSAGE_VERSION',
  'PARENTCHAIN_METADATA_MISMATCH',
  'PARENTCHAIN_METADATA_REQUIRED',
  'PARENTCHAIN_METADATA_STALE',
  'PARENTCHAIN_METADATA_UNSUPPORTED',
  'PARENTCHAIN_MISSING_BLOCK',
  'PARENTCHAIN_NONCE_USED',
  'PARENTCHAIN_RUNTIME_MISMATCH',
  'PARENTCHAIN_SUBMIT_REJECTED',
  'PARENTCHAIN_SUBMIT_TIMEOUT',
  'PARENTCHAIN_TX_DROPPED',
  'PARENTCHAIN_UNAVAILABLE',
  'PARENTCHAIN_UNREACHABLE',
  'PARENTCHAIN_UNSUPPORTED',
  'NO_PARENTCHAIN',
  'ANCHOR_NOT_DESCENDANT',
  'ANCHOR_NO_QUORUM',
  'VOTE_ALREADY_SIGNED',
  'DUTY_IMMORTAL',
  'DUTY_IN_FLIGHT',
  'DUTY_MORTALITY_TOO_LONG',
  'DUTY_WRONG_NONCE',
  'SIGNING_REFUSED',
  'SEALED_STATE_ROLLED_BACK',
] as const;
export type ParentchainCode = (typeof PARENTCHAIN_CODES)[number];

/** The enclave boundary and the RPC client: messages that cannot be exchanged or read. */
export const RPC_CODES = [
  'ENCLAVE_CLOSED',
  'ENCLAVE_EXITED',
  'ENCLAVE_START',
  'NOT_INITIALISED',
  'ALREADY_INITIALISED',
  'UNKNOWN_METHOD',
  'BAD_REQUEST',
  'BAD_REPLY',
  'REPLY_UNREADABLE',
  /** The client's own trust checks (client/trust.ts): an endpoint's key, reply or enclave it cannot vouch for. */
  'UNTRUSTED_SHIELDING_KEY',
  'UNTRUSTED_REPLY',
  'UNTRUSTED_ENCLAVE',
  'REGISTRY_SCAN_LIMIT',
  'UNKNOWN_SHARD_POLICY',
  'CONNECTION_CLOSED',
  'TIMEOUT',
  'INTERNAL',
  /** A JSON-RPC connection's subscription slots (rpc.maxSubscriptionsPerConnection) are all taken. */
  'TOO_MANY_SUBSCRIPTIONS',
] as const;
export type RpcCode = (typeof RPC_CODES)[number];

/** Operator input: configuration and the CLI's commands. */
export const OPERATOR_CODES = [
  'CONFIG_INVALID',
  'BAD_FLAG',
  'BAD_ACCOUNT',
  'BAD_AMOUNT',
  'DEVNET_START',
  'JOIN_NO_PARENTCHAIN',
  'JOIN_UNFUNDED',
  'LEAVE_NODE_RUNNING',
  'LEAVE_NOT_REGISTERED',
  'LEAVE_NO_PARENTCHAIN',
] as const;
export type OperatorCode = (typeof OPERATOR_CODES)[number];

export type ErrorCode =
  RejectCode | BlockCode | ReplayCode | P2pCode | ProvisionCode | ParentchainCode | RpcCode | OperatorCode;

const KNOWN_CODES: ReadonlySet<string> = new Set<string>([
  ...Object.values(RejectCode),
  ...BLOCK_CODES,
  ...REPLAY_CODES,
  ...P2P_CODES,
  ...PROVISION_CODES,
  ...PARENTCHAIN_CODES,
  ...RPC_CODES,
  ...OPERATOR_CODES,
]);

/**
 * A code read off the wire (an enclave reply, a peer's refusal, an RPC error's data) as a listed code, or `fallback`.
 */
export function errorCode(code: string | undefined, fallback: ErrorCode): ErrorCode {
  return code !== undefined && KNOWN_CODES.has(code) ? (code as ErrorCode) : fallback;
}

export class ValidateerError<C extends ErrorCode = ErrorCode> extends Error {
  readonly code: C;
  constructor(code: C, message: string) {
    super(message);
    this.code = code;
    this.name = 'ValidateerError';
  }
}

/** The error's stable code, if it has one (a ValidateerError, or an error that crossed a boundary with its code). */
export function codeOf(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null || !('code' in err)) return undefined;
  const code = (err as { code: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/** Whether `err` carries one of `codes` (with no codes: any code at all). */
export function hasCode<C extends ErrorCode>(err: unknown, ...codes: C[]): err is Error & { code: C } {
  const code = codeOf(err);
  if (code === undefined || !(err instanceof Error)) return false;
  return codes.length === 0 || (codes as string[]).includes(code);
}
