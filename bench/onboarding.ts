// Onboarding: a validateer joins a set whose chain is already long, and fetches, verifies and replays
// it from three peers at once (src/sync/onboarding.ts) before it authors.
//
// The chain (BENCH_ONBOARDING_BLOCKS, default 20,000 blocks) is generated offline in this process with
// the enclave core of a fifth authority G (no parentchain, dev shard secrets, static authorities
// [G, S1, S2, S3, J]): genesis with funded accounts, then one block in each of G's slots (slot = 0 mod 5)
// in the past, every 10th block carrying transfers. G's block store is copied into the data dirs of the
// three servers S1..S3 (each with enclave keys of its own); they replay it at start, mesh, and go on
// producing blocks in their slots (G stays offline: its slots are empty). Then the joiner J starts with
// the servers as bootstrap peers; the bench reads its log lines ('onboarding sync started', progress,
// 'onboarding sync done') and metrics until its first authored block, and checks the servers took it.
//
// Then, for the breakdown (all nodes but the servers stopped): the same chain fetched from the three
// servers by an in-process libp2p node alone (no apply), and applied alone in this process through the
// enclave host (importBlocks on a worker thread, as in the node) and a fresh block store (appendMany),
// in batches of p2p.maxBlocksPerRequest.
//
// BENCH_CPU_PROF_DIR=dir writes V8 CPU profiles of the joiner's threads (main, enclave, crypto workers).
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, createWriteStream, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { buildTransfer } from '../src/client/calls.ts';
import { connectRpc, type RpcClient } from '../src/client/rpc.ts';
import { configSchema } from '../src/config/schema.ts';
import { EnclaveCore } from '../src/enclave/core.ts';
import { Enclave } from '../src/enclave/boundary/host.ts';
import { createLogger } from '../src/node/logger.ts';
import { createNetwork } from '../src/p2p/network.ts';
import { describeBlock } from '../src/sidechain/block-tree.ts';
import { BlockStore, type StoredBlock } from '../src/sidechain/store.ts';
import { benchAccount, benchPublicKeys } from './accounts.ts';
import { freePort, stopProcess, trackChild } from './node-process.ts';
import { scrapeMetrics } from '../src/metrics/scrape.ts';
import { cpuSeconds, machineBusySeconds, peakRss } from './proc-stats.ts';
import { nodeProcessEnv } from '../src/node/process-env.ts';
import { fromHex, same, toHex } from '../src/protocol/bytes.ts';
import { DEV_SHARD_POLICY } from '../src/protocol/shard-policy.ts';

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const POOL = { maxPending: 200000, maxNonceAhead: 1024, futureTtlMs: 30000 };
/** Genesis accounts of the generated chain; the senders of its transfers. */
const ACCOUNTS = 1000;
/** Every this many generated blocks carries CALLS_PER_ACTIVE_BLOCK transfers. */
const ACTIVE_EVERY = 10;
const CALLS_PER_ACTIVE_BLOCK = 20;

export interface OnboardingBenchOptions {
  /** Generated blocks (by G) the servers start with. */
  blocks: number;
  slotMs: number;
  log: (s: string) => void;
}

type Figures = Record<string, number | string>;
type LogLine = Record<string, unknown> & { msg?: string; level?: number; time?: number };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const r1 = (x: number) => Number(x.toFixed(1));
const r2 = (x: number) => Number(x.toFixed(2));

function dirBytes(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    total += e.isDirectory() ? dirBytes(p) : statSync(p).size;
  }
  return total;
}

// ---------- validateer processes ----------

/**
 * A validateer process whose log lines are read from its first byte (bench/node-process.ts attaches
 * only after the node is ready, and the joiner's figures are in the lines before that).
 */
interface NodeProc {
  name: string;
  proc: ChildProcess;
  rpcUrl: string;
  metricsUrl: string;
  /** Date.now() just before spawn. */
  spawnedAt: number;
  /** Parsed JSON log lines at info level and above, in order. */
  lines: LogLine[];
  /** warn/error lines by message. */
  warnings: Map<string, number>;
  stop(): Promise<void>;
}

