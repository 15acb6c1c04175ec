// `validateer client ...` commands that touch the parentchain: shield, unshield, invoke,
// parentchain-balance, validateers, vault. On the parentchain a dev URI (//Alice) is the sr25519 dev
// account Substrate chains fund; on the sidechain it is the ed25519 account of the same name. A
// keystore account is the same ed25519 key on both chains.
import type { Command } from 'commander';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady, decodeAddress, encodeAddress } from '@polkadot/util-crypto';
import { ValidateerClient } from '../client/client.ts';
import { Keystore, isDevUri, resolvePublicKey, signerFor } from '../client/accounts.ts';
import { buildTransfer, shieldCall } from '../client/calls.ts';
import { ValidateerError } from '../protocol/errors.ts';
import { encodeMessage } from '../protocol/parentchain-messages.ts';
import type { ExtrinsicSigner } from '../parentchain/api.ts';
import { ed25519Signer, keyringSigner } from '../parentchain/signers.ts';
import { connectParentchain, type SubstrateParentchain } from '../parentchain/substrate.ts';
import { fromHex, toHex } from '../protocol/bytes.ts';
import { isActiveAt } from '../protocol/membership.ts';
import { cliTrust, type TrustFlags } from './client-trust.ts';

interface Flags extends TrustFlags {
  rpc: string;
  keystore: string;
  parentchain?: string;
}
const DEFAULT_PARENTCHAIN = 'ws://127.0.0.1:9944';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function parseAmount(s: string): bigint {
  if (!/^[0-9]+$/.test(s))
    throw new ValidateerError(
      'BAD_AMOUNT',
      `amount must be a non-negative integer in base units, got ${JSON.stringify(s)}`,
    );
  return BigInt(s);
}

async function parentchainSigner(ref: string, keystore: Keystore): Promise<ExtrinsicSigner> {
  if (isDevUri(ref)) {
    await cryptoWaitReady();
    return keyringSigner(new Keyring({ type: 'sr25519' }).addFromUri(ref));
  }
  return ed25519Signer((await signerFor(ref, keystore)).seed);
}

async function parentchainAccount(ref: string): Promise<Uint8Array> {
  if (isDevUri(ref)) {
    await cryptoWaitReady();
    return new Keyring({ type: 'sr25519' }).addFromUri(ref).publicKey;
  }
  if (/^0x[0-9a-fA-F]{64}$/.test(ref)) return fromHex(ref);
  try {
    return decodeAddress(ref);
  } catch {
    throw new ValidateerError(
      'BAD_ACCOUNT',
      `not a parentchain account: ${ref} (expected an SS58 address, 0x-hex public key or //Name)`,
    );
  }
}

interface Session {
  client: ValidateerClient;
  pc: SubstrateParentchain;
  keystore: Keystore;
}

async function withSession<T>(flags: Flags, fn: (s: Session) => Promise<T>): Promise<T> {
  const t = cliTrust(flags);
  const client = await ValidateerClient.connect(flags.rpc, t.trust);
  let pc: SubstrateParentchain | undefined;
  try {
    const endpoint = flags.parentchain ?? (await client.shardInfo()).parentchain?.endpoint ?? DEFAULT_PARENTCHAIN;
    pc = await connectParentchain({ endpoint, connectTimeoutMs: 30_000 });
    return await fn({ client, pc, keystore: new Keystore(flags.keystore) });
  } finally {
    await pc?.close();
    await client.close();
    await t.close();
  }
}

/** Waits until the sidechain has processed parentchain block `number` (so its effects are in a sidechain block). */
async function waitProcessed(client: ValidateerClient, number: number, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await client.head()).parentchain.number >= number) return;
    await sleep(500);
  }
  throw new ValidateerError(
    'TIMEOUT',
    `the sidechain did not reach parentchain block ${number} within ${timeoutMs} ms`,
  );
}

