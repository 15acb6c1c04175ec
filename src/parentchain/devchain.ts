// The local dev parentchain: a real Substrate runtime (Rococo Asset Hub, from its raw chain spec on
// npm) executed offline by chopsticks in a child process, serving a WebSocket endpoint any Substrate
// tool can use. Blocks are built on a timer; chopsticks has no finality gadget and reports its head
// as finalized, so every built block is final.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady, decodeAddress } from '@polkadot/util-crypto';
import { ValidateerError } from '../protocol/errors.ts';
import type {
  DevChainFailed,
  DevChainInit,
  DevChainReady,
  DevChainReply,
  DevChainRequest,
} from './devchain-process.ts';
import { toHex } from '../protocol/bytes.ts';

export const DEV_ACCOUNT_NAMES = ['Alice', 'Bob', 'Charlie', 'Dave', 'Eve', 'Ferdie'] as const;
/** 1,000,000 ROC (12 decimals) for each dev account unless an endowment says otherwise. */
export const DEV_ACCOUNT_BALANCE = 1_000_000n * 10n ** 12n;
/** Fixed genesis time so a chain resumed from its database rebuilds an identical block #1. */
export const DEV_GENESIS_TIMESTAMP_MS = 1_735_689_600_000; // 2025-01-01T00:00:00Z

export type Endowment = { address: string; amount: bigint } | { publicKey: Uint8Array; amount: bigint };

export interface DevChainOptions {
  /** 0 or undefined: a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Build (and finalize) a block this often; 0 = only on newBlock(). Default 2000. */
  blockTimeMs?: number;
  /** Extra funded accounts (enclave accounts: ed25519 public keys = AccountId32). */
  endowments?: Endowment[];
  /** SQLite file to keep blocks in; an existing one is resumed from its highest block. */
  dbPath?: string;
  genesisTimestampMs?: number;
  startTimeoutMs?: number;
}

export interface DevChain {
  endpoint: string;
  port: number;
  genesisHash: string;
  /** Milliseconds from spawn until block #1 was built and the endpoint listened. */
  startupMs: number;
  pid: number;
  /** Builds one block now (queued behind a timer block in progress); resolves with its number. */
  newBlock(): Promise<number>;
  /** Test hook for an RPC outage: closes the endpoint and drops connections; blocks go on. */
  suspendRpc(): Promise<void>;
  /** Listens again on the same port. */
  resumeRpc(): Promise<void>;
  /**
   * Test hook: stops building blocks on the timer (newBlock() still builds), so submitted extrinsics
   * wait in the pool; resolves with the head once no further block is coming.
   */
  pauseBlocks(): Promise<number>;
  /** Builds blocks on the timer again. */
  resumeBlocks(): Promise<void>;
  close(): Promise<void>;
}

/** SS58 addresses (generic prefix 42) and public keys of //Alice .. //Ferdie as polkadot-js derives them (sr25519). */
export async function devAccounts(): Promise<{ name: string; uri: string; publicKey: Uint8Array; address: string }[]> {
  await cryptoWaitReady();
  const keyring = new Keyring({ type: 'sr25519' });
  return DEV_ACCOUNT_NAMES.map((name) => {
    const pair = keyring.addFromUri(`//${name}`);
    return { name, uri: `//${name}`, publicKey: pair.publicKey, address: pair.address };
  });
}

const ENTRY = fileURLToPath(new URL('./devchain-process.ts', import.meta.url));

