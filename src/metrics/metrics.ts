// Prometheus metrics of one validateer. Each instance owns its Registry (never prom-client's global one),
// so several nodes in one process (tests, devnet) do not collide. Label values are bounded by construction.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Outcomes of a submitted call; anything else is counted as 'other'. */
export const CALL_RESULTS = ['included', 'invalid', 'rejected_rpc', 'duplicate', 'future_dropped'] as const;
export type CallResult = (typeof CALL_RESULTS)[number];

/** Outcomes of one JSON-RPC request; anything else is counted as 'other'. */
export const RPC_OUTCOMES = ['ok', 'error'] as const;
/**
 * Finality votes by result: cast (by our enclave), accepted (a peer's, counted), duplicate, stale (at or below the last
 * anchor, or too far ahead), unknown (its authority set is beyond our parentchain view), invalid (malformed, wrong
 * shard, not a member, bad signature), equivocation (a second hash from one signer at one number), refused (our
 * enclave would not vote).
 */
export const VOTE_RESULTS = [
  'cast',
  'accepted',
  'duplicate',
  'stale',
  'unknown',
  'invalid',
  'equivocation',
  'refused',
] as const;
export type RpcOutcome = (typeof RPC_OUTCOMES)[number];

export const OTHER = 'other';

export interface CreateMetricsOptions {
  buildInfo?: { version: string; commit?: string };
  /** RPC method names that get their own `method` label value; all others are 'other'. */
  rpcMethods?: readonly string[];
}

const PARENTCHAIN_CALLS = ['register', 'vault', 'reserve', 'proxy', 'unproxy', 'payout', 'anchor'] as const;
export const GOSSIP_TOPICS = ['blocks', 'calls', 'votes'] as const;
export const GOSSIP_RESULTS = ['accept', 'ignore', 'reject', 'duplicate', 'too_large'] as const;
/**
 * imported: became canonical; side: valid block on a losing branch; pending: parent or parentchain block not known yet.
 */
export const IMPORT_RESULTS = [
  'imported',
  'side',
  'pending',
  'duplicate',
  'invalid',
  'below_finalized',
  'local_fault', // not imported by a fault of ours (the store's write, the enclave's): the sender is not blamed
] as const;
/** Propagation and import: from 1 ms (loopback) to a few slots. */
const PROPAGATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5];

/** 1 ms .. 2 s: a block must be produced within 70% of a (default 1 s) slot. */
const BLOCK_PRODUCTION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2];

type Registers = Registry[];
const gauge =
  <L extends string = never>(name: string, help: string, labelNames: readonly L[] = []) =>
  (registers: Registers) =>
    new Gauge<L>({ name, help, labelNames, registers });
const counter =
  <L extends string = never>(name: string, help: string, labelNames: readonly L[] = []) =>
  (registers: Registers) =>
    new Counter<L>({ name, help, labelNames, registers });
const histogram = (name: string, help: string, buckets: number[]) => (registers: Registers) =>
  new Histogram({ name, help, buckets, registers });

