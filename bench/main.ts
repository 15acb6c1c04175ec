// `npm run bench [-- --json] [-- --calls N] [-- --only sidechain|parentchain|devnet]`: throughput,
// latency, ceiling, replay speed and RSS (sidechain), parentchain catch-up speed (parentchain), and
// the time from starting the devnet to its first anchored block (devnet).
// Every figure is measured in this run on this machine; nothing is carried over.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { buildTransfer } from '../src/client/calls.ts';
import { fromHex, toHex } from '../src/codec/wire.ts';
import { connectRpc } from '../src/client/rpc.ts';
import { benchAccount, genesisBalances } from './accounts.ts';
import { measureCeiling } from './ceiling.ts';
import { runLoad } from './load.ts';
import { startNodeProcess } from './node-process.ts';
import { benchParentchain } from './parentchain.ts';
import { benchDevnetStart } from './devnet.ts';

const { values: args } = parseArgs({ options: {
  json: { type: 'boolean', default: false },
  calls: { type: 'string', default: '60000' },
  accounts: { type: 'string', default: '100000' },
  senders: { type: 'string', default: '6000' },
  connections: { type: 'string', default: '4' },
  'slot-ms': { type: 'string', default: '250' },
  /** Run one part only: 'sidechain' (ceiling, load, replay), 'parentchain' (catch-up) or 'devnet' (start to first anchor). Default: all. */
  only: { type: 'string' },
  'pc-blocks': { type: 'string', default: '600' },
  'pc-prefetch': { type: 'string', default: '64' },
  'pc-import-batch': { type: 'string', default: '256' },
  'pc-repeats': { type: 'string', default: '3' },
} });
const PARTS = ['sidechain', 'parentchain', 'devnet'];
if (args.only !== undefined && !PARTS.includes(args.only)) {
  console.error(`--only must be one of ${PARTS.join(', ')}, not '${args.only}'`);
  process.exit(2);
}
const runSidechain = args.only === undefined || args.only === 'sidechain';
const runParentchain = args.only === undefined || args.only === 'parentchain';
const runDevnet = args.only === undefined || args.only === 'devnet';
const log = (s: string) => { if (!args.json) console.error(s); };

async function sampleRss(pid: number): Promise<number> {
  const r = spawnSync('ps', ['-o', 'rss=', '-p', String(pid)], { encoding: 'utf8' });
  return Number(r.stdout.trim()) * 1024;
}

/** CPU seconds (user + system, all threads) a process has used so far, from /proc. */
function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return NaN;
  }
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'validateer-bench-'));
  const figures: Record<string, number | string> = {};
  try {
    if (runSidechain) await benchSidechain(dir, figures);
    if (runDevnet) Object.assign(figures, await benchDevnetStart(dir, log));
    if (runParentchain) {
      Object.assign(figures, await benchParentchain({
        blocks: Number(args['pc-blocks']), prefetch: Number(args['pc-prefetch']), importBatch: Number(args['pc-import-batch']), repeats: Number(args['pc-repeats']), log,
      }));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
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
        ['calls included / submitted', `${figures.calls_included} / ${figures.calls_submitted}`, `${figures.calls_invalid} invalid`],
        ['node peak RSS', mib('node_peak_rss_bytes'), ''],
        ['verify+decrypt ceiling', `${figures.ceiling_calls_per_s} calls/s`, `${figures.ceiling_per_core_calls_per_s}/core x ${figures.cores} cores`],
        ['CPU per call: node / load generator', `${figures.node_cpu_us_per_call} / ${figures.loadgen_cpu_us_per_call} us`, `verify+decrypt alone: ${figures.verify_cpu_us_per_call} us`],
        ['throughput / ceiling', `${(Number(figures.ceiling_ratio) * 100).toFixed(0)} %`, 'target >= 50 %'],
        ['replay from genesis', `${figures.replay_transitions_per_s} transitions/s`, `${figures.replay_transitions} transitions, ${figures.replay_blocks} blocks; target >= 200000`],
        ['RSS after replay', mib('replay_rss_bytes'), `${figures.replay_accounts} accounts; target < 300 MiB`],
      );
    }
    if (runDevnet) {
      rows.push(['devnet start -> first anchored block', `${figures.devnet_first_anchor_s} s`, `block #${figures.devnet_first_anchor_number}; endpoints printed after ${figures.devnet_running_s} s (what \`npm start\` does)`]);
    }
    if (runParentchain) {
      rows.push(
        ['parentchain backlog', `${figures.pc_backlog_blocks} blocks`, `${figures.pc_signed_extrinsics} signed extrinsics, ${figures.pc_remarks} remarks (${figures.pc_vldtr_remarks_other_shard} vldtr, other shard); built in ${(Number(figures.pc_build_ms) / 1000).toFixed(0)} s`],
        ['parentchain catch-up, first run', `${figures.pc_sync_blocks_per_s} blocks/s`, `first blocks this process decodes: ${figures.pc_sync_ms} ms, ${figures.pc_sync_cpu_us_per_block} us CPU/block, ${figures.pc_sync_rpcs_per_block} RPCs/block; target >= 1000`],
        ['parentchain catch-up, median', `${figures.pc_sync_median_blocks_per_s} blocks/s`, `of ${figures.pc_repeats} runs (ParentchainSync + enclave, fresh each); target >= 1000`],
        ['  enclave import alone', `${figures.pc_enclave_blocks_per_s} blocks/s`, `first run: ${figures.pc_enclave_import_ms} ms in ${figures.pc_enclave_import_calls} calls (host side: zod ${figures.pc_zod_params_ms} ms, clone ${figures.pc_clone_ms} ms); median ${figures.pc_enclave_median_blocks_per_s}`],
        ['  fetch + decode all, alone', `${figures.pc_fetch_median_blocks_per_s} blocks/s`, `median of ${figures.pc_repeats} scans with a no-op consumer; ${figures.pc_fetch_rpcs_per_block} RPCs/block, first scan ${figures.pc_fetch_cpu_us_per_block} us CPU/block`],
        ['parentchain bench RSS, peak', mib('pc_bench_peak_rss_bytes'), `bench process incl. enclave threads (${mib('pc_bench_rss_at_start_bytes')} at start); dev chain process ${mib('pc_devchain_rss_bytes')}`],
      );
    }
    const w0 = Math.max(...rows.map((r) => r[0].length)), w1 = Math.max(...rows.map((r) => r[1].length));
    console.log(`${'figure'.padEnd(w0)}  ${'value'.padEnd(w1)}  note`);
    for (const [a, b, n] of rows) console.log(`${a.padEnd(w0)}  ${b.padEnd(w1)}  ${n}`);
  }
}

