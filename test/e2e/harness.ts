// Shared helpers for the end-to-end tests: start a real validateer process (src/cli/main.ts run) on
// free local ports, wait until it is ready, capture its output to files, and stop it reliably.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { readFile } from 'node:fs/promises';
import {
  mkdirSync,
  mkdtempSync,
  openSync,
  closeSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createNetwork, DEFAULT_LIMITS, type Network } from '../../src/p2p/network.ts';
import { createLogger } from '../../src/node/logger.ts';
import { nodeProcessEnv } from '../../src/node/process-env.ts';
import type { ClientTrust } from '../../src/client/client.ts';

/** Repository root (the node is started from here so relative imports and config/dev.json resolve). */
export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const MAIN = join(ROOT, 'src', 'cli', 'main.ts');
export const GENESIS_AMOUNT = 1_000_000_000_000n;
export const GENESIS_ACCOUNTS = ['//Alice', '//Bob', '//Charlie'] as const;

/**
 * Client trust for tests about something else: the test's own nodes are believed, whichever enclave signs (its
 * signatures are still checked). Trust itself is tested with pinned keys and the parentchain registry
 * (test/client/trust.test.ts, parentchain.test.ts).
 */
export const OWN_NODES: ClientTrust = { member: async () => {} };

const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 20_000;

