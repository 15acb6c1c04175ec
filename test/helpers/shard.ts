// A shard of its own for a test: a shard policy (the dev attestation authority, the enclave's own
// measurement, unless `o` says otherwise) and the shard id that is its hash, as enclaves are opened with.
import {
  DEV_AUTHORITY_PUBLIC,
  encodeShardPolicy,
  shardIdOf,
  type ShardPolicy,
} from '../../src/protocol/shard-policy.ts';

export function testShard(name: string, o: Partial<ShardPolicy> = {}): { shard: Uint8Array; shardPolicy: Uint8Array } {
  const shardPolicy = encodeShardPolicy({
    name,
    authorities: [DEV_AUTHORITY_PUBLIC],
    measurements: [],
    governance: [],
    ...o,
  });
  return { shard: shardIdOf(shardPolicy), shardPolicy };
}
