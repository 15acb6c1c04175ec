// The enclave boundary: every request and reply is validated against these schemas on the side that
// receives it. Only bytes, numbers and strings cross; no object of the enclave is ever shared.
import { z } from 'zod';

const bytes = z.custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected bytes');
const bytes32 = bytes.refine((b) => b.length === 32, 'expected 32 bytes');
const bytes64 = bytes.refine((b) => b.length === 64, 'expected 64 bytes');
const status = z.object({
  headNumber: z.number().int(),
  headHash: bytes32,
  accounts: z.number().int(),
  poolSize: z.number().int(),
  stateKeyEpoch: z.number().int(),
});
const submitResults = z.array(
  z.object({
    hash: z.string().optional(),
    status: z.enum(['ready', 'future', 'invalid']),
    code: z.string().optional(),
    message: z.string().optional(),
  }),
);
/**
 * A provisioning step: its result, or a refusal; `verification` = the peer's quote check ('ok', a refusal code, null =
 * not reached).
 */
function provisionOutcome<T extends z.ZodRawShape>(ok: T) {
  return z.discriminatedUnion('ok', [
    z.object({ ok: z.literal(true), verification: z.string().nullable(), ...ok }),
    z.object({ ok: z.literal(false), code: z.string(), message: z.string(), verification: z.string().nullable() }),
  ]);
}
const rejection = z.object({ hash: z.string(), code: z.string(), message: z.string() });

/**
 * A finalized parentchain block for the enclave's light client: header, every extrinsic's bytes, and for each
 * extrinsic whose bytes carry the message magic its dispatch outcome and where its call starts. The enclave decodes
 * those calls itself; the arrays are bounded by the extrinsic count, never by what a call contains.
 */
const importedBlock = z
  .object({
    header: bytes.refine((b) => b.length <= 64 * 1024, 'header larger than 64 KiB'),
    extrinsics: z.array(bytes).max(100_000),
    outcomes: z
      .array(
        z.object({
          index: z.number().int().nonnegative(),
          success: z.boolean(),
          callOffset: z.number().int().nonnegative(),
        }),
      )
      .max(100_000),
  })
  .refine((b) => b.outcomes.length <= b.extrinsics.length, 'more outcomes than extrinsics');
/** A parentchain account nonce (Compact<u32>). */
const nonce = z.number().int().nonnegative().max(0xffff_ffff);
/** As metadata.ts's MAX_METADATA_BYTES. */
const MAX_METADATA_BYTES = 16 * 1024 * 1024;
/** More votes than any authority set has (u16 indices in an anchor). */
const MAX_VOTES = 1024;
const votePayload = z.object({
  shard: bytes32,
  number: z.bigint(),
  hash: bytes32,
  previousAnchor: bytes32,
  parentchainProcessed: z.object({ number: z.number().int(), hash: bytes32 }),
  authoritySetAt: z.number().int(),
});
const parentchainInfo = z.object({
  number: z.number().int(),
  hash: bytes32,
  genesisHash: bytes32,
  members: z.array(
    z.object({
      signingKey: bytes32,
      measurement: bytes32,
      peerId: z.string(),
      p2pAddresses: z.array(z.string()),
      registeredAt: z.number().int(),
      registeredIndex: z.number().int(),
      unregisteredAt: z.number().int().nullable(),
    }),
  ),
  vault: bytes32.nullable(),
  reserveFunded: z.boolean(),
  vaultProxies: z.array(bytes32),
  lastAnchor: z.object({ number: z.number().int(), hash: bytes32, parentchainNumber: z.number().int() }).nullable(),
  dutiesInFlight: z.array(z.string()),
  /** The enclave account's next nonce as the verified blocks show it. */
  accountNonce: nonce,
  pendingEffects: z.number().int(),
  shieldedSupply: z.bigint(),
  unpaidWithdrawals: z.number().int(),
  /** Rollbacks of sealed state detected (keys/signing-guard.ts), and until when duties are refused for one. */
  sealedRollback: z.object({
    rollbacks: z.number().int(),
    dutiesRefusedUntil: z.number().int(),
    lastRollback: z.string().nullable(),
  }),
  /** The highest sidechain number this enclave voted at (sealed), null before its first vote. */
  lastVote: z.object({ number: z.number().int(), hash: bytes32 }).nullable(),
});

