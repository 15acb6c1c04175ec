// End to end on the chopsticks devnet (a real Substrate runtime): a validateer process registers,
// creates the vault, anchors, and executes shields, indirect invocations and unshields; a parentchain
// RPC outage and a kill -9 between a signed payout and its inclusion lose nothing and do nothing twice; an
// extrinsic anyone can post (a batch of 300 remarks naming the shard) does not stop parentchain processing.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { u8aToHex } from '@polkadot/util';
import { startDevChain, type DevChain } from '../../src/parentchain/devchain.ts';
import { connectParentchain, type SubstrateParentchain } from '../../src/parentchain/substrate.ts';
import { ed25519Signer, keyringSigner } from '../../src/parentchain/signers.ts';
import { MESSAGE_MAGIC, decodeMessage, encodeMessage } from '../../src/protocol/parentchain-messages.ts';
import type { ExtrinsicSigner } from '../../src/parentchain/api.ts';
import { Enclave } from '../../src/enclave/boundary/host.ts';
import { simulatedProvider } from '../../src/enclave/keys/attestation.ts';
import { registrationUserData } from '../../src/enclave/parentchain/registry.ts';
import { ValidateerClient, type ShardInfo } from '../../src/client/client.ts';
import { devAccount } from '../../src/client/accounts.ts';
import { registryLookup } from '../../src/client/registry.ts';
import { shieldCall } from '../../src/client/calls.ts';
import {
  cleanupTempDirs,
  restartNode,
  runCli,
  scrapeMetrics,
  startNode,
  tempDir,
  waitFor,
  type NodeHandle,
} from './harness.ts';
import { bytesView, concatBytes, fromHex, same, toHex } from '../../src/protocol/bytes.ts';
import { DEV_SHARD, DEV_SHARD_POLICY } from '../../src/protocol/shard-policy.ts';

const UNIT = 10n ** 12n;
const SHARD = DEV_SHARD;
const forger = ed25519Signer(new Uint8Array(32).fill(7));
let chain: DevChain;
let pc: SubstrateParentchain;
let node: NodeHandle;
let client: ValidateerClient;
let alice: ExtrinsicSigner;
let charlieParent: Uint8Array;
let signingKey: Uint8Array;

async function info(): Promise<ShardInfo> {
  return client.shardInfo();
}

/** Waits until the sidechain head builds on parentchain block `n` (its effects are executed). */
async function processed(n: number): Promise<void> {
  await waitFor(
    async () => (await client.head()).parentchain.number >= n,
    `sidechain at parentchain #${n}`,
    90_000,
    200,
  );
}

/** The node's log lines saying it lost the parentchain connection (the adapter's retries, the scan's outage). */
function connectionWarnings(): number {
  return node
    .logs()
    .filter(
      (l) =>
        l.msg === 'parentchain connection' || l.msg === 'parentchain unreachable; scanning resumes when it is back',
    ).length;
}

/**
 * Payouts to `beneficiary` waiting in the parentchain's pool: proxy.proxy calls signed by the enclave account that name
 * it.
 */
async function pooledPayouts(beneficiary: Uint8Array): Promise<string[]> {
  const pending = await pc.api.rpc.author.pendingExtrinsics();
  return pending
    .filter(
      (x) =>
        x.isSigned &&
        same(x.signer.toU8a().slice(-32), signingKey) &&
        x.method.section === 'proxy' &&
        bytesView(x.toU8a()).includes(bytesView(beneficiary)),
    )
    .map((x) => x.hash.toHex());
}

async function processedNumber(): Promise<number> {
  return (await scrapeMetrics(node.metricsUrl)).get('validateer_parentchain_processed_number') ?? 0;
}

async function connectClient(): Promise<void> {
  await client?.close().catch(() => undefined);
  // The honest path of the client's trust: the enclave is found in the shard's registry on the parentchain.
  client = await ValidateerClient.connect(node.rpcUrl, { shard: SHARD, member: registryLookup(pc) });
}

