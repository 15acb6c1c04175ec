// Config errors as the operator sees them (`main.ts run`: non-zero exit, the field named on stderr,
// nothing started or created), and `main.ts keys` keeping the same enclave identity across runs.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupTempDirs, freePort, runCli, tempDir, type CliResult } from './harness.ts';

after(() => cleanupTempDirs());

/** A config file in a fresh temp dir; its dataDir is in there too (and must not be created on error). */
async function configFile(content: unknown): Promise<{ file: string; dataDir: string }> {
  const dir = tempDir();
  const dataDir = join(dir, 'data');
  const file = join(dir, 'config.json');
  const base = { dataDir, rpc: { port: await freePort() }, metrics: { port: await freePort() } };
  writeFileSync(
    file,
    typeof content === 'string' ? content : JSON.stringify(merge(base, content as Record<string, unknown>), null, 2),
  );
  return { file, dataDir };
}

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object'
        ? merge(cur as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

function assertRejected(r: CliResult, ...patterns: RegExp[]): void {
  assert.equal(r.signal, null, `the process exited by itself (it did not hang and get killed): ${r.stdout}`);
  assert.notEqual(r.code, 0, 'non-zero exit');
  assert.doesNotMatch(r.stdout, /validateer running/, 'the node did not start');
  for (const p of patterns) assert.match(r.stderr, p);
}

test('an invalid field (rpc.port: 70000) exits non-zero naming rpc.port', async () => {
  const { file, dataDir } = await configFile({ rpc: { port: 70000 } });
  const r = await runCli(['run', '--config', file], { timeoutMs: 20_000 });
  assertRejected(r, /rpc\.port/, /CONFIG_INVALID/, new RegExp(`file ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  assert.ok(!existsSync(dataDir), 'no data dir created for an invalid config');
});

test('all problems are reported at once', async () => {
  const { file, dataDir } = await configFile({
    rpc: { port: -1 },
    sidechain: { slotDurationMs: 'fast' },
    genesis: { balances: [{ account: '//Alice', amount: '-5' }] },
  });
  const r = await runCli(['run', '--config', file], { timeoutMs: 20_000 });
  assertRejected(r, /rpc\.port/, /sidechain\.slotDurationMs/, /genesis\.balances\[0\]\.amount/);
  assert.ok(!existsSync(dataDir));
});

test('an unknown key is rejected, by its path', async () => {
  const { file, dataDir } = await configFile({ rpc: { prot: 2000 }, sidechian: {} });
  const r = await runCli(['run', '--config', file], { timeoutMs: 20_000 });
  assertRejected(r, /rpc\.prot: unknown key/, /sidechian: unknown key/);
  assert.ok(!existsSync(dataDir));
});

test('a missing config file is a clear error', async () => {
  const file = join(tempDir(), 'does-not-exist.json');
  const r = await runCli(['run', '--config', file], { timeoutMs: 20_000 });
  assertRejected(r, /cannot read/, new RegExp(file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
});

test('a config file that is not JSON is a clear error', async () => {
  const { file } = await configFile('{ "rpc": { "port": 2000, } ');
  const r = await runCli(['run', '--config', file], { timeoutMs: 20_000 });
  // Clear: the code, the file and where in it the JSON breaks; no stack trace.
  assertRejected(
    r,
    /CONFIG_INVALID/,
    new RegExp(`file ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: not valid JSON`),
    /line 1 column \d+/,
  );
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
});

test('VALIDATEER_RPC__PORT=abc is rejected naming rpc.port and the variable', async () => {
  const { file, dataDir } = await configFile({});
  const r = await runCli(['run', '--config', file], { env: { VALIDATEER_RPC__PORT: 'abc' }, timeoutMs: 20_000 });
  assertRejected(r, /rpc\.port/, /VALIDATEER_RPC__PORT/);
  assert.ok(!existsSync(dataDir));
});

test('an unknown VALIDATEER_* variable is rejected', async () => {
  const { file, dataDir } = await configFile({});
  const r = await runCli(['run', '--config', file], { env: { VALIDATEER_RPC__PROT: '1' }, timeoutMs: 20_000 });
  assertRejected(r, /VALIDATEER_RPC__PROT/, /does not match any config field/);
  assert.ok(!existsSync(dataDir));
});

test('a bad --rpc-port flag is rejected naming rpc.port', async () => {
  const { file, dataDir } = await configFile({});
  const r = await runCli(['run', '--config', file, '--rpc-port', '99999'], { timeoutMs: 20_000 });
  assertRejected(r, /rpc\.port/);
  assert.ok(!existsSync(dataDir));
});

test('`keys --data-dir` prints the enclave keys as JSON, the same on a second run', async () => {
  const dataDir = join(tempDir(), 'keys-data');
  const run = async () => {
    const r = await runCli(['keys', '--data-dir', dataDir], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  };
  const first = await run();
  assert.match(String(first.signingKey), /^0x[0-9a-f]{64}$/);
  assert.match(String(first.shieldingKey), /^0x[0-9a-f]{64}$/);
  assert.match(String(first.measurement), /^0x[0-9a-f]{64}$/);
  assert.equal(first.attestation, 'simulated');
  assert.ok(existsSync(join(dataDir, 'enclave', 'keys.sealed')), 'keys sealed in the given data dir');
  assert.match(String(first.encryptionKey), /^0x[0-9a-f]{64}$/);
  assert.match(String(first.quote), /^0x[0-9a-f]+$/);
  const second = await run();
  assert.equal(second.signingKey, first.signingKey);
  assert.equal(second.shieldingKey, first.shieldingKey);
  assert.equal(second.shieldingKeyId, first.shieldingKeyId);
  assert.equal(second.measurement, first.measurement);
  // Every key field, not only some: all but the quote (made fresh on each run) are the enclave's identity.
  const identity = ({ quote: _quote, ...rest }: Record<string, unknown>) => rest;
  assert.deepEqual(identity(second), identity(first));
  // A different data dir is a different enclave identity.
  const other = await runCli(['keys', '--data-dir', join(tempDir(), 'other')], { timeoutMs: 30_000 });
  assert.equal(other.code, 0, other.stderr);
  assert.notEqual((JSON.parse(other.stdout) as { signingKey: string }).signingKey, first.signingKey);
});
