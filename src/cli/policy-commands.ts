// `validateer shard-policy`: make a shard policy and print its shard id, or show the configured one.
// The policy is the shard's roots of trust; its hash is the shard id, so both go into every member's config.
import type { Command } from 'commander';
import { loadConfig } from '../config/load.ts';
import { shardPolicyBytes } from '../node/from-config.ts';
import { fromHex, same, toHex } from '../protocol/bytes.ts';
import { ValidateerError } from '../protocol/errors.ts';
import {
  DEV_AUTHORITY_PUBLIC,
  decodeShardPolicy,
  encodeShardPolicy,
  shardIdOf,
  shardPolicyJson,
} from '../protocol/shard-policy.ts';

const HEX32 = /^0x[0-9a-fA-F]{64}$/;

function keys(flag: string, values: string[] | undefined): Uint8Array[] {
  return (values ?? []).map((v) => {
    if (!HEX32.test(v)) throw new ValidateerError('BAD_FLAG', `${flag} ${v}: expected 0x followed by 64 hex digits`);
    return fromHex(v);
  });
}

function describe(bytes: Uint8Array) {
  return { shard: toHex(shardIdOf(bytes)), shardPolicy: shardPolicyJson(decodeShardPolicy(bytes)), hex: toHex(bytes) };
}

export function shardPolicyCommands(program: Command): void {
  const cmd = program.command('shard-policy').description("a shard's policy (its roots of trust) and shard id");
  cmd
    .command('create')
    .description('print a new shard policy and its shard id (put both, as "shard" and "shardPolicy", in every config)')
    .requiredOption('--name <name>', 'free-form name, also a salt: another name is another shard')
    .option('--authority <hex...>', 'public key of an attestation authority whose quotes are trusted')
    .option('--dev-authority', 'trust the simulated dev authority (its key is public: dev and test shards only)')
    .option('--measurement <hex...>', 'enclave measurement members may run (none: each enclave its own)')
    .option('--governance <hex...>', 'governance key (reserved; none yet)')
    .action(
      (o: {
        name: string;
        authority?: string[];
        devAuthority?: boolean;
        measurement?: string[];
        governance?: string[];
      }) => {
        const authorities = [...keys('--authority', o.authority), ...(o.devAuthority ? [DEV_AUTHORITY_PUBLIC] : [])];
        if (authorities.length === 0)
          throw new ValidateerError('BAD_FLAG', 'name at least one --authority (or --dev-authority)');
        const bytes = encodeShardPolicy({
          name: o.name,
          authorities,
          measurements: keys('--measurement', o.measurement),
          governance: keys('--governance', o.governance),
        });
        console.log(JSON.stringify(describe(bytes), null, 2));
      },
    );
  cmd
    .command('show')
    .description("print the configured shard policy, its shard id, and whether it is the config's shard")
    .option('-c, --config <file>', 'config file (JSON)')
    .action((o: { config?: string }) => {
      const config = loadConfig({ file: o.config });
      const bytes = shardPolicyBytes(config);
      const matches = same(shardIdOf(bytes), fromHex(config.shard));
      console.log(JSON.stringify({ ...describe(bytes), configShard: config.shard, matches }, null, 2));
      if (!matches) process.exitCode = 1;
    });
}
