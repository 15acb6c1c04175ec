// Child-process entry of the dev parentchain (started by devchain.ts over an IPC channel). Chopsticks
// runs here rather than in the caller's process because importing it has process-wide effects: it
// installs a global HTTP proxy agent, starts a pino transport thread and one shared wasm executor
// thread that keep the process alive, and it holds ~500 MB that should not count against a validateer.
import { createServer as createTcpServer, connect, type Server as TcpServer, type Socket } from 'node:net';
import { setupContext } from '@acala-network/chopsticks/context';
import { createServer } from '@acala-network/chopsticks/server';
import { handler } from '@acala-network/chopsticks/rpc/index';
import { BuildBlockMode, type Blockchain } from '@acala-network/chopsticks-core';
import { withDevGenesis, loadRococoAssetHubSpec, type GenesisEndowment } from './dev-genesis.ts';
import { fromHex } from '../protocol/bytes.ts';

/** First IPC message from the parent. Amounts are decimal strings (IPC is JSON). */
export interface DevChainInit {
  port: number;
  host: string;
  blockTimeMs: number;
  endowments: { account: string; amount: string }[];
  genesisTimestampMs: number;
  dbPath?: string;
}
export type DevChainRequest = {
  id: number;
  op: 'newBlock' | 'suspendRpc' | 'resumeRpc' | 'pauseBlocks' | 'resumeBlocks' | 'close';
};
export type DevChainReply = { id: number; ok: true; head?: number } | { id: number; ok: false; error: string };
export type DevChainReady = { ready: true; port: number; genesisHash: string; head: number; startupMs: number };
export type DevChainFailed = { failed: string };

// Without a database chopsticks forgets blocks beyond this count and then answers chain_getBlockHash
// for them with a wrong (genesis provider) hash, so keep every block of a dev chain in memory.
const MAX_MEMORY_BLOCKS = 10_000_000;

async function main(init: DevChainInit): Promise<void> {
  const started = performance.now();
  const spec = withDevGenesis(
    await loadRococoAssetHubSpec(),
    init.endowments.map((e): GenesisEndowment => ({ account: fromHex(e.account), amount: BigInt(e.amount) })),
    init.genesisTimestampMs,
  );
  const { chain } = await setupContext({
    genesis: spec,
    'build-block-mode': BuildBlockMode.Manual,
    'max-memory-block-count': MAX_MEMORY_BLOCKS,
    db: init.dbPath,
    resume: init.dbPath ? await hasSavedBlocks(init.dbPath) : undefined,
  } as Parameters<typeof setupContext>[0]);
  // chopsticks serves on an internal port; the public port is a TCP relay in front of it, so an
  // outage can be simulated by dropping every connection and the port stays the same afterwards.
  const rpcServer = await createServer(handler({ chain }), 0, '127.0.0.1');
  const front = new TcpFront(rpcServer.port);
  const port = await front.listen(init.port, init.host);

  let closing = false;
  /** Timer blocks paused (a test hook: submitted extrinsics wait in the pool); newBlock still builds. */
  let paused = false;
  let ticking = false;
  let timer: NodeJS.Timeout | undefined;
  const building = { current: Promise.resolve() as Promise<unknown> };
  const build = (): Promise<Blockchain['head']> => {
    const next = building.current.then(() => chain.newBlock());
    building.current = next.catch(() => undefined);
    return next;
  };
  const tick = (): void => {
    const t0 = Date.now();
    timer = undefined;
    ticking = true;
    build()
      .catch((err: unknown) => console.error(`devchain: block production failed: ${(err as Error).message}`))
      .finally(() => {
        ticking = false;
        if (!closing && !paused) timer = setTimeout(tick, Math.max(0, init.blockTimeMs - (Date.now() - t0)));
      });
  };
  if (init.blockTimeMs > 0) timer = setTimeout(tick, init.blockTimeMs);

  const send = (m: DevChainReply | DevChainReady): void => {
    process.send?.(m);
  };
  process.on('message', (m: DevChainRequest) => {
    void (async () => {
      try {
        switch (m.op) {
          case 'newBlock': {
            const head = await build();
            return send({ id: m.id, ok: true, head: head.number });
          }
          case 'suspendRpc':
            // Closes the listener and drops every connection: an RPC outage while blocks go on.
            await front.close();
            return send({ id: m.id, ok: true });
          case 'resumeRpc':
            await front.listen(port, init.host);
            return send({ id: m.id, ok: true });
          case 'pauseBlocks':
            // Replies once a timer block in progress is built: no block comes after the reply.
            paused = true;
            clearTimeout(timer);
            timer = undefined;
            await building.current;
            return send({ id: m.id, ok: true, head: chain.head.number });
          case 'resumeBlocks':
            paused = false;
            if (init.blockTimeMs > 0 && !ticking && timer === undefined && !closing)
              timer = setTimeout(tick, init.blockTimeMs);
            return send({ id: m.id, ok: true });
          case 'close':
            closing = true;
            clearTimeout(timer);
            await building.current;
            await front.close();
            await rpcServer.close();
            await chain.close();
            send({ id: m.id, ok: true });
            // chopsticks' logger and executor threads would keep the process alive.
            return process.exit(0);
        }
      } catch (err) {
        send({ id: m.id, ok: false, error: (err as Error).message });
      }
    })();
  });
  send({
    ready: true,
    port,
    genesisHash: (await chain.getBlockAt(0))!.hash,
    head: chain.head.number,
    startupMs: Math.round(performance.now() - started),
  });
}

/** A TCP relay from the public port to chopsticks' server that can drop all connections at once. */
class TcpFront {
  readonly #target: number;
  readonly #sockets = new Set<Socket>();
  #server: TcpServer | undefined;

  constructor(targetPort: number) {
    this.#target = targetPort;
  }

  async listen(port: number, host: string): Promise<number> {
    if (this.#server) return (this.#server.address() as { port: number }).port;
    const server = createTcpServer((client) => {
      const upstream = connect(this.#target, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
      }
      client.on('error', () => upstream.destroy()).on('close', () => upstream.destroy());
      upstream.on('error', () => client.destroy()).on('close', () => client.destroy());
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#server = server;
    return (server.address() as { port: number }).port;
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const s of this.#sockets) s.destroy();
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }
}

async function hasSavedBlocks(dbPath: string): Promise<boolean> {
  const { existsSync, statSync } = await import('node:fs');
  return existsSync(dbPath) && statSync(dbPath).size > 0;
}

// Stop with the parent: a dev chain must never outlive the process that started it.
process.on('disconnect', () => process.exit(0));
process.once('message', (init: DevChainInit) => {
  main(init).catch((err: unknown) => {
    const failed: DevChainFailed = { failed: (err as Error).message ?? String(err) };
    if (process.send) process.send(failed, () => process.exit(1));
    else process.exit(1);
  });
});
