// Parentchain catch-up: a chopsticks dev chain with a backlog of finalized blocks, most of them
// carrying remarks that are not for this shard (foreign bytes, and our 'vldtr' messages for another
// shard), then the node's real path over it: ParentchainDriver scanning finalized blocks and an
// Enclave verifying and importing them in batches. Reports blocks/s end to end, the time spent in
// the enclave call, and a scan with a no-op consumer to show how much of it is fetching.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
import type { KeyringPair } from '@polkadot/keyring/types';
import { u8aToHex } from '@polkadot/util';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { configSchema } from '../src/config/schema.ts';
import { enclaveApi, type Params } from '../src/enclave/boundary/api.ts';
import { Enclave } from '../src/enclave/boundary/host.ts';
import { createMetrics } from '../src/metrics/metrics.ts';
import { bootstrap } from '../src/chain/bootstrap.ts';
import { enclaveInitFrom } from '../src/node/from-config.ts';
import { createLogger } from '../src/node/logger.ts';
import { ParentchainDriver } from '../src/parentchain/driver.ts';
import type { ParentchainBlock } from '../src/parentchain/api.ts';
import { DEV_ACCOUNT_NAMES, startDevChain, type DevChain } from '../src/parentchain/devchain.ts';
import { encodeMessage, isOurRemark } from '../src/protocol/parentchain-messages.ts';
import { connectParentchain, type SubstrateParentchain } from '../src/parentchain/substrate.ts';
import { BlockStore } from '../src/sidechain/store.ts';
import { fromHex } from '../src/protocol/bytes.ts';

export interface ParentchainBenchOptions {
  /** Blocks to build on top of the dev chain's block #1 (the backlog is this + 1). */
  blocks: number;
  importBatch: number;
  prefetch: number;
  /** Catch-ups (and fetch-only scans) over the same backlog; the first one runs in a cold process. */
  repeats: number;
  log: (s: string) => void;
}

export type ParentchainFigures = Record<string, number>;

const OTHER_SHARD = new Uint8Array(32).fill(0x0f);

/** Deterministic bytes, so every run builds the same kind of chain. */
function pseudoRandom(seed: number): (n: number) => Uint8Array {
  let s = seed >>> 0;
  return (n) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      out[i] = s >>> 24;
    }
    return out;
  };
}

/**
 * What block i of the backlog carries (one signed extrinsic costs chopsticks ~80 ms on top of the
 * ~290 ms an empty block takes, so blocks carry one or two): a cycle of
 * empty | foreign remark | batch of [foreign remark, invoke + anchor for another shard] | two signed remarks (shield
 * for another shard, foreign).
 */
function backlogTxs(
  api: SubstrateParentchain['api'],
  signers: KeyringPair[],
  nonces: number[],
  i: number,
  bytes: (n: number) => Uint8Array,
): string[] {
  const kind = i % 4;
  if (kind === 0) return [];
  const hex = u8aToHex;
  const sign = (s: number, tx: ReturnType<typeof api.tx.system.remark>): string => {
    // Immortal era, so nothing depends on a recent block: the whole backlog can be signed up front.
    tx.sign(signers[s], {
      nonce: nonces[s]++,
      blockHash: api.genesisHash,
      genesisHash: api.genesisHash,
      runtimeVersion: api.runtimeVersion,
      signedExtensions: api.registry.signedExtensions,
      version: api.extrinsicVersion,
    } as unknown as Parameters<typeof tx.sign>[1]);
    return tx.toHex();
  };
  const s = i % signers.length;
  const foreign = () => hex(bytes(32 + (bytes(1)[0] % 200)));
  const invoke = hex(encodeMessage({ tag: 'invoke', value: { shard: OTHER_SHARD, request: bytes(160) } }));
  const anchor = hex(
    encodeMessage({
      tag: 'anchor',
      value: {
        shard: OTHER_SHARD,
        sidechainNumber: BigInt(i),
        sidechainHash: bytes(32),
        previousAnchor: bytes(32),
        parentchainProcessed: { number: i, hash: bytes(32) },
        authoritySetAt: i,
        votes: [{ index: 0, signature: bytes(64) }],
      },
    }),
  );
  const shield = hex(encodeMessage({ tag: 'shield', value: { shard: OTHER_SHARD, recipient: bytes(120) } }));
  if (kind === 1) return [sign(s, api.tx.system.remark(foreign()))];
  if (kind === 2) {
    return [
      sign(
        s,
        api.tx.utility.batch([
          api.tx.system.remark(foreign()),
          api.tx.system.remarkWithEvent(invoke),
          api.tx.system.remarkWithEvent(anchor),
        ]),
      ),
    ];
  }
  return [
    sign(s, api.tx.system.remarkWithEvent(shield)),
    sign((s + 1) % signers.length, api.tx.system.remark(foreign())),
  ];
}

