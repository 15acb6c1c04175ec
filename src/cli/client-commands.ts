// `validateer client ...`: accounts, balances, transfers and chain head against a node's JSON-RPC.
import type { Command } from 'commander';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ValidateerClient, DEFAULT_RPC } from '../client/client.ts';
import { Keystore, resolvePublicKey, signerFor, toAddress } from '../client/accounts.ts';
import { ValidateerError } from '../protocol/errors.ts';
import { parentchainCommands } from './parentchain-commands.ts';
import { cliTrust, trustOptions, type TrustFlags } from './client-trust.ts';

interface ClientFlags extends TrustFlags {
  rpc: string;
  keystore: string;
}

function parseAmount(s: string): bigint {
  if (!/^[0-9]+$/.test(s))
    throw new ValidateerError(
      'BAD_AMOUNT',
      `amount must be a non-negative integer in base units, got ${JSON.stringify(s)}`,
    );
  return BigInt(s);
}

async function withClient<T>(flags: ClientFlags, fn: (c: ValidateerClient, ks: Keystore) => Promise<T>): Promise<T> {
  const t = cliTrust(flags);
  const client = await ValidateerClient.connect(flags.rpc, t.trust);
  try {
    return await fn(client, new Keystore(flags.keystore));
  } finally {
    await client.close();
    await t.close();
  }
}

export function clientCommands(cmd: Command): void {
  cmd
    .option('--rpc <url>', 'validateer JSON-RPC endpoint (ws:// or wss://)', DEFAULT_RPC)
    .option('--keystore <dir>', 'directory holding account keys', join(homedir(), '.validateer', 'keystore'));
  trustOptions(cmd);
  const flags = () => cmd.opts<ClientFlags>();

  cmd
    .command('new-account')
    .description('create an account and keep its key in the keystore')
    .action(() => {
      const a = new Keystore(flags().keystore).create();
      console.log(a.address);
    });

  cmd
    .command('balance <account>')
    .description('balance of an account (the getter is signed by it)')
    .action((account: string) =>
      withClient(flags(), async (c, ks) => console.log((await c.balance(await signerFor(account, ks))).toString())),
    );

  cmd
    .command('nonce <account>')
    .description('next nonce of an account')
    .action((account: string) =>
      withClient(flags(), async (c, ks) => console.log(String(await c.nonce(await signerFor(account, ks))))),
    );

  cmd
    .command('memos <account>')
    .description('memos received by an account, newest first')
    .option('--limit <n>', 'how many', '20')
    .action((account: string, o: { limit: string }) =>
      withClient(flags(), async (c, ks) => {
        const m = await c.memos(await signerFor(account, ks), 0, Number(o.limit));
        console.log(`${m.total} memo(s)`);
        for (const item of m.items)
          console.log(`#${item.block} from ${toAddress(item.from)} amount ${item.amount}: ${item.text}`);
      }),
    );

  cmd
    .command('transfer <from> <to> <amount>')
    .description('transfer on the sidechain; waits until the call is in a block')
    .option('--memo <text>', 'memo stored for the recipient (at most 256 bytes)')
    .action((from: string, to: string, amount: string, o: { memo?: string }) =>
      withClient(flags(), async (c, ks) => {
        const signer = await signerFor(from, ks);
        const r = await c.transfer(signer, await resolvePublicKey(to), parseAmount(amount), { memo: o.memo });
        console.log(`transfer ${r.hash} included in block #${r.blockNumber} ${r.blockHash}`);
      }),
    );

  cmd
    .command('head')
    .description('the sidechain head and the last final (anchored) block')
    .action(() =>
      withClient(flags(), async (c) => {
        const h = await c.head();
        console.log(`#${h.number} ${h.hash} (slot ${h.slot}, ${h.calls} calls, state ${h.stateCommitment})`);
        const finalized = await c.finalizedHead();
        const f = await c.rpc.request<{ number: number } | null>('chain_getHeader', [finalized]);
        console.log(`finalized #${f?.number ?? 0} ${finalized}`);
      }),
    );

  parentchainCommands(cmd, flags);
}