before(async () => {
  await cryptoWaitReady();
  const keyring = new Keyring({ type: 'sr25519' });
  alice = keyringSigner(keyring.addFromUri('//Alice'));
  charlieParent = keyring.addFromUri('//Charlie').publicKey;
  // The enclave account must be funded at parentchain genesis: create its keys first.
  const root = tempDir();
  const dataDir = join(root, 'data');
  const enclave = await Enclave.start({
    dataDir,
    shard: SHARD,
    shardPolicy: DEV_SHARD_POLICY,
    workers: 1,
    pool: { maxPending: 100, maxNonceAhead: 10, futureTtlMs: 1000 },
    authorities: [],
  });
  signingKey = (await enclave.call('info', {})).signingKey;
  await enclave.close();
  chain = await startDevChain({
    host: '127.0.0.1',
    blockTimeMs: 1000,
    endowments: [
      { publicKey: signingKey, amount: 1_000n * UNIT },
      { publicKey: forger.publicKey, amount: 1_000n * UNIT },
    ],
  });
  pc = await connectParentchain({ endpoint: chain.endpoint, onWarning: () => undefined });
  node = await startNode({
    root,
    dataDir,
    slotMs: 300,
    extraConfig: { parentchain: { endpoint: chain.endpoint, anchorInterval: 5 } },
  });
  await connectClient();
});

after(async () => {
  await client?.close().catch(() => undefined);
  await node?.stop();
  await pc?.close();
  await chain?.close();
  cleanupTempDirs();
});

test('the validateer registers itself; the registered set and the vault are derived from finalized blocks', async () => {
  const i = await waitFor(
    async () => {
      const s = await info();
      return s.vault && s.vaultReserveFunded ? s : undefined;
    },
    'registration, vault and reserve',
    90_000,
    250,
  );
  assert.deepEqual(
    i.validateers?.map((v) => v.signingKey),
    [toHex(signingKey)],
  );
  assert.equal((await pc.balance(fromHex(i.vault!))).free, pc.existentialDeposit());
  const out = await runCli(['client', '--rpc', node.rpcUrl, 'validateers']);
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stdout, /^1 registered validateer\(s\)/);
  assert.ok(out.stdout.includes(toHex(signingKey)));
});

const ENCRYPTION_KEY = new Uint8Array(32).fill(7);

test('a registration with a forged quote is ignored', async () => {
  const peerId = 'forged';
  const userData = registrationUserData(SHARD, peerId, [], ENCRYPTION_KEY);
  // A quote signed by an attestation authority nobody trusts, binding the forger's key.
  const quote = simulatedProvider(
    new Uint8Array(32).fill(1),
    new Uint8Array(32).fill(2),
    new Uint8Array(32).fill(9),
  ).quote(new Uint8Array([...forger.publicKey, ...userData]));
  const remark = encodeMessage({
    tag: 'register',
    value: {
      shard: SHARD,
      quote,
      signingKey: forger.publicKey,
      p2pAddresses: [],
      peerId,
      encryptionKey: ENCRYPTION_KEY,
    },
  });
  const r = await pc.submit(forger, { kind: 'remark', remark }, { waitFor: 'finalized' });
  assert.ok(r.success);
  await processed(r.blockNumber);
  assert.deepEqual(
    (await info()).validateers?.map((v) => v.signingKey),
    [toHex(signingKey)],
  );
  const m = await scrapeMetrics(node.metricsUrl);
  assert.ok((m.get('validateer_parentchain_messages_total{kind="ignored"}') ?? 0) >= 1);
});

test('shield credits the sidechain recipient once; vault = reserve + shielded funds', async () => {
  const bob = await devAccount('//Bob');
  const before = await client.balance(bob);
  const key = await client.shieldingKey();
  const vault = fromHex((await info()).vault!);
  const r = await pc.submit(alice, shieldCall(key, SHARD, vault, 5n * UNIT, bob.publicKey), { waitFor: 'finalized' });
  assert.ok(r.success, r.error);
  await processed(r.blockNumber + 2);
  assert.equal(await client.balance(bob), before + 5n * UNIT);
  const i = await info();
  assert.equal(BigInt(i.shieldedSupply!), 5n * UNIT);
  assert.equal((await pc.balance(vault)).free, pc.existentialDeposit() + 5n * UNIT);
});

test('a transfer by indirect invocation (CLI invoke) is executed once', async () => {
  const bob = await devAccount('//Bob');
  const dave = await devAccount('//Dave');
  const [bobBefore, daveBefore] = [await client.balance(bob), await client.balance(dave)];
  const out = await runCli(
    [
      ...['client', '--rpc', node.rpcUrl, '--trust-parentchain', chain.endpoint],
      ...['invoke', '//Bob', '//Dave', '7', '--memo', 'via parentchain'],
    ],
    { timeoutMs: 120_000 },
  );
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stdout, /included in sidechain block #\d+/);
  const m = /parentchain block #(\d+)/.exec(out.stdout)!;
  await processed(Number(m[1]) + 3);
  assert.equal(await client.balance(dave), daveBefore + 7n);
  assert.equal(await client.balance(bob), bobBefore - 7n);
});