/** Every metric of a validateer, once: the field name the code uses, its Prometheus name, help, labels and buckets. */
const INSTRUMENTS = {
  buildInfo: gauge('validateer_build_info', 'Build information; the value is always 1.', [
    'version',
    'commit',
    'node_version',
  ] as const),
  sidechainHeadNumber: gauge('validateer_sidechain_head_number', 'Number of the sidechain head block.'),
  sidechainBlocksProduced: counter(
    'validateer_sidechain_blocks_produced_total',
    'Sidechain blocks produced by this validateer.',
  ),
  calls: counter('validateer_calls_total', 'Calls by final result.', ['result'] as const),
  callPoolSize: gauge('validateer_call_pool_size', 'Calls pending in the enclave call pool.'),
  blockProductionSeconds: histogram(
    'validateer_block_production_seconds',
    'Time to produce one sidechain block.',
    BLOCK_PRODUCTION_BUCKETS,
  ),
  stateAccounts: gauge('validateer_state_accounts', 'Accounts in the shard state.'),
  stateKeyEpoch: gauge(
    'validateer_state_key_epoch',
    'State key epoch of the head block (a new one when the validateer set changes or on schedule).',
  ),
  eventLogEntries: gauge('validateer_event_log_entries', 'Entries in the event log.'),
  rpcRequests: counter('validateer_rpc_requests_total', 'JSON-RPC requests by method and outcome.', [
    'method',
    'outcome',
  ] as const),
  rpcConnections: gauge('validateer_rpc_connections', 'Open JSON-RPC connections.'),
  replayBlocks: counter('validateer_replay_blocks_total', 'Blocks replayed at startup to rebuild state.'),
  snapshots: counter('validateer_snapshots_total', 'State snapshots written.'),
  provisioning: counter(
    'validateer_provisioning_total',
    'Shard-secret provisioning exchanges by role (provider, requester) and result (ok or the PROVISION_* refusal code).',
    ['role', 'result'] as const,
  ),
  attestationVerifications: counter(
    'validateer_attestation_verifications_total',
    'Peer enclave quotes checked during provisioning, by result (ok or the refusal code).',
    ['result'] as const,
  ),
  syncTargetNumber: gauge(
    'validateer_sync_target_number',
    'Onboarding sync: the highest head the serving peers reported (0 when not syncing).',
  ),
  syncBlocks: counter('validateer_sync_blocks_total', 'Onboarding sync: blocks fetched, verified, stored and applied.'),
  syncPeers: gauge('validateer_sync_peers', 'Onboarding sync: peers blocks are being fetched from.'),
  slotsMissed: counter(
    'validateer_slots_skipped_total',
    'Own slots skipped because the block could not be proposed within the proposal share of the slot.',
  ),
  sidechainFinalizedNumber: gauge(
    'validateer_sidechain_finalized_number',
    'Highest sidechain block anchored in a finalized parentchain block.',
  ),
  parentchainFinalizedNumber: gauge(
    'validateer_parentchain_finalized_number',
    'Finalized parentchain head as reported by the node.',
  ),
  parentchainProcessedNumber: gauge(
    'validateer_parentchain_processed_number',
    'Last parentchain block verified and processed by the enclave light client.',
  ),
  sealedStateRollbacks: gauge(
    'validateer_sealed_state_rollbacks',
    'Rollbacks of the enclave sealed state detected (an older sealed file put back); duties may be refused after one.',
  ),
  parentchainBlocksImported: counter(
    'validateer_parentchain_blocks_imported_total',
    'Finalized parentchain blocks verified and processed by the enclave.',
  ),
  parentchainAccountBalance: gauge(
    'validateer_parentchain_account_balance',
    'Free balance of the enclave account that pays parentchain fees, in base units.',
  ),
  parentchainExtrinsics: counter(
    'validateer_parentchain_extrinsics_total',
    'Parentchain extrinsics sent by this validateer, by call and result (failed: included but dispatch failed; error: not included).',
    ['call', 'result'] as const,
  ),
  anchorsSubmitted: counter('validateer_anchors_submitted_total', 'Anchor extrinsics included on the parentchain.'),
  anchorsIgnored: counter(
    'validateer_anchors_ignored_total',
    "Anchors in finalized parentchain blocks that the enclave's registry ignored (no quorum, stale, not chained).",
  ),
  anchorFees: counter(
    'validateer_parentchain_anchor_fees_total',
    "Parentchain fees of this validateer's included anchors, in base units (per anchor: divide by anchors submitted).",
  ),
  finalityVotes: counter('validateer_finality_votes_total', 'Finality votes by result.', ['result'] as const),
  finalityLag: gauge(
    'validateer_sidechain_finality_lag_blocks',
    'Sidechain head number minus the last final block number.',
  ),
  parentchainObservations: counter(
    'validateer_parentchain_messages_total',
    'Shard messages seen in finalized parentchain blocks, by kind (ignored: did not verify).',
    ['kind'] as const,
  ),
  p2pPeers: gauge('validateer_p2p_peers', 'Connected libp2p peers.'),
  gossipMessages: counter(
    'validateer_gossip_messages_total',
    'Gossip messages received, by topic and validation result (accept: forwarded; ignore: dropped; reject: dropped and sender penalised).',
    ['topic', 'result'] as const,
  ),
  blocksImported: counter(
    'validateer_sidechain_blocks_imported_total',
    'Sidechain blocks received from other validateers, by result.',
    ['result'] as const,
  ),
  blockImportSeconds: histogram(
    'validateer_block_import_seconds',
    'Time to verify, store and apply one block from another validateer.',
    BLOCK_PRODUCTION_BUCKETS,
  ),
  reorgs: counter('validateer_sidechain_reorgs_total', 'Switches of the canonical chain to another branch.'),
  reorgDepth: histogram(
    'validateer_sidechain_reorg_depth',
    'Blocks abandoned per reorg.',
    [1, 2, 3, 5, 10, 20, 50, 100, 200],
  ),
  equivocations: counter('validateer_equivocations_total', 'Two different blocks seen from one author for one slot.'),
  blockPropagationSeconds: histogram(
    'validateer_block_propagation_seconds',
    "From the start of a block's slot to its import here.",
    PROPAGATION_BUCKETS,
  ),
  p2pPenalties: counter(
    'validateer_p2p_penalties_total',
    'Penalties given to peers for invalid blocks, calls or requests.',
  ),
};
type Instruments = { readonly [K in keyof typeof INSTRUMENTS]: ReturnType<(typeof INSTRUMENTS)[K]> };

