// A validateer set on this machine: N validateers over libp2p on loopback, without a parentchain
// (authorities and dev shard secrets from config, as in test/e2e/set.test.ts), fully meshed (each node
// bootstraps to all started before it). Three phases on one set:
//  1. steady (BENCH_SET_SECONDS, default 180): probe calls only, a few per slot to every node, to time
//     every block on every node (propagation) and count orphaned blocks;
//  2. load: the sidechain bench's pre-signed transfers, connections spread round-robin over all nodes;
//  3. (unless the caller has the figure) the same load against one validateer, for the ratio.
//
// Propagation, per block: for each canonical block and each node that did not author it, the time the
// node's RPC reported one of our probe calls inBlock in that block, minus the block's slot start
// (slot * slot duration). The node settles watched calls right after it imported and committed the
// block (where it also observes validateer_block_propagation_seconds), so this is "slot start ->
// import on this node" plus the WebSocket notification to this process (loopback, sub-millisecond).
// The nodes' histograms are reported alongside as a cross-check (as bucket upper bounds).
//
// The nodes and this process share the machine: the share of its CPU that other processes used in each
// phase is reported, since anything above a few percent moves every figure here.
//
// Orphans, per window between two boundaries: sum over nodes of validateer_sidechain_blocks_produced_total
// growth, minus the canonical blocks (after all nodes converged) whose slot lies in the window. The
// boundaries are taken at 80..90 % of a slot, after that slot's block was produced and before the next.
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { buildTransfer } from '../src/client/calls.ts';
import { connectRpc, type RpcClient } from '../src/client/rpc.ts';
import { configSchema } from '../src/config/schema.ts';
import { benchAccount, benchPublicKeys, genesisBalances } from './accounts.ts';
import { runLoad } from './load.ts';
import { startNodeProcess, type NodeProcess } from './node-process.ts';
import { scrapeMetrics } from '../src/metrics/scrape.ts';
import { cpuSeconds, machineBusySeconds, peakRss } from './proc-stats.ts';
import { benchTransfers } from './transfers.ts';
import { fromHex, toHex } from '../src/protocol/bytes.ts';

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const PROBE_SENDERS_PER_NODE = 8;

export interface SetBenchOptions {
  validateers: number;
  slotMs: number;
  /** Length of the steady phase (propagation and orphans). */
  seconds: number;
  /** enclave.workers of every node. */
  workers: number;
  calls: number;
  accounts: number;
  senders: number;
  /** Load connections, spread round-robin over the nodes. */
  connections: number;
  /** sidechain.blockMaxCalls of every node; null = the node's default. */
  blockMaxCalls: number | null;
  /** Every this many ms one probe call goes to every node during the steady phase. */
  probeMs: number;
  /** The single-validateer figure measured in this process (--only sidechain part), or null: measure it here. */
  singleCallsPerS: number | null;
  singleConnections: number;
  log: (s: string) => void;
}

