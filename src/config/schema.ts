// The one configuration schema. Every field has a documented default, so an empty file is a valid
// single-validateer dev config. Loading (file, env, flags) lives in ./load.ts.
import { z } from 'zod';
import { toHex } from '../protocol/bytes.ts';
import { DEV_SHARD } from '../protocol/shard-policy.ts';

const port = z.number().int().min(0).max(65535);
const hex32 = z.string().regex(/^0x[0-9a-fA-F]{64}$/, 'expected 0x followed by 64 hex digits');
/** An account: SS58 address, 0x-hex public key, or a dev URI such as //Alice. */
const accountRef = z.string().min(2);
const amount = z
  .union([z.string().regex(/^[0-9]+$/, 'expected a decimal integer'), z.number().int().nonnegative()])
  .transform((v) => BigInt(v));

export const genesisBalance = z.object({ account: accountRef, amount });

/** A shard policy as JSON (protocol/shard-policy.ts); `validateer shard-policy create` prints one. */
const shardPolicyJson = z.strictObject({
  version: z.literal(1).optional(),
  name: z.string(),
  authorities: z.array(hex32).min(1),
  measurements: z.array(hex32).default([]),
  governance: z.array(hex32).default([]),
});

export const configSchema = z.object({
  /** Where the block store, sealed keys and snapshots live. Relative paths are against the working directory. */
  dataDir: z.string().min(1).default('data/dev'),
  /**
   * Shard id (32 bytes, hex): the hash of the shard policy (`validateer shard-policy create` prints both).
   * The default is the dev shard, the hash of the built-in dev policy.
   */
  shard: hex32.default(toHex(DEV_SHARD)),
  /**
   * The shard policy (its roots of trust: attestation authorities, allowed measurements, governance keys):
   * inline JSON, 0x-hex SCALE bytes, or the path of a file holding either. null = the built-in dev policy,
   * accepted only on the embedded dev chain or with `dev`. The enclave refuses a policy that does not hash to `shard`.
   */
  shardPolicy: z
    .union([z.string().min(1), shardPolicyJson])
    .nullable()
    .default(null),
  /** Accept the dev shard policy (whose attestation authority's key is public) on any parentchain (`--dev`). */
  dev: z.boolean().default(false),
  rpc: z
    .object({
      host: z.string().default('127.0.0.1'),
      port: port.default(2000),
      /**
       * Frames larger than this get -32600 and the connection stays open; a message over 4x this gets -32600, then
       * a 1009 close (the most of a request a connection buffers).
       */
      maxFrameBytes: z
        .number()
        .int()
        .positive()
        .default(1 << 20),
      /** Most requests in one JSON-RPC batch. */
      maxBatch: z.number().int().positive().default(1000),
      maxConnections: z.number().int().positive().default(256),
      /** Most connections from one address (loopback too: behind a local proxy, raise it); over it: close 1013. */
      maxConnectionsPerIp: z.number().int().positive().default(32),
      /** Most live watched calls on one connection; one more gets -32015 TOO_MANY_SUBSCRIPTIONS. */
      maxSubscriptionsPerConnection: z.number().int().positive().default(1024),
      /** A connection that answers no ping and sends nothing for this long is closed (1001). */
      idleTimeoutMs: z.number().int().min(1000).default(120_000),
    })
    .prefault({}),
  metrics: z
    .object({
      enabled: z.boolean().default(true),
      host: z.string().default('127.0.0.1'),
      port: port.default(8787),
    })
    .prefault({}),
  sidechain: z
    .object({
      /** Aura slot length; a block is proposed within 70% of it. */
      slotDurationMs: z.number().int().min(50).default(1000),
      /** Most calls executed in one block. */
      blockMaxCalls: z.number().int().positive().default(20000),
      /** A sealed state snapshot every this many blocks, so restart replays only the tail. */
      snapshotInterval: z.number().int().positive().default(200),
      /**
       * A new state key epoch after this many blocks (besides every change of the validateer set);
       * 0 = only on set changes. A shard-wide rule: every validateer of the shard must use the same value.
       */
      keyRotationBlocks: z.number().int().min(0).default(14_400),
      /** Snapshots kept on disk (older ones are pruned). */
      snapshotsKept: z.number().int().positive().default(2),
    })
    .prefault({}),
  p2p: z
    .object({
      /** libp2p listen multiaddrs; port 0 picks a free port (the registry publishes the bound addresses). */
      listen: z.array(z.string().startsWith('/')).default(['/ip4/127.0.0.1/tcp/0']),
      /**
       * Multiaddrs with /p2p/<peer id> kept dialled besides the registered set (e.g. observers, or a set without a
       * parentchain).
       */
      bootstrap: z.array(z.string().startsWith('/')).default([]),
      maxConnections: z.number().int().positive().default(64),
      /** Largest gossip message (a block with all its encrypted transitions). */
      maxGossipBytes: z
        .number()
        .int()
        .positive()
        .default(8 * 1024 * 1024),
      /** Blocks served per blocks-by-range request, and asked for while syncing. */
      maxBlocksPerRequest: z.number().int().positive().max(4096).default(512),
      /** Timeout of every read and write of a request/response exchange. */
      requestTimeoutMs: z.number().int().positive().default(10_000),
      /** Requests a peer may make per second per protocol (burst: twice that). */
      requestsPerSecond: z.number().positive().default(50),
      /** Enables the dev_setBlockedPeers RPC (tests partition the set with it); never in production. */
      devControl: z.boolean().default(false),
    })
    .prefault({}),
  pool: z
    .object({
      /** Most pending calls held by the enclave. */
      maxPending: z.number().int().positive().default(200000),
      /** Calls with a nonce gap are dropped after this long. */
      futureTtlMs: z.number().int().positive().default(30000),
      /** Furthest a call's nonce may be ahead of the account nonce. */
      maxNonceAhead: z.number().int().positive().default(1024),
      /** Most calls one account may have waiting on a nonce gap, refused beyond (as pool.ts's default). */
      maxFuturePerSender: z.number().int().positive().default(16),
    })
    .prefault({}),
  enclave: z
    .object({
      /** Threads verifying and decrypting calls inside the enclave; 0 = one per core. */
      workers: z.number().int().min(0).max(64).default(0),
      /**
       * Niceness of those threads (0-19, higher yields more). Checking newly submitted calls can wait;
       * a set's block production and import cannot: with the checks at a lower priority, a loaded set
       * keeps its slots and does not fork. 0 = the same priority as the rest of the node.
       */
      workerNice: z.number().int().min(0).max(19).default(10),
      /** Only simulation is implemented; a DCAP provider plugs in behind the same interface. */
      mode: z.literal('simulation').default('simulation'),
      attestation: z
        .object({
          provider: z.literal('simulated').default('simulated'),
          /**
           * Narrows the shard policy's attestation authorities (hex): a subset of them, anything else is
           * refused; empty = the policy's.
           */
          trustedAuthorities: z.array(hex32).default([]),
        })
        .prefault({}),
      /**
       * Narrows the shard policy's enclave measurements (hex): a subset of them (of this build's own when
       * the policy lists none), anything else is refused; empty = the policy's.
       */
      allowedMeasurements: z.array(hex32).default([]),
      /**
       * Derive the shard secrets (shielding and state key) from the shard id, so that a dev set shares
       * them without provisioning. Insecure by construction: for sets without a parentchain only (refused
       * with `parentchain.endpoint`).
       */
      devShardSecrets: z.boolean().default(false),
    })
    .prefault({}),
  parentchain: z
    .object({
      /** WebSocket endpoint of a Substrate node; null = no parentchain (authorities and funds from this file). */
      endpoint: z
        .string()
        .regex(/^wss?:\/\//, 'expected a ws:// or wss:// URL')
        .nullable()
        .default(null),
      /** Trusted genesis hash of the parentchain; null = trust the endpoint's on first start (then sealed). */
      genesisHash: hex32.nullable().default(null),
      /** Start the light client at this finalized block instead of genesis (for long-lived chains). */
      checkpoint: z.object({ number: z.number().int().nonnegative(), hash: hex32 }).nullable().default(null),
      /**
       * Finality votes and anchors are for sidechain blocks at multiples of this (the set votes for the highest one
       * below its head once the previous anchor is final; consensus/finality.ts). At most 128: an enclave votes only
       * for its 256 most recent blocks.
       */
      anchorInterval: z.number().int().positive().max(128).default(10),
      /** Without a majority for our finality vote this long (ms), vote again higher up, or publish it again. */
      voteRetryMs: z.number().int().min(100).default(5000),
      /**
       * Parentchain blocks each fallback submitter waits for a quorum's anchor, after the anchored block's author
       * (who submits at once) and the fallbacks before it. Counted in finalized blocks: keep it above the chain's
       * finality lag (blocks from inclusion to finality), or fallbacks pay for anchors already on their way.
       */
      anchorFallbackBlocks: z.number().int().min(1).max(1000).default(3),
      /** Most parentchain blocks handed to the enclave in one message while catching up. */
      importBatch: z.number().int().min(1).max(4096).default(256),
      /** Blocks fetched ahead while scanning. */
      prefetch: z.number().int().min(1).max(512).default(64),
    })
    .prefault({}),
  /**
   * Block authors (enclave signing keys, hex) until the parentchain registry provides them; empty = this enclave alone.
   */
  authorities: z.array(hex32).default([]),
  genesis: z
    .object({
      /** Endowed accounts of the shard's genesis block. */
      balances: z.array(genesisBalance).default([]),
      /** A JSON file with more endowments (same shape as `balances`), read only when genesis is created. */
      balancesFile: z.string().min(1).nullable().default(null),
    })
    .prefault({}),
  log: z
    .object({
      level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'silent']).default('info'),
    })
    .prefault({}),
});

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
