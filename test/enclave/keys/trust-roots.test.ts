// The shard policy as the shard's identity: the enclave opens only with the policy its shard id names,
// config narrows it and never widens it, the dev policy needs the embedded dev chain or `dev`, and dev
// shard secrets never go with a parentchain. Driven as a malicious host would: through the options
// the host hands the enclave and the messages it sends.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EnclaveCore, type EnclaveOptions } from '../../../src/enclave/core.ts';
import { Enclave } from '../../../src/enclave/boundary/host.ts';
import { DEV_AUTHORITY_PUBLIC as ENCLAVE_DEV_AUTHORITY } from '../../../src/enclave/keys/attestation.ts';
import { computeMeasurement } from '../../../src/enclave/keys/measurement.ts';
import { CHOPSTICKS_GENESIS } from '../../../src/enclave/parentchain/light-client.ts';
import {
  DEV_AUTHORITY_PUBLIC,
  DEV_SHARD,
  DEV_SHARD_POLICY,
  decodeShardPolicy,
  encodeShardPolicy,
  shardIdOf,
  shardPolicyFrom,
  shardPolicyJson,
} from '../../../src/protocol/shard-policy.ts';
import { concatBytes, toHex } from '../../../src/protocol/bytes.ts';
import { sha256 } from '../../../src/crypto/primitives.ts';
import { configSchema } from '../../../src/config/schema.ts';
import { loadConfig } from '../../../src/config/load.ts';
import { enclaveInitFrom } from '../../../src/node/from-config.ts';
import { codeOf } from '../../helpers/errors.ts';
import { testShard } from '../../helpers/shard.ts';
import { DEV_METADATA } from '../../helpers/metadata.ts';

const te = new TextEncoder();
const POOL = { maxPending: 100, maxNonceAhead: 16, futureTtlMs: 30000 };
const REAL_GENESIS = sha256(te.encode('a real chain genesis'));
const key32 = (label: string) => sha256(te.encode(label));
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'validateer-trust-'));
  dirs.push(d);
  return d;
}

function open(o: Partial<EnclaveOptions> & Pick<EnclaveOptions, 'shard' | 'shardPolicy'>, dataDir = tempDir()) {
  return EnclaveCore.open({ dataDir, workers: 0, pool: POOL, authorities: [], ...o });
}
/** parentchainInit's params for a chain with this genesis (the dev runtime's metadata, which gives the indices). */
function initParams(genesisHash: Uint8Array) {
  return {
    genesisHash,
    metadata: DEV_METADATA,
    existentialDeposit: 1n,
    proxyDepositFactor: 1n,
  };
}
async function closing<T>(core: EnclaveCore, fn: (core: EnclaveCore) => T): Promise<T> {
  try {
    return fn(core);
  } finally {
    await core.close();
  }
}

test('shard policy: the shard id is sha256(domain ‖ SCALE(policy)); JSON and hex forms; malformed policies refused', () => {
  const policy = {
    name: 'a shard',
    authorities: [key32('authority 1'), key32('authority 2')],
    measurements: [key32('code 1')],
    governance: [],
  };
  const bytes = encodeShardPolicy(policy);
  assert.deepEqual(shardIdOf(bytes), sha256(concatBytes(te.encode('validateer/shard-policy/v1'), bytes)));
  assert.deepEqual(decodeShardPolicy(bytes), policy);
  assert.deepEqual(shardPolicyFrom(shardPolicyJson(policy)), bytes);
  assert.deepEqual(shardPolicyFrom(toHex(bytes)), bytes);
  // every field is part of the identity
  for (const other of [
    { ...policy, name: 'another shard' },
    { ...policy, authorities: policy.authorities.slice(1) },
    { ...policy, measurements: [] },
    { ...policy, governance: [key32('governor')] },
  ])
    assert.notDeepEqual(shardIdOf(encodeShardPolicy(other)), shardIdOf(bytes));
  assert.equal(
    codeOf(() => encodeShardPolicy({ ...policy, authorities: [] })),
    'POLICY_MALFORMED',
  );
  assert.equal(
    codeOf(() => encodeShardPolicy({ ...policy, authorities: [policy.authorities[0], policy.authorities[0]] })),
    'POLICY_MALFORMED',
  );
  assert.equal(
    codeOf(() => decodeShardPolicy(concatBytes(bytes, Uint8Array.of(0)))),
    'POLICY_MALFORMED',
  );
  assert.equal(
    codeOf(() => decodeShardPolicy(concatBytes(Uint8Array.of(2), bytes.subarray(1)))),
    'POLICY_MALFORMED',
  );
  assert.equal(
    codeOf(() => shardPolicyFrom({ name: 'x', authorities: ['0x12'] })),
    'POLICY_MALFORMED',
  );
  // the dev policy: the enclave's dev authority, and the config's default shard is its hash
  assert.deepEqual(DEV_AUTHORITY_PUBLIC, ENCLAVE_DEV_AUTHORITY);
  assert.deepEqual(decodeShardPolicy(DEV_SHARD_POLICY).authorities, [DEV_AUTHORITY_PUBLIC]);
  assert.equal(configSchema.parse({}).shard, toHex(DEV_SHARD));
});