test('unshield burns on the sidechain and the vault pays the beneficiary exactly once (CLI)', async () => {
  const before = (await pc.balance(charlieParent)).free;
  const cli = ['client', '--rpc', node.rpcUrl, '--trust-parentchain', chain.endpoint];
  const out = await runCli([...cli, 'unshield', '//Bob', '//Charlie', String(UNIT)], {
    timeoutMs: 200_000,
  });
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stdout, /paid \d+ to/);
  assert.equal((await pc.balance(charlieParent)).free, before + UNIT);
  await waitFor(async () => (await info()).unpaidWithdrawals === 0, 'withdrawal settled', 60_000, 250);
  const i = await info();
  assert.equal(BigInt(i.shieldedSupply!), 4n * UNIT);
  assert.equal((await pc.balance(fromHex(i.vault!))).free, pc.existentialDeposit() + 4n * UNIT);
  assert.equal((await pc.balance(charlieParent)).free, before + UNIT, 'paid once');
});

test('anchors on the parentchain match the sidechain block hashes and make blocks final', async () => {
  const f = await waitFor(
    async () => (await info()).finalized ?? undefined,
    'a finalized sidechain block',
    90_000,
    250,
  );
  assert.equal(f.number % 5, 0);
  assert.equal(await client.rpc.request('chain_getFinalizedHead', []), f.hash);
  const anchored = (await info()).lastAnchor!;
  const block = await pc.block((await pc.blockHash(anchored.parentchainNumber))!);
  const remarks = block.extrinsics.flatMap((x) => (x.call.remark ? [decodeMessage(x.call.remark)] : []));
  // One parentchain block may carry two anchors (a slow block): the registry's last is the one it names.
  const anchor = remarks.findLast((m) => m?.tag === 'anchor' && Number(m.value.sidechainNumber) === anchored.number);
  assert.ok(
    anchor && anchor.tag === 'anchor',
    `an anchor of block ${anchored.number} in #${anchored.parentchainNumber}`,
  );
  assert.equal(Number(anchor.value.sidechainNumber), anchored.number);
  assert.equal(toHex(anchor.value.sidechainHash), await client.rpc.request('chain_getBlockHash', [anchored.number]));
  const m = await scrapeMetrics(node.metricsUrl);
  assert.ok((m.get('validateer_anchors_submitted_total') ?? 0) >= 1);
  const paid = m.get('validateer_parentchain_account_balance') ?? 0;
  assert.ok(paid > 0 && paid < Number(1_000n * UNIT), `the enclave account paid fees: ${paid}`);
  assert.ok((m.get('validateer_parentchain_extrinsics_total{call="anchor",result="success"}') ?? 0) >= 1);
  assert.ok((m.get('validateer_sidechain_finalized_number') ?? 0) >= 5);
  assert.ok((m.get('validateer_parentchain_processed_number') ?? 0) > 0);
});

test('a parentchain RPC outage in the middle of activity loses nothing and does nothing twice', async () => {
  const eve = await devAccount('//Eve');
  const before = await client.balance(eve);
  const key = await client.shieldingKey();
  const vault = fromHex((await info()).vault!);
  const r = await pc.submit(alice, shieldCall(key, SHARD, vault, 2n * UNIT, eve.publicKey), { waitFor: 'inBlock' });
  assert.ok(r.success);
  const headBefore = (await pc.finalizedHead()).number;
  const warningsBefore = connectionWarnings();
  await chain.suspendRpc(); // blocks go on being built while nobody can read them
  await new Promise((res) => setTimeout(res, 6000));
  await chain.resumeRpc();
  const head = (await pc.finalizedHead()).number;
  await processed(head);
  assert.ok(head > headBefore, `parentchain blocks were built during the outage (#${headBefore} -> #${head})`);
  assert.ok(
    connectionWarnings() > warningsBefore,
    'the node lost the parentchain connection (and said so) and recovered',
  );
  assert.equal(await client.balance(eve), before + 2n * UNIT, 'credited exactly once');
  assert.equal(BigInt((await info()).shieldedSupply!), 6n * UNIT);
});