type Figures = Record<string, number | string>;
type Metrics = Map<string, number>;
interface Header {
  hash: string;
  parentHash: string;
  number: number;
  slot: number;
  author: string;
  calls: number;
}
/** A consistent cut: slot, every node's metrics and CPU, the machine's busy CPU and this process's own. */
interface Boundary {
  slot: number;
  metrics: Metrics[];
  cpu: number[];
  at: number;
  busy: number;
  self: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// The wall clock, as the nodes use it for slots (Date.now(), not the monotonic clock, which may drift from it).
const nowMs = () => Date.now();
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

const metric = (m: Metrics, name: string) => m.get(name) ?? 0;
const delta = (a: Boundary, b: Boundary, name: string) =>
  b.metrics.map((m, i) => metric(m, name) - metric(a.metrics[i], name));

/** Cumulative bucket counts (le -> count) of a histogram, summed over nodes, between two boundaries. */
function histogramDelta(a: Boundary, b: Boundary, name: string): { le: number; count: number }[] {
  const les = new Map<number, number>();
  for (let i = 0; i < b.metrics.length; i++) {
    for (const [k, v] of b.metrics[i]) {
      const m = new RegExp(`^${name}_bucket\\{le="([^"]+)"\\}$`).exec(k);
      if (!m) continue;
      const le = m[1] === '+Inf' ? Infinity : Number(m[1]);
      les.set(le, (les.get(le) ?? 0) + v - metric(a.metrics[i], k));
    }
  }
  return [...les.entries()].map(([le, count]) => ({ le, count })).sort((x, y) => x.le - y.le);
}

/** The upper bound of the bucket holding quantile q (what the histogram can say for sure). */
function bucketQuantile(buckets: { le: number; count: number }[], q: number): number {
  const total = buckets.at(-1)?.count ?? 0;
  if (total === 0) return NaN;
  return buckets.find((b) => b.count >= q * total)!.le;
}

/** The same in ms; a quantile in the +Inf bucket reads "> largest bound". */
function bucketQuantileMs(buckets: { le: number; count: number }[], q: number): number | string {
  const x = bucketQuantile(buckets, q);
  return Number.isFinite(x) || Number.isNaN(x) ? x * 1000 : `> ${(buckets.at(-2)?.le ?? NaN) * 1000}`;
}

function quantile(sorted: number[], q: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN;
}

/**
 * Scrapes every node between 80 % and 90 % of a slot: that slot's block is produced (a proposal takes
 * at most 70 % of the slot) and the next slot has not begun, so the counters and the slot agree.
 */
async function boundary(nodes: NodeProcess[], slotMs: number): Promise<Boundary> {
  for (let attempt = 0; ; attempt++) {
    const now = Date.now(),
      slot = Math.floor(now / slotMs),
      into = now - slot * slotMs;
    if (into < 0.8 * slotMs) {
      await sleep(0.8 * slotMs - into);
      continue;
    }
    if (into > 0.9 * slotMs && attempt < 20) {
      await sleep(slotMs - into + 0.8 * slotMs);
      continue;
    }
    const metrics = await Promise.all(nodes.map((n) => scrapeMetrics(n.metricsUrl)));
    const cpu = nodes.map((n) => cpuSeconds(n.proc.pid!));
    if (Math.floor(Date.now() / slotMs) !== slot && attempt < 20) continue; // scraped across a slot start
    const u = process.cpuUsage();
    return { slot, metrics, cpu, at: performance.now(), busy: machineBusySeconds(), self: (u.user + u.system) / 1e6 };
  }
}

/** Waits until all nodes have the same block at the lowest head, and that block's slot is above `slot`. */
async function convergedPast(rpcs: RpcClient[], slot: number, slotMs: number, timeoutMs = 60_000): Promise<Header> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const heads = await Promise.all(rpcs.map((r) => r.request<Header | null>('chain_getHeader')));
    if (heads.every((h) => h !== null)) {
      const n = Math.min(...heads.map((h) => h!.number));
      const at = await Promise.all(rpcs.map((r) => r.request<Header | null>('chain_getHeader', [n])));
      const same = at.every((h) => h?.hash === at[0]?.hash);
      if (same && at[0]!.slot > slot) return at[0]!;
      last = `heads ${heads.map((h) => h!.number).join(', ')}; at #${n}: ${same ? 'same block' : 'different blocks'}`;
    } else last = 'a node has no block yet';
    if (Date.now() > deadline) throw new Error(`set did not converge within ${timeoutMs} ms (${last})`);
    await sleep(slotMs);
  }
}

/** How many of these calls (hex hashes) the node has in its canonical chain (author_callBlock). */
async function countOnChain(rpc: RpcClient, hashes: string[]): Promise<number> {
  let found = 0;
  for (let i = 0; i < hashes.length; i += 1000) {
    const replies = await rpc.batch(
      hashes.slice(i, i + 1000).map((h) => ({ method: 'author_callBlock', params: ['0x' + h] })),
    );
    for (const r of replies) if ('result' in r && typeof r.result === 'number') found++;
  }
  return found;
}

async function canonicalHeaders(rpc: RpcClient, to: number): Promise<Header[]> {
  const out: Header[] = [];
  for (let from = 0; from <= to; from += 500) {
    const nums = Array.from({ length: Math.min(500, to - from + 1) }, (_, i) => from + i);
    const replies = await rpc.batch(nums.map((n) => ({ method: 'chain_getHeader', params: [n] })));
    for (const r of replies) {
      if ('error' in r) throw new Error(`chain_getHeader: ${r.error.message}`);
      out.push(r.result as Header);
    }
  }
  for (let i = 1; i < out.length; i++)
    if (out[i].parentHash !== out[i - 1].hash) throw new Error(`canonical chain broken at #${i}`);
  return out;
}

