import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, configFields, loadConfig } from '../../src/config/load.ts';

const repoFile = (name: string): string => new URL(`../../config/${name}`, import.meta.url).pathname;

/** Writes a temporary config file and passes its path to fn. */
function withFile(text: string, fn: (file: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'validateer-config-'));
  try {
    const file = join(dir, 'config.json');
    writeFileSync(file, text);
    fn(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function assertConfigError(fn: () => unknown, ...fragments: string[]): ConfigError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  assert.equal(caught.code, 'CONFIG_INVALID');
  for (const fragment of fragments)
    assert.ok(caught.message.includes(fragment), `${JSON.stringify(caught.message)} lacks ${JSON.stringify(fragment)}`);
  return caught;
}

test('defaults: empty input is a valid dev config', () => {
  const config = loadConfig({ env: {} });
  assert.equal(config.dataDir, 'data/dev');
  assert.equal(config.rpc.port, 2000);
  assert.equal(config.metrics.port, 8787);
  assert.equal(config.sidechain.slotDurationMs, 1000);
  assert.equal(config.enclave.attestation.provider, 'simulated');
  assert.deepEqual(config.genesis.balances, []);
  assert.equal(config.log.level, 'info');
});

test('file values override defaults, with // comment lines allowed', () => {
  withFile('// a comment\n{\n  // port for clients\n  "rpc": { "port": 3000 },\n  "dataDir": "/tmp/v"\n}\n', (file) => {
    const config = loadConfig({ file, env: {} });
    assert.equal(config.rpc.port, 3000);
    assert.equal(config.rpc.host, '127.0.0.1', 'siblings keep their defaults');
    assert.equal(config.dataDir, '/tmp/v');
  });
});

test('precedence: defaults < file < env < overrides', () => {
  withFile(
    '{ "rpc": { "port": 3000, "maxBatch": 7 }, "metrics": { "port": 9000 }, "dataDir": "from-file" }',
    (file) => {
      const config = loadConfig({
        file,
        env: { VALIDATEER_RPC__PORT: '3001', VALIDATEER_METRICS__PORT: '9001', PATH: '/bin' },
        overrides: { 'rpc.port': 3002, 'log.level': 'debug', 'sidechain.slotDurationMs': undefined },
      });
      assert.equal(config.rpc.port, 3002, 'override beats env and file');
      assert.equal(config.metrics.port, 9001, 'env beats file');
      assert.equal(config.rpc.maxBatch, 7, 'file beats default');
      assert.equal(config.dataDir, 'from-file');
      assert.equal(config.log.level, 'debug');
      assert.equal(config.sidechain.slotDurationMs, 1000, 'undefined overrides are ignored');
    },
  );
});

test('env values: JSON when they parse, else strings', () => {
  const alice = '0x' + 'ab'.repeat(32);
  const config = loadConfig({
    env: {
      VALIDATEER_DATA_DIR: '/tmp/x',
      VALIDATEER_SIDECHAIN__SLOT_DURATION_MS: '500',
      VALIDATEER_METRICS__ENABLED: 'false',
      VALIDATEER_AUTHORITIES: JSON.stringify([alice]),
      VALIDATEER_ENCLAVE__ATTESTATION__TRUSTED_AUTHORITIES: '[]',
      VALIDATEER_GENESIS__BALANCES: '[{"account":"//Alice","amount":"5"}]',
      VALIDATEER_LOG__LEVEL: 'warn',
    },
  });
  assert.equal(config.dataDir, '/tmp/x');
  assert.equal(config.sidechain.slotDurationMs, 500);
  assert.equal(config.metrics.enabled, false);
  assert.deepEqual(config.authorities, [alice]);
  assert.deepEqual(config.genesis.balances, [{ account: '//Alice', amount: 5n }]);
  assert.equal(config.log.level, 'warn');
});

test('a numeric-looking value stays a string where the field is a string', () => {
  assert.equal(loadConfig({ env: { VALIDATEER_DATA_DIR: '123' } }).dataDir, '123');
  assert.equal(loadConfig({ env: {}, overrides: { dataDir: '456' } }).dataDir, '456');
});

test('string overrides (raw CLI flag values) are parsed like env values', () => {
  const config = loadConfig({ env: {}, overrides: { 'rpc.port': '2500', 'metrics.enabled': 'false' } });
  assert.equal(config.rpc.port, 2500);
  assert.equal(config.metrics.enabled, false);
});

test('an invalid value names the field, the problem and its source', () => {
  assertConfigError(
    () => loadConfig({ env: { VALIDATEER_RPC__PORT: '70000' } }),
    'invalid config: rpc.port: Too big: expected number to be <=65535',
    'env VALIDATEER_RPC__PORT',
  );
  assertConfigError(
    () => loadConfig({ env: {}, overrides: { 'sidechain.slotDurationMs': 10 } }),
    'sidechain.slotDurationMs: ',
    'override sidechain.slotDurationMs',
  );
  withFile('{ "genesis": { "balances": [{ "account": "//Alice", "amount": "lots" }] } }', (file) => {
    const err = assertConfigError(() => loadConfig({ file, env: {} }), 'genesis.balances[0].amount: ', `file ${file}`);
    assert.deepEqual(
      err.issues.map((i) => i.path),
      ['genesis.balances[0].amount'],
    );
  });
});

test('every problem is reported at once', () => {
  const err = assertConfigError(
    () => loadConfig({ env: { VALIDATEER_RPC__PORT: '-1', VALIDATEER_LOG__LEVEL: 'loud' } }),
    'rpc.port',
    'log.level',
  );
  assert.equal(err.issues.length, 2);
});

test('unknown keys in the file are rejected', () => {
  withFile(
    '{ "rpc": { "prot": 1 }, "bogus": true, "genesis": { "balances": [{ "account": "//Bob", "amount": "1", "x": 0 }] } }',
    (file) => {
      const err = assertConfigError(
        () => loadConfig({ file, env: {} }),
        'rpc.prot: unknown key',
        'bogus: unknown key',
        'genesis.balances[0].x: unknown key',
      );
      assert.equal(err.issues.length, 3);
    },
  );
  withFile('{ "__proto__": { "polluted": true } }', (file) => {
    assertConfigError(() => loadConfig({ file, env: {} }), '__proto__: unknown key');
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});

test('unknown VALIDATEER_ env vars and override keys are rejected by name', () => {
  assertConfigError(
    () => loadConfig({ env: { VALIDATEER_RPC__PROT: '1', VALIDATEER_RPC: '{}', OTHER_VAR: 'x' } }),
    'env VALIDATEER_RPC__PROT: does not match any config field',
    'env VALIDATEER_RPC:',
  );
  assertConfigError(
    () => loadConfig({ env: {}, overrides: { 'rpc.prot': 1 } }),
    'override rpc.prot: does not match any config field',
  );
});

test('a missing or unparsable file is an error naming the file', () => {
  const missing = join(tmpdir(), 'validateer-no-such-dir', 'missing.json');
  assertConfigError(() => loadConfig({ file: missing, env: {} }), `file ${missing}`, 'cannot read');
  withFile('{ "rpc": ', (file) =>
    assertConfigError(() => loadConfig({ file, env: {} }), `file ${file}`, 'not valid JSON'),
  );
  withFile('[1, 2]', (file) => assertConfigError(() => loadConfig({ file, env: {} }), `file ${file}`, 'JSON object'));
});

test('config/dev.json loads', () => {
  const config = loadConfig({ file: repoFile('dev.json'), env: {} });
  assert.equal(config.dataDir, 'data/dev');
  assert.equal(config.sidechain.slotDurationMs, 1000);
  assert.deepEqual(
    config.genesis.balances.map((b) => b.account),
    ['//Alice', '//Bob', '//Charlie', '//Dave', '//Eve', '//Ferdie'],
  );
  assert.ok(config.genesis.balances.every((b) => b.amount === 1_000_000_000_000n));
});

test('config/example.jsonc loads, equals the defaults and documents every field', () => {
  const file = repoFile('example.jsonc');
  assert.deepEqual(loadConfig({ file, env: {} }), loadConfig({ env: {} }));
  const lines = readFileSync(file, 'utf8').split('\n');
  const raw = JSON.parse(lines.filter((l) => !l.trimStart().startsWith('//')).join('\n')) as Record<string, unknown>;
  for (const { path } of configFields()) {
    const segments = path.split('.');
    let node: unknown = raw;
    // A nullable object (e.g. parentchain.checkpoint) documented as null covers its fields.
    for (const seg of segments) if (node !== null) node = (node as Record<string, unknown> | undefined)?.[seg];
    assert.notEqual(node, undefined, `example.jsonc lacks ${path}`);
  }
  lines.forEach((line, i) => {
    if (/^\s*"\w+":/.test(line))
      assert.ok(lines[i - 1].trimStart().startsWith('//'), `example.jsonc: no comment above ${line.trim()}`);
  });
});