test('the enclave refuses to open with a policy that does not hash to its shard id', async () => {
  const mine = testShard('my shard');
  const theirs = testShard('my shard', { authorities: [DEV_AUTHORITY_PUBLIC, key32('host authority')] });
  assert.equal(
    codeOf(() => open({ shard: mine.shard, shardPolicy: theirs.shardPolicy })),
    'POLICY_SHARD_MISMATCH',
  );
  assert.equal(
    codeOf(() => open({ shard: DEV_SHARD, shardPolicy: mine.shardPolicy })),
    'POLICY_SHARD_MISMATCH',
  );
  // bytes that hash to the shard id but are no policy
  const garbage = te.encode('not a policy');
  assert.equal(
    codeOf(() => open({ shard: shardIdOf(garbage), shardPolicy: garbage })),
    'POLICY_MALFORMED',
  );
  // through the boundary as well: the enclave thread does not start
  await assert.rejects(
    Enclave.start({
      dataDir: tempDir(),
      shard: mine.shard,
      shardPolicy: theirs.shardPolicy,
      workers: 0,
      pool: POOL,
      authorities: [],
    }),
    /hashes to/,
  );
  await closing(open(mine), (core) => assert.equal(core.info().signingKey.length, 32));
});

test('config may narrow the policy, never widen it: an extra authority or measurement is refused', async () => {
  const own = computeMeasurement();
  const other = key32('other code');
  const two = testShard('two authorities', { authorities: [DEV_AUTHORITY_PUBLIC, key32('authority 2')] });
  assert.equal(
    codeOf(() => open({ ...two, trustedAuthorities: [key32('host authority')] })),
    'POLICY_WIDENED',
  );
  assert.equal(
    codeOf(() => open({ ...two, trustedAuthorities: [DEV_AUTHORITY_PUBLIC, key32('host authority')] })),
    'POLICY_WIDENED',
  );
  await closing(open({ ...two, trustedAuthorities: [DEV_AUTHORITY_PUBLIC] }), () => undefined);
  // measurements: the policy's list, or the enclave's own when it names none
  const pinned = testShard('pinned code', { measurements: [own] });
  assert.equal(
    codeOf(() => open({ ...pinned, allowedMeasurements: [other] })),
    'POLICY_WIDENED',
  );
  await closing(open({ ...pinned, allowedMeasurements: [own] }), () => undefined);
  const ownCode = testShard('own code');
  assert.equal(
    codeOf(() => open({ ...ownCode, allowedMeasurements: [other] })),
    'POLICY_WIDENED',
  );
  await closing(open({ ...ownCode, allowedMeasurements: [own] }), () => undefined);
});

