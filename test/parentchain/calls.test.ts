// The enclave's parentchain calls against the real runtime (Rococo Asset Hub run by chopsticks): its
// SCALE encoders equal what polkadot-js builds from the metadata, its pure proxy account is the one
// the runtime creates, real signing payloads are mortal and name a finalized birth block, the light
// client follows the real chain, and an enclave performs its duties there (register, vault, reserve,
// vault proxies added and a departed member's removed, a shield credited and an unshield paid out by the vault).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady, decodeAddress } from '@polkadot/util-crypto';
import { startDevChain, type DevChain } from '../../src/parentchain/devchain.ts';
import { connectParentchain, createPureProxy, type SubstrateParentchain } from '../../src/parentchain/substrate.ts';
import { ed25519Signer, keyringSigner } from '../../src/parentchain/signers.ts';
import { MESSAGE_MAGIC, encodeMessage } from '../../src/protocol/parentchain-messages.ts';
import type {
  CallSpec,
  ExtrinsicSigner,
  ParentchainBlock,
  ParentchainEvent,
  SubmitResult,
} from '../../src/parentchain/api.ts';
import {
  addProxyCall,
  batchAllCall,
  contains,
  createPureCall,
  payloadMortality,
  proxyCall,
  pureProxyAccount,
  remarkCall,
  removeProxyCall,
  transferKeepAliveCall,
  type CallIndices,
} from '../../src/enclave/parentchain/calls.ts';
import { CHOPSTICKS_GENESIS, LightClient } from '../../src/enclave/parentchain/light-client.ts';
import { payloadNonce, signedPrefix } from '../../src/enclave/parentchain/extrinsic-prefix.ts';
import { EFFECT, HPKE_INFO_SHIELD } from '../../src/enclave/parentchain/registry.ts';
import type { ImportedBlock } from '../../src/enclave/parentchain/view.ts';
import { EnclaveCore } from '../../src/enclave/core.ts';
import { HpkeSuite } from '../../src/crypto/hpke.ts';
import { buildGetter, shield, signCall } from '../../src/client/calls.ts';
import { devAccount, type Account } from '../../src/client/accounts.ts';
import { waitFor } from '../e2e/harness.ts';
import { concatBytes, hexKey } from '../../src/protocol/bytes.ts';
import { testShard } from '../helpers/shard.ts';
import { hasCode } from '../../src/protocol/errors.ts';
import { readRuntimeFacts } from '../../src/enclave/parentchain/metadata.ts';
import { PINNED_RUNTIMES } from '../../src/enclave/parentchain/runtime.ts';
import { blake2_256 } from '../../src/enclave/parentchain/trie.ts';
import { DEV_METADATA } from '../helpers/metadata.ts';

const UNIT = 10n ** 12n;
const { shard: SHARD, shardPolicy: POLICY } = testShard('calls test shard');
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

const recorded: Uint8Array[] = [];
const seed = new Uint8Array(32).fill(0x21);
const plain = ed25519Signer(seed);
/** The ed25519 test account, recording every payload it is asked to sign. */
const enclaveAccount: ExtrinsicSigner = {
  publicKey: plain.publicKey,
  scheme: 'ed25519',
  sign: (p) => (recorded.push(p), plain.sign(p)),
};
let chain: DevChain;
let pc: SubstrateParentchain;
let ix: CallIndices;
let alice: ExtrinsicSigner;
let bob: Uint8Array;
let dataDir: string;
let core: EnclaveCore;
/** A second enclave that registers after the vault exists: the first member makes it a vault proxy. */
let core2: EnclaveCore;
let dataDir2: string;
let sidechainBob: Account;