interface ProbeResult {
  sent: number;
  included: number;
  invalid: number;
  errors: number;
  unsettled: number;
  codes: Map<string, number>;
  seen: Map<string, number>[];
}

/**
 * Every `intervalMs`, one pre-signed call to every node (author_submitAndWatchCall); records, per node
 * and block hash, when that node first reported one of its calls inBlock in the block.
 */
async function runProbes(
  urls: string[],
  probes: string[][],
  durationMs: number,
  intervalMs: number,
  progress: (s: ProbeResult) => void,
): Promise<ProbeResult> {
  const res: ProbeResult = {
    sent: 0,
    included: 0,
    invalid: 0,
    errors: 0,
    unsettled: 0,
    codes: new Map(),
    seen: urls.map(() => new Map()),
  };
  const code = (c: string | undefined) => res.codes.set(c ?? '?', (res.codes.get(c ?? '?') ?? 0) + 1);
  const sockets = await Promise.all(
    urls.map(
      (u) =>
        new Promise<WebSocket>((resolve, reject) => {
          const ws = new WebSocket(u, { perMessageDeflate: false });
          ws.once('open', () => resolve(ws));
          ws.once('error', reject);
        }),
    ),
  );
  sockets.forEach((ws, k) =>
    ws.on('message', (data) => {
      const t = nowMs();
      const msg = JSON.parse(data.toString()) as {
        id?: number;
        error?: { data?: { code?: string } };
        params?: { result?: { status: string; blockHash?: string; code?: string } };
      };
      if (msg.id !== undefined) {
        if (msg.error) {
          res.errors++;
          code(msg.error.data?.code);
        }
        return;
      }
      const r = msg.params?.result;
      if (r?.status === 'inBlock') {
        res.included++;
        if (!res.seen[k].has(r.blockHash!)) res.seen[k].set(r.blockHash!, t);
      } else if (r?.status === 'invalid') {
        res.invalid++;
        code(r.code);
      }
    }),
  );
  let i = 0,
    id = 0;
  const end = Date.now() + durationMs;
  let nextProgress = Date.now() + 30_000;
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      if (Date.now() >= end || i >= probes[0].length) {
        clearInterval(timer);
        resolve();
        return;
      }
      sockets.forEach((ws, k) => {
        ws.send(`{"jsonrpc":"2.0","id":${++id},"method":"author_submitAndWatchCall","params":["${probes[k][i]}"]}`);
        res.sent++;
      });
      i++;
      if (Date.now() >= nextProgress) {
        nextProgress += 30_000;
        progress(res);
      }
    }, intervalMs);
  });
  const drain = Date.now() + 10_000;
  while (res.included + res.invalid + res.errors < res.sent && Date.now() < drain) await sleep(50);
  res.unsettled = res.sent - res.included - res.invalid - res.errors;
  for (const ws of sockets) ws.terminate();
  return res;
}

/** Pre-signed probe calls for each node, from senders of its own (so nonces never race between nodes). */
function probeRequests(
  nodes: number,
  perNode: number,
  accounts: number,
  key: { keyId: number; publicKey: Uint8Array },
  shard: Uint8Array,
  hashes: string[][],
): string[][] {
  const recipients = benchPublicKeys(accounts);
  return Array.from({ length: nodes }, (_, k) => {
    hashes.push([]);
    const senders = Array.from({ length: PROBE_SENDERS_PER_NODE }, (_, j) =>
      benchAccount(accounts - 1 - (k * PROBE_SENDERS_PER_NODE + j)),
    );
    return Array.from({ length: perNode }, (_, i) => {
      const to = recipients[(i * 7919 + k) % accounts];
      const t = buildTransfer(
        senders[i % senders.length],
        { to, amount: 1n, nonce: Math.floor(i / senders.length) },
        key,
        shard,
      );
      hashes[k].push(t.hash);
      return toHex(t.request);
    });
  });
}