export function parentchainCommands(cmd: Command, flags: () => Omit<Flags, 'parentchain'>): void {
  const pcFlags = (o: { parentchain?: string }): Flags => ({ ...flags(), parentchain: o.parentchain });
  const withParentchain = (c: Command) =>
    c.option('--parentchain <url>', `parentchain endpoint (default: the validateer's, else ${DEFAULT_PARENTCHAIN})`);

  withParentchain(cmd.command('shield <from> <to> <amount>'))
    .description('move AMOUNT from parentchain account FROM into the shard vault, credited to sidechain account TO')
    .action((from: string, to: string, amount: string, o: { parentchain?: string }) =>
      withSession(pcFlags(o), async ({ client, pc, keystore }) => {
        const vault = await client.vault();
        const key = await client.shieldingKey();
        const call = shieldCall(key, key.shard, vault, parseAmount(amount), await resolvePublicKey(to));
        const r = await pc.submit(await parentchainSigner(from, keystore), call, { waitFor: 'finalized' });
        if (!r.success)
          throw new ValidateerError('PARENTCHAIN_DISPATCH_FAILED', `shield failed on the parentchain: ${r.error}`);
        console.log(`shield of ${amount} in parentchain block #${r.blockNumber} ${toHex(r.blockHash)} (finalized)`);
        await waitProcessed(client, r.blockNumber);
        console.log('credited on the sidechain');
      }),
    );

  withParentchain(cmd.command('unshield <from> <beneficiary> <amount>'))
    .description('burn AMOUNT of sidechain account FROM; the vault pays parentchain account BENEFICIARY')
    .option('--no-wait', 'do not wait for the payout on the parentchain')
    .action((from: string, beneficiary: string, amount: string, o: { parentchain?: string; wait: boolean }) =>
      withSession(pcFlags(o), async ({ client, pc, keystore }) => {
        const dest = await parentchainAccount(beneficiary);
        const before = (await pc.balance(dest)).free;
        const r = await client.unshield(await signerFor(from, keystore), dest, parseAmount(amount));
        console.log(`unshield ${r.hash} burned in sidechain block #${r.blockNumber} ${r.blockHash}`);
        if (!o.wait) return;
        const deadline = Date.now() + 180_000;
        while ((await pc.balance(dest)).free - before < parseAmount(amount)) {
          if (Date.now() > deadline)
            throw new ValidateerError(
              'TIMEOUT',
              'payout not seen on the parentchain within 180 s (it is retried until it lands)',
            );
          await sleep(1000);
        }
        console.log(`paid ${amount} to ${encodeAddress(dest, pc.ss58Prefix())} on the parentchain`);
      }),
    );

  withParentchain(cmd.command('invoke <from> <to> <amount>'))
    .description(
      'a sidechain transfer sent through the parentchain (indirect invocation) instead of RPC; FROM pays the parentchain fee',
    )
    .option('--memo <text>', 'memo stored for the recipient')
    .action((from: string, to: string, amount: string, o: { parentchain?: string; memo?: string }) =>
      withSession(pcFlags(o), async ({ client, pc, keystore }) => {
        const signer = await signerFor(from, keystore);
        const key = await client.shieldingKey();
        const t = buildTransfer(
          signer,
          {
            to: await resolvePublicKey(to),
            amount: parseAmount(amount),
            memo: o.memo,
            nonce: await client.nonce(signer),
          },
          key,
          key.shard,
        );
        const remark = encodeMessage({ tag: 'invoke', value: { shard: key.shard, request: t.request } });
        const r = await pc.submit(
          await parentchainSigner(from, keystore),
          { kind: 'remark', remark },
          { waitFor: 'finalized' },
        );
        if (!r.success)
          throw new ValidateerError('PARENTCHAIN_DISPATCH_FAILED', `remark failed on the parentchain: ${r.error}`);
        console.log(`invocation in parentchain block #${r.blockNumber} ${toHex(r.blockHash)} (finalized)`);
        const deadline = Date.now() + 120_000;
        for (;;) {
          const n = await client.callBlock(t.hash);
          if (n !== null) {
            console.log(`transfer 0x${t.hash} included in sidechain block #${n}`);
            return;
          }
          if (Date.now() > deadline)
            throw new ValidateerError(
              'TIMEOUT',
              `call 0x${t.hash} not in a sidechain block within 120 s (rejected? check the validateer log)`,
            );
          await sleep(500);
        }
      }),
    );

  withParentchain(cmd.command('parentchain-balance <account>'))
    .description('free balance of a parentchain account (//Name = the sr25519 dev account)')
    .action((account: string, o: { parentchain?: string }) =>
      withSession(pcFlags(o), async ({ pc }) => {
        console.log(String((await pc.balance(await parentchainAccount(account))).free));
      }),
    );

  cmd
    .command('validateers')
    .description('the validateers registered for the shard on the parentchain')
    .action(async () => {
      // The list is the endpoint's word (for display); the keys themselves are checked on use.
      const client = await ValidateerClient.connect(flags().rpc, {});
      try {
        const info = await client.shardInfo();
        if (!info.parentchain)
          throw new ValidateerError('NO_PARENTCHAIN', 'this validateer runs without a parentchain');
        const list = info.validateers ?? [];
        const active = list.filter((v) => isActiveAt(v, info.parentchain!.processed.number)).length;
        console.log(
          `${active} registered validateer(s) for shard ${info.shard} (parentchain processed to #${info.parentchain.processed.number})`,
        );
        for (const v of list) {
          console.log(`- ${v.signingKey}${v.unregisteredAt !== null ? ` (unregistered at #${v.unregisteredAt})` : ''}`);
          console.log(`    registered at parentchain block #${v.registeredAt}; measurement ${v.measurement}`);
          console.log(
            `    peer ${v.peerId || '-'} ${v.p2pAddresses.length ? v.p2pAddresses.join(' ') : '(no p2p addresses)'}`,
          );
        }
      } finally {
        await client.close();
      }
    });

  withParentchain(cmd.command('vault'))
    .description('the shard vault: its parentchain balance against the shielded funds on the sidechain')
    .action((o: { parentchain?: string }) =>
      withSession(pcFlags(o), async ({ client, pc }) => {
        const info = await client.shardInfo();
        const vault = await client.vault();
        const balance = (await pc.balance(vault)).free;
        const reserve = info.vaultReserveFunded ? pc.existentialDeposit() : 0n;
        const supply = BigInt(info.shieldedSupply ?? '0');
        console.log(`vault ${encodeAddress(vault, pc.ss58Prefix())}`);
        console.log(`  parentchain balance   ${balance}`);
        console.log(`  keep-alive reserve    ${reserve}`);
        console.log(`  shielded on sidechain ${supply}`);
        console.log(`  unpaid withdrawals    ${info.unpaidWithdrawals ?? 0}`);
        console.log(
          `  controlled by         ${(info.vaultProxies ?? []).length} enclave account(s), any of which can pay out`,
        );
        console.log(
          balance - reserve === supply
            ? '  balanced: vault = reserve + shielded funds'
            : `  difference ${balance - reserve - supply} (payouts or shields in flight)`,
        );
      }),
    );
}
