// Node-side commands: run, join, leave, devnet, keys, replay.
import { fileURLToPath } from 'node:url';
import { join, resolve } from 'node:path';
import { mkdirSync } from 'node:fs';
import { loadConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { createLogger } from '../node/logger.ts';
import { Enclave } from '../enclave/boundary/host.ts';
import { BlockStore } from '../sidechain/store.ts';
import { bootstrap } from '../chain/bootstrap.ts';
import { createMetrics } from '../metrics/metrics.ts';
import { enclaveInitFrom, genesisBalances } from '../node/from-config.ts';
import type { DevnetFlags } from './devnet.ts';
import type { JoinFlags } from './membership-commands.ts';
import { toHex } from '../protocol/bytes.ts';
import { ValidateerError } from '../protocol/errors.ts';

export interface NodeFlags {
  config?: string;
  dataDir?: string;
  rpcPort?: string;
  metricsPort?: string;
  slotMs?: string;
  logLevel?: string;
  parentchain?: string;
  dev?: boolean;
}

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const DEV_CONFIG = join(ROOT, 'config', 'dev.json');

/** The config from the file, with the flags every node command takes (and `extra` ones) on top. */
function configFrom(flags: NodeFlags, defaultFile?: string, extra: Record<string, unknown> = {}): Config {
  return loadConfig({
    file: flags.config ?? defaultFile,
    overrides: {
      ...extra,
      dataDir: flags.dataDir,
      'rpc.port': flags.rpcPort,
      'metrics.port': flags.metricsPort,
      'sidechain.slotDurationMs': flags.slotMs,
      'log.level': flags.logLevel,
      'parentchain.endpoint': flags.parentchain,
      dev: flags.dev,
    },
  });
}

async function runUntilSignal(config: Config, banner: string): Promise<void> {
  const logger = createLogger({ level: config.log.level, name: 'validateer' });
  // Loaded here: libp2p, the RPC server and the rest of a running node cost memory that `replay` and `keys` do not
  // need.
  const { startValidateer } = await import('../node/validateer.ts');
  const node = await startValidateer(config, logger);
  console.log(
    [
      banner,
      `  data dir      ${resolve(config.dataDir)}`,
      `  JSON-RPC      ${node.rpcUrl}`,
      node.metricsUrl ? `  metrics       ${node.metricsUrl}/metrics` : '  metrics       disabled',
      node.metricsUrl ? `  health        ${node.metricsUrl}/health/ready` : '',
      `  signing key   ${node.signingKey}`,
      `  measurement   ${node.measurement}`,
      `  state         ${node.bootstrap.mode === 'empty' ? 'empty: block 0 comes from the first authority (this node or a peer)' : `replayed to #${node.bootstrap.headNumber} in ${Math.round(node.bootstrap.ms)} ms`}`,
      `  p2p           ${node.network.addresses().join(' ') || '(not listening)'}`,
      'Press Ctrl-C to stop.',
    ]
      .filter(Boolean)
      .join('\n'),
  );
  await new Promise<void>((resolveStop) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'stopping');
      node.stop().then(() => {
        console.log('stopped cleanly');
        resolveStop();
      });
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}

export async function joinCommand(flags: NodeFlags & JoinFlags): Promise<void> {
  // Loaded on demand: funding and unregistering use polkadot-js.
  const { prepareJoin } = await import('./membership-commands.ts');
  const config = configFrom(flags, undefined, {
    'p2p.bootstrap': flags.bootstrap,
    'p2p.listen': flags.p2pPort ? [`/ip4/127.0.0.1/tcp/${flags.p2pPort}`] : undefined,
  });
  await prepareJoin(config, flags);
  await runUntilSignal(config, 'validateer joining: registration, provisioning by a member, sync, then authoring');
}

export async function leaveCommand(flags: NodeFlags): Promise<void> {
  const { leave } = await import('./membership-commands.ts');
  const r = await leave(configFrom(flags));
  console.log(
    `unregistered ${r.address} in parentchain block #${r.blockNumber} (finalized): the set no longer counts this validateer from that block on`,
  );
  process.exit(0); // polkadot-js can leave idle handles behind
}

export async function runNodeCommand(flags: NodeFlags): Promise<void> {
  await runUntilSignal(configFrom(flags), 'validateer running');
}

export async function devnetCommand(flags: DevnetFlags): Promise<void> {
  // Loaded on demand: the dev chain launcher pulls in polkadot-js.
  const { runDevnet } = await import('./devnet.ts');
  await runDevnet(flags, DEV_CONFIG);
  // Everything is stopped; polkadot-js in the dev chain launcher can leave idle handles behind.
  process.exit(0);
}

export async function keysCommand(flags: NodeFlags): Promise<void> {
  const config = configFrom(flags, flags.config ? undefined : DEV_CONFIG);
  const dataDir = resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const enclave = await Enclave.start(enclaveInitFrom(config, dataDir, 1));
  try {
    const info = await enclave.call('info', {});
    const { quote } = await enclave.call('keysQuote', {});
    console.log(
      JSON.stringify(
        {
          signingKey: toHex(info.signingKey),
          shieldingKey: toHex(info.shieldingKey),
          shieldingKeyId: info.shieldingKeyId,
          stateKeyId: info.stateKeyId,
          encryptionKey: toHex(info.encryptionKey),
          measurement: toHex(info.measurement),
          signer: toHex(info.signer),
          attestation: info.attestation,
          quote: toHex(quote),
        },
        null,
        2,
      ),
    );
  } finally {
    await enclave.close();
  }
}

export async function replayCommand(
  flags: NodeFlags & { verify?: boolean; fromGenesis?: boolean; json?: boolean },
): Promise<void> {
  const config = configFrom(flags, flags.config ? undefined : DEV_CONFIG);
  const dataDir = resolve(config.dataDir);
  const logger = createLogger({ level: config.log.level, name: 'replay' });
  const store = await BlockStore.open(join(dataDir, 'chain'));
  if (!store.head()) {
    await store.close();
    throw new ValidateerError('NO_CHAIN', `no chain in ${dataDir}`);
  }
  const enclave = await Enclave.start(enclaveInitFrom(config, dataDir));
  try {
    // Blocks of other registered validateers are valid: the sealed registry names them.
    await enclave.call('parentchainLoad', {});
    const r = await bootstrap({ enclave, store, metrics: createMetrics(), logger }, () => genesisBalances(config), {
      verifyEach: flags.verify,
      ignoreSnapshots: flags.fromGenesis,
    });
    const s = await enclave.call('status', {});
    if (flags.json) {
      const rssBytes = process.memoryUsage().rss;
      console.log(
        JSON.stringify({
          ...r,
          accounts: s.accounts,
          transitionsPerSecond: r.transitions / (r.ms / 1000),
          rssBytes,
          verifiedEachBlock: !!flags.verify,
        }),
      );
      return;
    }
    console.log(
      `replayed ${r.replayedBlocks} blocks to #${r.headNumber} in ${Math.round(r.ms)} ms${r.fromSnapshot !== null ? ` from snapshot #${r.fromSnapshot}` : ' from genesis'}; ` +
        `${s.accounts} accounts; state commitment ${flags.verify ? 'of every block' : 'of the head'} verified`,
    );
  } finally {
    await enclave.close();
    await store.close();
  }
}