export async function startDevChain(options: DevChainOptions = {}): Promise<DevChain> {
  const endowments = [
    ...(await devAccounts()).map((a) => ({ account: toHex(a.publicKey), amount: DEV_ACCOUNT_BALANCE.toString() })),
    ...(options.endowments ?? []).map((e) => ({
      account: toHex('publicKey' in e ? e.publicKey : decodeAddress(e.address)),
      amount: e.amount.toString(),
    })),
  ];
  const init: DevChainInit = {
    port: options.port ?? 0,
    host: options.host ?? '127.0.0.1',
    blockTimeMs: options.blockTimeMs ?? 2000,
    endowments,
    genesisTimestampMs: options.genesisTimestampMs ?? DEV_GENESIS_TIMESTAMP_MS,
    dbPath: options.dbPath,
  };
  const started = performance.now();
  // Same Node binary (the project runs on Node 24 with type stripping); chopsticks' own logs at warn.
  const child = fork(ENTRY, [], {
    execArgv: process.execArgv.filter((a) => !a.startsWith('--test')),
    env: { ...process.env, LOG_LEVEL: process.env.DEVCHAIN_LOG_LEVEL ?? 'warn' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = await waitReady(child, init, exited, options.startTimeoutMs ?? 120_000).catch(async (err: unknown) => {
    child.kill('SIGKILL');
    await exited;
    throw err;
  });
  return handle(child, exited, ready, Math.round(performance.now() - started), init.host);
}

function waitReady(
  child: ChildProcess,
  init: DevChainInit,
  exited: Promise<void>,
  timeoutMs: number,
): Promise<DevChainReady> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new ValidateerError('PARENTCHAIN_DEVCHAIN_START', `dev chain not ready after ${timeoutMs} ms`)),
      timeoutMs,
    );
    child.on('message', (m: Partial<DevChainReady & DevChainFailed>) => {
      if (m?.ready) {
        clearTimeout(timer);
        resolve(m as DevChainReady);
      } else if (typeof m?.failed === 'string') {
        clearTimeout(timer);
        reject(new ValidateerError('PARENTCHAIN_DEVCHAIN_START', `dev chain failed to start: ${m.failed}`));
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(
        new ValidateerError('PARENTCHAIN_DEVCHAIN_START', `dev chain exited during startup (code ${child.exitCode})`),
      );
    });
    child.send(init);
  });
}

function handle(
  child: ChildProcess,
  exited: Promise<void>,
  ready: DevChainReady,
  startupMs: number,
  host: string,
): DevChain {
  let nextId = 1;
  const pending = new Map<number, { resolve: (r: DevChainReply) => void; reject: (e: Error) => void }>();
  child.on('message', (m: DevChainReply) => {
    const p = typeof m?.id === 'number' ? pending.get(m.id) : undefined;
    if (!p) return;
    pending.delete(m.id);
    p.resolve(m);
  });
  void exited.then(() => {
    for (const p of pending.values())
      p.reject(new ValidateerError('PARENTCHAIN_DEVCHAIN_EXITED', 'dev chain process exited'));
    pending.clear();
  });
  const request = (op: DevChainRequest['op']): Promise<DevChainReply & { ok: true }> => {
    if (child.exitCode !== null || child.signalCode !== null || !child.connected) {
      return Promise.reject(new ValidateerError('PARENTCHAIN_DEVCHAIN_EXITED', 'dev chain process is not running'));
    }
    const id = nextId++;
    return new Promise((resolve, reject) => {
      pending.set(id, {
        resolve: (r) =>
          r.ok ? resolve(r) : reject(new ValidateerError('PARENTCHAIN_DEVCHAIN', `${op} failed: ${r.error}`)),
        reject,
      });
      child.send({ id, op } satisfies DevChainRequest);
    });
  };
  let closing: Promise<void> | undefined;
  return {
    endpoint: `ws://${host}:${ready.port}`,
    port: ready.port,
    genesisHash: ready.genesisHash,
    startupMs,
    pid: child.pid!,
    newBlock: async () => (await request('newBlock')).head!,
    suspendRpc: async () => void (await request('suspendRpc')),
    resumeRpc: async () => void (await request('resumeRpc')),
    pauseBlocks: async () => (await request('pauseBlocks')).head!,
    resumeBlocks: async () => void (await request('resumeBlocks')),
    close: () => {
      closing ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await request('close').catch(() => child.kill('SIGKILL'));
        await exited;
        clearTimeout(kill);
      })();
      return closing;
    },
  };
}
