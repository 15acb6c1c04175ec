// Starts a validateer as a child process on free loopback ports and waits until it is ready.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { createWriteStream, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nodeProcessEnv } from '../src/node/process-env.ts';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

// Every child the bench starts, so that none outlives it: stopChildren() on errors and signals,
// SIGKILL as the last resort when the bench process exits anyway.
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of children) p.kill('SIGKILL');
});

export function trackChild(proc: ChildProcess): void {
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
}

/** SIGINT to every child still running, SIGKILL to those not gone after `graceMs`. */
export async function stopChildren(graceMs = 10_000): Promise<void> {
  await Promise.all(
    [...children].map(async (p) => {
      if (p.exitCode !== null || p.signalCode !== null) return;
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGINT');
      const t = setTimeout(() => p.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    }),
  );
}

export interface NodeProcess {
  proc: ChildProcess;
  rpcUrl: string;
  metricsUrl: string;
  stop(): Promise<void>;
}

export async function startNodeProcess(
  dir: string,
  config: Record<string, unknown>,
  timeoutMs = 120_000,
): Promise<NodeProcess> {
  const rpcPort = await freePort();
  const metricsPort = await freePort();
  const file = join(dir, 'config.json');
  writeFileSync(
    file,
    JSON.stringify({ ...config, rpc: { ...(config.rpc as object), port: rpcPort }, metrics: { port: metricsPort } }),
  );
  // BENCH_CPU_PROF_DIR=dir writes V8 CPU profiles of the node's threads there (open in Chrome DevTools).
  const prof = process.env.BENCH_CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF_DIR}`] : [];
  // BENCH_NODE_ARGS="--flag ..." passes extra Node/V8 flags to the node under test (for experiments).
  prof.push(...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []));
  const proc = spawn(
    process.execPath,
    [...prof, new URL('../src/cli/main.ts', import.meta.url).pathname, 'run', '--config', file],
    { stdio: ['ignore', 'pipe', 'pipe'], env: nodeProcessEnv() },
  );
  trackChild(proc);
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  // BENCH_NODE_STDOUT=file keeps the node's stdout (its log, and e.g. BENCH_NODE_ARGS=--trace-gc output).
  if (process.env.BENCH_NODE_STDOUT) proc.stdout!.pipe(createWriteStream(process.env.BENCH_NODE_STDOUT));
  else proc.stdout!.resume();
  const metricsUrl = `http://127.0.0.1:${metricsPort}`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`node exited during start: ${stderr}`);
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`node not ready after ${timeoutMs} ms: ${stderr}`);
    }
    try {
      if ((await fetch(`${metricsUrl}/health/ready`)).status === 200) break;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    proc,
    rpcUrl: `ws://127.0.0.1:${rpcPort}`,
    metricsUrl,
    stop: () => stopProcess(proc),
  };
}

/** SIGINT (a clean shutdown), SIGKILL after 15 s; resolves once the process exited. */
export async function stopProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGINT');
  const t = setTimeout(() => proc.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(t);
}