// ---------- small utilities ----------

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `fn` until it returns a value other than undefined/false; throws with `what` on timeout. */
export async function waitFor<T>(
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  timeoutMs = 30_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? ` (last error: ${(lastErr as Error).message})` : ''}`,
      );
    }
    await sleep(intervalMs);
  }
}

/** A port that was free a moment ago on 127.0.0.1 (listen on :0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolvePort(port));
    });
  });
}

const tempDirs: string[] = [];
/** A temp dir removed by cleanupTempDirs() (call it in `after`). */
export function tempDir(prefix = 'validateer-e2e-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(d);
  return d;
}
export function cleanupTempDirs(): void {
  for (const d of tempDirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** Environment for child processes: no stray VALIDATEER_* settings or test-runner context leak in. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('VALIDATEER_') || k === 'NODE_TEST_CONTEXT') continue;
    env[k] = v;
  }
  return nodeProcessEnv(env, extra); // as the bin runs a node
}

/** Every regular file under `dir`, recursively. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) out.push(...listFiles(p));
    else if (st.isFile()) out.push(p);
  }
  return out;
}

/** The files (of `files`) whose raw bytes contain `needle`. */
export function filesContaining(files: string[], needle: Uint8Array | string): string[] {
  const n = typeof needle === 'string' ? Buffer.from(needle, 'utf8') : Buffer.from(needle);
  if (n.length === 0) throw new Error('empty needle');
  return files.filter((f) => readFileSync(f).includes(n));
}

// ---------- the node process ----------

export interface StartNodeOptions {
  /** Persistent across restarts; defaults to <root>/data. */
  dataDir?: string;
  /** Where the config file and captured logs go; defaults to a fresh temp dir. */
  root?: string;
  rpcPort?: number;
  metricsPort?: number;
  slotMs?: number;
  /** Deep-merged into the generated config. */
  extraConfig?: Record<string, unknown>;
  /** Wait for /health/ready (default); false: return once the banner is out (e.g. a node that syncs first). */
  waitReady?: boolean;
  /** The command: `run` (default) or `join` (a validateer joining a running set). */
  command?: 'run' | 'join';
  /**
   * An existing config file used as is, as an operator would (then data dir, ports and slot go as flags; no
   * extraConfig).
   */
  configFile?: string;
  /** More command-line arguments, after the config. */
  args?: string[];
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface NodeHandle {
  rpcUrl: string;
  metricsUrl: string;
  rpcPort: number;
  metricsPort: number;
  dataDir: string;
  root: string;
  configFile: string;
  proc: ChildProcess;
  logFiles: { stdout: string; stderr: string };
  exited: Promise<ExitInfo>;
  stdout(): string;
  stderr(): string;
  /** JSON log lines from stderr (non-JSON lines skipped). */
  logs(): Record<string, unknown>[];
  /** Sends a signal and waits for the process to exit. */
  kill(signal: NodeJS.Signals): Promise<ExitInfo>;
  /** SIGTERM, then SIGKILL if it has not exited in time. Idempotent. */
  stop(): Promise<ExitInfo>;
}

const running = new Set<ChildProcess>();
// Safety net: never leave a node behind, even if a test forgets or the runner bails out.
process.once('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

let starts = 0;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b))
    out[k] = isObject(v) && isObject(out[k]) ? deepMerge(out[k] as Record<string, unknown>, v) : v;
  return out;
}

export async function startNode(opts: StartNodeOptions = {}): Promise<NodeHandle> {
  const root = opts.root ?? tempDir();
  const dataDir = opts.dataDir ?? join(root, 'data');
  const rpcPort = opts.rpcPort ?? (await freePort());
  let metricsPort = opts.metricsPort ?? (await freePort());
  while (metricsPort === rpcPort) metricsPort = await freePort();
  const n = ++starts;
  const configFile = opts.configFile ?? join(root, `config-${n}.json`);
  const args = [MAIN, opts.command ?? 'run', '--config', configFile];
  if (opts.configFile) {
    if (opts.extraConfig) throw new Error('startNode: extraConfig needs a generated config (no configFile)');
    args.push('--data-dir', dataDir, '--rpc-port', String(rpcPort), '--metrics-port', String(metricsPort));
    if (opts.slotMs !== undefined) args.push('--slot-ms', String(opts.slotMs));
  } else {
    const config = deepMerge(
      {
        dataDir,
        rpc: { host: '127.0.0.1', port: rpcPort },
        metrics: { enabled: true, host: '127.0.0.1', port: metricsPort },
        enclave: { workers: 1 },
        sidechain: { slotDurationMs: opts.slotMs ?? 200, snapshotInterval: 10 },
        genesis: { balances: GENESIS_ACCOUNTS.map((account) => ({ account, amount: GENESIS_AMOUNT.toString() })) },
        log: { level: 'info' },
      },
      opts.extraConfig ?? {},
    );
    writeFileSync(configFile, JSON.stringify(config, null, 2));
  }
  args.push(...(opts.args ?? []));
  const logDir = join(root, 'logs');
  mkdirSync(logDir, { recursive: true });
  const logFiles = { stdout: join(logDir, `node-${n}.stdout.log`), stderr: join(logDir, `node-${n}.stderr.log`) };
  const outFd = openSync(logFiles.stdout, 'w');
  const errFd = openSync(logFiles.stderr, 'w');
  let proc: ChildProcess;
  try {
    proc = spawn(process.execPath, args, { cwd: ROOT, env: childEnv(), stdio: ['ignore', outFd, errFd] });
  } finally {
    closeSync(outFd);
    closeSync(errFd);
  }
  running.add(proc);
  let exitInfo: ExitInfo | undefined;
  const exited = new Promise<ExitInfo>((resolveExit) => {
    proc.once('exit', (code, signal) => {
      running.delete(proc);
      exitInfo = { code, signal };
      resolveExit(exitInfo);
    });
  });

  const stdout = () => readFileSync(logFiles.stdout, 'utf8');
  const stderr = () => readFileSync(logFiles.stderr, 'utf8');
  const logs = () =>
    stderr()
      .split('\n')
      .flatMap((line) => {
        if (!line.startsWith('{')) return [];
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
  const kill = async (signal: NodeJS.Signals): Promise<ExitInfo> => {
    if (exitInfo) return exitInfo;
    proc.kill(signal);
    return exited;
  };
  const stop = async (): Promise<ExitInfo> => {
    if (exitInfo) return exitInfo;
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), STOP_TIMEOUT_MS);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  };

  try {
    // The banner names the endpoints; readiness means the node has authored a block.
    const banner = await waitFor(
      () => {
        if (exitInfo) throw new Error(`node exited early (${JSON.stringify(exitInfo)}): ${stderr().slice(-2000)}`);
        const text = stdout();
        const rpc = /JSON-RPC\s+(ws:\/\/\S+)/.exec(text)?.[1];
        const metrics = /metrics\s+(http:\/\/\S+)\/metrics/.exec(text)?.[1];
        return rpc && metrics ? { rpc, metrics } : undefined;
      },
      'the node banner',
      READY_TIMEOUT_MS,
      50,
    ).catch((err: Error) => {
      if (exitInfo)
        throw new Error(`node exited early (${JSON.stringify(exitInfo)}); stderr: ${stderr().slice(-2000)}`, {
          cause: err,
        });
      throw err;
    });
    if (opts.waitReady !== false)
      await waitFor(
        async () => {
          if (exitInfo) throw new Error(`node exited early (${JSON.stringify(exitInfo)})`);
          const res = await fetch(`${banner.metrics}/health/ready`);
          await res.arrayBuffer();
          return res.status === 200;
        },
        '/health/ready to answer 200',
        READY_TIMEOUT_MS,
        50,
      );
    return {
      rpcUrl: banner.rpc,
      metricsUrl: banner.metrics,
      rpcPort,
      metricsPort,
      dataDir,
      root,
      configFile,
      proc,
      logFiles,
      exited,
      stdout,
      stderr,
      logs,
      kill,
      stop,
    };
  } catch (err) {
    await stop();
    throw new Error(
      `${(err as Error).message}\n--- stdout ---\n${stdout().slice(-2000)}\n--- stderr ---\n${stderr().slice(-4000)}`,
    );
  }
}

/** Restarts a node on the same data dir and ports (the previous process must have exited). */
export function restartNode(
  prev: NodeHandle,
  opts: Omit<StartNodeOptions, 'dataDir' | 'root' | 'rpcPort' | 'metricsPort'> = {},
): Promise<NodeHandle> {
  return startNode({
    ...opts,
    dataDir: prev.dataDir,
    root: prev.root,
    rpcPort: prev.rpcPort,
    metricsPort: prev.metricsPort,
  });
}

// ---------- the CLI ----------

/** `validateer keys` for each data dir (creating its enclave keys): their signing keys, in order. */
export async function createEnclaveKeys(
  dataDirs: string[],
  opts: { devShardSecrets?: boolean } = {},
): Promise<string[]> {
  const env = opts.devShardSecrets ? { VALIDATEER_ENCLAVE__DEV_SHARD_SECRETS: 'true' } : undefined;
  const out = await Promise.all(dataDirs.map((d) => runCli(['keys', '--data-dir', d], { env })));
  return out.map((r, i) => {
    if (r.code !== 0) throw new Error(`validateer keys --data-dir ${dataDirs[i]} failed: ${r.stderr}`);
    return (JSON.parse(r.stdout) as { signingKey: string }).signingKey;
  });
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `node src/cli/main.ts ...args` to completion (killed after timeoutMs). */
export function runCli(
  args: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number; cwd?: string } = {},
): Promise<CliResult> {
  return new Promise((resolveRun, reject) => {
    const proc = spawn(process.execPath, [MAIN, ...args], {
      cwd: opts.cwd ?? ROOT,
      env: childEnv(opts.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(proc);
    let stdout = '';
    let stderr = '';
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => proc.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    proc.once('error', (err) => {
      clearTimeout(timer);
      running.delete(proc);
      reject(err);
    });
    proc.once('close', (code, signal) => {
      clearTimeout(timer);
      running.delete(proc);
      resolveRun({ code, signal, stdout, stderr });
    });
  });
}

// ---------- metrics ----------

export { scrapeMetrics } from '../../src/metrics/scrape.ts';

// ---------- a bare libp2p peer ----------

/**
 * A libp2p peer of the shard run by the test itself (to send forged gossip or requests), dialling
 * `bootstrap`; it serves nothing and has no chain. The caller stops it.
 */
export async function startTestPeer(shard: Uint8Array, bootstrap: string[]): Promise<Network> {
  const zero = new Uint8Array(32);
  const peer = await createNetwork({
    dataDir: tempDir('validateer-test-peer-'),
    shard,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap,
    limits: DEFAULT_LIMITS,
    logger: createLogger({ level: 'silent' }),
  });
  await peer.start({
    onBlock: async () => 'ignore',
    onCall: async () => 'ignore',
    onPeerStatus: () => undefined,
    status: () => ({ headNumber: 0, headHash: zero, finalizedNumber: 0, finalizedHash: zero }),
    blocksByRange: async () => [],
    blocksByHash: async () => [],
  });
  return peer;
}

/**
 * Starts several nodes at once and waits for all of them. A set on a parentchain needs this: only its
 * first registered member creates block 0, so the others become ready only once they have fetched it.
 * If one fails to start, those that did are stopped and the first error is rethrown.
 */
export async function startNodes(opts: StartNodeOptions[]): Promise<NodeHandle[]> {
  const settled = await Promise.allSettled(opts.map((o) => startNode(o)));
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) {
    await Promise.all(settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value.stop()] : [])));
    throw failed.reason;
  }
  return settled.map((s) => (s as PromiseFulfilledResult<NodeHandle>).value);
}

/** `count` distinct ports that were free a moment ago (all held open at once while picking, so no two are the same). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<Server>((resolveServer, reject) => {
          const srv = createServer();
          srv.unref();
          srv.once('error', reject);
          srv.listen(0, '127.0.0.1', () => resolveServer(srv));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/**
 * `count` consecutive ports on 127.0.0.1 that were all free a moment ago (the devnet counts its ports up from a base).
 */
export async function freePortRun(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * (40_000 - count));
    const servers: Server[] = [];
    const ok = await (async () => {
      for (let port = base; port < base + count; port++) {
        const srv = createServer();
        const bound = await new Promise<boolean>((resolveBind) => {
          srv.once('error', () => resolveBind(false));
          srv.listen(port, '127.0.0.1', () => resolveBind(true));
        });
        if (!bound) return false;
        servers.push(srv);
      }
      return true;
    })();
    await Promise.all(servers.map((srv) => new Promise((r) => srv.close(r))));
    if (ok) return base;
  }
  throw new Error(`no run of ${count} free ports found`);
}

// ---------- processes ----------

interface ProcStat {
  pid: number;
  ppid: number;
  pgrp: number;
  state: string;
}

/** Every live process as /proc shows it (Linux); processes that vanish while being read are skipped. */
export async function processTable(): Promise<ProcStat[]> {
  const pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  const rows = await Promise.all(
    pids.map(async (pid) => {
      try {
        const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
        // "pid (comm) state ppid pgrp …": comm may contain spaces and parentheses, so split after the last ')'.
        const [state, ppid, pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        return [{ pid: Number(pid), ppid: Number(ppid), pgrp: Number(pgrp), state }];
      } catch {
        return [];
      }
    }),
  );
  return rows.flat();
}

/** Pids of the live (not zombie) processes in process group `pgid`. */
export async function processGroup(pgid: number): Promise<number[]> {
  return (await processTable()).filter((p) => p.pgrp === pgid && p.state !== 'Z').map((p) => p.pid);
}

/** Pids of every live descendant of `pid` (children, their children, …). */
export async function descendants(pid: number): Promise<number[]> {
  const table = (await processTable()).filter((p) => p.state !== 'Z');
  const out: number[] = [];
  const frontier = [pid];
  while (frontier.length > 0) {
    const parent = frontier.pop()!;
    for (const p of table) {
      if (p.ppid === parent) {
        out.push(p.pid);
        frontier.push(p.pid);
      }
    }
  }
  return out;
}

// ---------- the devnet (`validateer devnet`, what `npm start` runs) ----------

export interface StartDevnetOptions {
  validateers?: number;
  slotMs?: number;
  /** Parentchain block time. */
  blockMs?: number;
  logLevel?: string;
}

export interface DevnetValidateer {
  index: number;
  rpcUrl: string;
  metricsUrl: string;
  p2p: string;
  log: string;
}

export interface DevnetHandle {
  proc: ChildProcess;
  /** The devnet runs in a process group of its own, led by its pid: everything it starts is in it. */
  pgid: number;
  dataDir: string;
  parentchain: string;
  validateers: DevnetValidateer[];
  exited: Promise<ExitInfo>;
  stdout(): string;
  stderr(): string;
  /** Sends a signal to the devnet process (not its group) and waits for it to exit. */
  kill(signal: NodeJS.Signals): Promise<ExitInfo>;
  /** SIGINT (as Ctrl-C), then SIGKILL to the whole group if it has not exited in time. Idempotent. */
  stop(): Promise<ExitInfo>;
}

const devnetGroups = new Set<number>();
process.once('exit', () => {
  for (const pgid of devnetGroups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** Starts `validateer devnet` on free loopback ports and waits until it has printed its endpoints. */
export async function startDevnet(opts: StartDevnetOptions = {}): Promise<DevnetHandle> {
  const n = opts.validateers ?? 3;
  const root = tempDir('validateer-devnet-');
  const dataDir = join(root, 'devnet');
  // One run of ports: rpc (n), metrics (n), p2p (n), then the parentchain.
  const base = await freePortRun(3 * n + 1);
  const args = [
    MAIN,
    'devnet',
    '--validateers',
    String(n),
    '--data-dir',
    dataDir,
    '--rpc-port',
    String(base),
    '--metrics-port',
    String(base + n),
    '--p2p-port',
    String(base + 2 * n),
    '--parentchain-port',
    String(base + 3 * n),
  ];
  if (opts.slotMs !== undefined) args.push('--slot-ms', String(opts.slotMs));
  if (opts.blockMs !== undefined) args.push('--block-ms', String(opts.blockMs));
  if (opts.logLevel !== undefined) args.push('--log-level', opts.logLevel);
  const logFiles = { stdout: join(root, 'devnet.stdout.log'), stderr: join(root, 'devnet.stderr.log') };
  const outFd = openSync(logFiles.stdout, 'w');
  const errFd = openSync(logFiles.stderr, 'w');
  let proc: ChildProcess;
  try {
    // detached: a process group of its own, so the test can tell whether anything it started outlives it.
    proc = spawn(process.execPath, args, {
      cwd: ROOT,
      env: childEnv(),
      stdio: ['ignore', outFd, errFd],
      detached: true,
    });
  } finally {
    closeSync(outFd);
    closeSync(errFd);
  }
  const pgid = proc.pid!;
  devnetGroups.add(pgid);
  let exitInfo: ExitInfo | undefined;
  const exited = new Promise<ExitInfo>((resolveExit) => {
    proc.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      resolveExit(exitInfo);
    });
  });
  const stdout = () => readFileSync(logFiles.stdout, 'utf8');
  const stderr = () => readFileSync(logFiles.stderr, 'utf8');
  const kill = async (signal: NodeJS.Signals): Promise<ExitInfo> => {
    if (exitInfo) return exitInfo;
    proc.kill(signal);
    return exited;
  };
  const stop = async (): Promise<ExitInfo> => {
    if (!exitInfo) proc.kill('SIGINT');
    // Generous: the devnet gives each validateer 20 s to stop, then closes the chain.
    const timer = setTimeout(() => {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, 60_000);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
      if ((await processGroup(pgid)).length === 0) devnetGroups.delete(pgid);
    }
  };

  try {
    const validateers = await waitFor(
      () => {
        if (exitInfo) throw new Error(`devnet exited early (${JSON.stringify(exitInfo)})`);
        const text = stdout();
        if (!text.includes('Press Ctrl-C to stop.')) return undefined;
        return [
          ...text.matchAll(/^ {2}validateer (\d+) +JSON-RPC (\S+) +metrics (\S+)\/metrics +p2p (\S+) +log (\S+)$/gm),
        ].map((m): DevnetValidateer => ({ index: Number(m[1]), rpcUrl: m[2], metricsUrl: m[3], p2p: m[4], log: m[5] }));
      },
      'the devnet to print its endpoints',
      180_000,
      100,
    );
    const parentchain = /^ {2}parentchain +(ws:\/\/\S+)/m.exec(stdout())?.[1];
    if (!parentchain || validateers.length !== n) throw new Error(`unexpected devnet banner:\n${stdout()}`);
    return { proc, pgid, dataDir, parentchain, validateers, exited, stdout, stderr, kill, stop };
  } catch (err) {
    await stop();
    throw new Error(
      `${(err as Error).message}\n--- stdout ---\n${stdout().slice(-2000)}\n--- stderr ---\n${stderr().slice(-4000)}`,
    );
  }
}
