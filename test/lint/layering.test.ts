// The layering DESIGN.md draws is enforced by lint, not hoped for: each case lints one import line as if
// it were in a file of the named folder, and the rule must refuse it (or allow it). If the rule were
// dropped from eslint.config.js, the refusals here would pass lint and these tests would fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { ESLint } from 'eslint';

const eslint = new ESLint({ cwd: resolve(import.meta.dirname, '../..') });

async function layeringErrors(file: string, source: string): Promise<string[]> {
  const [result] = await eslint.lintText(source, { filePath: resolve(import.meta.dirname, '../..', file) });
  return result.messages.filter((m) => m.ruleId === 'import-x/no-restricted-paths').map((m) => m.message);
}

const refused: [string, string, RegExp][] = [
  ['src/enclave/core.ts', "import { ChainService } from '../chain/chain.ts';", /enclave\/ imports only/],
  ['src/enclave/keys/keys.ts', "import { createLogger } from '../../node/logger.ts';", /enclave\/ imports only/],
  ['src/protocol/block.ts', "import { BlockStore } from '../sidechain/store.ts';", /protocol\/ is pure/],
  [
    'src/p2p/network.ts',
    "import type { Enclave } from '../enclave/boundary/host.ts';",
    /p2p\/ knows neither chain nor enclave/,
  ],
  ['src/p2p/gossip.ts', "import { isBetter } from '../chain/fork-choice.ts';", /p2p\/ knows neither chain nor enclave/],
  [
    'src/rpc/methods.ts',
    "import { startValidateer } from '../node/validateer.ts';",
    /only cli\/ and node\/ import node\//,
  ],
  ['src/chain/chain.ts', "import { State } from '../enclave/state/state.ts';", /only enclave\/boundary/],
];

for (const [file, line, reason] of refused) {
  test(`lint refuses in ${file}: ${line}`, async () => {
    const errors = await layeringErrors(file, `${line}\nexport const x = 1;\n`);
    assert.equal(errors.length, 1, `one layering error, got ${JSON.stringify(errors)}`);
    assert.match(errors[0], reason);
  });
}

test('lint allows what the layering allows', async () => {
  assert.deepEqual(
    await layeringErrors(
      'src/enclave/core.ts',
      "import { toHex } from '../protocol/bytes.ts';\nimport { sha256 } from '../crypto/primitives.ts';\n",
    ),
    [],
  );
  assert.deepEqual(
    await layeringErrors('src/chain/chain.ts', "import type { Enclave } from '../enclave/boundary/host.ts';\n"),
    [],
  );
  assert.deepEqual(
    await layeringErrors('src/node/validateer.ts', "import { createMethods } from '../rpc/methods.ts';\n"),
    [],
  );
});