export const enclaveApi = {
  info: {
    params: z.object({}),
    result: z.object({
      signingKey: bytes32,
      shieldingKey: bytes32,
      shieldingKeyId: z.number().int(),
      /** Signature of shieldingKeyDigest (protocol/enclave-proofs.ts) for clients; null until it holds the shard's. */
      shieldingKeySignature: bytes.refine((b) => b.length === 64, 'expected 64 bytes').nullable(),
      stateKeyId: z.number().int(),
      encryptionKey: bytes32,
      measurement: bytes32,
      signer: bytes32,
      attestation: z.string(),
      cryptoThreads: z.number().int(),
      secretsOrigin: z.enum(['generated', 'dev', 'provisioned']),
      holdsShardSecrets: z.boolean(),
    }),
  },
  status: { params: z.object({}), result: status },
  genesis: {
    params: z.object({
      balances: z.array(z.object({ account: bytes32, amount: z.bigint().nonnegative() })).max(1_000_000),
      timestampMs: z.number().int(),
    }),
    result: z.object({ block: bytes, hash: bytes32 }),
  },
  beginReplay: {
    params: z.object({ snapshot: bytes.optional(), verifyEach: z.boolean() }),
    result: z.object({ fromNumber: z.number().int() }),
  },
  replayBlocks: {
    params: z.object({ blocks: z.array(bytes).max(100_000) }),
    result: z.object({ headNumber: z.number().int() }),
  },
  finishReplay: {
    params: z.object({}),
    result: status.extend({ blocks: z.number().int(), transitions: z.number().int(), commitment: bytes32 }),
  },
  submit: {
    params: z.object({
      requests: z.array(bytes.refine((b) => b.length <= 64 * 1024, 'request larger than 64 KiB')).max(20_000),
      /** Indices of the requests to re-seal for the other enclaves of the shard once accepted. */
      forward: z.array(z.number().int().nonnegative()).max(20_000).default([]),
    }),
    result: z.object({ results: submitResults, forwarded: bytes.nullable() }),
  },
  submitForwarded: {
    params: z.object({ envelope: bytes.refine((b) => b.length <= 16 * 1024 * 1024, 'envelope larger than 16 MiB') }),
    // Counts, not one result per call: a batch holds thousands, and the host only needs to know whether any was new.
    result: z.object({ accepted: z.number().int(), invalid: z.number().int() }),
  },
  requeue: {
    params: z.object({ hashes: z.array(z.string().regex(/^[0-9a-f]{64}$/)).max(100_000) }),
    // `dropped`: the calls not put back (no longer valid on the new chain, or no longer held), with why.
    result: z.object({ requeued: z.number().int(), dropped: z.array(rejection) }),
  },
  propose: {
    params: z.object({
      slot: z.bigint().nonnegative(),
      timestampMs: z.number().int(),
      maxCalls: z.number().int().positive(),
      deadlineMs: z.number().int().optional(),
    }),
    result: z.object({
      block: bytes,
      hash: bytes32,
      number: z.number().int(),
      included: z.array(z.string()),
      rejected: z.array(rejection),
    }),
  },
  commit: { params: z.object({ hash: bytes32 }), result: status },
  rewind: { params: z.object({ number: z.number().int().nonnegative(), hash: bytes32 }), result: status },
  importBlock: {
    params: z.object({
      block: bytes.refine((b) => b.length <= 64 * 1024 * 1024, 'block larger than 64 MiB'),
      nowMs: z.number().int(),
    }),
    result: z.object({
      hash: bytes32,
      number: z.number().int(),
      slot: z.bigint(),
      author: bytes32,
      calls: z.array(z.string()),
    }),
  },
  importBlocks: {
    params: z.object({ blocks: z.array(bytes).max(4096), nowMs: z.number().int() }),
    result: z.object({
      imported: z.array(z.object({ hash: bytes32, number: z.number().int(), calls: z.array(z.string()) })),
      failure: z.object({ index: z.number().int(), code: z.string(), message: z.string() }).optional(),
      status,
    }),
  },
  slotAuthor: {
    params: z.object({ slot: z.bigint().nonnegative() }),
    result: z.object({ author: bytes32.nullable(), genesisAuthor: bytes32.nullable() }),
  },
  getter: {
    params: z.object({ request: bytes.refine((b) => b.length <= 64 * 1024, 'request larger than 64 KiB') }),
    result: z.object({ reply: bytes }),
  },
  snapshot: { params: z.object({}), result: z.object({ sealed: bytes, number: z.number().int() }) },
  /** A quote over the enclave's own public keys (no caller-chosen report data: see keysQuoteBinding). */
  keysQuote: { params: z.object({}), result: z.object({ quote: bytes }) },
  provisionRequest: { params: z.object({}), result: z.object({ request: bytes }) },
  provisionServe: {
    params: z.object({ request: bytes.refine((b) => b.length <= 16 * 1024, 'request larger than 16 KiB') }),
    result: provisionOutcome({ response: bytes }),
  },
  provisionAccept: {
    params: z.object({
      request: bytes.refine((b) => b.length <= 16 * 1024, 'request larger than 16 KiB'),
      response: bytes.refine((b) => b.length <= 64 * 1024, 'response larger than 64 KiB'),
    }),
    result: provisionOutcome({ stateKeyId: z.number().int() }),
  },
  parentchainInit: {
    params: z.object({
      genesisHash: bytes32,
      checkpoint: z.object({ number: z.number().int().nonnegative(), hash: bytes32 }).optional(),
      // The runtime's metadata: the enclave derives the call indices itself (never taken from the host).
      metadata: bytes.refine((b) => b.length <= MAX_METADATA_BYTES, 'metadata larger than 16 MiB'),
      existentialDeposit: z.bigint().nonnegative(),
      proxyDepositFactor: z.bigint().nonnegative(),
      /** The host's reading of the account's next nonce: a floor for the nonces the enclave hands out. */
      accountNonce: z.number().int().nonnegative().max(0xffff_fffe).optional(),
    }),
    result: parentchainInfo,
  },
  parentchainImport: {
    params: z.object({ blocks: z.array(importedBlock).max(4096) }),
    result: z.object({
      number: z.number().int(),
      hash: bytes32,
      effects: z.number().int(),
      observations: z.array(z.object({ kind: z.string(), detail: z.string() })),
    }),
  },
  parentchainInfo: { params: z.object({}), result: parentchainInfo },
  /** After PARENTCHAIN_METADATA_REQUIRED: the metadata of the runtime in force after the verified head. */
  parentchainMetadata: {
    params: z.object({
      metadata: bytes.refine((b) => b.length <= MAX_METADATA_BYTES, 'metadata larger than 16 MiB'),
    }),
    result: parentchainInfo,
  },
  parentchainLoad: { params: z.object({}), result: z.object({ loaded: z.boolean() }) },
  parentchainDuties: {
    params: z.object({ peerId: z.string().max(128), p2pAddresses: z.array(z.string().max(256)).max(16) }),
    result: z.object({
      duties: z.array(z.object({ key: z.string(), callData: bytes, description: z.string(), nonce })),
    }),
  },
  // Every call the enclave builds comes with the account nonce it is to be signed at (signExtrinsic refuses others).
  unregisterCall: { params: z.object({}), result: z.object({ callData: bytes, nonce }) },
  /** A finality vote for block `number` of the enclave's chain (at most one hash per number, ever). */
  finalityVote: {
    params: z.object({ number: z.number().int().positive() }),
    result: z.object({ payload: votePayload, signer: bytes32, signature: bytes64 }),
  },
  /** An anchor of block `number` with a majority of these votes for it (the enclave checks each). */
  anchorCall: {
    params: z.object({
      number: z.number().int().positive(),
      votes: z.array(z.object({ signer: bytes32, signature: bytes64 })).max(MAX_VOTES),
    }),
    result: z.object({ callData: bytes, nonce }),
  },
  signExtrinsic: {
    params: z.object({
      payload: bytes.refine((b) => b.length > 0 && b.length <= 64 * 1024, 'payload must be 1 byte to 64 KiB'),
    }),
    result: z.object({ signature: bytes.refine((b) => b.length === 64, 'expected 64 bytes') }),
  },
} as const;

