// One validateer: wiring and lifecycle. Start order: store, enclave, state (genesis or replay), RPC,
// metrics, slot worker. Stop order is the reverse, ending with the store (nothing written after it).
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Config } from '../config/schema.ts';
import { Enclave } from '../enclave/host.ts';
import { BlockStore } from '../sidechain/store.ts';
import { createMetrics, type Metrics } from '../metrics/metrics.ts';
import { startMetricsServer } from '../metrics/server.ts';
import { startRpcServer, type RpcServer } from '../rpc/server.ts';
import { createMethods } from '../rpc/methods.ts';
import { SlotWorker } from '../consensus/slots.ts';
import { slotAuthor } from '../consensus/aura.ts';
import { fromHex, toHex } from '../codec/wire.ts';
import { CallRelay } from './call-relay.ts';
import { enclaveInitFrom, genesisBalances } from './from-config.ts';
import { authorBlock } from './author.ts';
import { bootstrap, type BootstrapResult } from './bootstrap.ts';
import type { Logger } from './logger.ts';
import { VERSION } from './version.ts';
import { ParentchainSync } from './parentchain-sync.ts';

export interface Validateer {
  rpcUrl: string;
  metricsUrl: string | null;
  signingKey: string;
  measurement: string;
  bootstrap: BootstrapResult;
  metrics: Metrics;
  parentchain: ParentchainSync | null;
  stop(): Promise<void>;
}

export async function startValidateer(config: Config, logger: Logger): Promise<Validateer> {
  const dataDir = resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const shard = fromHex(config.shard);
  const metrics = createMetrics({ buildInfo: { version: VERSION }, rpcMethods: RPC_METHODS });
  const store = await BlockStore.open(join(dataDir, 'chain'));
  const cleanup: (() => Promise<void>)[] = [() => store.close()];
  const stopAll = async () => {
    for (const fn of cleanup.reverse()) await fn().catch((err) => logger.error({ err: (err as Error).message }, 'error during shutdown'));
  };
  try {
    const enclave = await Enclave.start(enclaveInitFrom(config, dataDir));
    cleanup.push(() => enclave.close());
    const info = await enclave.call('info', {});
    const signingKey = toHex(info.signingKey);
    logger.info({ signingKey, measurement: toHex(info.measurement), attestation: info.attestation, cryptoThreads: info.cryptoThreads }, 'enclave started (simulation mode)');

    // The light client opens before the replay: the registry names which authors' blocks are valid.
    let sync: ParentchainSync | null = null;
    if (config.parentchain.endpoint) {
      // Loaded on demand: @polkadot/api costs ~230 MB of RSS and a node without a parentchain needs none of it.
      const { connectParentchain } = await import('../parentchain/substrate.ts');
      const pc = await connectParentchain({ endpoint: config.parentchain.endpoint, onWarning: (m) => logger.warn({ detail: m }, 'parentchain connection') });
      cleanup.push(() => pc.close());
      const p = config.parentchain;
      sync = new ParentchainSync({ enclave, chain: pc, store, metrics, logger, signingKey: info.signingKey }, {
        importBatch: p.importBatch, prefetch: p.prefetch, anchorInterval: p.anchorInterval,
        genesisHash: p.genesisHash ? fromHex(p.genesisHash) : null,
        checkpoint: p.checkpoint ? { number: p.checkpoint.number, hash: fromHex(p.checkpoint.hash) } : null,
        peerId: '', p2pAddresses: [], shard,
      });
      await sync.init();
      cleanup.push(() => sync!.stop());
      logger.info({ endpoint: p.endpoint, genesisHash: toHex(pc.genesisHash()), enclaveAccount: pc.address(info.signingKey) }, 'parentchain connected');
    }

    const boot = await bootstrap({ enclave, store, metrics, logger }, () => genesisBalances(config));
    const status = await enclave.call('status', {});
    const head = store.head()!;
    metrics.sidechainHeadNumber.set(head.number);
    metrics.eventLogEntries.set(head.number + 1);
    metrics.stateAccounts.set(status.accounts);

    const relay = new CallRelay(enclave);
    let ready = false;
    const rpc: RpcServer = await startRpcServer({
      ...config.rpc,
      methods: createMethods({
        enclave, store, relay, metrics, shard, version: `validateer/${VERSION}`, isReady: () => ready,
        ...(sync && config.parentchain.endpoint ? { parentchain: { finalized: () => sync.finalized, endpoint: config.parentchain.endpoint } } : {}),
      }),
      logger,
      onRequest: (method, outcome) => metrics.countRpcRequest(method, outcome),
      onConnections: (open) => metrics.rpcConnections.set(open),
    });
    cleanup.push(() => rpc.close());

    let metricsUrl: string | null = null;
    if (config.metrics.enabled) {
      const server = await startMetricsServer({ ...config.metrics, registry: metrics.registry, isReady: () => ready });
      metricsUrl = server.url;
      cleanup.push(() => server.close());
    }

    const configured = config.authorities.length > 0 ? config.authorities.map((a) => a.toLowerCase()) : [signingKey];
    // With a parentchain the authorities are the registered set (none until this enclave is registered).
    const authorities = () => (sync ? sync.members : configured);
    const slots = new SlotWorker({
      slotDurationMs: config.sidechain.slotDurationMs,
      onSlot: async (slot) => {
        if (slotAuthor(slot, authorities()) !== signingKey) return;
        const block = await authorBlock({ enclave, store, metrics, logger, relay }, { maxCalls: config.sidechain.blockMaxCalls, ...config.sidechain }, slot);
        ready = true;
        sync?.blockCommitted(block.number);
      },
      onError: (err) => logger.error({ code: (err as { code?: string }).code, err: (err as Error).message }, 'slot failed'),
    });
    if (sync) await sync.start();
    slots.start();
    cleanup.push(() => slots.stop());

    return {
      rpcUrl: rpc.url, metricsUrl, signingKey, measurement: toHex(info.measurement), bootstrap: boot, metrics, parentchain: sync,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

export const RPC_METHODS = [
  'author_getShieldingKey', 'author_submitCall', 'author_submitAndWatchCall', 'author_callBlock', 'state_executeGetter',
  'chain_getHeader', 'chain_getBlockHash', 'chain_getFinalizedHead', 'shard_getInfo', 'system_health', 'system_version',
] as const;
