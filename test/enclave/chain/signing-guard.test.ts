// An enclave signs at most one block per slot whatever its host does: proposes again, rewinds, restarts
// it on the same data directory, or throws proposals away. Two blocks for one slot by one author is
// equivocation: peers would see two chains signed by the same enclave.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { EnclaveCore } from '../../../src/enclave/core.ts';
import { codeOf } from '../../helpers/errors.ts';
import { enclaveSet } from '../../helpers/enclave-set.ts';
import { testShard } from '../../helpers/shard.ts';

const { tempDir, openCore, close } = enclaveSet(testShard('signing guard test shard'), 'guard');
after(close);

const propose = (core: EnclaveCore, slot: bigint) => core.propose({ slot, timestampMs: Date.now(), maxCalls: 10 });

/** An enclave alone in its set (every slot is its own) on a fresh data directory, with genesis committed. */
function alone() {
  const dataDir = tempDir();
  const core = openCore(dataDir, []);
  const genesis = core.genesis([], Date.now());
  return { dataDir, core, genesis };
}

test('propose twice for one slot: the second is refused; the slot of a discarded proposal is burned', async () => {
  const { core } = alone();
  const first = propose(core, 3n);
  assert.equal(
    codeOf(() => propose(core, 3n)),
    'SLOT_ALREADY_SIGNED',
  );
  // The host never stored the first one: the slot stays used, the next one is free.
  const next = propose(core, 4n);
  assert.notDeepEqual(next.hash, first.hash);
  core.commit(next.hash);
  assert.equal(core.status().headNumber, 1);
});

test('propose, commit, rewind to the parent, propose the same slot again: refused; a later slot is signed', async () => {
  const { core, genesis } = alone();
  core.commit(propose(core, 5n).hash);
  core.rewind(0, genesis.hash);
  assert.equal(core.status().headNumber, 0);
  assert.equal(
    codeOf(() => propose(core, 5n)),
    'SLOT_ALREADY_SIGNED',
  );
  assert.equal(
    codeOf(() => propose(core, 4n)),
    'SLOT_ALREADY_SIGNED',
    'nor an earlier slot, which the rewound head would allow',
  );
  assert.equal(propose(core, 6n).number, 1);
});

test('propose, restart the enclave on the same data directory, propose the same slot: refused', async () => {
  const { dataDir, core, genesis } = alone();
  propose(core, 7n); // signed, never stored
  await core.close();
  const again = openCore(dataDir, []);
  again.beginReplay(undefined, false);
  again.replayBlocks([genesis.block]);
  await again.finishReplay();
  assert.equal(
    codeOf(() => propose(again, 7n)),
    'SLOT_ALREADY_SIGNED',
  );
  assert.equal(propose(again, 8n).number, 1);
});

test('a second genesis after a restart is refused: block 0 is signed once', async () => {
  const { dataDir, core } = alone();
  await core.close();
  const again = openCore(dataDir, []);
  assert.equal(
    codeOf(() => again.genesis([], Date.now())),
    'SLOT_ALREADY_SIGNED',
  );
});

test('a slot beyond u64 is refused: encoded, it would wrap to a slot already signed and reset the record', async () => {
  const { dataDir, core, genesis } = alone();
  core.commit(propose(core, 5n).hash);
  core.rewind(0, genesis.hash);
  for (const slot of [2n ** 64n + 5n, 2n ** 64n - 1n])
    assert.equal(
      codeOf(() => propose(core, slot)),
      'BAD_REQUEST',
    );
  await core.close();
  const again = openCore(dataDir, []);
  again.beginReplay(undefined, false);
  again.replayBlocks([genesis.block]);
  await again.finishReplay();
  assert.equal(
    codeOf(() => propose(again, 5n)),
    'SLOT_ALREADY_SIGNED',
  );
});