/** Counts JSON-RPC requests by method on the adapter's own provider (diagnostic only). */
function countRpcs(pc: SubstrateParentchain): { counts: Map<string, number>; reset(): void } {
  const provider = (pc.api as unknown as { _rpcCore: { provider: WsProvider } })._rpcCore.provider;
  const counts = new Map<string, number>();
  const send = provider.send.bind(provider);
  provider.send = ((method: string, params: unknown[], ...rest: unknown[]) => {
    counts.set(method, (counts.get(method) ?? 0) + 1);
    return (send as (...a: unknown[]) => Promise<unknown>)(method, params, ...rest);
  }) as typeof provider.send;
  return { counts, reset: () => counts.clear() };
}

function rssOf(pid: number): number {
  const r = spawnSync('ps', ['-o', 'rss=', '-p', String(pid)], { encoding: 'utf8' });
  return Number(r.stdout.trim()) * 1024;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function until(what: string, fn: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!fn()) {
    if (performance.now() > deadline) throw new Error(`parentchain bench: timed out waiting for ${what}`);
    await sleep(2);
  }
}

/**
 * The node's path: ParentchainDriver + Enclave from the light client's genesis to `head`, on a fresh enclave and
 * connection.
 */
export async function measureCatchUp(
  endpoint: string,
  head: number,
  dataDir: string,
  opts: Pick<ParentchainBenchOptions, 'importBatch' | 'prefetch' | 'log'>,
): Promise<ParentchainFigures> {
  const f: ParentchainFigures = {};
  const closers: (() => Promise<unknown>)[] = [];
  try {
    const pc = await connectParentchain({ endpoint });
    closers.push(() => pc.close());
    const config = configSchema.parse({ dataDir });
    const enclave = await Enclave.start(enclaveInitFrom(config, dataDir));
    closers.push(() => enclave.close());
    const store = await BlockStore.open(join(dataDir, 'chain'));
    closers.push(() => store.close());
    const logLines: string[] = [];
    const logger = createLogger({
      level: 'warn',
      name: 'bench',
      destination: new Writable({
        write(chunk: Buffer, _enc, cb) {
          logLines.push(chunk.toString().trim());
          cb();
        },
      }),
    });
    const metrics = createMetrics();
    // Time spent in the enclave's import call (structured clone and zod on both sides included).
    let importMs = 0,
      importCalls = 0;
    const recorded: Params<'parentchainImport'>[] = [];
    const call = enclave.call.bind(enclave);
    enclave.call = (async (method, params) => {
      if (method !== 'parentchainImport') return call(method, params);
      recorded.push(params as Params<'parentchainImport'>);
      const t = performance.now();
      try {
        return await call(method, params);
      } finally {
        importMs += performance.now() - t;
        importCalls++;
      }
    }) as typeof enclave.call;
    const { signingKey } = await call('info', {});
    const rpcs = countRpcs(pc);
    const sync = new ParentchainDriver(
      { enclave, parentchain: pc, store, metrics, logger, signingKey },
      {
        importBatch: opts.importBatch,
        prefetch: opts.prefetch,
        genesisHash: null,
        checkpoint: null,
        peerId: '',
        p2pAddresses: [],
        shard: fromHex(config.shard),
      },
    );
    await sync.init();
    await bootstrap({ enclave, store, metrics, logger }, async () => []); // as the node does between init and start
    rpcs.counts.clear();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await sync.start();
    await until('the sync to reach the finalized head', () => sync.processedNumber >= head, 600_000);
    const syncMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const syncRpcs = new Map(rpcs.counts);
    await sync.stop();
    f.pc_sync_blocks_per_s = Math.round(head / (syncMs / 1000));
    f.pc_sync_ms = Math.round(syncMs);
    f.pc_sync_cpu_us_per_block = Math.round((cpu.user + cpu.system) / head);
    f.pc_enclave_import_ms = Math.round(importMs);
    f.pc_enclave_import_calls = importCalls;
    f.pc_enclave_blocks_per_s = Math.round(head / (importMs / 1000));
    f.pc_sync_rpcs_per_block = Number(([...syncRpcs.values()].reduce((a, b) => a + b, 0) / head).toFixed(2));
    f.pc_log_lines = logLines.length;
    opts.log(
      `  RPCs: ${[...syncRpcs]
        .sort((a, b) => b[1] - a[1])
        .map(([m, n]) => `${m} ${n}`)
        .join(', ')}`,
    );
    for (const line of new Set(logLines.map(logSummary))) opts.log(`  node log: ${line}`);

    // Where the enclave call's time goes, on this thread: zod validation of the params (the worker
    // does the same) and the structured clone to the worker.
    const tz = performance.now();
    for (const p of recorded) enclaveApi.parentchainImport.params.parse(p);
    f.pc_zod_params_ms = Math.round(performance.now() - tz);
    const tc = performance.now();
    for (const p of recorded) structuredClone(p);
    f.pc_clone_ms = Math.round(performance.now() - tc);
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined);
  }
  return f;
}

