// The dev parentchain's genesis: the raw Rococo Asset Hub chain spec shipped on npm, with the dev and
// enclave accounts funded and the timestamp fixed directly in its raw storage. Funding at genesis
// (rather than dev_setStorage on a running chain) makes the state part of every block's history, so
// a chain resumed from its database has the same balances and the same genesis hash.
import { blake2b } from '@noble/hashes/blake2.js';
import { xxhashAsU8a } from '@polkadot/util-crypto';
import { Struct, u32, u64, u128 } from 'scale-ts';
import { ValidateerError } from '../protocol/errors.ts';
import { concatBytes, fromHex, toHex } from '../protocol/bytes.ts';

export interface RawChainSpec {
  name: string;
  id: string;
  properties?: Record<string, unknown>;
  genesis: { raw: { top: Record<string, string>; childrenDefault?: Record<string, unknown> } };
  [key: string]: unknown;
}

/** A balance to put at genesis; the account is an AccountId32 (sr25519 or ed25519 public key). */
export interface GenesisEndowment {
  account: Uint8Array;
  amount: bigint;
}

// AccountInfo of the genesis runtime (statemine spec 900): 4 counters + AccountData of four u128
// (free, reserved, miscFrozen, feeFrozen). Newer runtimes keep the same 80-byte shape (frozen, flags).
const AccountInfo = Struct({
  nonce: u32,
  consumers: u32,
  providers: u32,
  sufficients: u32,
  data: Struct({ free: u128, reserved: u128, miscFrozen: u128, feeFrozen: u128 }),
});

function palletKey(pallet: string, item: string): Uint8Array {
  return concatBytes(xxhashAsU8a(pallet, 128), xxhashAsU8a(item, 128));
}
function accountKey(account: Uint8Array): string {
  return toHex(concatBytes(palletKey('System', 'Account'), blake2b(account, { dkLen: 16 }), account));
}
const TOTAL_ISSUANCE_KEY = toHex(palletKey('Balances', 'TotalIssuance'));
const TIMESTAMP_NOW_KEY = toHex(palletKey('Timestamp', 'Now'));

/** Loads the raw Rococo Asset Hub spec from @substrate/connect-known-chains (1.2 MB, offline). */
export async function loadRococoAssetHubSpec(): Promise<RawChainSpec> {
  const { chainSpec } = await import('@substrate/connect-known-chains/rococo_v2_2_asset_hub');
  return JSON.parse(chainSpec) as RawChainSpec;
}

/**
 * Returns a copy of `spec` whose genesis funds `endowments` (later entries for the same account win)
 * and sets Timestamp.Now, adjusting Balances.TotalIssuance so the runtime's accounting stays exact.
 */
export function withDevGenesis(spec: RawChainSpec, endowments: GenesisEndowment[], timestampMs: number): RawChainSpec {
  const top = { ...spec.genesis.raw.top };
  let issuance = top[TOTAL_ISSUANCE_KEY] ? u128.dec(fromHex(top[TOTAL_ISSUANCE_KEY])) : 0n;
  const byKey = new Map<string, bigint>();
  for (const e of endowments) {
    if (e.account.length !== 32)
      throw new ValidateerError('PARENTCHAIN_BAD_ACCOUNT', 'endowment account must be 32 bytes');
    if (e.amount < 0n) throw new ValidateerError('PARENTCHAIN_BAD_AMOUNT', 'endowment amount must not be negative');
    byKey.set(accountKey(e.account), e.amount);
  }
  for (const [key, amount] of byKey) {
    const previous = top[key] ? AccountInfo.dec(fromHex(top[key])) : undefined;
    if (previous) issuance -= previous.data.free + previous.data.reserved;
    top[key] = toHex(
      AccountInfo.enc({
        nonce: previous?.nonce ?? 0,
        consumers: previous?.consumers ?? 0,
        providers: Math.max(previous?.providers ?? 0, 1),
        sufficients: previous?.sufficients ?? 0,
        data: { free: amount, reserved: previous?.data.reserved ?? 0n, miscFrozen: 0n, feeFrozen: 0n },
      }),
    );
    issuance += amount + (previous?.data.reserved ?? 0n);
  }
  top[TOTAL_ISSUANCE_KEY] = toHex(u128.enc(issuance));
  top[TIMESTAMP_NOW_KEY] = toHex(u64.enc(BigInt(timestampMs)));
  return { ...spec, genesis: { ...spec.genesis, raw: { ...spec.genesis.raw, top } } };
}
