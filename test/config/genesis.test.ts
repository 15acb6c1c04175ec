import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.ts';
import { genesisBalances } from '../../src/node/from-config.ts';
import { codeOf } from '../../src/protocol/errors.ts';

test('genesis.balancesFile adds endowments; a bad file is a CONFIG_INVALID naming the file and entry', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'validateer-genesis-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const good = join(dir, 'good.json');
  const key = '0x' + '11'.repeat(32);
  writeFileSync(good, JSON.stringify([{ account: key, amount: '42' }]));
  const config = loadConfig({ env: {}, overrides: { 'genesis.balancesFile': good } });
  const balances = await genesisBalances({
    ...config,
    genesis: { ...config.genesis, balances: [{ account: '0x' + '22'.repeat(32), amount: 7n }] },
  });
  assert.deepEqual(
    balances.map((b) => [Buffer.from(b.account).toString('hex'), b.amount]),
    [
      ['22'.repeat(32), 7n],
      ['11'.repeat(32), 42n],
    ],
  );

  const bad = join(dir, 'bad.json');
  writeFileSync(
    bad,
    JSON.stringify([
      { account: key, amount: '42' },
      { account: key, amount: '-1' },
    ]),
  );
  const err = await genesisBalances(loadConfig({ env: {}, overrides: { 'genesis.balancesFile': bad } })).catch(
    (e: Error & { code?: string }) => e,
  );
  assert.equal(codeOf(err), 'CONFIG_INVALID');
  assert.match((err as Error).message, /bad\.json/);
  assert.match((err as Error).message, /1\.amount/);

  const missing = await genesisBalances(
    loadConfig({ env: {}, overrides: { 'genesis.balancesFile': join(dir, 'nope.json') } }),
  ).catch((e: Error) => e);
  assert.match((missing as Error).message, /nope\.json: cannot read/);
});