/**
 * Counts warn/error log lines of a node by message (reorgs, rejected blocks, penalties ...); keeps the log in `file`.
 */
function countWarnings(node: NodeProcess, file: string): Map<string, number> {
  const counts = new Map<string, number>();
  let buf = '';
  node.proc.stdout!.on('data', (d: Buffer) => appendFileSync(file, d)); // e.g. BENCH_NODE_ARGS=--trace-gc
  node.proc.stderr!.on('data', (d: Buffer) => {
    appendFileSync(file, d);
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const line of lines) {
      try {
        const j = JSON.parse(line) as { level?: number; msg?: string };
        if ((j.level ?? 0) >= 40) counts.set(j.msg ?? '?', (counts.get(j.msg ?? '?') ?? 0) + 1);
      } catch {
        /* not a log line */
      }
    }
  });
  return counts;
}

export async function benchSet(dir: string, o: SetBenchOptions): Promise<Figures> {
  const f: Figures = {};
  const n = o.validateers,
    log = o.log;
  const root = join(dir, 'set');
  mkdirSync(root, { recursive: true });
  const shard = fromHex(configSchema.parse({}).shard);

  log(`set: enclave keys for ${n} validateers (dev shard secrets) ...`);
  const dataDirs = Array.from({ length: n }, (_, i) => join(root, `v${i}`, 'data'));
  const keys = dataDirs.map((d) => {
    const r = spawnSync(process.execPath, [MAIN, 'keys', '--data-dir', d, '--log-level', 'warn'], {
      encoding: 'utf8',
      env: { ...process.env, VALIDATEER_ENCLAVE__DEV_SHARD_SECRETS: 'true' },
    });
    if (r.status !== 0) throw new Error(`validateer keys failed: ${r.stderr}`);
    return JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as {
      signingKey: string;
      shieldingKey: string;
      shieldingKeyId: number;
    };
  });
  if (new Set(keys.map((k) => k.shieldingKey)).size !== 1)
    throw new Error('dev shard secrets: the nodes do not share a shielding key');
  const key = { keyId: keys[0].shieldingKeyId, publicKey: fromHex(keys[0].shieldingKey) };
  const authorities = keys.map((k) => k.signingKey);
  const nodeOf = new Map(authorities.map((a, i) => [a.toLowerCase(), i]));

  log(`set: genesis with ${o.accounts} accounts; pre-signing ${o.calls} transfers and the probe calls ...`);
  const balancesFile = join(dir, 'set-genesis-balances.json');
  writeFileSync(balancesFile, JSON.stringify(genesisBalances(o.accounts, 1_000_000_000n)));
  const callHashes: string[] = [],
    probeHashes: string[][] = [];
  const requests = benchTransfers({ calls: o.calls, senders: o.senders, accounts: o.accounts, key, shard }, callHashes);
  const probes = probeRequests(n, Math.ceil((o.seconds * 1000) / o.probeMs) + 10, o.accounts, key, shard, probeHashes);

  const nodes: NodeProcess[] = [];
  const rpcs: RpcClient[] = [];
  const warnings: Map<string, number>[] = [];
  try {
    const addresses: string[] = [];
    for (let i = 0; i < n; i++) {
      log(`set: starting validateer ${i + 1}/${n}${i === 0 ? ' (creates block 0)' : ' (fetches block 0)'} ...`);
      const config = {
        dataDir: dataDirs[i],
        authorities,
        enclave: { devShardSecrets: true, workers: o.workers },
        p2p: { bootstrap: [...addresses] },
        sidechain: { slotDurationMs: o.slotMs, ...(o.blockMaxCalls ? { blockMaxCalls: o.blockMaxCalls } : {}) },
        pool: { maxPending: 200000, maxNonceAhead: 1024 },
        genesis: { balancesFile },
        // The load keeps thousands of calls watched per connection, over --connections of them from loopback.
        rpc: { maxSubscriptionsPerConnection: 1_000_000, maxConnectionsPerIp: 256 },
        // BENCH_SET_LOG_LEVEL=debug for diagnosis (logs in <temp dir>/set/v<i>/node.log, kept with BENCH_KEEP_DIR=1).
        log: { level: process.env.BENCH_SET_LOG_LEVEL ?? 'warn' },
      };
      const node = await startNodeProcess(join(root, `v${i}`), config);
      nodes.push(node);
      warnings.push(countWarnings(node, join(root, `v${i}`, 'node.log')));
      rpcs.push(await connectRpc(node.rpcUrl));
      addresses.push(...(await rpcs[i].request<{ addresses: string[] }>('system_network')).addresses);
    }
    const urls = nodes.map((x) => x.rpcUrl);
    const k = await rpcs[0].request<{ shard: string; publicKey: string }>('author_getShieldingKey');
    if (k.shard !== toHex(shard) || k.publicKey !== keys[0].shieldingKey)
      throw new Error("the node's shard or shielding key is not the one the calls were built for");
    const deadline = Date.now() + 30_000;
    for (;;) {
      const peers = await Promise.all(rpcs.map((r) => r.request<{ peers: string[] }>('system_network')));
      if (peers.every((p) => p.peers.length >= n - 1)) break;
      if (Date.now() > deadline)
        throw new Error(`set not meshed after 30 s: peers ${peers.map((p) => p.peers.length).join(', ')}`);
      await sleep(200);
    }
    await convergedPast(rpcs, Math.floor(Date.now() / o.slotMs), o.slotMs);

    log(
      `set: steady phase, ${o.seconds} s at ${o.slotMs} ms slots; a probe call to each node every ${o.probeMs} ms ...`,
    );
    const a = await boundary(nodes, o.slotMs);
    const probe = await runProbes(urls, probes, o.seconds * 1000, o.probeMs, (p) =>
      log(`  ... ${p.sent} probes sent, ${p.included} inBlock, ${p.invalid} invalid`),
    );
    const b = await boundary(nodes, o.slotMs);

    log(`set: load phase, ${o.calls} transfers over ${o.connections} connections to ${n} nodes ...`);
    const load = await runLoad(urls, requests, {
      connections: o.connections,
      batch: 250,
      window: 4,
      timeoutMs: 300_000,
    });
    const c = await boundary(nodes, o.slotMs);
    // Calls of abandoned blocks go back to the pools: give them a few slots to land again.
    await sleep(10 * o.slotMs);
    const top = await convergedPast(rpcs, Math.floor(Date.now() / o.slotMs), o.slotMs);
    const headers = await canonicalHeaders(rpcs[0], top.number);
    f.set_peak_rss_bytes_per_node = nodes.map((x) => peakRss(x.proc.pid!)).join(' ');
    f.set_peak_rss_bytes = Math.max(...nodes.map((x) => peakRss(x.proc.pid!)));

    // ---- propagation (steady phase) ----
    const steady = headers.filter((h) => h.number > 0 && h.slot > a.slot && h.slot <= b.slot);
    const prop: number[] = [],
      authored: number[] = [];
    const perBlock: { number: number; slot: number; author: number; calls: number; ms: (number | null)[] }[] = [];
    for (const h of steady) {
      const start = h.slot * o.slotMs,
        author = nodeOf.get(h.author.toLowerCase())!;
      const ms = probe.seen
        .map((seen) => seen.get(h.hash) ?? null)
        .map((t) => (t === null ? null : Number((t - start).toFixed(1))));
      perBlock.push({ number: h.number, slot: h.slot, author, calls: h.calls, ms });
      ms.forEach((x, i) => {
        if (x !== null) (i === author ? authored : prop).push(x);
      });
    }
    // Per block and node, for diagnosis (kept with BENCH_KEEP_DIR=1).
    writeFileSync(join(root, 'propagation.json'), JSON.stringify(perBlock));
    prop.sort((x, y) => x - y);
    authored.sort((x, y) => x - y);
    const r1 = (x: number) => Number(x.toFixed(1));
    f.set_validateers = n;
    f.set_workers = o.workers;
    f.set_block_max_calls = o.blockMaxCalls ?? configSchema.parse({}).sidechain.blockMaxCalls;
    f.set_slot_ms = o.slotMs;
    f.set_steady_s = Number(((b.at - a.at) / 1000).toFixed(1));
    f.set_propagation_method = 'per block: probe call inBlock notification at each non-author node minus slot start';
    f.set_propagation_samples = prop.length;
    f.set_propagation_coverage = Number((prop.length / Math.max(1, steady.length * (n - 1))).toFixed(3));
    f.set_propagation_p50_ms = r1(quantile(prop, 0.5));
    f.set_propagation_p99_ms = r1(quantile(prop, 0.99));
    f.set_propagation_max_ms = r1(prop.at(-1) ?? NaN);
    f.set_propagation_over_50ms = prop.filter((x) => x > 50).length;
    f.set_authored_p50_ms = r1(quantile(authored, 0.5));
    f.set_authored_p99_ms = r1(quantile(authored, 0.99));
    const hist = histogramDelta(a, b, 'validateer_block_propagation_seconds');
    f.set_propagation_hist_count = hist.at(-1)?.count ?? 0;
    f.set_propagation_hist_p50_le_ms = bucketQuantileMs(hist, 0.5);
    f.set_propagation_hist_p99_le_ms = bucketQuantileMs(hist, 0.99);
    // Where the time goes on the nodes, steady phase: producing a block (author) and importing one (others).
    for (const [key, name] of [
      ['production', 'validateer_block_production_seconds'],
      ['import', 'validateer_block_import_seconds'],
    ] as const) {
      const hh = histogramDelta(a, b, name);
      f[`set_${key}_p50_le_ms`] = bucketQuantileMs(hh, 0.5);
      f[`set_${key}_p99_le_ms`] = bucketQuantileMs(hh, 0.99);
    }
    f.set_probes_sent = probe.sent;
    f.set_probes_included = probe.included;
    f.set_probes_invalid = probe.invalid + probe.errors;
    f.set_probes_unsettled = probe.unsettled;
    const probesOnChain = await countOnChain(
      rpcs[0],
      probeHashes.flatMap((h) => h.slice(0, probe.sent / n)),
    );
    f.set_probes_on_chain = probesOnChain;
    f.set_probes_lost = probe.sent - probe.invalid - probe.errors - probesOnChain;
    f.set_probes_invalid_codes = [...probe.codes].map(([c, k]) => `${c} x${k}`).join(', ') || 'none';

    // ---- orphans: per window, blocks produced by all nodes minus canonical blocks of the window's slots ----
    const window = (x: Boundary, y: Boundary, tag: string) => {
      const produced = delta(x, y, 'validateer_sidechain_blocks_produced_total');
      const canon = headers.filter((h) => h.number > 0 && h.slot > x.slot && h.slot <= y.slot);
      const byNode = authorities.map((_, i) => canon.filter((h) => nodeOf.get(h.author.toLowerCase()) === i).length);
      const orphans = sum(produced) - canon.length;
      f[`set_${tag}_slots`] = y.slot - x.slot;
      f[`set_${tag}_blocks_produced`] = sum(produced);
      f[`set_${tag}_blocks_canonical`] = canon.length;
      f[`set_${tag}_orphans`] = orphans;
      f[`set_${tag}_orphans_per_1000`] = Number(((orphans * 1000) / Math.max(1, sum(produced))).toFixed(2));
      f[`set_${tag}_orphans_per_node`] = produced.map((p, i) => p - byNode[i]).join(' ');
      f[`set_${tag}_empty_slots_per_1000`] = Number(
        (((y.slot - x.slot - canon.length) * 1000) / Math.max(1, y.slot - x.slot)).toFixed(1),
      );
      f[`set_${tag}_reorgs`] = sum(delta(x, y, 'validateer_sidechain_reorgs_total'));
      f[`set_${tag}_reorg_depth_sum`] = sum(delta(x, y, 'validateer_sidechain_reorg_depth_sum'));
      f[`set_${tag}_side_blocks`] = sum(delta(x, y, 'validateer_sidechain_blocks_imported_total{result="side"}'));
      f[`set_${tag}_invalid_blocks`] = sum(delta(x, y, 'validateer_sidechain_blocks_imported_total{result="invalid"}'));
      f[`set_${tag}_cpu_s_per_node`] = y.cpu.map((v, i) => (v - x.cpu[i]).toFixed(1)).join(' ');
      // Other processes on the machine (they disturb every figure here): busy CPU not used by the set or the bench.
      const seconds = (y.at - x.at) / 1000;
      const other = y.busy - x.busy - sum(y.cpu.map((v, i) => v - x.cpu[i])) - (y.self - x.self);
      f[`set_${tag}_other_cpu_share`] = Number(Math.max(0, other / (seconds * availableParallelism())).toFixed(3));
    };
    window(a, b, 'steady');
    window(b, c, 'load');

    // ---- throughput: load calls found in the canonical chain (author_callBlock), after the set converged ----
    const canonicalCalls = await countOnChain(rpcs[0], callHashes);
    f.set_calls_in_load_blocks = sum(headers.filter((h) => h.slot > b.slot).map((h) => h.calls));
    f.set_calls_submitted = load.submitted;
    f.set_calls_submitted_per_node = load.submittedPerUrl.join(' ');
    f.set_calls_inblock_notified = load.included;
    f.set_calls_canonical = canonicalCalls;
    f.set_calls_invalid = load.invalid + load.rpcErrors;
    f.set_calls_invalid_codes = [...load.invalidCodes].map(([c, k]) => `${c} x${k}`).join(', ') || 'none';
    // Valid calls not on the canonical chain after the set converged (notified inBlock in an abandoned block, or
    // never).
    f.set_calls_lost = load.submitted - load.invalid - load.rpcErrors - canonicalCalls;
    f.set_load_s = Number(load.seconds.toFixed(2));
    f.set_calls_per_s = Math.round(canonicalCalls / load.seconds);
    f.set_latency_p50_ms = Math.round(load.latencyMs.p50);
    f.set_latency_p99_ms = Math.round(load.latencyMs.p99);
    f.set_connections = o.connections;
    const loadCpu = c.cpu.map((v, i) => v - b.cpu[i]);
    f.set_node_cpu_us_per_call = Math.round((sum(loadCpu) * 1e6) / Math.max(1, canonicalCalls));
    f.set_loadgen_cpu_us_per_call = Math.round((load.cpuSeconds * 1e6) / Math.max(1, canonicalCalls));
    f.set_log_warnings =
      warnings
        .map((w, i) => [...w].map(([m, k]) => `v${i + 1} ${m} x${k}`).join('; '))
        .filter(Boolean)
        .join('; ') || 'none';
  } finally {
    await Promise.all(rpcs.map((r) => r.close().catch(() => undefined)));
    await Promise.all(nodes.map((x) => x.stop()));
  }

  // ---- the single-validateer figure, same calls, for the ratio ----
  let single = o.singleCallsPerS;
  f.set_single_source = single === null ? 'measured in this part' : 'the sidechain part of this run';
  if (single === null) {
    log(`set: the same ${o.calls} transfers against one validateer, for the ratio ...`);
    const sdir = join(root, 'single');
    mkdirSync(sdir, { recursive: true });
    const node = await startNodeProcess(sdir, {
      dataDir: join(sdir, 'data'),
      enclave: { devShardSecrets: true },
      sidechain: { slotDurationMs: o.slotMs, snapshotInterval: 100000 },
      pool: { maxPending: 200000, maxNonceAhead: 1024 },
      genesis: { balancesFile },
      // The load keeps thousands of calls watched per connection, over --connections of them from loopback.
      rpc: { maxSubscriptionsPerConnection: 1_000_000, maxConnectionsPerIp: 256 },
      log: { level: 'warn' },
    });
    try {
      const cpu0 = cpuSeconds(node.proc.pid!);
      const r = await runLoad(node.rpcUrl, requests, {
        connections: o.singleConnections,
        batch: 250,
        window: 4,
        timeoutMs: 300_000,
      });
      single = Math.round(r.callsPerSecond);
      f.set_single_latency_p50_ms = Math.round(r.latencyMs.p50);
      f.set_single_latency_p99_ms = Math.round(r.latencyMs.p99);
      f.set_single_node_cpu_us_per_call = Math.round(((cpuSeconds(node.proc.pid!) - cpu0) * 1e6) / r.included);
      f.set_single_peak_rss_bytes = peakRss(node.proc.pid!);
    } finally {
      await node.stop();
    }
  }
  f.set_single_calls_per_s = single;
  f.set_throughput_ratio = Number((Number(f.set_calls_per_s) / single).toFixed(3));
  return f;
}