function logSummary(line: string): string {
  try {
    const j = JSON.parse(line) as { msg?: string; code?: string };
    return `${j.msg}${j.code ? ` (${j.code})` : ''}`;
  } catch {
    return line;
  }
}

/** scanFinalized from block 1 to `head` with a consumer that only counts: fetching and decoding alone. */
export async function measureFetch(endpoint: string, head: number, prefetch: number): Promise<ParentchainFigures> {
  const pc = await connectParentchain({ endpoint });
  try {
    const rpcs = countRpcs(pc);
    let extrinsics = 0,
      signed = 0,
      failed = 0,
      remarks = 0,
      ours = 0;
    const countRemarks = (c: ParentchainBlock['extrinsics'][number]['call']): void => {
      if (c.remark) {
        remarks++;
        if (isOurRemark(c.remark)) ours++;
      }
      c.calls?.forEach(countRemarks);
    };
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const scanner = pc.scanFinalized(
      1,
      (b) => {
        for (const x of b.extrinsics) {
          extrinsics++;
          if (x.signer) {
            signed++;
            if (x.success === false) failed++;
          }
          countRemarks(x.call);
        }
      },
      { prefetch, events: 'signed' },
    );
    await until('the scan to reach the finalized head', () => scanner.next > head, 600_000);
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    await scanner.stop();
    return {
      pc_fetch_blocks_per_s: Math.round(head / (ms / 1000)),
      pc_fetch_ms: Math.round(ms),
      pc_fetch_cpu_us_per_block: Math.round((cpu.user + cpu.system) / head),
      pc_fetch_rpcs_per_block: Number(([...rpcs.counts.values()].reduce((a, b) => a + b, 0) / head).toFixed(2)),
      pc_extrinsics: extrinsics,
      pc_signed_extrinsics: signed,
      pc_failed_extrinsics: failed,
      pc_remarks: remarks,
      pc_vldtr_remarks_other_shard: ours,
    };
  } finally {
    await pc.close();
  }
}