async function spawnNode(
  dir: string,
  name: string,
  config: Record<string, unknown>,
  profile: boolean,
): Promise<NodeProc> {
  mkdirSync(dir, { recursive: true });
  const rpcPort = await freePort();
  const metricsPort = await freePort();
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify({ ...config, rpc: { port: rpcPort }, metrics: { port: metricsPort } }));
  const flags =
    profile && process.env.BENCH_CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF_DIR}`] : [];
  flags.push(...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []));
  const spawnedAt = Date.now();
  const proc = spawn(process.execPath, [...flags, MAIN, 'run', '--config', file], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: nodeProcessEnv(),
  });
  trackChild(proc);
  const logFile = createWriteStream(join(dir, 'node.log'));
  const lines: LogLine[] = [];
  const warnings = new Map<string, number>();
  let buf = '';
  proc.stdout!.on('data', (d: Buffer) => logFile.write(d));
  proc.stderr!.on('data', (d: Buffer) => {
    logFile.write(d);
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    for (const line of parts) {
      let j: LogLine;
      try {
        j = JSON.parse(line) as LogLine;
      } catch {
        continue; // not a log line
      }
      lines.push(j);
      if ((j.level ?? 0) >= 40) warnings.set(j.msg ?? '?', (warnings.get(j.msg ?? '?') ?? 0) + 1);
    }
  });
  proc.once('exit', () => logFile.end());
  return {
    name,
    proc,
    rpcUrl: `ws://127.0.0.1:${rpcPort}`,
    metricsUrl: `http://127.0.0.1:${metricsPort}`,
    spawnedAt,
    lines,
    warnings,
    stop: () => stopProcess(proc),
  };
}

const tail = (n: NodeProc) =>
  n.lines
    .slice(-6)
    .map((l) => JSON.stringify(l))
    .join('\n');

async function waitReady(n: NodeProc, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (n.proc.exitCode !== null || n.proc.signalCode !== null)
      throw new Error(`${n.name} exited during start:\n${tail(n)}`);
    if (Date.now() > deadline) throw new Error(`${n.name} not ready after ${timeoutMs} ms:\n${tail(n)}`);
    try {
      if ((await fetch(`${n.metricsUrl}/health/ready`)).status === 200) return;
    } catch {
      /* not listening yet */
    }
    await sleep(200);
  }
}

const findLine = (n: NodeProc, msg: string) => n.lines.find((l) => l.msg === msg);

interface CpuCut {
  at: number;
  joiner: number;
  servers: number[];
  self: number;
  busy: number;
}
function cpuCut(j: NodeProc, servers: NodeProc[]): CpuCut {
  const u = process.cpuUsage();
  return {
    at: performance.now(),
    joiner: cpuSeconds(j.proc.pid!),
    servers: servers.map((s) => cpuSeconds(s.proc.pid!)),
    self: (u.user + u.system) / 1e6,
    busy: machineBusySeconds(),
  };
}

interface Header {
  hash: string;
  number: number;
  slot: number;
  author: string;
  timestampMs: number;
}

/** All servers meshed, and the same block at the lowest head. */
async function converged(rpcs: RpcClient[], timeoutMs: number): Promise<Header> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const net = await Promise.all(rpcs.map((r) => r.request<{ peers: string[] }>('system_network')));
    const heads = await Promise.all(rpcs.map((r) => r.request<Header>('chain_getHeader')));
    const n = Math.min(...heads.map((h) => h.number));
    const at = await Promise.all(rpcs.map((r) => r.request<Header | null>('chain_getHeader', [n])));
    if (net.every((x) => x.peers.length >= rpcs.length - 1) && at.every((h) => h?.hash === at[0]?.hash)) return at[0]!;
    last = `peers ${net.map((x) => x.peers.length).join(', ')}; heads ${heads.map((h) => h.number).join(', ')}`;
    if (Date.now() > deadline) throw new Error(`servers did not mesh and converge within ${timeoutMs} ms (${last})`);
    await sleep(250);
  }
}

// ---------- the chain, generated offline ----------

