// Finality on the chopsticks devnet, once per parentchain block time: `validateer devnet` (the dev chain and N
// validateers, registered, with a vault and funded enclave accounts) runs until the set is complete and a block is
// final, then for a steady phase of fixed length. Measured there, with nothing sent to the set:
//  - lag in blocks: head minus finalized number on node 1, sampled every 250 ms;
//  - lag in seconds: for each block whose slot starts in the phase, the first sample at which node 1 reported it
//    final minus its slot start (slot * slot duration); sampling after the phase goes on until those are final.
//    The 250 ms sampling adds 0..250 ms to each figure;
//  - anchors per minute (validateer_anchors_submitted_total, summed over the nodes) and the parentchain fee per
//    anchor: validateer_parentchain_anchor_fees_total (the submitters' fee estimates) where the nodes have it, else
//    the drop of the enclave accounts' free balance between the phase's first and last finalized parentchain block
//    divided by the anchors they signed in between. Both chain figures (balance drop, and the fees the anchors'
//    balances.Withdraw events show) are reported as well, the metric's check.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectRpc } from '../src/client/rpc.ts';
import type { HeaderJson, ShardInfo } from '../src/client/client.ts';
import { loadConfig } from '../src/config/load.ts';
import { scrapeMetrics } from '../src/metrics/scrape.ts';
import { ParentchainReader, type ParentchainWindow } from './finality-fees.ts';
import { freePort, trackChild } from './node-process.ts';

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const DEV_CONFIG = fileURLToPath(new URL('../config/dev.json', import.meta.url));
const SAMPLE_MS = 250;
const FEES_METRIC = 'validateer_parentchain_anchor_fees_total';

type Figures = Record<string, number | string>;

export interface FinalityBenchOptions {
  validateers: number;
  /** Parentchain block times to measure at, one devnet each. */
  blockTimesMs: number[];
  /** Length of the steady phase at each block time. */
  seconds: number;
  log: (s: string) => void;
}

export async function benchFinality(dir: string, o: FinalityBenchOptions): Promise<Figures> {
  const f: Figures = {};
  for (const blockMs of o.blockTimesMs) Object.assign(f, await benchOne(dir, blockMs, o));
  return f;
}

interface Devnet {
  proc: ChildProcess;
  root: string;
  parentchain: string;
  rpc: string[];
  metrics: string[];
  exited: Promise<number | null>;
}

