// `npm run bench [-- --json] [-- --calls N] [-- --only sidechain|enclave|parentchain|devnet|set|onboarding|finality]`:
// throughput,
// latency, ceiling, replay speed and RSS (sidechain), the enclave thread's CPU per call (enclave), parentchain catch-up
// speed (parentchain), the
// time from starting the devnet to its first anchored block (devnet), and a set of validateers over
// libp2p: block propagation, orphaned blocks, throughput with calls spread over the set (set;
// BENCH_SET_SECONDS sets its steady phase, default 180), and a validateer joining a set with a long
// chain: blocks/s fetched, verified and replayed from three peers, start to first own block (onboarding;
// BENCH_ONBOARDING_BLOCKS sets the chain's length, default 20000), and finality on the chopsticks devnet at 2 s and
// at 12 s parentchain blocks: lag in blocks and seconds from a block's slot, anchors per minute and the parentchain
// fee per anchor (finality; BENCH_FINALITY_SECONDS sets each steady phase, default 90).
// Every figure is measured in this run on this machine; nothing is carried over.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { connectRpc } from '../src/client/rpc.ts';
import { genesisBalances } from './accounts.ts';
import { measureCeiling } from './ceiling.ts';
import { runLoad } from './load.ts';
import { startNodeProcess, stopChildren } from './node-process.ts';
import { benchParentchain } from './parentchain.ts';
import { benchDevnetStart } from './devnet.ts';
import { benchSet } from './set.ts';
import { benchOnboarding } from './onboarding.ts';
import { benchEnclave } from './enclave.ts';
import { benchFinality, finalityRows } from './finality.ts';
import { cpuSeconds, sampleRss } from './proc-stats.ts';
import { benchTransfers } from './transfers.ts';
import { nodeProcessEnv } from '../src/node/process-env.ts';
import { fromHex } from '../src/protocol/bytes.ts';

const { values: args } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    calls: { type: 'string', default: '60000' },
    accounts: { type: 'string', default: '100000' },
    senders: { type: 'string', default: '6000' },
    connections: { type: 'string', default: '4' },
    'slot-ms': { type: 'string', default: '250' },
    /**
     * Run one part only: 'sidechain' (ceiling, load, replay), 'enclave' (the enclave thread's CPU per call,
     * in-process), 'parentchain' (catch-up), 'devnet' (start to first anchor), 'set' (validateer set), 'onboarding'
     * (a joiner syncing a long chain) or 'finality' (finality lag and fees on the devnet). Default: all.
     */
    only: { type: 'string' },
    'pc-blocks': { type: 'string', default: '600' },
    'pc-prefetch': { type: 'string', default: '64' },
    'pc-import-batch': { type: 'string', default: '256' },
    'pc-repeats': { type: 'string', default: '3' },
    'set-validateers': { type: 'string', default: '4' },
    /** enclave.workers of each node of the set (2 cores shared by all of them). */
    'set-workers': { type: 'string', default: '1' },
    /** Load connections, spread round-robin over the set's nodes. */
    'set-connections': { type: 'string', default: '4' },
    'set-probe-ms': { type: 'string', default: '50' },
    /** sidechain.blockMaxCalls of the set's nodes (default: the node's default). */
    'set-block-max-calls': { type: 'string' },
    /** Validateers of the finality part's devnet. */
    'finality-validateers': { type: 'string', default: '3' },
    /** Parentchain block times (ms) the finality part measures at, comma-separated. */
    'finality-block-ms': { type: 'string', default: '2000,12000' },
  },
});
const PARTS = ['sidechain', 'enclave', 'parentchain', 'devnet', 'set', 'onboarding', 'finality'];
if (args.only !== undefined && !PARTS.includes(args.only)) {
  console.error(`--only must be one of ${PARTS.join(', ')}, not '${args.only}'`);
  process.exit(2);
}
const runSidechain = args.only === undefined || args.only === 'sidechain';
const runEnclave = args.only === undefined || args.only === 'enclave';
const runParentchain = args.only === undefined || args.only === 'parentchain';
const runDevnet = args.only === undefined || args.only === 'devnet';
const runSet = args.only === undefined || args.only === 'set';
const runOnboarding = args.only === undefined || args.only === 'onboarding';
const runFinality = args.only === undefined || args.only === 'finality';
const setSeconds = Number(process.env.BENCH_SET_SECONDS ?? 180);
if (!(setSeconds > 0)) {
  console.error(`BENCH_SET_SECONDS must be a positive number of seconds, not '${process.env.BENCH_SET_SECONDS}'`);
  process.exit(2);
}
const onboardingBlocks = Number(process.env.BENCH_ONBOARDING_BLOCKS ?? 20000);
if (!Number.isInteger(onboardingBlocks) || onboardingBlocks < 1000) {
  console.error(
    `BENCH_ONBOARDING_BLOCKS must be an integer >= 1000 (the joiner onboards only more than p2p.maxBlocksPerRequest behind), not '${process.env.BENCH_ONBOARDING_BLOCKS}'`,
  );
  process.exit(2);
}
const finalitySeconds = Number(process.env.BENCH_FINALITY_SECONDS ?? 90);
if (!(finalitySeconds > 0)) {
  console.error(
    `BENCH_FINALITY_SECONDS must be a positive number of seconds, not '${process.env.BENCH_FINALITY_SECONDS}'`,
  );
  process.exit(2);
}
const finalityBlockMs = args['finality-block-ms'].split(',').map(Number);
if (!finalityBlockMs.every((x) => Number.isInteger(x) && x >= 100)) {
  console.error(`--finality-block-ms must be integers >= 100, comma-separated, not '${args['finality-block-ms']}'`);
  process.exit(2);
}
const log = (s: string) => {
  if (!args.json) console.error(s);
};