interface Generated {
  ms: number;
  blocks: number;
  calls: number;
  activeBlocks: number;
  buildMs: number;
  submitMs: number;
  proposeMs: number;
  storeMs: number;
  lastSlot: number;
}

/** Genesis plus `blocks` blocks by G in its slots, in the past, stored in G's block store. */
async function generateChain(o: {
  dataDir: string;
  shard: Uint8Array;
  authorities: Uint8Array[];
  slotMs: number;
  blocks: number;
  log: (s: string) => void;
}): Promise<Generated> {
  const started = performance.now();
  const n = o.authorities.length;
  const core = EnclaveCore.open({
    dataDir: o.dataDir,
    shard: o.shard,
    shardPolicy: DEV_SHARD_POLICY,
    workers: availableParallelism(),
    pool: POOL,
    authorities: o.authorities,
    devShardSecrets: true,
    slotDurationMs: o.slotMs,
  });
  const store = await BlockStore.open(join(o.dataDir, 'chain'));
  const g: Generated = {
    ms: 0,
    blocks: o.blocks,
    calls: 0,
    activeBlocks: 0,
    buildMs: 0,
    submitMs: 0,
    proposeMs: 0,
    storeMs: 0,
    lastSlot: 0,
  };
  try {
    const info = core.info();
    if (!same(info.signingKey, o.authorities[0])) throw new Error('the generator is not authorities[0]');
    const key = { keyId: info.shieldingKeyId, publicKey: info.shieldingKey };
    // Slots in the past, G's own (0 mod n): the newest block is ~100 slots old when generation starts.
    let base = Math.floor(Date.now() / o.slotMs) - n * o.blocks - 100;
    base -= base % n;
    const recipients = benchPublicKeys(ACCOUNTS);
    const genesis = core.genesis(
      recipients.map((account) => ({ account, amount: 1_000_000_000n })),
      base * o.slotMs,
    );
    await store.append({ number: 0, hash: genesis.hash, bytes: genesis.block, callHashes: [] });
    const senders = Array.from({ length: ACCOUNTS }, (_, i) => benchAccount(i));
    const nonces = new Array<number>(ACCOUNTS).fill(0);
    let sender = 0;
    let pending: StoredBlock[] = [];
    const flush = async () => {
      const t = performance.now();
      await store.appendMany(pending);
      g.storeMs += performance.now() - t;
      pending = [];
    };
    for (let i = 1; i <= o.blocks; i++) {
      const slot = base + n * i,
        ts = slot * o.slotMs;
      let expected = 0;
      if (i % ACTIVE_EVERY === 0) {
        let t = performance.now();
        const requests: Uint8Array[] = [];
        for (let k = 0; k < CALLS_PER_ACTIVE_BLOCK; k++) {
          const a = sender++ % ACCOUNTS;
          const to = recipients[(a + 1 + (i % (ACCOUNTS - 1))) % ACCOUNTS]; // never the sender
          requests.push(buildTransfer(senders[a], { to, amount: 1n, nonce: nonces[a]++ }, key, o.shard).request);
        }
        g.buildMs += performance.now() - t;
        t = performance.now();
        const res = await core.submit(requests, ts);
        g.submitMs += performance.now() - t;
        const bad = res.find((r) => r.status !== 'ready');
        if (bad) throw new Error(`generated transfer refused: ${bad.status} ${bad.code} ${bad.message}`);
        expected = requests.length;
      }
      const t = performance.now();
      const p = core.propose({ slot: BigInt(slot), timestampMs: ts, maxCalls: 20000 });
      if (p.included.length !== expected || p.rejected.length > 0)
        throw new Error(
          `block ${p.number}: ${p.included.length} of ${expected} calls included, ${p.rejected.length} rejected`,
        );
      core.commit(p.hash);
      g.proposeMs += performance.now() - t;
      pending.push({
        number: p.number,
        hash: p.hash,
        bytes: p.block,
        callHashes: p.included.map((h) => Buffer.from(h, 'hex')),
      });
      g.calls += expected;
      if (expected > 0) g.activeBlocks++;
      g.lastSlot = slot;
      if (pending.length >= 512) await flush();
      if (i % 5000 === 0) o.log(`  ... ${i} blocks (${((performance.now() - started) / 1000).toFixed(1)} s)`);
    }
    await flush();
  } finally {
    await core.close();
    await store.close();
  }
  g.ms = performance.now() - started;
  return g;
}