async function benchOne(dir: string, blockMs: number, o: FinalityBenchOptions): Promise<Figures> {
  const p = `fin_${blockMs / 1000}s_`;
  const config = loadConfig({ file: DEV_CONFIG });
  const slotMs = config.sidechain.slotDurationMs;
  const anchorInterval = (config.parentchain as { anchorInterval?: number }).anchorInterval;
  o.log(`finality: devnet with ${o.validateers} validateers, ${blockMs} ms parentchain blocks, ${slotMs} ms slots ...`);
  const net = await startDevnet(join(dir, `finality-${blockMs}`), o.validateers, blockMs);
  let pc: ParentchainReader | undefined;
  try {
    const died = net.exited.then((code) => {
      throw new Error(`the devnet exited (${code}) during the finality bench; logs in ${net.root}`);
    });
    died.catch(() => undefined);
    const rpc = await connectRpc(net.rpc[0]);
    pc = await ParentchainReader.connect(net.parentchain);
    const warmed = performance.now();
    const accounts = await Promise.race([warmUp(net, rpc, o.validateers, blockMs), died]);
    o.log(`finality: set complete, a block final after ${((performance.now() - warmed) / 1000).toFixed(0)} s`);

    const before = await counters(net.metrics);
    const pcFrom = await pc.finalizedNumber();
    const t0 = Date.now();
    const t1 = t0 + o.seconds * 1000;
    const watch = new FinalityWatch(net.metrics[0]);
    await Promise.race([watch.run(t0, t1, () => Date.now() >= t1), died]);
    const after = await counters(net.metrics);
    const pcTo = await pc.finalizedNumber();
    // The phase's blocks: up to the one whose slot runs at its end. Watch until they are final (or give up).
    const last = (await rpc.request<HeaderJson>('chain_getHeader', [])).number + 1;
    const tailMs = Math.max(120_000, 10 * blockMs);
    const tailEnd = Date.now() + tailMs;
    await Promise.race([watch.run(t0, t1, () => watch.final >= last || Date.now() >= tailEnd), died]);
    const slotStart = new Map<number, number>();
    for (let n = watch.startFinal + 1; n <= last; n++) {
      const h = await rpc.request<HeaderJson | null>('chain_getHeader', [n]);
      if (h) slotStart.set(n, h.slot * slotMs);
    }
    await rpc.close();
    const inPhase = [...slotStart].filter(([, s]) => s >= t0 && s < t1);
    const lagS = inPhase.flatMap(([n, s]) => {
      const t = watch.finalAt.get(n);
      return t === undefined ? [] : [(t - s) / 1000];
    });
    const lagBlocks = watch.samples.map((s) => s.head - s.final);
    const window = await pc.window(accounts, pcFrom, pcTo);

    const r: Figures = {
      validateers: o.validateers,
      block_ms: blockMs,
      slot_ms: slotMs,
      anchor_interval: anchorInterval ?? 'n/a',
      steady_s: o.seconds,
      lag_blocks_p50: quantile(lagBlocks, 0.5),
      lag_blocks_p99: quantile(lagBlocks, 0.99),
      lag_blocks_max: Math.max(...lagBlocks),
      lag_blocks_samples: lagBlocks.length,
      lag_s_p50: round(quantile(lagS, 0.5), 2),
      lag_s_p99: round(quantile(lagS, 0.99), 2),
      lag_s_max: round(Math.max(...lagS), 2),
      lag_s_blocks: lagS.length,
      lag_s_not_final: inPhase.length - lagS.length,
      tail_wait_s: round((Date.now() - t1) / 1000, 1),
      ...anchorFigures(before, after, (t1 - t0) / 60_000, window),
      log_warnings: warnings(net.root, o.validateers),
    };
    return Object.fromEntries(Object.entries(r).map(([k, v]) => [`${p}${k}`, v]));
  } finally {
    await pc?.close().catch(() => undefined);
    await stopDevnet(net);
  }
}