const dir = mkdtempSync(join(tmpdir(), 'validateer-bench-'));
// Ctrl-C or a kill: every node the bench started is stopped and the temp dir removed.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`${signal}: stopping the bench's processes ...`);
    void stopChildren().finally(() => {
      rmSync(dir, { recursive: true, force: true });
      process.exit(130);
    });
  });
}

async function main() {
  const figures: Record<string, number | string> = {};
  try {
    if (runSidechain) await benchSidechain(dir, figures);
    if (runEnclave) Object.assign(figures, await benchEnclave({ accounts: Number(args.accounts), calls: 48_000, log }));
    if (runDevnet) Object.assign(figures, await benchDevnetStart(dir, log));
    if (runParentchain) {
      Object.assign(
        figures,
        await benchParentchain({
          blocks: Number(args['pc-blocks']),
          prefetch: Number(args['pc-prefetch']),
          importBatch: Number(args['pc-import-batch']),
          repeats: Number(args['pc-repeats']),
          log,
        }),
      );
    }
    if (runSet) {
      Object.assign(
        figures,
        await benchSet(dir, {
          validateers: Number(args['set-validateers']),
          slotMs: Number(args['slot-ms']),
          seconds: setSeconds,
          workers: Number(args['set-workers']),
          calls: Number(args.calls),
          accounts: Number(args.accounts),
          senders: Number(args.senders),
          connections: Number(args['set-connections']),
          probeMs: Number(args['set-probe-ms']),
          blockMaxCalls: args['set-block-max-calls'] ? Number(args['set-block-max-calls']) : null,
          singleCallsPerS: runSidechain ? Number(figures.calls_per_s) : null,
          singleConnections: Number(args.connections),
          log,
        }),
      );
    }
    if (runOnboarding)
      Object.assign(
        figures,
        await benchOnboarding(dir, { blocks: onboardingBlocks, slotMs: Number(args['slot-ms']), log }),
      );
    if (runFinality)
      Object.assign(
        figures,
        await benchFinality(dir, {
          validateers: Number(args['finality-validateers']),
          blockTimesMs: finalityBlockMs,
          seconds: finalitySeconds,
          log,
        }),
      );
  } finally {
    await stopChildren();
    if (process.env.BENCH_KEEP_DIR) log(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }

  if (args.json) {
    console.log(JSON.stringify(figures));
  } else {
    const mib = (k: string) => `${(Number(figures[k]) / 2 ** 20).toFixed(0)} MiB`;
    const rows: [string, string, string][] = [];
    if (runSidechain) {
      rows.push(
        ['throughput into blocks', `${figures.calls_per_s} calls/s`, 'target >= 5000'],
        ['latency submit -> inBlock p50', `${figures.latency_p50_ms} ms`, `slot ${figures.slot_ms} ms`],
        ['latency submit -> inBlock p99', `${figures.latency_p99_ms} ms`, ''],
        [
          'calls included / submitted',
          `${figures.calls_included} / ${figures.calls_submitted}`,
          `${figures.calls_invalid} invalid`,
        ],
        ['node peak RSS', mib('node_peak_rss_bytes'), ''],
        [
          'verify+decrypt ceiling',
          `${figures.ceiling_calls_per_s} calls/s`,
          `${figures.ceiling_per_core_calls_per_s}/core x ${figures.cores} cores (per core before / after the load: ${figures.ceiling_per_core_before_calls_per_s} / ${figures.ceiling_per_core_after_calls_per_s})`,
        ],
        [
          'CPU per call: node / load generator',
          `${figures.node_cpu_us_per_call} / ${figures.loadgen_cpu_us_per_call} us`,
          `verify+decrypt alone: ${figures.verify_cpu_us_per_call} us`,
        ],
        ['throughput / ceiling', `${(Number(figures.ceiling_ratio) * 100).toFixed(0)} %`, 'target >= 50 %'],
        [
          'replay from genesis',
          `${figures.replay_transitions_per_s} transitions/s`,
          `${figures.replay_transitions} transitions, ${figures.replay_blocks} blocks; target >= 200000`,
        ],
        ['RSS after replay', mib('replay_rss_bytes'), `${figures.replay_accounts} accounts; target < 300 MiB`],
      );
    }
    if (runEnclave) {
      rows.push(
        [
          'enclave thread: admission',
          `${figures.enclave_admit_us_per_call} us/call`,
          `CPU of the enclave thread, in-process, after verification (crypto threads excluded), sealing for forwarding included; ${figures.enclave_calls} transfers, 100k accounts`,
        ],
        [
          'enclave thread: propose + commit',
          `${figures.enclave_block_us_per_call} us/call`,
          `blocks of ${2000} calls: STF, state commitment, sealing, apply`,
        ],
        [
          '  another enclave of the set',
          `${figures.enclave_forwarded_admit_us_per_call} + ${figures.enclave_import_us_per_call} us/call`,
          'what each other validateer pays: admitting the forwarded batch + importing the block',
        ],
      );
    }
    if (runDevnet) {
      rows.push([
        'devnet start -> first anchored block',
        `${figures.devnet_first_anchor_s} s`,
        `block #${figures.devnet_first_anchor_number}; endpoints printed after ${figures.devnet_running_s} s (what \`npm start\` does)`,
      ]);
    }
    if (runParentchain) {
      rows.push(
        [
          'parentchain backlog',
          `${figures.pc_backlog_blocks} blocks`,
          `${figures.pc_signed_extrinsics} signed extrinsics, ${figures.pc_remarks} remarks (${figures.pc_vldtr_remarks_other_shard} vldtr, other shard); built in ${(Number(figures.pc_build_ms) / 1000).toFixed(0)} s`,
        ],
        [
          'parentchain catch-up, first run',
          `${figures.pc_sync_blocks_per_s} blocks/s`,
          `first blocks this process decodes: ${figures.pc_sync_ms} ms, ${figures.pc_sync_cpu_us_per_block} us CPU/block, ${figures.pc_sync_rpcs_per_block} RPCs/block; target >= 1000`,
        ],
        [
          'parentchain catch-up, median',
          `${figures.pc_sync_median_blocks_per_s} blocks/s`,
          `of ${figures.pc_repeats} runs (ParentchainSync + enclave, fresh each); target >= 1000`,
        ],
        [
          '  enclave import alone',
          `${figures.pc_enclave_blocks_per_s} blocks/s`,
          `first run: ${figures.pc_enclave_import_ms} ms in ${figures.pc_enclave_import_calls} calls (host side: zod ${figures.pc_zod_params_ms} ms, clone ${figures.pc_clone_ms} ms); median ${figures.pc_enclave_median_blocks_per_s}`,
        ],
        [
          '  fetch + decode all, alone',
          `${figures.pc_fetch_median_blocks_per_s} blocks/s`,
          `median of ${figures.pc_repeats} scans with a no-op consumer; ${figures.pc_fetch_rpcs_per_block} RPCs/block, first scan ${figures.pc_fetch_cpu_us_per_block} us CPU/block`,
        ],
        [
          'parentchain bench RSS, peak',
          mib('pc_bench_peak_rss_bytes'),
          `bench process incl. enclave threads (${mib('pc_bench_rss_at_start_bytes')} at start); dev chain process ${mib('pc_devchain_rss_bytes')}`,
        ],
      );
    }
    if (runSet) {
      const f = figures;
      const le = (v: number | string) => (typeof v === 'number' ? `<= ${v} ms` : `${v} ms`);
      const mibs = (k: string) =>
        String(f[k])
          .split(' ')
          .map((x) => (Number(x) / 2 ** 20).toFixed(0))
          .join(' / ');
      rows.push(
        [
          `set: ${f.set_validateers} validateers, no parentchain`,
          `${f.set_slot_ms} ms slots`,
          `enclave.workers ${f.set_workers}, blockMaxCalls ${f.set_block_max_calls} each; steady phase ${f.set_steady_s} s, then ${f.set_calls_submitted} calls`,
        ],
        [
          '  block propagation p50',
          `${f.set_propagation_p50_ms} ms`,
          `slot start -> import at each non-author node, per block (${f.set_propagation_samples} samples, ${(Number(f.set_propagation_coverage) * 100).toFixed(0)} % of block x node pairs)`,
        ],
        [
          '  block propagation p99',
          `${f.set_propagation_p99_ms} ms`,
          `target < 50; max ${f.set_propagation_max_ms} ms, ${f.set_propagation_over_50ms} samples > 50 ms`,
        ],
        [
          "  ... from the nodes' histograms",
          `p50 ${le(f.set_propagation_hist_p50_le_ms)}, p99 ${le(f.set_propagation_hist_p99_le_ms)}`,
          `bucket upper bounds of validateer_block_propagation_seconds, ${f.set_propagation_hist_count} imports`,
        ],
        [
          '  slot start -> block at its author',
          `p50 ${f.set_authored_p50_ms} / p99 ${f.set_authored_p99_ms} ms`,
          'included in the propagation figures',
        ],
        [
          '  block production / import time',
          `p99 ${le(f.set_production_p99_le_ms)} / ${le(f.set_import_p99_le_ms)}`,
          `histogram bucket bounds; p50 ${le(f.set_production_p50_le_ms)} / ${le(f.set_import_p50_le_ms)}`,
        ],
        [
          '  orphaned blocks, steady',
          `${f.set_steady_orphans_per_1000} per 1000`,
          `target <= 1; ${f.set_steady_orphans} = ${f.set_steady_blocks_produced} produced (sum of blocks_produced_total) - ${f.set_steady_blocks_canonical} canonical in ${f.set_steady_slots} slots; per node ${f.set_steady_orphans_per_node}`,
        ],
        [
          "  other processes' CPU share",
          `${(Number(f.set_steady_other_cpu_share) * 100).toFixed(0)} % steady, ${(Number(f.set_load_other_cpu_share) * 100).toFixed(0)} % load`,
          "of the machine's cores, not used by the set or the bench: > 5 % disturbs the figures",
        ],
        [
          '  reorgs / side blocks, steady',
          `${f.set_steady_reorgs} / ${f.set_steady_side_blocks}`,
          `reorg depth sum ${f.set_steady_reorg_depth_sum}; empty slots ${f.set_steady_empty_slots_per_1000} per 1000`,
        ],
        [
          '  orphaned blocks, under load',
          `${f.set_load_orphans_per_1000} per 1000`,
          `${f.set_load_orphans} of ${f.set_load_blocks_produced} produced; ${f.set_load_reorgs} reorgs; empty slots ${f.set_load_empty_slots_per_1000} per 1000`,
        ],
        [
          '  throughput into canonical blocks',
          `${f.set_calls_per_s} calls/s`,
          `${f.set_calls_canonical} calls in ${f.set_load_s} s over ${f.set_connections} connections (per node ${f.set_calls_submitted_per_node}); ${f.set_calls_invalid} invalid (${f.set_calls_invalid_codes})`,
        ],
        [
          '  calls lost',
          `${f.set_calls_lost} of ${f.set_calls_submitted}`,
          `valid, but not on the canonical chain after convergence (author_callBlock); probes: ${f.set_probes_lost} of ${f.set_probes_sent}`,
        ],
        [
          '  single validateer, same calls',
          `${f.set_single_calls_per_s} calls/s`,
          `${f.set_single_source}; set / single ${(Number(f.set_throughput_ratio) * 100).toFixed(0)} %, target >= 50 %`,
        ],
        [
          '  latency submit -> inBlock p50 / p99',
          `${f.set_latency_p50_ms} / ${f.set_latency_p99_ms} ms`,
          f.set_single_latency_p50_ms === undefined
            ? ''
            : `single: ${f.set_single_latency_p50_ms} / ${f.set_single_latency_p99_ms} ms`,
        ],
        [
          '  CPU per call: all nodes / loadgen',
          `${f.set_node_cpu_us_per_call} / ${f.set_loadgen_cpu_us_per_call} us`,
          f.set_single_node_cpu_us_per_call === undefined
            ? `node CPU s, steady: ${f.set_steady_cpu_s_per_node}`
            : `single node: ${f.set_single_node_cpu_us_per_call} us; node CPU s, steady: ${f.set_steady_cpu_s_per_node}`,
        ],
        [
          '  peak RSS per node',
          `${mibs('set_peak_rss_bytes_per_node')} MiB`,
          f.set_single_peak_rss_bytes === undefined
            ? 'VmHWM'
            : `VmHWM; single node ${mib('set_single_peak_rss_bytes')}`,
        ],
        ['  warnings logged', String(f.set_log_warnings).slice(0, 60), ''],
      );
    }
    if (runOnboarding) {
      const f = figures;
      const pct = (v: number | string | undefined) => (v === undefined ? 'n/a' : `${(Number(v) * 100).toFixed(0)} %`);
      rows.push(
        [
          `onboarding: ${f.onb_sync_blocks} blocks from ${f.onb_sync_peers} peers`,
          `${f.onb_sync_blocks_per_s} blocks/s`,
          `fetched, verified, replayed, stored (joiner's 'onboarding sync done': ${f.onb_sync_ms} ms); target >= 5000`,
        ],
        [
          "  same, wall time of the joiner's log",
          `${f.onb_sync_wall_blocks_per_s} blocks/s`,
          `'onboarding sync started' -> 'done': ${f.onb_sync_wall_s} s, #${f.onb_sync_from}..#${f.onb_sync_to}; progress lines min/median/max ${f.onb_progress_blocks_per_s} blocks/s`,
        ],
        [
          '  joiner start -> first own block',
          `${f.onb_first_block_s} s`,
          `block #${f.onb_first_block_number} (its timestamp), ${f.onb_first_block_after_sync_s} s after sync done; in the servers' chain: ${f.onb_first_block_in_servers}; seen in metrics at ${f.onb_first_block_metric_s} s`,
        ],
        [
          '  joiner start -> sync start / done',
          `${f.onb_spawn_to_sync_start_s} / ${f.onb_spawn_to_sync_done_s} s`,
          `enclave up ${f.onb_spawn_to_enclave_s} s, p2p up ${f.onb_spawn_to_p2p_s} s`,
        ],
        [
          '  peers fetched from',
          `${f.onb_sync_peers}`,
          `of ${f.onb_servers} servers (validateer_sync_peers max ${f.onb_sync_peers_metric_max}); ${f.onb_sync_dropped} dropped; ${f.onb_batch} blocks per request`,
        ],
        [
          '  joiner peak RSS / CPU',
          `${mib('onb_joiner_peak_rss_bytes')} / ${f.onb_joiner_cpu_s} s`,
          `VmHWM (${mib('onb_joiner_peak_rss_before_sync_bytes')} before the sync; a server: ${mib('onb_server_peak_rss_bytes')}); CPU of all its threads until its first block`,
        ],
        [
          '  CPU share during the sync',
          `joiner ${pct(f.onb_sync_cpu_share_joiner)}, servers ${pct(f.onb_sync_cpu_share_servers)}`,
          `of ${f.onb_sync_cpu_window_s} s x all cores; servers ${f.onb_sync_servers_cpu_s} s; other processes ${pct(f.onb_sync_cpu_share_other)}`,
        ],
        [
          '  chain generated offline',
          `${f.onb_gen_s} s`,
          `${f.onb_blocks_generated} blocks by one authority, ${f.onb_gen_calls} transfers in ${f.onb_gen_active_blocks} of them; ${mib('onb_chain_bytes')} on disk; servers' replay at start ${f.onb_server_replay_ms} ms`,
        ],
        [
          '  breakdown: fetch alone',
          `${f.onb_fetch_alone_blocks_per_s} blocks/s`,
          `blocks-by-range from ${f.onb_fetch_alone_peers} servers, 2 in flight each, nothing applied (${f.onb_fetch_alone_ms} ms)`,
        ],
        [
          '  breakdown: apply alone',
          `${f.onb_apply_alone_blocks_per_s} blocks/s`,
          `${f.onb_apply_batches} batches: importBlocks ${f.onb_import_ms_per_batch} ms (max ${f.onb_import_max_ms}) + decode ${f.onb_describe_ms_per_batch} ms + appendMany ${f.onb_append_ms_per_batch} ms (max ${f.onb_append_max_ms}) per batch`,
        ],
        [
          '    enclave importBlocks / store appendMany',
          `${f.onb_import_blocks_per_s} / ${f.onb_append_blocks_per_s} blocks/s`,
          `enclave core in-thread, no messaging: ${f.onb_core_import_blocks_per_s} blocks/s`,
        ],
        ['  warnings logged', String(f.onb_log_warnings).slice(0, 60), ''],
      );
    }
    if (runFinality) rows.push(...finalityRows(figures, finalityBlockMs));
    const w0 = Math.max(...rows.map((r) => r[0].length)),
      w1 = Math.max(...rows.map((r) => r[1].length));
    console.log(`${'figure'.padEnd(w0)}  ${'value'.padEnd(w1)}  note`);
    for (const [a, b, n] of rows) console.log(`${a.padEnd(w0)}  ${b.padEnd(w1)}  ${n}`);
  }
}

async function benchSidechain(dir: string, figures: Record<string, number | string>): Promise<void> {
  const calls = Number(args.calls),
    accounts = Number(args.accounts),
    senders = Number(args.senders);
  // The machine's speed drifts by tens of percent over minutes here: the ceiling is measured on the idle
  // machine before and after the load, and their mean is the one the throughput is compared with.
  log('measuring the verify+decrypt ceiling ...');
  const before = measureCeiling();

  log(`starting a validateer with ${accounts} genesis accounts ...`);
  const balancesFile = join(dir, 'genesis-balances.json');
  writeFileSync(balancesFile, JSON.stringify(genesisBalances(accounts, 1_000_000_000n)));
  const config = {
    dataDir: join(dir, 'data'),
    sidechain: { slotDurationMs: Number(args['slot-ms']), snapshotInterval: 100000 },
    pool: { maxPending: 200000, maxNonceAhead: 1024 },
    genesis: { balancesFile: balancesFile },
    // The load keeps thousands of calls watched per connection, over --connections of them from loopback.
    rpc: { maxSubscriptionsPerConnection: 1_000_000, maxConnectionsPerIp: 256 },
    log: { level: 'warn' },
  };
  const node = await startNodeProcess(dir, config);
  let peakRss = 0;
  const rssTimer = setInterval(async () => {
    peakRss = Math.max(peakRss, await sampleRss(node.proc.pid!));
  }, 250);
  try {
    const rpc = await connectRpc(node.rpcUrl);
    const k = await rpc.request<{ shard: string; keyId: number; publicKey: string }>('author_getShieldingKey');
    await rpc.close();
    const shard = fromHex(k.shard);
    const key = { keyId: k.keyId, publicKey: fromHex(k.publicKey) };
    log(`pre-signing and encrypting ${calls} transfers from ${senders} senders ...`);
    const requests = benchTransfers({ calls, senders, accounts, key, shard });
    log('driving load over JSON-RPC ...');
    const nodeCpu0 = cpuSeconds(node.proc.pid!);
    const r = await runLoad(node.rpcUrl, requests, {
      connections: Number(args.connections),
      batch: 250,
      window: 4,
      timeoutMs: 180_000,
    });
    // Where the 2 cores went, per included call: the node (all its threads) and the load generator.
    figures.node_cpu_us_per_call = Math.round(((cpuSeconds(node.proc.pid!) - nodeCpu0) * 1e6) / r.included);
    figures.loadgen_cpu_us_per_call = Math.round((r.cpuSeconds * 1e6) / r.included);
    figures.calls_submitted = r.submitted;
    figures.calls_included = r.included;
    figures.calls_invalid = r.invalid + r.rpcErrors;
    figures.calls_per_s = Math.round(r.callsPerSecond);
    figures.latency_p50_ms = Math.round(r.latencyMs.p50);
    figures.latency_p99_ms = Math.round(r.latencyMs.p99);
    figures.slot_ms = Number(args['slot-ms']);
  } finally {
    clearInterval(rssTimer);
    await node.stop();
  }
  figures.node_peak_rss_bytes = peakRss;
  log('measuring the verify+decrypt ceiling again ...');
  const after = measureCeiling();
  const perCore = (before.perCore + after.perCore) / 2;
  const ceiling = perCore * before.cores;
  figures.ceiling_per_core_before_calls_per_s = Math.round(before.perCore);
  figures.ceiling_per_core_after_calls_per_s = Math.round(after.perCore);
  figures.ceiling_per_core_calls_per_s = Math.round(perCore);
  figures.cores = before.cores;
  figures.ceiling_calls_per_s = Math.round(ceiling);
  figures.verify_cpu_us_per_call = Math.round(1e6 / perCore);
  figures.ceiling_ratio = Number((Number(figures.calls_per_s) / ceiling).toFixed(3));

  log('replaying the whole event log from genesis in a fresh process ...');
  const cfgFile = join(dir, 'config.json');
  const rep = spawnSync(
    process.execPath,
    [
      new URL('../src/cli/main.ts', import.meta.url).pathname,
      'replay',
      '--config',
      cfgFile,
      '--from-genesis',
      '--json',
      '--log-level',
      'warn',
    ],
    { encoding: 'utf8', maxBuffer: 64 << 20, env: nodeProcessEnv() },
  );
  if (rep.status !== 0) throw new Error(`replay failed: ${rep.stderr}`);
  const replay = JSON.parse(rep.stdout.trim().split('\n').pop()!) as {
    transitions: number;
    ms: number;
    accounts: number;
    rssBytes: number;
    replayedBlocks: number;
  };
  figures.replay_blocks = replay.replayedBlocks;
  figures.replay_transitions = replay.transitions;
  figures.replay_accounts = replay.accounts;
  figures.replay_transitions_per_s = Math.round(replay.transitions / (replay.ms / 1000));
  figures.replay_rss_bytes = replay.rssBytes;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