export type EnclaveApi = typeof enclaveApi;
export type Method = keyof EnclaveApi;
export type Params<M extends Method> = z.input<EnclaveApi[M]['params']>;
export type Result<M extends Method> = z.output<EnclaveApi[M]['result']>;

/**
 * The enclave thread's side: a handler gets its params as the schema parsed them and returns what the
 * host's result schema accepts. worker.ts checks its table against this (`satisfies`), so a handler
 * whose result drifts from its schema fails the type check instead of a call at run time.
 */
export type EnclaveHandlers = {
  [M in Method]: (
    params: z.output<EnclaveApi[M]['params']>,
  ) => z.input<EnclaveApi[M]['result']> | Promise<z.input<EnclaveApi[M]['result']>>;
};

export interface EnclaveRequest {
  id: number;
  method: string;
  params: unknown;
}
export type EnclaveReply =
  { id: number; ok: true; result: unknown } | { id: number; ok: false; error: { code: string; message: string } };

/** Serializable start options of an enclave (workerData). */
export const enclaveInit = z.object({
  dataDir: z.string(),
  shard: bytes32,
  workers: z.number().int().min(0),
  workerNice: z.number().int().min(0).max(19).optional(),
  pool: z.object({
    maxPending: z.number().int(),
    maxNonceAhead: z.number().int(),
    futureTtlMs: z.number().int(),
    maxFuturePerSender: z.number().int().positive().optional(),
  }),
  authorities: z.array(bytes32),
  shardPolicy: bytes.refine((b) => b.length <= 16 * 1024, 'shard policy larger than 16 KiB'),
  trustedAuthorities: z.array(bytes32).max(64).default([]),
  allowedMeasurements: z.array(bytes32).max(64).default([]),
  dev: z.boolean().optional(),
  slotDurationMs: z.number().int().positive().optional(),
  maxDriftMs: z.number().int().nonnegative().optional(),
  devShardSecrets: z.boolean().optional(),
  keyRotationBlocks: z.number().int().nonnegative().optional(),
});
export type EnclaveInit = z.input<typeof enclaveInit>;