test('the dev policy (any trusting the dev authority) is refused on a parentchain that is not the embedded dev chain, unless dev is set', async () => {
  const dev = { shard: DEV_SHARD, shardPolicy: DEV_SHARD_POLICY };
  const dir = tempDir();
  await closing(open(dev, dir), (core) =>
    assert.equal(
      codeOf(() => core.parentchainInit(initParams(REAL_GENESIS))),
      'POLICY_DEV_ONLY',
    ),
  );
  await closing(open(dev), (core) => assert.equal(core.parentchainInit(initParams(CHOPSTICKS_GENESIS)).number, 0));
  // the dev chain's genesis as a label on a checkpoint of another chain is not the dev chain
  const checkpoint = { number: 5, hash: key32('a block of another chain') };
  await closing(open(dev), (core) =>
    assert.equal(
      codeOf(() => core.parentchainInit({ ...initParams(CHOPSTICKS_GENESIS), checkpoint })),
      'POLICY_DEV_ONLY',
    ),
  );
  // with dev set the operator takes it on any chain; the sealed view it leaves is refused again without dev
  await closing(open({ ...dev, dev: true }, dir), (core) =>
    assert.equal(core.parentchainInit(initParams(REAL_GENESIS)).number, 0),
  );
  await closing(open(dev, dir), (core) =>
    assert.equal(
      codeOf(() => core.parentchainLoad()),
      'POLICY_DEV_ONLY',
    ),
  );
  await closing(open({ ...dev, dev: true }, dir), (core) => assert.equal(core.parentchainLoad(), true));
  // so does any policy that trusts the dev authority; one that does not takes any chain
  const withDev = testShard('a shard', { authorities: [key32('an authority'), DEV_AUTHORITY_PUBLIC] });
  await closing(open(withDev), (core) =>
    assert.equal(
      codeOf(() => core.parentchainInit(initParams(REAL_GENESIS))),
      'POLICY_DEV_ONLY',
    ),
  );
  // narrowed to the other authority it is a real shard's policy again
  await closing(open({ ...withDev, trustedAuthorities: [key32('an authority')] }), (core) =>
    assert.equal(core.parentchainInit(initParams(REAL_GENESIS)).number, 0),
  );
  await closing(open(testShard('a real shard', { authorities: [key32('an authority')] })), (core) =>
    assert.equal(core.parentchainInit(initParams(REAL_GENESIS)).number, 0),
  );
});

test('dev shard secrets are refused with a parentchain: by the enclave, and by the config before it starts', async () => {
  for (const genesis of [REAL_GENESIS, CHOPSTICKS_GENESIS]) {
    await closing(open({ ...testShard('dev secrets'), devShardSecrets: true, dev: true }), (core) => {
      assert.equal(core.info().secretsOrigin, 'dev');
      assert.equal(
        codeOf(() => core.parentchainInit(initParams(genesis))),
        'DEV_SECRETS_WITH_PARENTCHAIN',
      );
    });
  }
  const config = loadConfig({
    overrides: { 'enclave.devShardSecrets': true, 'parentchain.endpoint': 'ws://127.0.0.1:9944' },
  });
  assert.throws(() => enclaveInitFrom(config, tempDir()), /devShardSecrets: dev shard secrets .* refused/);
  assert.equal(
    enclaveInitFrom({ ...config, parentchain: { ...config.parentchain, endpoint: null } }, tempDir()).devShardSecrets,
    true,
  );
});

test('config shardPolicy: inline JSON, hex or a file; none = the dev policy; a policy for another shard id is refused', async () => {
  const policy = {
    name: 'operator shard',
    authorities: [toHex(key32('operator authority'))],
    measurements: [],
    governance: [],
  };
  const bytes = shardPolicyFrom(policy);
  const file = join(tempDir(), 'policy.json');
  writeFileSync(file, JSON.stringify(policy));
  const hexFile = join(tempDir(), 'policy.hex');
  writeFileSync(hexFile, toHex(bytes) + '\n');
  for (const shardPolicy of [policy, toHex(bytes), file, hexFile]) {
    const init = enclaveInitFrom(loadConfig({ overrides: { shard: toHex(shardIdOf(bytes)), shardPolicy } }), tempDir());
    assert.deepEqual(init.shardPolicy, bytes);
    await closing(open(init), (core) => assert.equal(core.info().signingKey.length, 32));
  }
  assert.deepEqual(enclaveInitFrom(loadConfig({}), tempDir()).shardPolicy, DEV_SHARD_POLICY);
  // the policy file names another shard than the config's: the enclave does not open
  const init = enclaveInitFrom(loadConfig({ overrides: { shardPolicy: file } }), tempDir());
  assert.deepEqual(init.shard, DEV_SHARD);
  assert.equal(
    codeOf(() => open(init)),
    'POLICY_SHARD_MISMATCH',
  );
  assert.throws(
    () => enclaveInitFrom(loadConfig({ overrides: { shardPolicy: join(tempDir(), 'none') } }), tempDir()),
    /shardPolicy/,
  );
  assert.throws(() => enclaveInitFrom(loadConfig({ overrides: { shardPolicy: '0x0102' } }), tempDir()), /shardPolicy/);
});