async function benchSidechain(dir: string, figures: Record<string, number | string>): Promise<void> {
  const calls = Number(args.calls), accounts = Number(args.accounts), senders = Number(args.senders);
  log('measuring the verify+decrypt ceiling ...');
  const c = measureCeiling();
  figures.ceiling_per_core_calls_per_s = Math.round(c.perCore);
  figures.cores = c.cores;
  figures.ceiling_calls_per_s = Math.round(c.ceiling);

  log(`starting a validateer with ${accounts} genesis accounts ...`);
  const balancesFile = join(dir, 'genesis-balances.json');
  writeFileSync(balancesFile, JSON.stringify(genesisBalances(accounts, 1_000_000_000n)));
  const config = {
    dataDir: join(dir, 'data'),
    sidechain: { slotDurationMs: Number(args['slot-ms']), snapshotInterval: 100000 },
    pool: { maxPending: 200000, maxNonceAhead: 1024 },
    genesis: { balancesFile: balancesFile },
    log: { level: 'warn' },
  };
  const node = await startNodeProcess(dir, config);
  let peakRss = 0;
  const rssTimer = setInterval(async () => { peakRss = Math.max(peakRss, await sampleRss(node.proc.pid!)); }, 250);
  try {
    const rpc = await connectRpc(node.rpcUrl);
    const k = await rpc.request<{ shard: string; keyId: number; publicKey: string }>('author_getShieldingKey');
    await rpc.close();
    const shard = fromHex(k.shard);
    const key = { keyId: k.keyId, publicKey: fromHex(k.publicKey) };
    log(`pre-signing and encrypting ${calls} transfers from ${senders} senders ...`);
    const signers = Array.from({ length: senders }, (_, i) => benchAccount(i));
    const requests: string[] = [];
    // Nonce-major order: consecutive calls come from different senders, as from independent users.
    for (let i = 0; i < calls; i++) {
      const s = i % senders, nonce = Math.floor(i / senders);
      const to = benchAccount((s * 7919 + nonce * 104729) % accounts).publicKey;
      requests.push(toHex(buildTransfer(signers[s], { to, amount: 1n, nonce }, key, shard).request));
    }
    log('driving load over JSON-RPC ...');
    const nodeCpu0 = cpuSeconds(node.proc.pid!);
    const r = await runLoad(node.rpcUrl, requests, { connections: Number(args.connections), batch: 250, window: 4, timeoutMs: 180_000 });
    // Where the 2 cores went, per included call: the node (all its threads) and the load generator.
    figures.node_cpu_us_per_call = Math.round(((cpuSeconds(node.proc.pid!) - nodeCpu0) * 1e6) / r.included);
    figures.loadgen_cpu_us_per_call = Math.round((r.cpuSeconds * 1e6) / r.included);
    figures.verify_cpu_us_per_call = Math.round(1e6 / c.perCore);
    figures.calls_submitted = r.submitted;
    figures.calls_included = r.included;
    figures.calls_invalid = r.invalid + r.rpcErrors;
    figures.calls_per_s = Math.round(r.callsPerSecond);
    figures.latency_p50_ms = Math.round(r.latencyMs.p50);
    figures.latency_p99_ms = Math.round(r.latencyMs.p99);
    figures.ceiling_ratio = Number((r.callsPerSecond / c.ceiling).toFixed(3));
    figures.slot_ms = Number(args['slot-ms']);
  } finally {
    clearInterval(rssTimer);
    await node.stop();
  }
  figures.node_peak_rss_bytes = peakRss;

  log('replaying the whole event log from genesis in a fresh process ...');
  const cfgFile = join(dir, 'config.json');
  const rep = spawnSync(process.execPath, [new URL('../src/cli/main.ts', import.meta.url).pathname, 'replay', '--config', cfgFile, '--from-genesis', '--json', '--log-level', 'warn'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (rep.status !== 0) throw new Error(`replay failed: ${rep.stderr}`);
  const replay = JSON.parse(rep.stdout.trim().split('\n').pop()!) as { transitions: number; ms: number; accounts: number; rssBytes: number; replayedBlocks: number };
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
