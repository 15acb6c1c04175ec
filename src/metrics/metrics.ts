// Prometheus metrics of one validateer. Each instance owns its Registry (never prom-client's global one),
// so several nodes in one process (tests, devnet) do not collide. Label values are bounded by construction.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Outcomes of a submitted call; anything else is counted as 'other'. */
export const CALL_RESULTS = ['included', 'invalid', 'rejected_rpc', 'duplicate', 'future_dropped'] as const;
export type CallResult = (typeof CALL_RESULTS)[number];

/** Outcomes of one JSON-RPC request; anything else is counted as 'other'. */
export const RPC_OUTCOMES = ['ok', 'error'] as const;
export type RpcOutcome = (typeof RPC_OUTCOMES)[number];

export const OTHER = 'other';

export interface CreateMetricsOptions {
  buildInfo?: { version: string; commit?: string };
  /** RPC method names that get their own `method` label value; all others are 'other'. */
  rpcMethods?: readonly string[];
}

export interface Metrics {
  readonly registry: Registry;
  readonly buildInfo: Gauge<'version' | 'commit' | 'node_version'>;
  readonly sidechainHeadNumber: Gauge;
  readonly sidechainBlocksProduced: Counter;
  readonly calls: Counter<'result'>;
  readonly callPoolSize: Gauge;
  readonly blockProductionSeconds: Histogram;
  readonly stateAccounts: Gauge;
  readonly stateKeyEpoch: Gauge;
  readonly eventLogEntries: Gauge;
  readonly rpcRequests: Counter<'method' | 'outcome'>;
  readonly rpcConnections: Gauge;
  readonly replayBlocks: Counter;
  readonly snapshots: Counter;
  readonly slotsMissed: Counter;
  readonly syncTargetNumber: Gauge;
  readonly syncBlocks: Counter;
  readonly syncPeers: Gauge;
  readonly provisioning: Counter<'role' | 'result'>;
  readonly attestationVerifications: Counter<'result'>;
  readonly sidechainFinalizedNumber: Gauge;
  readonly parentchainFinalizedNumber: Gauge;
  readonly parentchainProcessedNumber: Gauge;
  readonly parentchainBlocksImported: Counter;
  readonly anchorsSubmitted: Counter;
  readonly parentchainAccountBalance: Gauge;
  readonly parentchainObservations: Counter<'kind'>;
  readonly p2pPeers: Gauge;
  readonly gossipMessages: Counter<'topic' | 'result'>;
  readonly blocksImported: Counter<'result'>;
  readonly blockImportSeconds: Histogram;
  readonly reorgs: Counter;
  readonly reorgDepth: Histogram;
  readonly equivocations: Counter;
  readonly blockPropagationSeconds: Histogram;
  readonly p2pPenalties: Counter;
  /** Counts a gossip message by topic and validation result (bounded label sets). */
  countGossip(topic: string, result: string): void;
  /** The enclave's state gauges after a block: accounts and the state key epoch. */
  observeState(status: { accounts: number; stateKeyEpoch: number }): void;
  /** Counts a sidechain block received from the network by import result (bounded label set). */
  countImport(result: string, n?: number): void;
  /** Counts a parentchain extrinsic this validateer sent; calls outside the known set become 'other'. */
  countParentchainExtrinsic(call: string, result: 'success' | 'failed' | 'error' | 'insufficient_funds'): void;
  /** Counts calls by result; unknown results become 'other' so the label set stays bounded. */
  countCall(result: string, n?: number): void;
  /** Counts an RPC request; methods outside the allow-list and unknown outcomes become 'other'. */
  countRpcRequest(method: string, outcome: string): void;
}

const PARENTCHAIN_CALLS = ['register', 'vault', 'reserve', 'proxy', 'unproxy', 'payout', 'anchor'] as const;
export const GOSSIP_TOPICS = ['blocks', 'calls'] as const;
export const GOSSIP_RESULTS = ['accept', 'ignore', 'reject', 'duplicate', 'too_large'] as const;
/** imported: became canonical; side: valid block on a losing branch; pending: parent or parentchain block not known yet. */
export const IMPORT_RESULTS = ['imported', 'side', 'pending', 'duplicate', 'invalid', 'below_finalized'] as const;
/** Propagation and import: from 1 ms (loopback) to a few slots. */
const PROPAGATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5];

/** 1 ms .. 2 s: a block must be produced within 70% of a (default 1 s) slot. */
const BLOCK_PRODUCTION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2];