test('a kill -9 after the payout is signed and sent, before it is included, leads to exactly one payout', async () => {
  const bob = await devAccount('//Bob');
  const ferdie = new Keyring({ type: 'sr25519' }).addFromUri('//Ferdie').publicKey;
  const before = (await pc.balance(ferdie)).free;
  await client.unshield(bob, ferdie, UNIT / 2n, {});
  // From here parentchain blocks are built only on demand. A withdrawal is paid once its burn's block
  // is final (anchored in a finalized parentchain block), so build blocks one at a time (they carry the
  // node's anchors), each time letting the node import it, until the payout it signs waits in the pool.
  await chain.pauseBlocks();
  try {
    const pooled = await waitFor(
      async () => {
        // Look for the payout before building a block: a block built while it is in the pool would include it.
        const found = await waitFor(
          async () => {
            const p = await pooledPayouts(ferdie);
            return p.length > 0 ? p : undefined;
          },
          'a payout in the pool',
          5_000,
          100,
        ).catch(() => undefined);
        if (found) return found;
        const n = await chain.newBlock();
        await waitFor(async () => (await processedNumber()) >= n, `the node at parentchain #${n}`, 30_000, 100);
        return undefined;
      },
      'the payout signed and waiting in the pool',
      120_000,
      0,
    );
    await node.kill('SIGKILL');
    // Where the kill landed: the payout is signed and submitted, and not in any block.
    assert.equal(pooled.length, 1, 'one payout signed');
    assert.deepEqual(await pooledPayouts(ferdie), pooled, 'the payout still waits in the pool after the kill');
    assert.equal((await pc.balance(ferdie)).free, before, 'not paid yet');
    node = await restartNode(node, {
      slotMs: 300,
      extraConfig: { parentchain: { endpoint: chain.endpoint, anchorInterval: 5 } },
    });
    await connectClient();
    assert.equal((await info()).unpaidWithdrawals, 1, 'the restarted node still owes the withdrawal');
    assert.deepEqual(await pooledPayouts(ferdie), pooled, 'the restarted node did not sign another payout');
  } finally {
    await chain.resumeBlocks();
  }
  await waitFor(async () => (await pc.balance(ferdie)).free > before, 'the payout', 180_000, 500);
  await waitFor(async () => (await info()).unpaidWithdrawals === 0, 'withdrawal settled', 60_000, 250);
  // Give a duplicate every chance to show up: a few more parentchain blocks.
  const now = (await pc.finalizedHead()).number;
  await processed(now + 3);
  assert.equal((await pc.balance(ferdie)).free, before + UNIT / 2n, 'paid exactly once');
});

test("//Eve's utility.batch of 299 remarks and one naming the shard leaves the scan going; a later shield credits", async () => {
  const eve = keyringSigner(new Keyring({ type: 'sr25519' }).addFromUri('//Eve'));
  const dave = await devAccount('//Dave');
  const vault = fromHex((await waitFor(async () => (await info()).vault ?? undefined, 'the vault', 90_000, 250))!);
  const scanFailures = () =>
    node.logs().filter((l) => l.msg === 'parentchain scan failed; restarting from the verified head').length;
  const failuresBefore = scanFailures();
  const ignored = async () =>
    (await scrapeMetrics(node.metricsUrl)).get('validateer_parentchain_messages_total{kind="ignored"}') ?? 0;
  const ignoredBefore = await ignored();
  // our magic, version 1, an unknown tag, then the shard id: a candidate the enclave has to look at
  const ours = concatBytes(MESSAGE_MAGIC, Uint8Array.of(1, 0xff), SHARD);
  const tx = pc.api.tx;
  const batch = tx.utility.batch([
    ...Array.from({ length: 299 }, () => tx.system.remark('0x00')),
    tx.system.remark(u8aToHex(ours)),
  ]);
  const r = await pc.submit(eve, { kind: 'raw', callData: batch.method.toU8a() }, { waitFor: 'finalized' });
  assert.ok(r.success, r.error);
  // processing reaches the batch's block and stays within 3 blocks of the finalized head after it
  await waitFor(async () => (await processedNumber()) >= r.blockNumber, 'the batch block processed', 60_000, 200);
  await waitFor(
    async () => (await pc.finalizedHead()).number - (await processedNumber()) <= 3,
    'processing within 3 blocks of the finalized head',
    60_000,
    200,
  );
  assert.ok((await ignored()) >= ignoredBefore + 1, 'the batch is counted as ignored');
  assert.equal(scanFailures(), failuresBefore, 'no scan restart');
  const key = await client.shieldingKey();
  const before = await client.balance(dave);
  const s = await pc.submit(alice, shieldCall(key, SHARD, vault, UNIT, dave.publicKey), { waitFor: 'finalized' });
  assert.ok(s.success, s.error);
  await processed(s.blockNumber + 2);
  assert.equal(await client.balance(dave), before + UNIT, 'the shield after it is credited');
  const head = (await pc.finalizedHead()).number;
  await waitFor(async () => (await processedNumber()) >= head - 3, 'still processing', 60_000, 200);
});
