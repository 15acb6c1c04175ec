// One validateer: wiring and lifecycle. Start order: store, enclave, network, parentchain, state
// (genesis or replay), chain, RPC, metrics, slot worker. Stop order is Lifecycle's STOP_ORDER (inputs
// first, the store last), whatever order the parts started in.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Config } from '../config/schema.ts';
import { Enclave } from '../enclave/boundary/host.ts';
import { BlockStore } from '../sidechain/store.ts';
import { createMetrics, type Metrics } from '../metrics/metrics.ts';
import { startMetricsServer } from '../metrics/server.ts';
import { startRpcServer, type RpcServer } from '../rpc/server.ts';
import { RPC_METHODS, createMethods } from '../rpc/methods.ts';
import { SlotWorker } from '../consensus/slots.ts';
import { createNetwork, type Network } from '../p2p/network.ts';
import { CallRelay } from '../calls/relay.ts';
import { enclaveInitFrom, genesisBalances } from './from-config.ts';
import { bootstrap, type BootstrapResult } from '../chain/bootstrap.ts';
import { ChainService } from '../chain/chain.ts';
import { HeadEvents, headMetrics } from '../chain/head-events.ts';
import { forwardAcceptedCalls, onGossipCalls, type CallGossipChecks } from '../calls/gossip.ts';
import type { Logger } from './logger.ts';
import { VERSION } from './version.ts';
import { ParentchainDriver } from '../parentchain/driver.ts';
import { FinalityVoting } from '../consensus/finality.ts';
import { Header, HEADER_BYTES } from '../protocol/block.ts';
import { ShardSecrets } from '../sync/shard-secrets.ts';
import { terminalProgress } from '../sync/progress.ts';
import { ValidateerError, codeOf } from '../protocol/errors.ts';
import { fromHex, toHex } from '../protocol/bytes.ts';
import { Lifecycle } from './lifecycle.ts';

export interface Validateer {
  rpcUrl: string;
  metricsUrl: string | null;
  signingKey: string;
  measurement: string;
  bootstrap: BootstrapResult;
  metrics: Metrics;
  parentchain: ParentchainDriver | null;
  network: Network;
  stop(): Promise<void>;
}

