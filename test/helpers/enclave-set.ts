// In-process enclaves of one shard for enclave tests: temporary data directories and the cores opened
// on them, all closed and removed by close(). openSet makes a set whose authorities are the members'
// own signing keys: the keys are created by a first open of each data directory (they are sealed
// there), then every enclave is reopened knowing the whole set.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EnclaveCore } from '../../src/enclave/core.ts';

export const TEST_POOL = { maxPending: 1000, maxNonceAhead: 16, futureTtlMs: 30000 };

export function enclaveSet({ shard, shardPolicy }: { shard: Uint8Array; shardPolicy: Uint8Array }, prefix: string) {
  const dirs: string[] = [];
  const opened: EnclaveCore[] = [];
  const tempDir = (): string => {
    const d = mkdtempSync(join(tmpdir(), `validateer-${prefix}-`));
    dirs.push(d);
    return d;
  };
  /** An enclave on `dataDir`, closed by close(). */
  const openCore = (dataDir: string, authorities: Uint8Array[]): EnclaveCore => {
    const core = EnclaveCore.open({
      dataDir,
      shard,
      shardPolicy,
      workers: 1,
      pool: TEST_POOL,
      authorities,
      devShardSecrets: true,
    });
    opened.push(core);
    return core;
  };
  /** Keeps `core` (opened some other way) to be closed by close(). */
  const adopt = (core: EnclaveCore): EnclaveCore => (opened.push(core), core);
  const openSet = async (n: number): Promise<EnclaveCore[]> => {
    const dataDirs = Array.from({ length: n }, tempDir);
    const keys: Uint8Array[] = [];
    for (const d of dataDirs) {
      const c = EnclaveCore.open({
        dataDir: d,
        shard,
        shardPolicy,
        workers: 1,
        pool: TEST_POOL,
        authorities: [],
        devShardSecrets: true,
      });
      keys.push(c.info().signingKey);
      await c.close();
    }
    return dataDirs.map((d) => openCore(d, keys));
  };
  const close = async (): Promise<void> => {
    for (const c of opened) await c.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  };
  return { tempDir, openCore, openSet, adopt, close };
}