before(async () => {
  await cryptoWaitReady();
  const keyring = new Keyring({ type: 'sr25519' });
  alice = keyringSigner(keyring.addFromUri('//Alice'));
  bob = keyring.addFromUri('//Bob').publicKey;
  sidechainBob = await devAccount('//Bob');
  // the enclave's keys exist before the chain so its account can be endowed at genesis
  dataDir = mkdtempSync(join(tmpdir(), 'validateer-calls-'));
  core = EnclaveCore.open({
    dataDir,
    shard: SHARD,
    shardPolicy: POLICY,
    workers: 0,
    pool: { maxPending: 100, maxNonceAhead: 16, futureTtlMs: 30_000 },
    authorities: [],
  });
  dataDir2 = mkdtempSync(join(tmpdir(), 'validateer-calls-'));
  core2 = EnclaveCore.open({
    dataDir: dataDir2,
    shard: SHARD,
    shardPolicy: POLICY,
    workers: 0,
    pool: { maxPending: 100, maxNonceAhead: 16, futureTtlMs: 30_000 },
    authorities: [],
  });
  chain = await startDevChain({
    blockTimeMs: 500,
    endowments: [plain.publicKey, core.info().signingKey, core2.info().signingKey].map((publicKey) => ({
      publicKey,
      amount: 1_000n * UNIT,
    })),
  });
  pc = await connectParentchain({ endpoint: chain.endpoint, onWarning: () => undefined });
  ix = pc.callIndices();
});

after(async () => {
  await pc?.close();
  await chain?.close();
  await core?.close();
  await core2?.close();
  for (const d of [dataDir, dataDir2]) if (d) rmSync(d, { recursive: true, force: true });
});

const event = (events: ParentchainEvent[], pallet: string, names: string[]) =>
  events.find((e) => e.pallet === pallet && names.includes(e.name));

test('call encoders equal what polkadot-js builds for the runtime', () => {
  const same = (ours: Uint8Array, spec: CallSpec, what: string) =>
    assert.equal(hexKey(ours), hexKey(pc.encodeCall(spec)), what);
  const dest = new Uint8Array(32).fill(0xab);
  for (const n of [0, 1, 63, 64, 300, 16_384, 20_000]) {
    const r = Uint8Array.from({ length: n }, (_, i) => (i * 7) & 0xff);
    same(remarkCall(ix, r), { kind: 'remark', remark: r }, `remark of ${n} bytes`);
  }
  const message = encodeMessage({ tag: 'payout', value: { shard: SHARD, withdrawal: 7n } });
  same(remarkCall(ix, message), { kind: 'remark', remark: message }, 'a protocol message');
  for (const amount of [
    0n,
    1n,
    63n,
    64n,
    16_383n,
    16_384n,
    2n ** 30n - 1n,
    2n ** 30n,
    2n ** 32n,
    2n ** 64n,
    2n ** 128n - 1n,
  ]) {
    same(
      transferKeepAliveCall(ix, dest, amount),
      { kind: 'transferKeepAlive', dest, amount },
      `transferKeepAlive ${amount}`,
    );
  }
  const t = { kind: 'transferKeepAlive', dest: bob, amount: 12_345n * UNIT } as const;
  const r = { kind: 'remark', remark: message } as const;
  const tb = transferKeepAliveCall(ix, bob, t.amount);
  const rb = remarkCall(ix, message);
  same(batchAllCall(ix, []), { kind: 'batchAll', calls: [] }, 'empty batchAll');
  same(batchAllCall(ix, [tb, rb]), { kind: 'batchAll', calls: [t, r] }, 'shield / reserve shape');
  same(
    batchAllCall(ix, [createPureCall(ix), rb]),
    { kind: 'batchAll', calls: [{ kind: 'createPure' }, r] },
    'vault shape',
  );
  same(proxyCall(ix, dest, tb), { kind: 'proxy', real: dest, call: t }, 'proxy(transfer)');
  same(
    proxyCall(ix, dest, batchAllCall(ix, [tb, rb])),
    { kind: 'proxy', real: dest, call: { kind: 'batchAll', calls: [t, r] } },
    'payout shape',
  );
  same(createPureCall(ix), { kind: 'createPure' }, 'createPure(Any, 0, 0)');
  same(addProxyCall(ix, dest), { kind: 'addProxy', delegate: dest }, 'addProxy(Any, 0)');
  same(removeProxyCall(ix, dest), { kind: 'removeProxy', delegate: dest }, 'removeProxy(Any, 0)');
});