// ---------- the breakdown ----------

/**
 * The whole chain from the servers, by one in-process libp2p node: blocks-by-range, `perPeer` requests in flight per
 * server, nothing applied.
 */
async function fetchAlone(
  dir: string,
  shard: Uint8Array,
  bootstrap: string[],
  servers: number,
  target: number,
  batch: number,
  perPeer: number,
): Promise<{ ms: number; blocks: number; peers: number }> {
  const network = await createNetwork({
    dataDir: dir,
    shard,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap,
    logger: createLogger({ level: 'silent' }),
    limits: {
      maxConnections: 64,
      maxGossipBytes: 8 << 20,
      maxRequestBytes: 4096,
      maxResponseBytes: 32 << 20,
      maxBlocksPerRequest: batch,
      requestTimeoutMs: 10_000,
      requestsPerSecond: 50,
    },
  });
  const zero = new Uint8Array(32);
  await network.start({
    onBlock: async () => 'ignore',
    onCall: async () => 'ignore',
    status: () => ({ headNumber: 0, headHash: zero, finalizedNumber: 0, finalizedHash: zero }),
    onPeerStatus: () => undefined,
    blocksByRange: async () => [],
    blocksByHash: async () => [],
  });
  try {
    const deadline = Date.now() + 30_000;
    while (network.connectedPeers().length < servers) {
      if (Date.now() > deadline)
        throw new Error(`fetch probe: ${network.connectedPeers().length} of ${servers} servers connected after 30 s`);
      await sleep(100);
    }
    const peers = network.connectedPeers();
    const ranges: { start: number; count: number }[] = [];
    for (let s = 0; s <= target; s += batch) ranges.push({ start: s, count: Math.min(batch, target - s + 1) });
    let blocks = 0;
    const started = performance.now();
    await Promise.all(
      peers.flatMap((peer) =>
        Array.from({ length: perPeer }, async () => {
          for (let r = ranges.shift(); r; r = ranges.shift()) {
            const got = await network.requestBlocksByRange(peer, r.start, r.count);
            if (got.length !== r.count) throw new Error(`fetch probe: ${got.length} blocks for #${r.start}+${r.count}`);
            blocks += got.length;
          }
        }),
      ),
    );
    return { ms: performance.now() - started, blocks, peers: peers.length };
  } finally {
    await network.stop();
  }
}

interface ApplyAlone {
  batches: number;
  blocks: number;
  importMs: number;
  importMaxMs: number;
  describeMs: number;
  appendMs: number;
  appendMaxMs: number;
  coreMs: number;
}

/**
 * The onboarding applier's work without the network: G's blocks, batch by batch, through the enclave
 * host (worker thread, zod-checked messages, as in the node) and into a fresh block store. Then the
 * same blocks through an EnclaveCore in this thread (no messaging), for the enclave's own share.
 */
