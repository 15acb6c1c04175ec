// `validateer devnet` (what `npm start` runs): the dev parentchain (chopsticks on the Rococo Asset Hub
// runtime) and N validateers as child processes on loopback, each enclave account funded in the
// parentchain genesis. The dev chain keeps no state between runs, so neither does the devnet: its
// data directory is reset on every start. Ctrl-C stops the validateers, then the chain.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Enclave } from '../enclave/boundary/host.ts';
import { loadConfig } from '../config/load.ts';
import { enclaveInitFrom } from '../node/from-config.ts';
import { startDevChain, type DevChain } from '../parentchain/devchain.ts';
import { ValidateerError } from '../protocol/errors.ts';
import { nodeProcessEnv } from '../node/process-env.ts';

export interface DevnetFlags {
  config?: string;
  dataDir?: string;
  rpcPort?: string;
  metricsPort?: string;
  slotMs?: string;
  logLevel?: string;
  validateers?: string;
  parentchainPort?: string;
  blockMs?: string;
  p2pPort?: string;
}

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));
/** Parentchain funds of each enclave account: fees for years of anchors at dev block rates. */
const ENCLAVE_ENDOWMENT = 10_000n * 10n ** 12n;
const START_TIMEOUT_MS = 90_000;

interface Child {
  index: number;
  proc: ChildProcess;
  log: string;
  rpc?: string;
  metrics?: string;
  exited: Promise<number | null>;
}

const int = (v: string | undefined, fallback: number, name: string, min = 0): number => {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new ValidateerError('BAD_FLAG', `--${name} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  return n;
};

export async function runDevnet(flags: DevnetFlags, devConfig: string): Promise<void> {
  const started = performance.now();
  const n = int(flags.validateers, 3, 'validateers', 1);
  const p2pBase = int(flags.p2pPort, 30333, 'p2p-port');
  const rpcBase = int(flags.rpcPort, 2000, 'rpc-port');
  const metricsBase = int(flags.metricsPort, 8787, 'metrics-port');
  const configFile = resolve(flags.config ?? devConfig);
  const root = resolve(flags.dataDir ?? 'data/devnet');
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });

  // Create each enclave's keys first: their accounts are endowed in the parentchain genesis.
  const dirs = Array.from({ length: n }, (_, i) => join(root, `validateer-${i + 1}`));
  const accounts: Uint8Array[] = [];
  for (const dir of dirs) {
    const config = loadConfig({ file: configFile, overrides: { dataDir: dir } });
    const enclave = await Enclave.start(enclaveInitFrom(config, dir, 1));
    accounts.push((await enclave.call('info', {})).signingKey);
    await enclave.close();
  }

  const chain: DevChain = await startDevChain({
    host: '127.0.0.1',
    port: int(flags.parentchainPort, 9944, 'parentchain-port'),
    blockTimeMs: int(flags.blockMs, 2000, 'block-ms', 100),
    endowments: accounts.map((publicKey) => ({ publicKey, amount: ENCLAVE_ENDOWMENT })),
  });
  const children: Child[] = [];
  let stopping = false;
  const stopAll = async (): Promise<void> => {
    stopping = true;
    for (const c of children) c.proc.kill('SIGTERM');
    await Promise.all(
      children.map((c) =>
        Promise.race([c.exited, new Promise((r) => setTimeout(r, 20_000)).then(() => c.proc.kill('SIGKILL'))]),
      ),
    );
    await chain.close();
  };

  try {
    for (let i = 0; i < n; i++) {
      const log = join(dirs[i], 'node.log');
      const fd = openSync(log, 'a');
      const args = [
        MAIN,
        'run',
        '--config',
        configFile,
        '--data-dir',
        dirs[i],
        '--rpc-port',
        String(rpcBase + i),
        '--metrics-port',
        String(metricsBase + i),
        '--parentchain',
        chain.endpoint,
      ];
      if (flags.slotMs) args.push('--slot-ms', flags.slotMs);
      if (flags.logLevel) args.push('--log-level', flags.logLevel);
      // Each enclave makes keys of its own; the first registered member's shard secrets reach the others by attested
      // provisioning.
      const env = nodeProcessEnv(process.env, {
        VALIDATEER_P2P__LISTEN: JSON.stringify([`/ip4/127.0.0.1/tcp/${p2pBase + i}`]),
      });
      const proc = spawn(process.execPath, args, { stdio: ['ignore', fd, fd], env });
      closeSync(fd);
      const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
      const child: Child = { index: i + 1, proc, log, exited };
      void exited.then((code) => {
        if (stopping) return;
        console.error(`validateer ${child.index} exited (code ${code}); see ${log}. Stopping the devnet.`);
        void stopAll().then(() => process.exit(1));
      });
      children.push(child);
    }
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (const c of children) {
      for (;;) {
        const text = readFileSync(c.log, 'utf8');
        c.rpc = /JSON-RPC\s+(ws:\/\/\S+)/.exec(text)?.[1];
        c.metrics = /metrics\s+(http:\/\/\S+)\/metrics/.exec(text)?.[1];
        if (c.rpc) break;
        if (Date.now() > deadline || stopping)
          throw new ValidateerError('DEVNET_START', `validateer ${c.index} did not start; see ${c.log}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } catch (err) {
    await stopAll();
    throw err;
  }

  console.log(
    [
      `validateer devnet running (${n} validateer${n > 1 ? 's' : ''}; data in ${root}, reset on every start)`,
      `  parentchain   ${chain.endpoint}  (chopsticks, Rococo Asset Hub runtime, a block every ${int(flags.blockMs, 2000, 'block-ms')} ms; //Alice..//Ferdie funded)`,
      ...children.map(
        (c) =>
          `  validateer ${c.index}  JSON-RPC ${c.rpc}  metrics ${c.metrics ?? 'disabled'}/metrics  p2p /ip4/127.0.0.1/tcp/${p2pBase + c.index - 1}  log ${c.log}`,
      ),
      `  try           npx validateer client shield //Alice //Bob 1000000000000`,
      'Press Ctrl-C to stop.',
    ].join('\n'),
  );
  void reportFirstAnchor(children[0], started);

  await new Promise<void>((resolveStop) => {
    const stop = () => {
      if (stopping) return;
      console.log('stopping the devnet');
      void stopAll().then(() => {
        console.log('stopped cleanly');
        resolveStop();
      });
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

/** Prints when the first sidechain block becomes final (anchored in a finalized parentchain block). */
async function reportFirstAnchor(c: Child, startedMs: number): Promise<void> {
  if (!c.metrics) return;
  for (let i = 0; i < 600; i++) {
    await new Promise((r) => setTimeout(r, 250));
    try {
      const text = await (await fetch(`${c.metrics}/metrics`)).text();
      const m = /^validateer_sidechain_finalized_number (\d+)/m.exec(text);
      if (m && Number(m[1]) > 0) {
        console.log(
          `first anchored (final) sidechain block #${m[1]} after ${((performance.now() - startedMs) / 1000).toFixed(1)} s`,
        );
        return;
      }
    } catch {
      // not up yet or stopping
    }
  }
}