test('pureProxyAccount is the account the runtime gives a pure proxy, alone and in the vault batch', async () => {
  const { pure, result } = await createPureProxy(pc, enclaveAccount);
  assert.equal(hexKey(pureProxyAccount(enclaveAccount.publicKey, result.blockNumber, result.index)), hexKey(pure));
  const vault = await pc.submit(enclaveAccount, {
    kind: 'batchAll',
    calls: [
      { kind: 'createPure' },
      { kind: 'remark', remark: encodeMessage({ tag: 'vault', value: { shard: SHARD } }) },
    ],
  });
  assert.equal(vault.success, true, vault.error);
  const created = event(vault.events, 'proxy', ['PureCreated', 'AnonymousCreated']);
  const account = created?.data.pure ?? created?.data.anonymous ?? created?.data['0'];
  assert.equal(typeof account, 'string');
  assert.equal(
    hexKey(pureProxyAccount(enclaveAccount.publicKey, vault.blockNumber, vault.index)),
    hexKey(decodeAddress(account as string)),
  );
});

test('a real signing payload starts with the call bytes, is mortal for 64 blocks and names a finalized birth block', async () => {
  recorded.length = 0;
  const remark = encodeMessage({ tag: 'invoke', value: { shard: SHARD, request: Uint8Array.of(1, 2, 3) } });
  const result = await pc.submit(enclaveAccount, { kind: 'remark', remark });
  assert.equal(result.success, true);
  const payload = recorded.at(-1)!;
  const callData = remarkCall(ix, remark);
  assert.equal(hexKey(payload.subarray(0, callData.length)), hexKey(callData));
  const m = payloadMortality(payload, callData.length, pc.genesisHash());
  assert.ok(m, 'mortal');
  assert.equal(m.period, 64);
  const birth = await pc.header(m.birthHash);
  assert.ok(birth, 'the birth hash is a block of the chain');
  assert.equal(hexKey((await pc.blockHash(birth.number))!), hexKey(m.birthHash));
  assert.ok(birth.number <= (await pc.finalizedHead()).number, 'finalized');
  assert.ok(
    birth.number <= result.blockNumber && result.blockNumber < birth.number + m.period,
    'included within its mortality window',
  );
  // The enclave reads the nonce from the payload it signs and from the extrinsic the runtime included.
  assert.equal(payloadNonce(payload, callData.length), result.nonce);
  const included = (await pc.block(result.blockHash)).extrinsics[result.index].encoded;
  const prefix = signedPrefix(included);
  assert.ok(prefix, 'a signed extrinsic');
  assert.deepEqual([hexKey(prefix.signer), prefix.nonce], [hexKey(enclaveAccount.publicKey), result.nonce]);
});

// ---------- the enclave itself on the real chain ----------

/** What the node hands the enclave for a block (as src/parentchain/driver.ts does). */
function toImport(b: ParentchainBlock): ImportedBlock {
  return {
    header: b.header.encoded,
    extrinsics: b.extrinsics.map((x) => x.encoded),
    outcomes: b.extrinsics
      .filter((x) => contains(x.encoded, MESSAGE_MAGIC))
      .map((x) => ({ index: x.index, success: x.success ?? false, callOffset: x.callOffset ?? x.encoded.length })),
  };
}

test("the light client verifies the real chain from chopsticks' genesis", async () => {
  assert.equal(hexKey(pc.genesisHash()), hexKey(CHOPSTICKS_GENESIS));
  const lc = new LightClient(pc.genesisHash(), { number: 0, hash: pc.genesisHash() });
  const head = (await pc.finalizedHead()).number;
  for (let n = 1; n <= head; n++) {
    const b = await pc.block((await pc.blockHash(n))!);
    assert.equal(
      hexKey(
        lc.import(
          b.header.encoded,
          b.extrinsics.map((x) => x.encoded),
        ).hash,
      ),
      hexKey(b.header.hash),
    );
  }
  assert.equal(lc.number, head);
});

