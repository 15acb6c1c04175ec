// Time from starting the devnet (what `npm start` runs) to its first anchored, final sidechain block:
// dev parentchain start, enclave keys, registration, vault, 10 sidechain blocks, the anchor extrinsic
// and its finalization, all as a new user sees them. Runs on free ports in a temp data dir.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, trackChild } from './node-process.ts';

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));

export async function benchDevnetStart(dir: string, log: (s: string) => void): Promise<Record<string, number>> {
  const [rpc, metrics, parentchain] = [await freePort(), await freePort(), await freePort()];
  log('devnet: starting `validateer devnet` and waiting for its first anchored block ...');
  const t0 = performance.now();
  const proc = spawn(
    process.execPath,
    [
      MAIN,
      'devnet',
      '--data-dir',
      join(dir, 'devnet'),
      '--rpc-port',
      String(rpc),
      '--metrics-port',
      String(metrics),
      '--parentchain-port',
      String(parentchain),
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  trackChild(proc);
  let out = '';
  proc.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  proc.stderr.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  try {
    const figures = await new Promise<Record<string, number>>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no anchored block within 180 s:\n${out.slice(-2000)}`)),
        180_000,
      );
      let runningAt = 0;
      proc.stdout.on('data', () => {
        if (!runningAt && out.includes('validateer devnet running')) runningAt = performance.now();
        const m = /first anchored \(final\) sidechain block #(\d+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve({
            devnet_first_anchor_s: Number(((performance.now() - t0) / 1000).toFixed(1)),
            devnet_running_s: Number(((runningAt - t0) / 1000).toFixed(1)),
            devnet_first_anchor_number: Number(m[1]),
          });
        }
      });
      void exited.then((code) => reject(new Error(`devnet exited (${code}) before anchoring:\n${out.slice(-2000)}`)));
    });
    return figures;
  } finally {
    proc.kill('SIGINT');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  }
}
