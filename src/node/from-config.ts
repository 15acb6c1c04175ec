// What the node and the node-side CLI commands derive from a Config, in one place.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { genesisBalance, type Config } from '../config/schema.ts';
import { ConfigError } from '../config/load.ts';
import type { EnclaveInit } from '../enclave/boundary/host.ts';
import { fromHex } from '../protocol/bytes.ts';
import { DEV_SHARD_POLICY, shardPolicyFrom } from '../protocol/shard-policy.ts';

export function enclaveInitFrom(config: Config, dataDir: string, workers = config.enclave.workers): EnclaveInit {
  if (config.enclave.devShardSecrets && config.parentchain.endpoint !== null)
    throw new ConfigError([
      {
        path: 'enclave.devShardSecrets',
        message:
          'dev shard secrets derive from the public shard id: refused with a parentchain (parentchain.endpoint is set)',
      },
    ]);
  return {
    dataDir,
    shard: fromHex(config.shard),
    shardPolicy: shardPolicyBytes(config),
    dev: config.dev,
    workers,
    workerNice: config.enclave.workerNice,
    pool: config.pool,
    authorities: config.authorities.map(fromHex),
    trustedAuthorities: config.enclave.attestation.trustedAuthorities.map(fromHex),
    allowedMeasurements: config.enclave.allowedMeasurements.map(fromHex),
    slotDurationMs: config.sidechain.slotDurationMs,
    devShardSecrets: config.enclave.devShardSecrets,
    keyRotationBlocks: config.sidechain.keyRotationBlocks,
  };
}

const HEX_KEY = /^0x[0-9a-fA-F]{64}$/;

/** The shard policy's bytes: config's (inline JSON, hex, or a file of either), or the built-in dev policy. */
export function shardPolicyBytes(config: Config): Uint8Array {
  return config.shardPolicy === null ? DEV_SHARD_POLICY : readShardPolicy(config.shardPolicy, 'shardPolicy');
}

/** A shard policy given inline (JSON object or 0x hex) or as a file holding either; `path` names it in errors. */
export function readShardPolicy(value: string | object, path: string): Uint8Array {
  let source = path;
  try {
    if (typeof value !== 'string' || value.startsWith('0x')) return shardPolicyFrom(value);
    source = `${path} file ${value}`;
    const text = readFileSync(value, 'utf8').trim();
    return shardPolicyFrom(text.startsWith('0x') ? text : JSON.parse(text));
  } catch (err) {
    throw new ConfigError([{ path, source, message: (err as Error).message }]);
  }
}

/**
 * Genesis endowments (inline and from `genesis.balancesFile`) with every account reference resolved to a public key.
 */
export async function genesisBalances(config: Config): Promise<{ account: Uint8Array; amount: bigint }[]> {
  const entries = [
    ...config.genesis.balances,
    ...(config.genesis.balancesFile ? readBalancesFile(config.genesis.balancesFile) : []),
  ];
  // Hex public keys need no library. polkadot-js util-crypto (for //Dev and SS58) adds ~120 MiB of RSS,
  // so it is loaded only when an entry needs it, and a node only needs genesis on its first start.
  if (entries.every((b) => HEX_KEY.test(b.account)))
    return entries.map((b) => ({ account: fromHex(b.account), amount: b.amount }));
  const { resolvePublicKey } = await import('../crypto/accounts.ts');
  return Promise.all(entries.map(async (b) => ({ account: await resolvePublicKey(b.account), amount: b.amount })));
}

function readBalancesFile(file: string): z.infer<typeof genesisBalance>[] {
  const source = `genesis.balancesFile ${file}`;
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError([{ path: '', source, message: `cannot read: ${(err as Error).message}` }]);
  }
  const r = z.array(genesisBalance).safeParse(data);
  if (!r.success)
    throw new ConfigError(r.error.issues.map((i) => ({ path: i.path.join('.'), source, message: i.message })));
  return r.data;
}