export async function benchParentchain(opts: ParentchainBenchOptions): Promise<ParentchainFigures> {
  const { log } = opts;
  const f: ParentchainFigures = {};
  const dir = mkdtempSync(join(tmpdir(), 'validateer-bench-pc-'));
  f.pc_bench_rss_at_start_bytes = process.memoryUsage.rss();
  let peakRss = f.pc_bench_rss_at_start_bytes;
  const rssTimer = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
  }, 100);
  let chain: DevChain | undefined;
  try {
    await cryptoWaitReady();
    log('parentchain: starting the chopsticks dev chain (manual blocks) ...');
    chain = await startDevChain({ blockTimeMs: 0 });
    f.pc_devchain_startup_ms = chain.startupMs;

    // ---------- the backlog ----------
    const pc = await connectParentchain({ endpoint: chain.endpoint });
    const api = pc.api;
    const keyring = new Keyring({ type: 'sr25519' });
    const signers = DEV_ACCOUNT_NAMES.map((n) => keyring.addFromUri(`//${n}`));
    const nonces = signers.map(() => 0); // a fresh chain: every dev account is at nonce 0
    const bytes = pseudoRandom(0x5eed);
    const plan: string[][] = [];
    for (let i = 0; i < opts.blocks; i++) plan.push(backlogTxs(api, signers, nonces, i, bytes));
    const signed = plan.reduce((n, txs) => n + txs.length, 0);
    log(
      `parentchain: building ${opts.blocks} blocks (${signed} signed extrinsics, ${plan.filter((t) => t.length > 0).length} blocks with remarks) ...`,
    );
    // dev_newBlock with the signed extrinsics themselves: no pool, one block each; runs of empty blocks at once.
    const builder = new WsProvider(chain.endpoint, false);
    await builder.connect();
    await builder.isReady;
    const buildStart = performance.now();
    for (let i = 0, logged = 0; i < plan.length;) {
      if (i - logged >= 100)
        log(`  ${(logged = i)}/${plan.length} blocks, ${Math.round(performance.now() - buildStart)} ms`);
      let run = 0;
      while (i + run < plan.length && plan[i + run].length === 0) run++;
      await builder.send('dev_newBlock', [run > 0 ? { count: run } : { transactions: plan[i] }]);
      i += Math.max(run, 1);
    }
    f.pc_build_ms = Math.round(performance.now() - buildStart);
    const head = Number((await builder.send<{ number: string }>('chain_getHeader', [])).number);
    await builder.disconnect();
    await pc.close();
    f.pc_backlog_blocks = head;
    f.pc_devchain_rss_bytes = rssOf(chain.pid);

    // Each catch-up starts from genesis with a fresh enclave, store and connection; the first one is
    // what a freshly started node sees (nothing compiled yet), the later ones show the steady state.
    const runs: ParentchainFigures[] = [],
      scans: ParentchainFigures[] = [];
    for (let r = 0; r < Math.max(1, opts.repeats); r++) {
      log(
        `parentchain: catch-up ${r + 1}/${opts.repeats} of ${head} finalized blocks with ParentchainDriver + enclave, then a fetch-only scan ...`,
      );
      runs.push(
        await measureCatchUp(chain.endpoint, head, join(dir, `node-${r}`), {
          ...opts,
          log: r === 0 ? log : () => undefined,
        }),
      );
      scans.push(await measureFetch(chain.endpoint, head, opts.prefetch));
      log(
        `  catch-up ${runs[r].pc_sync_blocks_per_s} blocks/s (enclave import ${runs[r].pc_enclave_blocks_per_s} blocks/s), fetch-only ${scans[r].pc_fetch_blocks_per_s} blocks/s`,
      );
    }
    const median = (xs: ParentchainFigures[], k: string) => xs.map((x) => x[k]).sort((a, b) => a - b)[xs.length >> 1];
    Object.assign(f, runs[0]);
    f.pc_repeats = runs.length;
    f.pc_sync_median_blocks_per_s = median(runs, 'pc_sync_blocks_per_s');
    f.pc_enclave_median_blocks_per_s = median(runs, 'pc_enclave_blocks_per_s');
    Object.assign(f, scans[0]); // the first scan runs after the first catch-up: already warm
    f.pc_fetch_median_blocks_per_s = median(scans, 'pc_fetch_blocks_per_s');
    const scan = scans[0];
    if (scan.pc_signed_extrinsics !== signed)
      throw new Error(
        `parentchain bench: ${signed} extrinsics were signed but the chain holds ${scan.pc_signed_extrinsics}`,
      );
    if (scan.pc_failed_extrinsics !== 0)
      throw new Error(`parentchain bench: ${scan.pc_failed_extrinsics} backlog extrinsics failed`);
  } finally {
    clearInterval(rssTimer);
    await chain?.close();
    rmSync(dir, { recursive: true, force: true });
  }
  f.pc_bench_peak_rss_bytes = peakRss;
  return f;
}