export function createMetrics(opts: CreateMetricsOptions = {}): Metrics {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry });
  // prom-client names these gauges *_total, which promtool rejects (counters only); drop them so
  // the endpoint lints clean. Process CPU, memory, heap and event-loop metrics remain.
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(name);

  const buildInfo = new Gauge({
    name: 'validateer_build_info',
    help: 'Build information; the value is always 1.',
    labelNames: ['version', 'commit', 'node_version'] as const,
    registers,
  });
  buildInfo.set(
    { version: opts.buildInfo?.version ?? 'unknown', commit: opts.buildInfo?.commit ?? 'unknown', node_version: process.version },
    1,
  );

  const calls = new Counter({
    name: 'validateer_calls_total',
    help: 'Calls by final result.',
    labelNames: ['result'] as const,
    registers,
  });
  // Known series start at 0 so rate() works from the first scrape.
  for (const result of [...CALL_RESULTS, OTHER]) calls.inc({ result }, 0);

  const rpcRequests = new Counter({
    name: 'validateer_rpc_requests_total',
    help: 'JSON-RPC requests by method and outcome.',
    labelNames: ['method', 'outcome'] as const,
    registers,
  });

  const parentchainExtrinsics = new Counter({
    name: 'validateer_parentchain_extrinsics_total',
    help: 'Parentchain extrinsics sent by this validateer, by call and result (failed: included but dispatch failed; error: not included).',
    labelNames: ['call', 'result'] as const,
    registers,
  });
  const parentchainObservations = new Counter({
    name: 'validateer_parentchain_messages_total',
    help: 'Shard messages seen in finalized parentchain blocks, by kind (ignored: did not verify).',
    labelNames: ['kind'] as const,
    registers,
  });
  const extrinsicCalls = new Set<string>(PARENTCHAIN_CALLS);
  const gossipMessages = new Counter({
    name: 'validateer_gossip_messages_total',
    help: 'Gossip messages received, by topic and validation result (accept: forwarded; ignore: dropped; reject: dropped and sender penalised).',
    labelNames: ['topic', 'result'] as const,
    registers,
  });
  for (const topic of GOSSIP_TOPICS) for (const result of GOSSIP_RESULTS) gossipMessages.inc({ topic, result }, 0);
  const blocksImported = new Counter({
    name: 'validateer_sidechain_blocks_imported_total',
    help: 'Sidechain blocks received from other validateers, by result.',
    labelNames: ['result'] as const,
    registers,
  });
  for (const result of [...IMPORT_RESULTS, OTHER]) blocksImported.inc({ result }, 0);
  const gossipTopics = new Set<string>(GOSSIP_TOPICS);
  const gossipResults = new Set<string>(GOSSIP_RESULTS);
  const importResults = new Set<string>(IMPORT_RESULTS);

  const callResults = new Set<string>(CALL_RESULTS);
  const rpcOutcomes = new Set<string>(RPC_OUTCOMES);
  const rpcMethods = new Set(opts.rpcMethods ?? []);

  return {
    registry,
    buildInfo,
    sidechainHeadNumber: new Gauge({ name: 'validateer_sidechain_head_number', help: 'Number of the sidechain head block.', registers }),
    sidechainBlocksProduced: new Counter({ name: 'validateer_sidechain_blocks_produced_total', help: 'Sidechain blocks produced by this validateer.', registers }),
    calls,
    callPoolSize: new Gauge({ name: 'validateer_call_pool_size', help: 'Calls pending in the enclave call pool.', registers }),
    blockProductionSeconds: new Histogram({
      name: 'validateer_block_production_seconds',
      help: 'Time to produce one sidechain block.',
      buckets: BLOCK_PRODUCTION_BUCKETS,
      registers,
    }),
    stateAccounts: new Gauge({ name: 'validateer_state_accounts', help: 'Accounts in the shard state.', registers }),
    stateKeyEpoch: new Gauge({ name: 'validateer_state_key_epoch', help: 'State key epoch of the head block (a new one when the validateer set changes or on schedule).', registers }),
    eventLogEntries: new Gauge({ name: 'validateer_event_log_entries', help: 'Entries in the event log.', registers }),
    rpcRequests,
    rpcConnections: new Gauge({ name: 'validateer_rpc_connections', help: 'Open JSON-RPC connections.', registers }),
    replayBlocks: new Counter({ name: 'validateer_replay_blocks_total', help: 'Blocks replayed at startup to rebuild state.', registers }),
    snapshots: new Counter({ name: 'validateer_snapshots_total', help: 'State snapshots written.', registers }),
    provisioning: new Counter({ name: 'validateer_provisioning_total', help: 'Shard-secret provisioning exchanges by role (provider, requester) and result (ok or the PROVISION_* refusal code).', labelNames: ['role', 'result'], registers }),
    attestationVerifications: new Counter({ name: 'validateer_attestation_verifications_total', help: 'Peer enclave quotes checked during provisioning, by result (ok or the refusal code).', labelNames: ['result'], registers }),
    syncTargetNumber: new Gauge({ name: 'validateer_sync_target_number', help: 'Onboarding sync: the highest head the serving peers reported (0 when not syncing).', registers }),
    syncBlocks: new Counter({ name: 'validateer_sync_blocks_total', help: 'Onboarding sync: blocks fetched, verified, stored and applied.', registers }),
    syncPeers: new Gauge({ name: 'validateer_sync_peers', help: 'Onboarding sync: peers blocks are being fetched from.', registers }),
    slotsMissed: new Counter({ name: 'validateer_slots_skipped_total', help: 'Own slots skipped because the block could not be proposed within the proposal share of the slot.', registers }),
    sidechainFinalizedNumber: new Gauge({ name: 'validateer_sidechain_finalized_number', help: 'Highest sidechain block anchored in a finalized parentchain block.', registers }),
    parentchainFinalizedNumber: new Gauge({ name: 'validateer_parentchain_finalized_number', help: 'Finalized parentchain head as reported by the node.', registers }),
    parentchainProcessedNumber: new Gauge({ name: 'validateer_parentchain_processed_number', help: 'Last parentchain block verified and processed by the enclave light client.', registers }),
    parentchainBlocksImported: new Counter({ name: 'validateer_parentchain_blocks_imported_total', help: 'Finalized parentchain blocks verified and processed by the enclave.', registers }),
    parentchainAccountBalance: new Gauge({ name: 'validateer_parentchain_account_balance', help: 'Free balance of the enclave account that pays parentchain fees, in base units.', registers }),
    anchorsSubmitted: new Counter({ name: 'validateer_anchors_submitted_total', help: 'Anchor extrinsics included on the parentchain.', registers }),
    parentchainObservations,
    p2pPeers: new Gauge({ name: 'validateer_p2p_peers', help: 'Connected libp2p peers.', registers }),
    gossipMessages,
    blocksImported,
    blockImportSeconds: new Histogram({ name: 'validateer_block_import_seconds', help: 'Time to verify, store and apply one block from another validateer.', buckets: BLOCK_PRODUCTION_BUCKETS, registers }),
    reorgs: new Counter({ name: 'validateer_sidechain_reorgs_total', help: 'Switches of the canonical chain to another branch.', registers }),
    reorgDepth: new Histogram({ name: 'validateer_sidechain_reorg_depth', help: 'Blocks abandoned per reorg.', buckets: [1, 2, 3, 5, 10, 20, 50, 100, 200], registers }),
    equivocations: new Counter({ name: 'validateer_equivocations_total', help: 'Two different blocks seen from one author for one slot.', registers }),
    blockPropagationSeconds: new Histogram({ name: 'validateer_block_propagation_seconds', help: 'From the start of a block\'s slot to its import here.', buckets: PROPAGATION_BUCKETS, registers }),
    p2pPenalties: new Counter({ name: 'validateer_p2p_penalties_total', help: 'Penalties given to peers for invalid blocks, calls or requests.', registers }),
    countGossip(topic, result) {
      gossipMessages.inc({ topic: gossipTopics.has(topic) ? topic : OTHER, result: gossipResults.has(result) ? result : OTHER });
    },
    observeState(status) {
      this.stateAccounts.set(status.accounts);
      this.stateKeyEpoch.set(status.stateKeyEpoch);
    },
    countImport(result, n = 1) {
      blocksImported.inc({ result: importResults.has(result) ? result : OTHER }, n);
    },
    countParentchainExtrinsic(call, result) {
      parentchainExtrinsics.inc({ call: extrinsicCalls.has(call) ? call : OTHER, result });
    },
    countCall(result, n = 1) {
      calls.inc({ result: callResults.has(result) ? result : OTHER }, n);
    },
    countRpcRequest(method, outcome) {
      rpcRequests.inc({
        method: rpcMethods.has(method) ? method : OTHER,
        outcome: rpcOutcomes.has(outcome) ? outcome : OTHER,
      });
    },
  };
}