export async function startValidateer(config: Config, logger: Logger): Promise<Validateer> {
  const dataDir = resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const shard = fromHex(config.shard);
  const metrics = createMetrics({ buildInfo: { version: VERSION }, rpcMethods: RPC_METHODS });
  const store = await BlockStore.open(join(dataDir, 'chain'));
  const life = new Lifecycle(logger);
  life.add('store', () => store.close());
  const stopAll = () => life.stop();
  try {
    const enclave = await Enclave.start(enclaveInitFrom(config, dataDir));
    life.add('enclave', () => enclave.close());
    const info = await enclave.call('info', {});
    const signingKey = toHex(info.signingKey);
    logger.info(
      {
        signingKey,
        measurement: toHex(info.measurement),
        attestation: info.attestation,
        cryptoThreads: info.cryptoThreads,
        secretsOrigin: info.secretsOrigin,
      },
      'enclave started (simulation mode)',
    );
    if (!config.parentchain.endpoint && !info.holdsShardSecrets) {
      // Provisioning checks the requester's registration on the parentchain: without one there is nobody to ask.
      throw new ValidateerError(
        'CONFIG_NO_SHARD_SECRETS',
        'this enclave is not the first configured authority and holds no shard secrets: a set without a parentchain needs enclave.devShardSecrets',
      );
    }

    // The network starts first: the registration publishes its peer id and addresses.
    const network = await createNetwork({
      dataDir,
      shard,
      listen: config.p2p.listen,
      bootstrap: config.p2p.bootstrap,
      logger,
      limits: {
        maxConnections: config.p2p.maxConnections,
        maxGossipBytes: config.p2p.maxGossipBytes,
        maxRequestBytes: 4096,
        maxResponseBytes: config.p2p.maxGossipBytes * 4,
        maxBlocksPerRequest: config.p2p.maxBlocksPerRequest,
        requestTimeoutMs: config.p2p.requestTimeoutMs,
        requestsPerSecond: config.p2p.requestsPerSecond,
      },
      hooks: {
        onGossip: (topic, result) => metrics.countGossip(topic, result),
        onPeers: (n) => metrics.p2pPeers.set(n),
      },
    });
    life.add('network', () => network.stop());
    const secrets = new ShardSecrets({ enclave, network, metrics, logger, signingKey: info.signingKey });
    life.add('provisioning', () => secrets.stop());

    // The light client opens before the replay: the registry names which authors' blocks are valid.
    let driver: ParentchainDriver | null = null;
    if (config.parentchain.endpoint) {
      // Loaded on demand: @polkadot/api costs ~230 MB of RSS and a node without a parentchain needs none of it.
      const { connectParentchain } = await import('../parentchain/substrate.ts');
      const pc = await connectParentchain({
        endpoint: config.parentchain.endpoint,
        onWarning: (m) => logger.warn({ detail: m }, 'parentchain connection'),
      });
      life.add('parentchain', () => pc.close());
      const p = config.parentchain;
      driver = new ParentchainDriver(
        { enclave, parentchain: pc, store, metrics, logger, signingKey: info.signingKey },
        {
          importBatch: p.importBatch,
          prefetch: p.prefetch,
          genesisHash: p.genesisHash ? fromHex(p.genesisHash) : null,
          checkpoint: p.checkpoint ? { number: p.checkpoint.number, hash: fromHex(p.checkpoint.hash) } : null,
          peerId: network.peerId,
          p2pAddresses: [],
          shard,
        },
      );
      await driver.init();
      life.add('parentchain-driver', () => driver!.stop());
      logger.info(
        { endpoint: p.endpoint, genesisHash: toHex(pc.genesisHash()), enclaveAccount: pc.address(info.signingKey) },
        'parentchain connected',
      );
    }

    // An empty store waits for block 0: the set's first authority creates it, the others fetch it.
    const boot = await bootstrap({ enclave, store, metrics, logger }, null);
    const status = await enclave.call('status', {});
    const head = store.head();
    // Every move of the head, from here on, reaches the metrics through this one event.
    const heads = new HeadEvents();
    heads.on(headMetrics(metrics));
    if (head) heads.emit({ number: head.number, hash: head.hash, slot: null, cause: 'bootstrap', status, calls: [] });
    else metrics.observeState(status);

    const relay = new CallRelay(enclave);
    const configured = new Set(
      config.authorities.length > 0 ? config.authorities.map((a) => a.toLowerCase()) : [signingKey],
    );
    const chain = new ChainService(
      {
        enclave,
        store,
        metrics,
        logger,
        relay,
        signingKey: info.signingKey,
        genesisBalances: () => genesisBalances(config),
        anchor: () => driver?.lastAnchor ?? null,
        progress: terminalProgress(),
        isAuthority: (key, at) => (driver ? driver.isAuthority(key, at) : configured.has(key)),
        heads,
        onMissingStateKey: () => secrets.refresh(),
      },
      {
        slotDurationMs: config.sidechain.slotDurationMs,
        maxCalls: config.sidechain.blockMaxCalls,
        snapshotInterval: config.sidechain.snapshotInterval,
        snapshotsKept: config.sidechain.snapshotsKept,
        shard,
        rangeBatch: config.p2p.maxBlocksPerRequest,
        treeLimit: 4096,
      },
    );
    life.add('chain', () => chain.stop());
    chain.attach(network);
    const finality = driver
      ? new FinalityVoting(
          {
            enclave,
            parentchain: driver,
            chain: {
              head: () => store.head(),
              block: async (n) => {
                const bytes = await store.blockByNumber(n);
                return bytes
                  ? { hash: (await store.hashAt(n))!, author: Header.dec(bytes.subarray(0, HEADER_BYTES)).author }
                  : null;
              },
            },
            publish: (bytes) => network.publishVote(bytes),
            signingKey: info.signingKey,
            metrics,
            logger: logger.child({ module: 'finality' }),
          },
          {
            shard,
            anchorInterval: config.parentchain.anchorInterval,
            voteRetryMs: config.parentchain.voteRetryMs,
            anchorFallbackBlocks: config.parentchain.anchorFallbackBlocks,
          },
        )
      : null;
    if (finality) life.add('finality', () => finality.stop());
    heads.on((e) => {
      // A run of the onboarding sync is not yet a head to serve from or to act on.
      if (e.cause === 'syncing' || e.cause === 'bootstrap') return;
      ready = true;
      driver?.kickDuties(); // a new block may carry a withdrawal to pay
      driver?.refreshFinality();
      finality?.kick();
    });
    // Asked after the parentchain view is loaded: whether this enclave is the shard's first member is the registry's to
    // say.
    let secretsReady = (await enclave.call('info', {})).holdsShardSecrets;
    chain.setActive(secretsReady);
    driver?.onImported(() => {
      chain.parentchainAdvanced();
      finality?.kick();
    });
    let ready = false;
    const rpc: RpcServer = await startRpcServer({
      ...config.rpc,
      methods: createMethods({
        enclave,
        store,
        relay,
        metrics,
        shard,
        version: `validateer/${VERSION}`,
        isReady: () => ready,
        network: {
          peerId: network.peerId,
          addresses: () => network.addresses(),
          connectedPeers: () => network.connectedPeers(),
          ...(config.p2p.devControl ? { setBlocked: (ids: string[]) => network.setBlocked(ids) } : {}),
        },
        ...(driver && config.parentchain.endpoint
          ? { parentchain: { finalized: () => driver.finalized, endpoint: config.parentchain.endpoint } }
          : {}),
      }),
      logger,
      onRequest: (method, outcome) => metrics.countRpcRequest(method, outcome),
      onConnections: (open) => metrics.rpcConnections.set(open),
    });
    life.add('rpc', () => rpc.close());

    let metricsUrl: string | null = null;
    if (config.metrics.enabled) {
      const server = await startMetricsServer({ ...config.metrics, registry: metrics.registry, isReady: () => ready });
      metricsUrl = server.url;
      life.add('metrics', () => server.close());
    }

    // The enclave decides whose slot it is (the registered set as of the parent's parentchain block).
    const slots = new SlotWorker({
      slotDurationMs: config.sidechain.slotDurationMs,
      onSlot: (slot) => chain.onSlot(slot),
      onError: (err) =>
        logger.error({ code: codeOf(err), err: err instanceof Error ? err.message : String(err) }, 'slot failed'),
    });
    forwardAcceptedCalls(relay, network, logger);
    const callChecks: CallGossipChecks = {
      ...(driver ? { forwarder: (key: string) => driver.forwarder(key) } : {}),
      penalize: (peer, reason, code) => {
        metrics.p2pPenalties.inc();
        logger.warn({ peer, reason, code }, 'peer penalised');
        network.penalize(peer, reason);
      },
    };
    await network.start({
      onBlock: (bytes, from) => chain.onGossipBlock(bytes, from),
      // Forwarded calls are sealed under the shard key: before provisioning they would look forged.
      onCall: (bytes, from) =>
        secretsReady ? onGossipCalls(relay, bytes, from, callChecks) : Promise.resolve('ignore' as const),
      ...(finality ? { onVote: (bytes: Uint8Array) => finality.onGossip(bytes) } : {}),
      provision: (request, from) => secrets.serve(request, from),
      status: () => chain.status(),
      onPeerStatus: (peer, s) => chain.onPeerStatus(peer, s),
      blocksByRange: (from, count) => chain.blocksByRange(from, count),
      blocksByHash: (hashes) => chain.blocksByHash(hashes),
    });
    logger.info({ peerId: network.peerId, addresses: network.addresses() }, 'p2p started');
    if (driver) {
      driver.setP2pAddresses(network.addresses());
      driver.onMembers((members) => network.setPeers(members.flatMap((m) => m.p2pAddresses)));
      await driver.start();
      finality?.start();
    }
    if (!secretsReady) {
      // Registration runs as a parentchain duty; provisioning follows once it is final. Then the chain
      // starts: fetch the set's blocks from every connected peer.
      void secrets.ensure().then(
        (ok) => {
          if (!ok) return;
          secretsReady = true;
          chain.setActive(true);
          for (const peer of network.connectedPeers()) {
            network.requestStatus(peer).then(
              (st) => chain.onPeerStatus(peer, st),
              () => undefined,
            );
          }
        },
        (err: Error) => logger.error({ err: err.message }, 'provisioning stopped'),
      );
    }
    slots.start();
    life.add('slots', () => slots.stop());

    return {
      rpcUrl: rpc.url,
      metricsUrl,
      signingKey,
      measurement: toHex(info.measurement),
      bootstrap: boot,
      metrics,
      parentchain: driver,
      network,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