test('an enclave registers, creates the vault, funds it, credits a shield and pays an unshield on the real runtime', async () => {
  const key = core.info().signingKey;
  const shieldingKey = { keyId: core.info().shieldingKeyId, publicKey: core.info().shieldingKey };
  const produced = [core.genesis([], Date.now()).block];
  /** Whether the second enclave holds the shard secrets and follows the sidechain (it votes for anchors then). */
  let follows = false;
  core.parentchainInit({
    genesisHash: pc.genesisHash(),
    metadata: await pc.metadata(),
    existentialDeposit: pc.existentialDeposit(),
    proxyDepositFactor: pc.proxyDepositFactor(),
  });
  const scanner = pc.scanFinalized(1, (b) => void core.parentchainImport([toImport(b)]), {
    fromParentHash: pc.genesisHash(),
  });
  const signer: ExtrinsicSigner = { publicKey: key, scheme: 'ed25519', sign: (payload) => core.signExtrinsic(payload) };
  const processed = (r: SubmitResult) =>
    waitFor(
      () => core.parentchainInfo().number >= r.blockNumber,
      `parentchain block ${r.blockNumber} imported`,
      30_000,
    );
  const duty = async (expected: string) => {
    const duties = core.parentchainDuties({ peerId: 'peer', p2pAddresses: [] });
    assert.deepEqual(
      duties.map((d) => d.key),
      [expected],
    );
    const r = await pc.submit(signer, { kind: 'raw', callData: duties[0].callData }, { nonce: duties[0].nonce });
    assert.equal(r.success, true, r.error);
    await processed(r);
    return r;
  };
  /**
   * Anchors the sidechain head: the enclave's anchor remark with the votes of the set (both members once the second
   * registered: a strict majority of two), signed by it, in a finalized parentchain block.
   */
  const anchorHead = async () => {
    const { headNumber, headHash } = core.status();
    const votes = [core, ...(follows ? [core2] : [])].map((c) => c.finalityVote(headNumber));
    if (follows)
      assert.throws(
        () => core.anchorCall(headNumber, votes.slice(0, 1)),
        (e) => hasCode(e, 'ANCHOR_NO_QUORUM'),
        'one vote of two is no majority',
      );
    const anchor = core.anchorCall(headNumber, votes);
    const r = await pc.submit(signer, { kind: 'raw', callData: anchor.callData }, { nonce: anchor.nonce });
    assert.equal(r.success, true, r.error);
    await processed(r);
    assert.deepEqual(core.parentchainInfo().lastAnchor, {
      number: headNumber,
      hash: headHash,
      parentchainNumber: r.blockNumber,
    });
  };
  /** Kinds of the parentchain effects the enclave still keeps, executed or not: only an anchor drops them. */
  const keptEffects = () => core['parentchain']!.effectsAfter(0).map((e) => e.kind);
  let slot = 1n;
  let scanner2: { stop(): Promise<void> } | undefined;
  const produce = () => {
    // once the second enclave is a member, every other slot is its own
    while (hexKey(core.slotAuthor(slot).author ?? new Uint8Array(0)) !== hexKey(key)) slot++;
    const p = core.propose({ slot: slot++, timestampMs: Date.now(), maxCalls: 10 });
    core.commit(p.hash);
    produced.push(p.block);
    if (follows) core2.commit(core2.importBlock(p.block, Date.now()).hash);
    return p;
  };
  try {
    await duty('register');
    assert.equal(hexKey(core.parentchainInfo().members[0].signingKey), hexKey(key));
    const vaultTx = await duty('vault');
    const vault = core.parentchainInfo().vault!;
    const created = event(vaultTx.events, 'proxy', ['PureCreated', 'AnonymousCreated']);
    assert.equal(
      hexKey(vault),
      hexKey(decodeAddress((created?.data.pure ?? created?.data.anonymous ?? created?.data['0']) as string)),
      'the vault is the pure proxy the runtime created',
    );
    await duty('reserve');
    assert.equal(core.parentchainInfo().reserveFunded, true);
    assert.equal((await pc.balance(vault)).free, pc.existentialDeposit());

    // A second enclave registers; the first makes it a proxy of the vault, paying the proxy deposit
    // that pallet_proxy reserves from the vault (which holds only the keep-alive reserve).
    const key2 = core2.info().signingKey;
    core2.parentchainInit({
      genesisHash: pc.genesisHash(),
      metadata: await pc.metadata(),
      existentialDeposit: pc.existentialDeposit(),
      proxyDepositFactor: pc.proxyDepositFactor(),
    });
    scanner2 = pc.scanFinalized(1, (b) => void core2.parentchainImport([toImport(b)]), {
      fromParentHash: pc.genesisHash(),
    });
    const [register2] = core2.parentchainDuties({ peerId: 'peer2', p2pAddresses: [] });
    assert.equal(register2.key, 'register');
    const signer2: ExtrinsicSigner = {
      publicKey: key2,
      scheme: 'ed25519',
      sign: (payload) => core2.signExtrinsic(payload),
    };
    const registered2 = await pc.submit(signer2, { kind: 'raw', callData: register2.callData });
    assert.equal(registered2.success, true, registered2.error);
    await processed(registered2);
    // The second member is provisioned by the first and follows the sidechain: it votes for the anchors from now on.
    await waitFor(
      () => core2.parentchainInfo().number >= registered2.blockNumber,
      'the second enclave sees itself',
      30_000,
    );
    const request = core2.provisionRequest(Date.now());
    const served = core.provisionServe(request, Date.now());
    assert.ok(served.ok);
    assert.ok((await core2.provisionAccept(request, served.response, Date.now())).ok);
    for (const b of produced) core2.commit(core2.importBlock(b, Date.now()).hash);
    follows = true;
    assert.equal(core.parentchainInfo().members.length, 2);
    assert.ok(pc.proxyDepositFactor() > 0n, 'the runtime charges a deposit per proxy');
    await duty(`proxy:${hexKey(key2)}`);
    assert.deepEqual(core.parentchainInfo().vaultProxies.map(hex), [hexKey(key), hexKey(key2)]);
    const proxies = (await pc.api.query.proxy.proxies(vault)).toJSON() as [{ delegate: string }[], unknown];
    assert.ok(
      proxies[0].some((p) => hexKey(decodeAddress(p.delegate)) === hexKey(key2)),
      'the runtime lists the second enclave as a proxy of the vault',
    );
    assert.equal(
      (await pc.balance(vault)).free,
      pc.existentialDeposit(),
      'the deposit came from the first enclave, not the reserve',
    );

    // //Alice shields 10 ROC to the sidechain account //Bob
    const { enc, ciphertext } = new HpkeSuite(HPKE_INFO_SHIELD).seal(
      shieldingKey.publicKey,
      sidechainBob.publicKey,
      SHARD,
    );
    const shieldTx = await pc.submit(alice, {
      kind: 'batchAll',
      calls: [
        { kind: 'transferKeepAlive', dest: vault, amount: 10n * UNIT },
        {
          kind: 'remark',
          remark: encodeMessage({ tag: 'shield', value: { shard: SHARD, recipient: concatBytes(enc, ciphertext) } }),
        },
      ],
    });
    assert.equal(shieldTx.success, true, shieldTx.error);
    await processed(shieldTx);
    produce();
    const g = buildGetter(sidechainBob, { tag: 'balance', value: sidechainBob.publicKey }, shieldingKey, SHARD);
    assert.deepEqual(g.open(core.executeGetter(g.request, Date.now())), { tag: 'balance', value: 10n * UNIT });

    // //Bob unshields 4 ROC to the parentchain account //Bob: the vault pays it, exactly once
    const before = (await pc.balance(bob)).free;
    const unshield = shield(
      signCall(
        sidechainBob,
        { tag: 'unshield', value: { from: sidechainBob.publicKey, beneficiary: bob, amount: 4n * UNIT } },
        0,
        SHARD,
      ),
      shieldingKey,
      SHARD,
    );
    assert.equal((await core.submit([unshield], Date.now()))[0].status, 'ready');
    produce();
    assert.equal(core.parentchainInfo().unpaidWithdrawals, 1);
    // the burn's block is not final yet: nothing is paid until an anchor of it is finalized
    assert.deepEqual(core.parentchainDuties({ peerId: 'peer', p2pAddresses: [] }), []);
    assert.ok(keptEffects().includes(EFFECT.shield), 'the shield, executed but not yet final');
    await anchorHead();
    assert.deepEqual(keptEffects(), [], 'the anchor settled the shield');
    await duty('payout:0');
    assert.equal((await pc.balance(bob)).free - before, 4n * UNIT);
    assert.equal((await pc.balance(vault)).free, pc.existentialDeposit() + 6n * UNIT);
    produce();
    assert.equal(core.parentchainInfo().unpaidWithdrawals, 0);
    assert.deepEqual(core.parentchainDuties({ peerId: 'peer', p2pAddresses: [] }), []);
    // a second anchor follows the first on the real chain and settles the payout: still paid once
    assert.deepEqual(keptEffects(), [EFFECT.payout]);
    await anchorHead();
    assert.deepEqual(keptEffects(), []);
    assert.deepEqual(core.parentchainDuties({ peerId: 'peer', p2pAddresses: [] }), []);
    assert.equal((await pc.balance(bob)).free - before, 4n * UNIT);

    // The second enclave leaves: the first removes it as a vault proxy. The removal frees its deposit
    // in the vault, which goes back to the first enclave's account: the vault keeps exactly reserve + shielded.
    const vaultBefore = (await pc.balance(vault)).free;
    try {
      await waitFor(
        () => core2.parentchainInfo().number >= core.parentchainInfo().number,
        'the second enclave follows the chain',
        30_000,
      );
      const leave = core2.unregisterCall();
      const left = await pc.submit(signer2, { kind: 'raw', callData: leave.callData }, { nonce: leave.nonce });
      assert.equal(left.success, true, left.error);
      await processed(left);
    } finally {
      await scanner2.stop();
    }
    await duty(`unproxy:${hexKey(key2)}`);
    assert.deepEqual(core.parentchainInfo().vaultProxies.map(hex), [hexKey(key)]);
    const after = (await pc.api.query.proxy.proxies(vault)).toJSON() as [{ delegate: string }[], unknown];
    assert.ok(
      !after[0].some((p) => hexKey(decodeAddress(p.delegate)) === hexKey(key2)),
      'the runtime no longer lists the departed enclave',
    );
    assert.equal((await pc.balance(vault)).free, vaultBefore, 'the freed deposit went back out of the vault');
    assert.deepEqual(core.parentchainDuties({ peerId: 'peer', p2pAddresses: [] }), []);
    // The enclave followed its account's nonce from the verified blocks alone.
    assert.equal(core.parentchainInfo().accountNonce, await pc.accountNonce(key));
  } finally {
    await scanner.stop();
    await scanner2?.stop();
  }
});

