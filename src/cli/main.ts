// The `validateer` command: run a node, join or leave a set, a dev network, inspect keys, replay, and the client
// commands.
import { Command, Option } from 'commander';
import {
  runNodeCommand,
  devnetCommand,
  joinCommand,
  keysCommand,
  leaveCommand,
  replayCommand,
} from './node-commands.ts';
import { VERSION } from '../node/version.ts';
import { shardPolicyCommands } from './policy-commands.ts';

const program = new Command('validateer')
  .description('Confidential sidechain validateer (simulation-mode enclave)')
  .version(VERSION)
  .showHelpAfterError();

const nodeOptions = (c: Command) =>
  c
    .addOption(new Option('-c, --config <file>', 'config file (JSON)'))
    .addOption(new Option('--data-dir <dir>', 'data directory (overrides dataDir)'))
    .addOption(new Option('--rpc-port <port>', 'JSON-RPC WebSocket port (overrides rpc.port)'))
    .addOption(new Option('--metrics-port <port>', 'metrics/health HTTP port (overrides metrics.port)'))
    .addOption(new Option('--slot-ms <ms>', 'slot duration in ms (overrides sidechain.slotDurationMs)'))
    .addOption(new Option('--log-level <level>', 'log level (overrides log.level)'))
    .addOption(new Option('--parentchain <url>', 'Substrate node WebSocket endpoint (overrides parentchain.endpoint)'))
    .addOption(
      new Option('--dev', 'accept the dev shard policy on a parentchain other than the embedded dev chain (sets dev)'),
    );

nodeOptions(program.command('run').description('run a validateer until SIGINT/SIGTERM')).action(runNodeCommand);
nodeOptions(
  program
    .command('join')
    .description(
      'join a running validateer set: fund the enclave account if asked, register, get the shard secrets from a member, sync, author',
    ),
)
  .option('--bootstrap <multiaddr...>', "p2p addresses to dial first (e.g. a member's /ip4/…/tcp/…/p2p/…)")
  .option('--p2p-port <port>', 'libp2p TCP port on 127.0.0.1 (overrides p2p.listen)')
  .option(
    '--fund-from <dev-uri>',
    'dev chains only: fund the enclave account from this dev account (e.g. //Alice) if it holds less than 1 unit',
  )
  .option('--fund-amount <base-units>', 'amount sent by --fund-from', '100000000000000')
  .action(joinCommand);
nodeOptions(
  program.command('leave').description('unregister this validateer from its shard (stop the node first)'),
).action(leaveCommand);
nodeOptions(
  program
    .command('devnet')
    .description('run the local dev network: a dev parentchain and N validateers (what `npm start` runs)'),
)
  .option(
    '--validateers <n>',
    'how many validateers (ports count up from --rpc-port, --metrics-port and --p2p-port)',
    '3',
  )
  .option('--p2p-port <port>', 'libp2p TCP port of the first validateer', '30333')
  .option('--parentchain-port <port>', 'WebSocket port of the dev parentchain', '9944')
  .option('--block-ms <ms>', 'parentchain block time', '2000')
  .action(devnetCommand);
nodeOptions(program.command('keys').description('print the enclave public keys, measurement and a fresh quote')).action(
  keysCommand,
);
nodeOptions(program.command('replay').description('rebuild state from the event log and check it against the head'))
  .option('--verify', 'check the state commitment of every block, not only the head')
  .option('--from-genesis', 'ignore snapshots and replay the whole event log')
  .option('--json', 'print the result as JSON')
  .action(replayCommand);
shardPolicyCommands(program);
const client = program.command('client').description('talk to a validateer as a client');
// The client commands pull in polkadot-js util-crypto (~100 MB of RSS): load them only when used.
if (process.argv[2] === 'client') (await import('./client-commands.ts')).clientCommands(client);

program.parseAsync(process.argv).catch((err: Error & { code?: string }) => {
  console.error(`error${err.code ? ` [${err.code}]` : ''}: ${err.message}`);
  process.exit(1);
});