export interface Metrics extends Instruments {
  readonly registry: Registry;
  /** Counts a gossip message by topic and validation result (bounded label sets). */
  countGossip(topic: string, result: string): void;
  /** The enclave's state gauges after a block: accounts and the state key epoch. */
  observeState(status: { accounts: number; stateKeyEpoch: number }): void;
  /** Counts a sidechain block received from the network by import result (bounded label set). */
  countImport(result: string, n?: number): void;
  /** Counts a parentchain extrinsic this validateer sent; calls outside the known set become 'other'. */
  countParentchainExtrinsic(call: string, result: 'success' | 'failed' | 'error' | 'insufficient_funds'): void;
  /** Counts a finality vote by result (VOTE_RESULTS). */
  countVote(result: (typeof VOTE_RESULTS)[number]): void;
  /** Counts calls by result; unknown results become 'other' so the label set stays bounded. */
  countCall(result: string, n?: number): void;
  /** Counts an RPC request; methods outside the allow-list and unknown outcomes become 'other'. */
  countRpcRequest(method: string, outcome: string): void;
}

export function createMetrics(opts: CreateMetricsOptions = {}): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // prom-client names these gauges *_total, which promtool rejects (counters only); drop them so
  // the endpoint lints clean. Process CPU, memory, heap and event-loop metrics remain.
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'])
    registry.removeSingleMetric(name);

  const registers = [registry];
  const made = Object.fromEntries(
    Object.entries(INSTRUMENTS).map(([key, make]) => [key, make(registers)]),
  ) as unknown as Instruments;
  const { buildInfo, calls, gossipMessages, blocksImported, parentchainExtrinsics, rpcRequests } = made;
  buildInfo.set(
    {
      version: opts.buildInfo?.version ?? 'unknown',
      commit: opts.buildInfo?.commit ?? 'unknown',
      node_version: process.version,
    },
    1,
  );
  // Known series start at 0 so rate() works from the first scrape.
  for (const result of [...CALL_RESULTS, OTHER]) calls.inc({ result }, 0);
  for (const topic of GOSSIP_TOPICS) for (const result of GOSSIP_RESULTS) gossipMessages.inc({ topic, result }, 0);
  for (const result of [...IMPORT_RESULTS, OTHER]) blocksImported.inc({ result }, 0);
  for (const result of VOTE_RESULTS) made.finalityVotes.inc({ result }, 0);

  const bounded = (values: readonly string[]) => {
    const known = new Set<string>(values);
    return (value: string) => (known.has(value) ? value : OTHER);
  };
  const gossipTopic = bounded(GOSSIP_TOPICS);
  const gossipResult = bounded(GOSSIP_RESULTS);
  const importResult = bounded(IMPORT_RESULTS);
  const extrinsicCall = bounded(PARENTCHAIN_CALLS);
  const callResult = bounded(CALL_RESULTS);
  const rpcOutcome = bounded(RPC_OUTCOMES);
  const rpcMethod = bounded(opts.rpcMethods ?? []);

  return {
    ...made,
    registry,
    countGossip(topic, result) {
      gossipMessages.inc({ topic: gossipTopic(topic), result: gossipResult(result) });
    },
    observeState(status) {
      made.stateAccounts.set(status.accounts);
      made.stateKeyEpoch.set(status.stateKeyEpoch);
    },
    countImport(result, n = 1) {
      blocksImported.inc({ result: importResult(result) }, n);
    },
    countParentchainExtrinsic(call, result) {
      parentchainExtrinsics.inc({ call: extrinsicCall(call), result });
    },
    countVote(result) {
      made.finalityVotes.inc({ result });
    },
    countCall(result, n = 1) {
      calls.inc({ result: callResult(result) }, n);
    },
    countRpcRequest(method, outcome) {
      rpcRequests.inc({ method: rpcMethod(method), outcome: rpcOutcome(outcome) });
    },
  };
}