async function applyAlone(
  dir: string,
  source: string,
  shard: Uint8Array,
  authorities: Uint8Array[],
  slotMs: number,
  batch: number,
): Promise<ApplyAlone> {
  const src = await BlockStore.open(join(source, 'chain'));
  const chunks: Uint8Array[][] = [];
  try {
    for await (const blocks of src.blocksFrom(0, batch)) chunks.push(blocks);
  } finally {
    await src.close();
  }
  const r: ApplyAlone = {
    batches: chunks.length,
    blocks: sum(chunks.map((c) => c.length)),
    importMs: 0,
    importMaxMs: 0,
    describeMs: 0,
    appendMs: 0,
    appendMaxMs: 0,
    coreMs: 0,
  };
  const hostDir = join(dir, 'host');
  const enclave = await Enclave.start({
    dataDir: hostDir,
    shard,
    shardPolicy: DEV_SHARD_POLICY,
    workers: configSchema.parse({}).enclave.workers,
    pool: POOL,
    authorities,
    slotDurationMs: slotMs,
    devShardSecrets: true,
  });
  const store = await BlockStore.open(join(hostDir, 'chain'));
  try {
    for (const blocks of chunks) {
      let t = performance.now();
      const res = await enclave.call('importBlocks', { blocks, nowMs: Date.now() });
      const importMs = performance.now() - t;
      if (res.failure || res.imported.length !== blocks.length)
        throw new Error(`apply probe: importBlocks failed: ${JSON.stringify(res.failure)}`);
      t = performance.now();
      const applied = blocks.map((bytes, i) => ({
        number: res.imported[i].number,
        hash: res.imported[i].hash,
        bytes,
        callHashes: describeBlock(bytes, null, null).block.callHashes,
      }));
      r.describeMs += performance.now() - t;
      t = performance.now();
      await store.appendMany(applied);
      const appendMs = performance.now() - t;
      r.importMs += importMs;
      r.importMaxMs = Math.max(r.importMaxMs, importMs);
      r.appendMs += appendMs;
      r.appendMaxMs = Math.max(r.appendMaxMs, appendMs);
    }
  } finally {
    await store.close();
    await enclave.close();
  }
  const core = EnclaveCore.open({
    dataDir: join(dir, 'core'),
    shard,
    shardPolicy: DEV_SHARD_POLICY,
    workers: availableParallelism(),
    pool: POOL,
    authorities,
    slotDurationMs: slotMs,
    devShardSecrets: true,
  });
  try {
    const t = performance.now();
    for (const blocks of chunks) {
      const res = await core.importBlocks(blocks, Date.now());
      if (res.failure) throw new Error(`apply probe: core importBlocks failed: ${JSON.stringify(res.failure)}`);
    }
    r.coreMs = performance.now() - t;
  } finally {
    await core.close();
  }
  return r;
}

// ---------- the bench ----------

export async function benchOnboarding(dir: string, o: OnboardingBenchOptions): Promise<Figures> {
  // The enclave core's crypto threads are unref'd (in a node the enclave thread keeps the process up):
  // here nothing else would keep the event loop alive while this process waits for them.
  const keepAlive = setInterval(() => undefined, 60_000);
  try {
    return await run(dir, o);
  } finally {
    clearInterval(keepAlive);
  }
}

