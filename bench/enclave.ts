// The enclave thread's own cost per call, in-process and on an otherwise idle thread, over a
// 100k-account state, for two enclaves of one shard: the author's admission (after verification on
// the crypto threads, which is excluded; it includes sealing the calls for forwarding) and block
// production (propose and commit), and what every other validateer of a set pays for the same call:
// admitting the forwarded batch and importing (and committing) the block. Far steadier than the end-to-end figures on a
// shared machine, so a change to the enclave's per-call path shows here first.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EnclaveCore, type EnclaveOptions } from '../src/enclave/core.ts';
import { benchTransfers } from './transfers.ts';
import { benchPublicKeys } from './accounts.ts';
import { fromHex } from '../src/protocol/bytes.ts';
import { DEV_SHARD, DEV_SHARD_POLICY } from '../src/protocol/shard-policy.ts';

const SHARD = DEV_SHARD;
const BATCH = 2000;

export async function benchEnclave(o: {
  accounts: number;
  calls: number;
  log: (m: string) => void;
}): Promise<Record<string, number>> {
  const dirs = [0, 1].map(() => mkdtempSync(join(tmpdir(), 'validateer-bench-enclave-')));
  const init = (dataDir: string, authorities: Uint8Array[]): EnclaveOptions => ({
    dataDir,
    shard: SHARD,
    shardPolicy: DEV_SHARD_POLICY,
    workers: 2,
    pool: { maxPending: 200_000, maxNonceAhead: 1024, futureTtlMs: 60_000 },
    authorities,
    devShardSecrets: true,
  });
  // The signing keys are made by a first open; then both open knowing the set (slot s is authorities[s mod 2]'s).
  const keys: Uint8Array[] = [];
  for (const d of dirs) {
    const c = EnclaveCore.open(init(d, []));
    keys.push(c.info().signingKey);
    await c.close();
  }
  const [author, other] = dirs.map((d) => EnclaveCore.open(init(d, keys)));
  // The crypto threads are unref'd: keep the process alive while waiting for them.
  const keepAlive = setInterval(() => {}, 1000);
  try {
    const genesis = author.genesis(
      benchPublicKeys(o.accounts).map((account) => ({ account, amount: 1_000_000_000n })),
      Date.now(),
    );
    other.commit(other.importBlock(genesis.block, Date.now()).hash);
    const info = author.info();
    o.log(`enclave: pre-signing ${o.calls} transfers ...`);
    const requests = benchTransfers({
      calls: o.calls,
      senders: Math.max(1, Math.floor(o.calls / 20)),
      accounts: o.accounts,
      key: { keyId: info.shieldingKeyId, publicKey: info.shieldingKey },
      shard: SHARD,
    }).map(fromHex);
    const threadUs = () => {
      const u = process.threadCpuUsage();
      return u.user + u.system;
    };
    // The first quarter warms the JIT up; the rest is measured.
    const warm = Math.floor(requests.length / 4);
    const us = { admit: 0, block: 0, forwarded: 0, import: 0 };
    let calls = 0,
      slot = 0n;
    for (let k = 0; k < requests.length; k += BATCH) {
      const measured = k >= warm;
      const batch = requests.slice(k, k + BATCH);
      const t0 = threadUs();
      const { results, forwarded } = await author.submitAndForward(batch, Date.now(), new Set(batch.keys()));
      const t1 = threadUs();
      const accepted = await other.submitForwarded(forwarded!, Date.now());
      const t2 = threadUs();
      slot += 2n;
      const p = author.propose({ slot, timestampMs: Date.now(), maxCalls: BATCH });
      author.commit(p.hash);
      const t3 = threadUs();
      other.commit(other.importBlock(p.block, Date.now()).hash);
      const t4 = threadUs();
      const admitted = results.filter((r) => r.status !== 'invalid').length;
      const ok =
        admitted === results.length &&
        p.included.length === admitted &&
        accepted.every((r) => r.status !== 'invalid') &&
        other.status().poolSize === 0;
      if (!ok)
        throw new Error(
          `enclave bench: ${admitted} of ${results.length} admitted, ${p.included.length} included, other pool ${other.status().poolSize}`,
        );
      if (!measured) continue;
      us.admit += t1 - t0;
      us.forwarded += t2 - t1;
      us.block += t3 - t2;
      us.import += t4 - t3;
      calls += admitted;
    }
    const per = (x: number) => Number((x / calls).toFixed(1));
    return {
      enclave_calls: calls,
      enclave_admit_us_per_call: per(us.admit),
      enclave_block_us_per_call: per(us.block),
      enclave_forwarded_admit_us_per_call: per(us.forwarded),
      enclave_import_us_per_call: per(us.import),
    };
  } finally {
    clearInterval(keepAlive);
    await author.close();
    await other.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}