/** Waits until every validateer is registered and a vault proxy (setup extrinsics done), then for a new final block. */
async function warmUp(
  net: Devnet,
  rpc: Awaited<ReturnType<typeof connectRpc>>,
  n: number,
  blockMs: number,
): Promise<string[]> {
  const deadline = Date.now() + 180_000 + 40 * blockMs;
  let setupFinal = -1;
  for (;;) {
    if (Date.now() > deadline) throw new Error(`finality bench: the devnet did not settle; logs in ${net.root}`);
    const info = await rpc.request<ShardInfo>('shard_getInfo', []).catch(() => undefined);
    const members = (info?.validateers ?? []).filter((v) => v.unregisteredAt === null).map((v) => v.signingKey);
    const final = (await scrapeMetrics(net.metrics[0]).catch(() => new Map<string, number>())).get(
      'validateer_sidechain_finalized_number',
    );
    if (members.length === n && (info?.vaultProxies ?? []).length === n && final !== undefined) {
      if (setupFinal < 0) setupFinal = final;
      else if (final > setupFinal) return members;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Samples node 1's head and finalized number every 250 ms: the lag samples and when each block was first final. */
class FinalityWatch {
  readonly samples: { t: number; head: number; final: number }[] = [];
  readonly finalAt = new Map<number, number>();
  startFinal = -1;
  final = -1;

  private readonly metricsUrl: string;

  constructor(metricsUrl: string) {
    this.metricsUrl = metricsUrl;
  }

  /** Samples until `done()`; lag samples are kept only inside [t0, t1). */
  async run(t0: number, t1: number, done: () => boolean): Promise<void> {
    for (let next = Date.now(); !done(); next += SAMPLE_MS) {
      await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
      const m = await scrapeMetrics(this.metricsUrl);
      const t = Date.now();
      const head = m.get('validateer_sidechain_head_number');
      const final = m.get('validateer_sidechain_finalized_number');
      if (head === undefined || final === undefined) continue;
      if (this.startFinal < 0) this.startFinal = this.final = final;
      for (let n = this.final + 1; n <= final; n++) this.finalAt.set(n, t);
      this.final = Math.max(this.final, final);
      if (t >= t0 && t < t1) this.samples.push({ t, head, final });
    }
  }
}

interface Counters {
  anchors: number;
  /** Undefined when a node lacks the metric (before the finality votes). */
  fees: number | undefined;
  votesCast: number | undefined;
  /** Anchors the registry ignored: the most any node counted (each node's registry sees the same anchors). */
  ignored: number | undefined;
}

async function counters(metrics: string[]): Promise<Counters> {
  const all = await Promise.all(metrics.map((u) => scrapeMetrics(u)));
  const sum = (name: string) => {
    const xs = all.map((m) => m.get(name));
    return xs.every((x) => x !== undefined) ? xs.reduce((s, x) => s + x!, 0) : undefined;
  };
  const ignored = all.map((m) => m.get('validateer_anchors_ignored_total'));
  return {
    anchors: sum('validateer_anchors_submitted_total') ?? 0,
    fees: sum(FEES_METRIC),
    votesCast: sum('validateer_finality_votes_total{result="cast"}'),
    ignored: ignored.every((x) => x !== undefined) ? Math.max(...ignored) : undefined,
  };
}

function anchorFigures(before: Counters, after: Counters, minutes: number, w: ParentchainWindow): Figures {
  const anchors = after.anchors - before.anchors;
  const onChain = w.extrinsics.anchor ?? 0;
  const others = Object.entries(w.extrinsics).filter(([k]) => k !== 'anchor');
  const delta = (k: 'fees' | 'votesCast' | 'ignored') =>
    after[k] === undefined || before[k] === undefined ? undefined : after[k] - before[k];
  const f: Figures = {
    anchors_submitted: anchors,
    anchors_per_min: round(anchors / minutes, 2),
    anchors_ignored: delta('ignored') ?? 'n/a',
    votes_cast: delta('votesCast') ?? 'n/a',
    pc_blocks: `${w.fromBlock}..${w.toBlock}`,
    anchors_onchain: onChain,
    other_extrinsics: others.length ? others.map(([k, v]) => `${k}:${v}`).join(' ') : 'none',
    fee_per_anchor_events: onChain ? Number((w.fees.anchor ?? 0n) / BigInt(onChain)) : 'n/a',
    fee_per_anchor_balance: onChain ? Number((w.balanceBefore - w.balanceAfter) / BigInt(onChain)) : 'n/a',
  };
  const fees = delta('fees');
  if (fees !== undefined && anchors > 0) {
    f.fee_per_anchor = Math.round(fees / anchors);
    f.fee_method = `metric ${FEES_METRIC} / anchors submitted`;
  } else {
    f.fee_per_anchor = f.fee_per_anchor_balance;
    f.fee_method = others.length ? 'balance (its drop includes the other extrinsics)' : 'balance';
  }
  return f;
}

/** `validateer devnet` on free ports in `root`; resolves once it printed its endpoints. */
async function startDevnet(root: string, n: number, blockMs: number): Promise<Devnet> {
  const [rpc, metrics, p2p] = [await freeRange(n), await freeRange(n), await freeRange(n)];
  const args = [MAIN, 'devnet', '--data-dir', root, '--validateers', String(n), '--block-ms', String(blockMs)];
  args.push('--rpc-port', String(rpc), '--metrics-port', String(metrics), '--p2p-port', String(p2p));
  args.push('--parentchain-port', String(await freePort()), '--log-level', 'warn');
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(proc);
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  const net: Devnet = { proc, root, parentchain: '', rpc: [], metrics: [], exited };
  const deadline = Date.now() + 180_000;
  while (!/Press Ctrl-C to stop/.test(out)) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      await stopDevnet(net);
      // The devnet names the log of a validateer that exited; its end says why (the bench's dir goes away).
      const log = /see (\S+node\.log)/.exec(out)?.[1];
      const tail = log && existsSync(log) ? `\n${log}:\n${readFileSync(log, 'utf8').slice(-3000)}` : '';
      throw new Error(`the devnet did not start:\n${out.slice(-3000)}${tail}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  net.parentchain = /parentchain\s+(ws:\/\/\S+)/.exec(out)![1];
  for (const m of out.matchAll(/JSON-RPC (ws:\/\/\S+)\s+metrics (http:\/\/\S+)\/metrics/g)) {
    net.rpc.push(m[1]);
    net.metrics.push(m[2]);
  }
  if (net.rpc.length !== n) throw new Error(`devnet printed ${net.rpc.length} validateers, not ${n}:\n${out}`);
  return net;
}

/** SIGINT (the devnet stops its validateers, then the chain); SIGKILL if it is not gone after 60 s. */
async function stopDevnet(net: Devnet): Promise<void> {
  if (net.proc.exitCode !== null || net.proc.signalCode !== null) return;
  net.proc.kill('SIGINT');
  const t = setTimeout(() => net.proc.kill('SIGKILL'), 60_000);
  await net.exited;
  clearTimeout(t);
}

/** The first of `n` consecutive free loopback ports (the devnet counts its ports up from a base). */
async function freeRange(n: number): Promise<number> {
  for (;;) {
    const base = await freePort();
    if (base + n > 65535) continue;
    let ok = true;
    for (let i = 1; i < n && ok; i++) ok = await isFree(base + i);
    if (ok) return base;
  }
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** Distinct warning and error messages of the nodes' logs, with counts, most frequent first. */
function warnings(root: string, n: number): string {
  const counts = new Map<string, number>();
  for (let i = 1; i <= n; i++) {
    const file = join(root, `validateer-${i}`, 'node.log');
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        const l = JSON.parse(line) as { level?: number; msg?: string };
        if ((l.level ?? 0) >= 40) counts.set(String(l.msg), (counts.get(String(l.msg)) ?? 0) + 1);
      } catch {
        // a line cut by the kill
      }
    }
  }
  const list = [...counts].sort((a, b) => b[1] - a[1]).map(([m, c]) => `${c}x ${m}`);
  return list.length ? list.join('; ') : 'none';
}

/** The table rows of the finality part (figure, value, note), one group per block time. */
export function finalityRows(f: Figures, blockTimesMs: number[]): [string, string, string][] {
  // ROC has 12 decimals: a micro-ROC is 10^6 base units.
  const roc = (v: number | string) => (typeof v === 'number' ? ` (${(v / 1e6).toFixed(2)} µROC)` : '');
  return blockTimesMs.flatMap((ms): [string, string, string][] => {
    const g = (k: string) => f[`fin_${ms / 1000}s_${k}`];
    return [
      [
        `finality: ${g('validateers')} validateers, devnet`,
        `${ms / 1000} s parentchain blocks`,
        `${g('slot_ms')} ms slots, anchorInterval ${g('anchor_interval')}; steady phase ${g('steady_s')} s, no calls`,
      ],
      [
        '  finality lag p50 / p99, blocks',
        `${g('lag_blocks_p50')} / ${g('lag_blocks_p99')}`,
        `head - finalized on node 1, ${g('lag_blocks_samples')} samples every ${SAMPLE_MS} ms; max ${g('lag_blocks_max')}`,
      ],
      [
        '  finality lag p50 / p99, seconds',
        `${g('lag_s_p50')} / ${g('lag_s_p99')} s`,
        `slot start -> first sample with it final on node 1; ${g('lag_s_blocks')} blocks, ${g('lag_s_not_final')} not final ${g('tail_wait_s')} s after the phase; max ${g('lag_s_max')} s`,
      ],
      [
        '  anchors',
        `${g('anchors_per_min')} / min`,
        `${g('anchors_submitted')} submitted (all nodes' metric), ${g('anchors_ignored')} ignored by the registry, ${g('votes_cast')} votes cast; ${g('anchors_onchain')} by the enclave accounts in parentchain #${g('pc_blocks')}; their other extrinsics: ${g('other_extrinsics')}`,
      ],
      [
        '  parentchain fee per anchor',
        `${g('fee_per_anchor')}${roc(g('fee_per_anchor'))}`,
        `method: ${g('fee_method')}; on the chain: balance drop ${g('fee_per_anchor_balance')}, the anchors' balances.Withdraw events ${g('fee_per_anchor_events')}`,
      ],
      ['  warnings logged', String(g('log_warnings')).slice(0, 60), ''],
    ];
  });
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))] : NaN;
}

function round(x: number, digits: number): number {
  return Number(x.toFixed(digits));
}
