// What the node and the node-side CLI commands derive from a Config, in one place.
import type { Config } from '../config/schema.ts';
import type { EnclaveInit } from '../enclave/host.ts';
import { resolvePublicKey } from '../client/accounts.ts';
import { fromHex } from '../codec/wire.ts';

export function enclaveInitFrom(config: Config, dataDir: string, workers = config.enclave.workers): EnclaveInit {
  return { dataDir, shard: fromHex(config.shard), workers, pool: config.pool, authorities: config.authorities.map(fromHex) };
}

/** Genesis endowments with every account reference (SS58, hex, //Dev) resolved to a public key. */
export function genesisBalances(config: Config): Promise<{ account: Uint8Array; amount: bigint }[]> {
  return Promise.all(config.genesis.balances.map(async (b) => ({ account: await resolvePublicKey(b.account), amount: b.amount })));
}