test("the enclave's indices from the chain's metadata are polkadot-js's; the runtime rejects a payload signed for another runtime version", async () => {
  const served = await pc.metadata();
  const facts = readRuntimeFacts(served);
  assert.deepEqual(facts.callIndices, ix, "derived by the enclave from the metadata bytes = polkadot-js's");
  // The enclave pins the dev runtime's metadata (runtime.ts): it is the fixture's, and what chopsticks serves.
  assert.equal(hexKey(served), hexKey(DEV_METADATA), 'chopsticks serves test/fixtures/statemine-900.metadata');
  const pin = PINNED_RUNTIMES.find((p) => hexKey(p.genesis) === hexKey(pc.genesisHash()));
  assert.equal(pin?.specVersion, facts.specVersion);
  assert.equal(pin?.metadataHash, hexKey(blake2_256(served)));
  assert.equal(facts.specVersion, pc.api.runtimeVersion.specVersion.toNumber());
  assert.equal(facts.transactionVersion, pc.api.runtimeVersion.transactionVersion.toNumber());
  // The signature covers spec and transaction version (the additional data the enclave checks in its payloads,
  // runtime.ts): signed for another version, the runtime refuses the extrinsic instead of running its call.
  const tail = (p: Uint8Array) => p.length - 72; // spec ‖ tx ‖ genesis ‖ birth
  for (const [what, at] of [
    ['spec', 0],
    ['transaction', 4],
  ] as const) {
    const forOtherVersion: ExtrinsicSigner = {
      ...plain,
      sign: (p) => {
        const other = p.slice();
        const view = new DataView(other.buffer);
        view.setUint32(tail(p) + at, view.getUint32(tail(p) + at, true) + 1, true);
        return plain.sign(other);
      },
    };
    await assert.rejects(
      pc.submit(forOtherVersion, { kind: 'remark', remark: Uint8Array.of(1) }),
      (err: Error) => hasCode(err, 'PARENTCHAIN_SUBMIT_REJECTED') && /badProof|bad signature|1010/i.test(err.message),
      `signed for another ${what} version`,
    );
  }
  const honest = await pc.submit(plain, { kind: 'remark', remark: Uint8Array.of(1) });
  assert.equal(honest.success, true, 'the same call signed for the runtime in force');
});
