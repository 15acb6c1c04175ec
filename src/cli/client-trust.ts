// The CLI client's trust anchor (client/trust.ts): pinned enclave signing keys or a pinned shielding
// key for setups without a parentchain, else the shard's registry read from a parentchain the user
// names (never the one a validateer names: that would be the endpoint vouching for itself).
import type { Command } from 'commander';
import type { ClientTrust } from '../client/client.ts';
import { registryLookup } from '../client/registry.ts';
import { readShardPolicy } from '../node/from-config.ts';
import { connectParentchain, type SubstrateParentchain } from '../parentchain/substrate.ts';
import { parseHex } from '../protocol/bytes.ts';
import { ValidateerError } from '../protocol/errors.ts';

export const DEFAULT_TRUST_PARENTCHAIN = 'ws://127.0.0.1:9944';

export interface TrustFlags {
  pinSigner?: string;
  pinShieldingKey?: string;
  shard?: string;
  trustParentchain?: string;
  /** A command's own --parentchain: the registry is read there unless --trust-parentchain names another. */
  parentchain?: string;
  registryFrom: string;
  /** The shard's policy (JSON, 0x hex, or a file): the attestation roots registrations are checked against. */
  shardPolicy?: string;
}

export function trustOptions(cmd: Command): Command {
  return cmd
    .option('--pin-signer <keys>', 'trust only these enclave signing keys, comma-separated hex (no parentchain)')
    .option('--pin-shielding-key <hex>', 'use only this shielding key (setups without a parentchain)')
    .option('--shard <hex>', 'the shard the client means (default: the one the endpoint serves)')
    .option(
      '--trust-parentchain <url>',
      `parentchain whose registry vouches for the enclave (default: the command's --parentchain, else ${DEFAULT_TRUST_PARENTCHAIN})`,
    )
    .option('--registry-from <n>', 'first parentchain block the registry lookup scans', '0')
    .option(
      '--shard-policy <policy>',
      "the shard's policy (JSON, 0x hex or a file) whose authorities attest its members (default: the dev shard's)",
    );
}

function hex32(s: string, flag: string): Uint8Array {
  const b = /^0x[0-9a-fA-F]{64}$/.test(s) ? parseHex(s.slice(2)) : null;
  if (!b) throw new ValidateerError('BAD_FLAG', `${flag} expects 0x and 64 hex digits, got ${JSON.stringify(s)}`);
  return b;
}

/** The trust for one CLI command; `close` ends the registry's parentchain connection if one was opened. */
export function cliTrust(f: TrustFlags): { trust: ClientTrust; close(): Promise<void> } {
  const signers = (f.pinSigner ? f.pinSigner.split(',') : []).map((s) => hex32(s.trim(), '--pin-signer'));
  const trust: ClientTrust = {
    ...(f.shard ? { shard: hex32(f.shard, '--shard') } : {}),
    ...(signers.length > 0 ? { signers } : {}),
    ...(f.pinShieldingKey ? { shieldingKey: hex32(f.pinShieldingKey, '--pin-shielding-key') } : {}),
  };
  if (signers.length > 0 || trust.shieldingKey) return { trust, close: async () => {} };
  const fromBlock = Number(f.registryFrom);
  if (!Number.isInteger(fromBlock) || fromBlock < 0)
    throw new ValidateerError('BAD_FLAG', '--registry-from expects a block number');
  // Connected on first use: commands that need no key (head, vault) need no parentchain.
  let pc: Promise<SubstrateParentchain> | undefined;
  // One lookup for the command, made once (concurrent checks share it and its scan).
  let lookup: Promise<ReturnType<typeof registryLookup>> | undefined;
  const registry = () => {
    const endpoint = f.trustParentchain ?? f.parentchain ?? DEFAULT_TRUST_PARENTCHAIN;
    pc ??= connectParentchain({ endpoint, connectTimeoutMs: 30_000 });
    const shardPolicies = f.shardPolicy ? [readShardPolicy(f.shardPolicy, '--shard-policy')] : [];
    return (lookup ??= pc.then((p) => registryLookup(p, { fromBlock, shardPolicies })));
  };
  trust.member = async (shard, signer) => (await registry())(shard, signer);
  trust.vault = async (shard) => (await registry()).vault(shard);
  return { trust, close: async () => void (await pc?.then((p) => p.close()).catch(() => undefined)) };
}
