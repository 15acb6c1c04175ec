// The enclave thread's own cost per call, in-process and on an otherwise idle thread: admission
// (after verification on the crypto threads, which is excluded) and block production (propose and
// commit), over a 100k-account state. Far steadier than the end-to-end figures on a shared machine,
// so a change to the enclave's per-call path shows here first.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EnclaveCore } from '../src/enclave/core.ts';
import { fromHex } from '../src/codec/wire.ts';
import { benchTransfers } from './transfers.ts';
import { benchPublicKeys } from './accounts.ts';

const SHARD = new Uint8Array(32).fill(0x11);
const BATCH = 2000;

export async function benchEnclave(o: { accounts: number; calls: number; log: (m: string) => void }): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'validateer-bench-enclave-'));
  const core = EnclaveCore.open({ dataDir: dir, shard: SHARD, workers: 2, pool: { maxPending: 200_000, maxNonceAhead: 1024, futureTtlMs: 60_000 }, authorities: [] });
  // The crypto threads are unref'd: keep the process alive while waiting for them.
  const keepAlive = setInterval(() => {}, 1000);
  try {
    core.genesis(benchPublicKeys(o.accounts).map((account) => ({ account, amount: 1_000_000_000n })), Date.now());
    const info = core.info();
    o.log(`enclave: pre-signing ${o.calls} transfers ...`);
    const requests = benchTransfers({ calls: o.calls, senders: Math.max(1, Math.floor(o.calls / 20)), accounts: o.accounts, key: { keyId: info.shieldingKeyId, publicKey: info.shieldingKey }, shard: SHARD }).map(fromHex);
    const threadUs = () => { const u = process.threadCpuUsage(); return u.user + u.system; };
    // The first quarter warms the JIT up; the rest is measured.
    const warm = Math.floor(requests.length / 4);
    let admitUs = 0, blockUs = 0, calls = 0, slot = 1n;
    for (let k = 0; k < requests.length; k += BATCH) {
      const measured = k >= warm;
      const t0 = threadUs();
      const results = await core.submit(requests.slice(k, k + BATCH), Date.now());
      const t1 = threadUs();
      const p = core.propose({ slot: slot++, timestampMs: Date.now(), maxCalls: BATCH });
      core.commit(p.hash);
      const t2 = threadUs();
      const admitted = results.filter((r) => r.status !== 'invalid').length;
      if (admitted !== results.length || p.included.length !== admitted) throw new Error(`enclave bench: ${admitted} of ${results.length} admitted, ${p.included.length} included`);
      if (!measured) continue;
      admitUs += t1 - t0;
      blockUs += t2 - t1;
      calls += admitted;
    }
    return {
      enclave_calls: calls,
      enclave_admit_us_per_call: Number((admitUs / calls).toFixed(1)),
      enclave_block_us_per_call: Number((blockUs / calls).toFixed(1)),
    };
  } finally {
    clearInterval(keepAlive);
    await core.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