async function run(dir: string, o: OnboardingBenchOptions): Promise<Figures> {
  const f: Figures = {};
  const log = o.log;
  const root = join(dir, 'onboarding');
  mkdirSync(root, { recursive: true });
  const shard = fromHex(configSchema.parse({}).shard);
  const batch = configSchema.parse({}).p2p.maxBlocksPerRequest;
  const names = ['G', 'S1', 'S2', 'S3', 'J'];
  const dataDir = (name: string) => join(root, name, 'data');

  log('onboarding: enclave keys of G (generator), S1..S3 (servers) and J (joiner), dev shard secrets ...');
  const keys = await Promise.all(
    names.map(async (name) => {
      const core = EnclaveCore.open({
        dataDir: dataDir(name),
        shard,
        shardPolicy: DEV_SHARD_POLICY,
        workers: 1,
        pool: POOL,
        authorities: [],
        devShardSecrets: true,
      });
      const k = core.info().signingKey;
      await core.close();
      return k;
    }),
  );
  const authorities = keys.map(toHex);
  const joinerKey = authorities[4].toLowerCase();

  log(
    `onboarding: generating ${o.blocks} blocks by G in its past slots (${o.slotMs} ms), ${CALLS_PER_ACTIVE_BLOCK} transfers in every ${ACTIVE_EVERY}th ...`,
  );
  const gen = await generateChain({
    dataDir: dataDir('G'),
    shard,
    authorities: keys,
    slotMs: o.slotMs,
    blocks: o.blocks,
    log,
  });
  f.onb_blocks_generated = gen.blocks;
  f.onb_gen_s = r1(gen.ms / 1000);
  f.onb_gen_calls = gen.calls;
  f.onb_gen_active_blocks = gen.activeBlocks;
  f.onb_gen_build_s = r1(gen.buildMs / 1000);
  f.onb_gen_submit_s = r1(gen.submitMs / 1000);
  f.onb_gen_propose_s = r1(gen.proposeMs / 1000);
  f.onb_gen_store_s = r1(gen.storeMs / 1000);
  f.onb_chain_bytes = dirBytes(join(dataDir('G'), 'chain'));
  f.onb_last_generated_block_age_s = r1((Date.now() - gen.lastSlot * o.slotMs) / 1000);
  log(`onboarding: generated in ${f.onb_gen_s} s (${gen.calls} transfers); copying G's block store to S1..S3 ...`);
  for (const s of ['S1', 'S2', 'S3'])
    cpSync(join(dataDir('G'), 'chain'), join(dataDir(s), 'chain'), { recursive: true });

  const servers: NodeProc[] = [];
  const rpcs: RpcClient[] = [];
  let joiner: NodeProc | undefined;
  let jrpc: RpcClient | undefined;
  try {
    // ---- the servers: replay the copied chain, mesh, produce in their slots ----
    const addresses: string[] = [];
    const startMs: number[] = [];
    for (const [i, name] of ['S1', 'S2', 'S3'].entries()) {
      log(`onboarding: starting server ${name} (replays #0..#${o.blocks} at start) ...`);
      const t = performance.now();
      const s = await spawnNode(
        join(root, name),
        name,
        {
          dataDir: dataDir(name),
          authorities,
          enclave: { devShardSecrets: true, workers: 1 },
          p2p: { bootstrap: [...addresses] },
          sidechain: { slotDurationMs: o.slotMs },
          log: { level: 'info' },
        },
        false,
      );
      servers.push(s);
      await waitReady(s, 300_000);
      startMs.push(performance.now() - t);
      rpcs.push(await connectRpc(s.rpcUrl));
      addresses.push(...(await rpcs[i].request<{ addresses: string[] }>('system_network')).addresses);
    }
    const top = await converged(rpcs, 60_000);
    const replays = servers.map((s) => findLine(s, 'state rebuilt from the event log'));
    f.onb_server_replay_ms = replays.map((l) => String(l?.ms ?? '?')).join(' ');
    f.onb_server_replay_from_snapshot = replays.map((l) => String(l?.fromSnapshot ?? 'none')).join(' ');
    f.onb_server_start_s = startMs.map((x) => (x / 1000).toFixed(1)).join(' ');
    log(
      `onboarding: servers meshed at #${top.number} (replays ${f.onb_server_replay_ms} ms); starting the joiner J ...`,
    );

    // ---- the joiner ----
    const t0 = performance.now();
    joiner = await spawnNode(
      join(root, 'J'),
      'J',
      {
        dataDir: dataDir('J'),
        authorities,
        enclave: { devShardSecrets: true },
        p2p: { bootstrap: addresses },
        sidechain: { slotDurationMs: o.slotMs },
        log: { level: 'info' },
      },
      true,
    );
    const j = joiner;
    let syncPeersMax = 0,
      producedAt: number | null = null,
      polls = 0;
    // CPU of the joiner, the servers, this process and the whole machine when the sync's first and last
    // log lines arrive (polled every 50 ms): who used the machine's cores meanwhile.
    let cpuAtStart: CpuCut | null = null,
      cpuAtDone: CpuCut | null = null;
    const deadline = Date.now() + 120_000 + o.blocks * 5;
    while (producedAt === null) {
      if (j.proc.exitCode !== null || j.proc.signalCode !== null) throw new Error(`the joiner exited:\n${tail(j)}`);
      if (Date.now() > deadline)
        throw new Error(`the joiner authored no block within ${Math.round((Date.now() - t0) / 1000)} s:\n${tail(j)}`);
      if (!cpuAtStart && findLine(j, 'onboarding sync started')) {
        cpuAtStart = cpuCut(j, servers);
        f.onb_joiner_peak_rss_before_sync_bytes = peakRss(j.proc.pid!);
      }
      if (!cpuAtDone && findLine(j, 'onboarding sync done')) cpuAtDone = cpuCut(j, servers);
      if (polls++ % 4 === 0) {
        const m = await scrapeMetrics(j.metricsUrl).catch(() => null);
        if (m) {
          syncPeersMax = Math.max(syncPeersMax, m.get('validateer_sync_peers') ?? 0);
          if ((m.get('validateer_sidechain_blocks_produced_total') ?? 0) >= 1) producedAt = performance.now() - t0;
        }
      }
      if (producedAt === null) await sleep(50);
    }
    const started = findLine(j, 'onboarding sync started'),
      done = findLine(j, 'onboarding sync done');
    if (!started || !done)
      throw new Error(`the joiner authored, but logged no onboarding sync ${started ? 'end' : 'start'}:\n${tail(j)}`);
    f.onb_joiner_peak_rss_bytes = peakRss(j.proc.pid!);
    f.onb_server_peak_rss_bytes = Math.max(...servers.map((x) => peakRss(x.proc.pid!)));
    if (cpuAtStart && cpuAtDone) {
      const s = (cpuAtDone.at - cpuAtStart.at) / 1000,
        cores = availableParallelism();
      const joinerCpu = cpuAtDone.joiner - cpuAtStart.joiner,
        serversCpu = sum(cpuAtDone.servers) - sum(cpuAtStart.servers),
        self = cpuAtDone.self - cpuAtStart.self;
      f.onb_sync_cpu_window_s = r2(s);
      f.onb_sync_joiner_cpu_s = r2(joinerCpu);
      f.onb_sync_servers_cpu_s = cpuAtDone.servers.map((x, i) => (x - cpuAtStart!.servers[i]).toFixed(2)).join(' ');
      f.onb_sync_cpu_share_joiner = r2(joinerCpu / (s * cores));
      f.onb_sync_cpu_share_servers = r2(serversCpu / (s * cores));
      f.onb_sync_cpu_share_other = r2(
        Math.max(0, (cpuAtDone.busy - cpuAtStart.busy - joinerCpu - serversCpu - self) / (s * cores)),
      );
    }
    f.onb_joiner_cpu_s = r1(cpuSeconds(j.proc.pid!));

    // Its first own block, found in its chain above the synced part; the servers must have it too.
    jrpc = await connectRpc(j.rpcUrl);
    const head = (await jrpc.request<Header>('chain_getHeader')).number;
    const from = Number(done.to) + 1;
    const replies = await jrpc.batch(
      Array.from({ length: Math.max(0, head - from + 1) }, (_, k) => ({
        method: 'chain_getHeader',
        params: [from + k],
      })),
    );
    const first = replies
      .map((x) => ('result' in x ? (x.result as Header | null) : null))
      .find((h) => h?.author.toLowerCase() === joinerKey);
    if (!first)
      throw new Error(`the joiner's metrics count an authored block, but none is in its chain #${from}..#${head}`);
    let inServers = false;
    for (let k = 0; k < 40 && !inServers; k++) {
      const hs = await Promise.all(rpcs.map((r) => r.request<Header | null>('chain_getHeader', [first.number])));
      inServers = hs.every((h) => h?.hash === first.hash);
      if (!inServers) await sleep(o.slotMs);
    }

    const progress = j.lines
      .filter((l) => l.msg === 'onboarding sync' && typeof l.blocksPerSecond === 'number')
      .map((l) => Number(l.blocksPerSecond));
    const sorted = [...progress].sort((a, b) => a - b);
    const at = (l: LogLine) => (Number(l.time) - j.spawnedAt) / 1000;
    const syncBlocks = Number(done.blocks);
    const wallS = (Number(done.time) - Number(started.time)) / 1000;
    f.onb_slot_ms = o.slotMs;
    f.onb_servers = servers.length;
    f.onb_batch = batch;
    f.onb_sync_from = Number(started.from);
    f.onb_sync_target = Number(started.target);
    f.onb_sync_to = Number(done.to);
    f.onb_sync_blocks = syncBlocks;
    f.onb_sync_ms = Number(done.ms);
    f.onb_sync_blocks_per_s = Number(done.blocksPerSecond);
    f.onb_sync_wall_s = r2(wallS);
    f.onb_sync_wall_blocks_per_s = Math.round(syncBlocks / wallS);
    f.onb_sync_peers = Number(started.peers);
    f.onb_sync_peers_metric_max = syncPeersMax;
    f.onb_sync_dropped = (done.dropped as string[] | undefined)?.length ?? 0;
    f.onb_progress_lines = progress.length;
    f.onb_progress_blocks_per_s = progress.length
      ? `${sorted[0]} / ${sorted[Math.floor(sorted.length / 2)]} / ${sorted.at(-1)}`
      : 'none';
    const enclaveUp = j.lines.find((l) => l.msg?.startsWith('enclave started')),
      p2pUp = findLine(j, 'p2p started');
    f.onb_spawn_to_enclave_s = enclaveUp ? r2(at(enclaveUp)) : 'n/a';
    f.onb_spawn_to_p2p_s = p2pUp ? r2(at(p2pUp)) : 'n/a';
    f.onb_spawn_to_sync_start_s = r2(at(started));
    f.onb_spawn_to_sync_done_s = r2(at(done));
    f.onb_first_block_s = r2((first.timestampMs - j.spawnedAt) / 1000);
    f.onb_first_block_metric_s = r2(producedAt / 1000);
    f.onb_first_block_number = first.number;
    f.onb_first_block_after_sync_s = r2((first.timestampMs - Number(done.time)) / 1000);
    f.onb_first_block_in_servers = inServers ? 'yes' : 'no';
    f.onb_joiner_log = JSON.stringify({
      started: pick(started, ['from', 'target', 'peers']),
      done: pick(done, ['from', 'to', 'blocks', 'ms', 'blocksPerSecond', 'dropped']),
    });
    f.onb_log_warnings =
      [...servers, j]
        .map((n) => [...n.warnings].map(([m, k]) => `${n.name} ${m} x${k}`).join('; '))
        .filter(Boolean)
        .join('; ') || 'none';
    log(
      `onboarding: J synced ${syncBlocks} blocks at ${f.onb_sync_blocks_per_s} blocks/s, first own block #${first.number} after ${f.onb_first_block_s} s; breakdown ...`,
    );

    // ---- breakdown: fetch alone, from the same servers (the joiner stopped) ----
    await jrpc.close().catch(() => undefined);
    jrpc = undefined;
    await j.stop();
    const fa = await fetchAlone(join(root, 'F'), shard, addresses, servers.length, Number(started.target), batch, 2);
    f.onb_fetch_alone_ms = Math.round(fa.ms);
    f.onb_fetch_alone_blocks_per_s = Math.round((fa.blocks * 1000) / fa.ms);
    f.onb_fetch_alone_peers = fa.peers;
  } finally {
    await jrpc?.close().catch(() => undefined);
    await Promise.all(rpcs.map((r) => r.close().catch(() => undefined)));
    await Promise.all([...servers, ...(joiner ? [joiner] : [])].map((n) => n.stop()));
  }

  // ---- breakdown: apply alone (enclave host + block store), nothing else running ----
  const ap = await applyAlone(join(root, 'A'), dataDir('G'), shard, keys, o.slotMs, batch);
  f.onb_apply_blocks = ap.blocks;
  f.onb_apply_batches = ap.batches;
  f.onb_apply_alone_blocks_per_s = Math.round((ap.blocks * 1000) / (ap.importMs + ap.describeMs + ap.appendMs));
  f.onb_import_ms_per_batch = r1(ap.importMs / ap.batches);
  f.onb_import_max_ms = r1(ap.importMaxMs);
  f.onb_import_blocks_per_s = Math.round((ap.blocks * 1000) / ap.importMs);
  f.onb_core_import_blocks_per_s = Math.round((ap.blocks * 1000) / ap.coreMs);
  f.onb_describe_ms_per_batch = r1(ap.describeMs / ap.batches);
  f.onb_append_ms_per_batch = r1(ap.appendMs / ap.batches);
  f.onb_append_max_ms = r1(ap.appendMaxMs);
  f.onb_append_blocks_per_s = Math.round((ap.blocks * 1000) / ap.appendMs);
  return f;
}

function pick(l: LogLine, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.map((k) => [k, l[k]]));
}
