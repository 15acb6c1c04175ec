// The parentchain runtime the enclave signs for, driven as a malicious host would: the call indices come
// from metadata the enclave reads itself (never from the host's word), what it signs names that runtime's
// spec and transaction versions (checked by the chain), metadata that differs from the sealed one for the
// same version is refused, and a runtime upgrade seen in a verified header is followed, not signed through.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compact, u32 } from 'scale-ts';
import { EnclaveCore } from '../../../src/enclave/core.ts';
import { readRuntimeFacts } from '../../../src/enclave/parentchain/metadata.ts';
import { PINNED_RUNTIMES, announcesRuntimeChange } from '../../../src/enclave/parentchain/runtime.ts';
import { CHOPSTICKS_GENESIS } from '../../../src/enclave/parentchain/light-client.ts';
import { blake2_256, orderedTrieRoot } from '../../../src/enclave/parentchain/trie.ts';
import { concatBytes, hexKey } from '../../../src/protocol/bytes.ts';
import { codeOf } from '../../helpers/errors.ts';
import { DEV_METADATA, devMetadata } from '../../helpers/metadata.ts';
import { testShard } from '../../helpers/shard.ts';

const { shard: SHARD, shardPolicy: POLICY } = testShard('runtime test shard');
const POOL = { maxPending: 1000, maxNonceAhead: 16, futureTtlMs: 30000 };
const GENESIS = CHOPSTICKS_GENESIS; // bodies are checked by blake2_256 of the concatenated extrinsics
/** A chain with no pinned runtime: bodies are checked against the ordered trie root. */
const OTHER_GENESIS = blake2_256(new TextEncoder().encode('a parentchain whose runtime is not pinned'));
const te = new TextEncoder();
/** Digest items: RuntimeEnvironmentUpdated alone; and an Aura pre-runtime item followed by it. */
const RUNTIME_UPDATED = concatBytes(compact.enc(1), Uint8Array.of(8));
const PRE_RUNTIME = concatBytes(Uint8Array.of(6), te.encode('aura'), compact.enc(8), new Uint8Array(8));

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'validateer-runtime-'));
  dirs.push(d);
  return d;
}

function encodeHeader(
  parentHash: Uint8Array,
  number: number,
  digest: Uint8Array,
  genesis: Uint8Array = GENESIS,
): Uint8Array {
  const root = genesis === GENESIS ? blake2_256(new Uint8Array(0)) : orderedTrieRoot([], 0); // no extrinsics
  return concatBytes(parentHash, compact.enc(number), new Uint8Array(32), root, digest);
}

/** call ‖ era (period 64) ‖ nonce ‖ tip ‖ asset id None ‖ spec ‖ tx ‖ genesis ‖ birth (the dev runtime's layout). */
function payload(callData: Uint8Array, birth: { number: number; hash: Uint8Array }, spec = 900, tx = 6): Uint8Array {
  const era = 5 | ((birth.number % 64) << 4);
  return concatBytes(
    callData,
    Uint8Array.of(era & 0xff, era >> 8),
    compact.enc(0),
    compact.enc(0),
    Uint8Array.of(0),
    u32.enc(spec),
    u32.enc(tx),
    GENESIS,
    birth.hash,
  );
}

class Node {
  core: EnclaveCore;
  head: { number: number; hash: Uint8Array };
  readonly dataDir = tempDir();

  readonly genesis: Uint8Array;

  constructor(genesis: Uint8Array = GENESIS) {
    this.genesis = genesis;
    this.core = this.open();
    this.head = { number: 0, hash: genesis };
  }

  private open(): EnclaveCore {
    const o = { dataDir: this.dataDir, shard: SHARD, shardPolicy: POLICY, workers: 0, pool: POOL, authorities: [] };
    // The test policy trusts the dev authority: on a chain other than the dev chain that takes --dev.
    if (this.genesis !== GENESIS) return EnclaveCore.open({ ...o, dev: true });
    return EnclaveCore.open(o);
  }

  init(metadata: Uint8Array = DEV_METADATA) {
    return this.core.parentchainInit({
      genesisHash: this.genesis,
      metadata,
      existentialDeposit: 1n,
      proxyDepositFactor: 0n,
    });
  }

  async restart(): Promise<void> {
    await this.core.close();
    this.core = this.open();
  }

  /** The next block (no extrinsics) with this digest. */
  block(digest = compact.enc(0)) {
    const header = encodeHeader(this.head.hash, this.head.number + 1, digest, this.genesis);
    return { header, extrinsics: [], outcomes: [], number: this.head.number + 1, hash: blake2_256(header) };
  }

  /** Imports the block and moves the head once the enclave took it. */
  import(b: ReturnType<Node['block']>) {
    const r = this.core.parentchainImport([b]);
    this.head = { number: b.number, hash: b.hash };
    return r;
  }

  /** The registration duty's call bytes (a system.remark_with_event). */
  registerCall(): Uint8Array {
    const duties = this.core.parentchainDuties({ peerId: 'peer', p2pAddresses: [] });
    assert.deepEqual(
      duties.map((d) => d.key),
      ['register'],
    );
    return duties[0].callData;
  }
}

test("the call indices are the dev runtime's (as polkadot-js reads them), from the metadata bytes alone", () => {
  const facts = readRuntimeFacts(DEV_METADATA);
  assert.deepEqual(facts.callIndices, {
    remarkWithEvent: { pallet: 0, call: 8 },
    transferKeepAlive: { pallet: 10, call: 3 },
    batchAll: { pallet: 40, call: 2 },
    proxy: { pallet: 42, call: 0 },
    createPure: { pallet: 42, call: 4 },
    addProxy: { pallet: 42, call: 1 },
    removeProxy: { pallet: 42, call: 2 },
    proxyRealAccountId: true,
    addProxyDelegateAccountId: true,
  });
  assert.equal(facts.specVersion, 900);
  assert.equal(facts.transactionVersion, 6);
  assert.deepEqual(
    facts.additional.map((a) => `${a.identifier}:${a.size}`),
    [
      'CheckNonZeroSender:0',
      'CheckSpecVersion:4',
      'CheckTxVersion:4',
      'CheckGenesis:32',
      'CheckMortality:32',
      'CheckNonce:0',
      'CheckWeight:0',
      'ChargeAssetTxPayment:0',
    ],
  );
});

test('metadata whose calls do not have the arguments the enclave encodes, or that does not decode, is refused', () => {
  // Names swapped: transfer_keep_alive would be force_transfer(source, dest, value) and a payout's
  // arguments would be read as other accounts. The enclave checks each call's arguments, so a forgery has to
  // keep them (and is then refused as not the sealed metadata, see below).
  const swapped = devMetadata({ swapNames: { pallet: 'Balances', calls: ['transfer_keep_alive', 'force_transfer'] } });
  assert.equal(
    codeOf(() => readRuntimeFacts(swapped)),
    'PARENTCHAIN_METADATA_UNSUPPORTED',
  );
  const noAny = devMetadata({ swapNames: { pallet: 'Proxy', calls: ['add_proxy', 'remove_proxy'] } });
  assert.equal(readRuntimeFacts(noAny).callIndices.addProxy.call, 2, 'same arguments: only the sealed hash tells');
  assert.equal(
    codeOf(() => readRuntimeFacts(DEV_METADATA.subarray(0, 1000))),
    'PARENTCHAIN_METADATA_UNSUPPORTED',
  );
  assert.equal(
    codeOf(() => readRuntimeFacts(concatBytes(te.encode('meta'), Uint8Array.of(13), DEV_METADATA.subarray(5)))),
    'PARENTCHAIN_METADATA_UNSUPPORTED',
  );
});

test('a payload for another spec or transaction version, or another genesis, is not signed', async () => {
  const node = new Node();
  try {
    node.init();
    node.import(node.block());
    const call = node.registerCall();
    const birth = node.head;
    for (const [spec, tx] of [
      [901, 6],
      [900, 7],
    ]) {
      assert.equal(
        codeOf(() => node.core.signExtrinsic(payload(call, birth, spec, tx))),
        'PARENTCHAIN_RUNTIME_MISMATCH',
        `spec ${spec} tx ${tx}`,
      );
    }
    const otherChain = payload(call, birth);
    otherChain.set(new Uint8Array(32).fill(7), otherChain.length - 64);
    assert.equal(
      codeOf(() => node.core.signExtrinsic(otherChain)),
      'PARENTCHAIN_RUNTIME_MISMATCH',
      'another genesis',
    );
    assert.deepEqual(node.core.parentchainInfo().dutiesInFlight, [], 'a refusal leaves nothing in flight');
    assert.equal(node.core.signExtrinsic(payload(call, birth)).length, 64);
  } finally {
    await node.core.close();
  }
});

test('on the dev chain only the pinned metadata is taken for spec 900, from the first start on (no remap by the host)', async () => {
  assert.equal(
    PINNED_RUNTIMES.find((p) => p.specVersion === 900 && hexKey(p.genesis) === hexKey(GENESIS))?.metadataHash,
    hexKey(blake2_256(DEV_METADATA)),
    "the pin is the fixture's hash (test/parentchain/calls.test.ts checks the fixture is what chopsticks serves)",
  );
  const remapped = devMetadata({ swap: { pallet: 'Balances', calls: ['transfer_keep_alive', 'force_transfer'] } });
  const node = new Node();
  try {
    // The first start: nothing sealed yet to compare with, the pin alone refuses it.
    assert.equal(
      codeOf(() => node.init(remapped)),
      'PARENTCHAIN_METADATA_MISMATCH',
    );
    assert.equal(
      codeOf(() => node.core.parentchainInfo()),
      'NO_PARENTCHAIN',
      'no view was started from it',
    );
    assert.equal(node.init().number, 0, 'the real metadata opens the view');
    await node.restart();
    assert.equal(
      codeOf(() => node.init(remapped)),
      'PARENTCHAIN_METADATA_MISMATCH',
    );
  } finally {
    await node.core.close();
  }
  // Another chain: the first start takes the host's metadata as it is (no pin), as runtime.ts says.
  const other = new Node(OTHER_GENESIS);
  try {
    assert.equal(other.init(remapped).number, 0);
  } finally {
    await other.core.close();
  }
});

test('after the first start, metadata of the sealed spec version must be the sealed metadata (no remap by the host)', async () => {
  const node = new Node(OTHER_GENESIS); // a chain without a pinned runtime: the sealed metadata alone refuses
  try {
    node.init();
    node.import(node.block());
    await node.restart();
    // balances.transfer_keep_alive takes force_transfer's index: every payout would become a force_transfer call.
    const remapped = devMetadata({ swap: { pallet: 'Balances', calls: ['transfer_keep_alive', 'force_transfer'] } });
    assert.equal(readRuntimeFacts(remapped).callIndices.transferKeepAlive.call, 2, 'the forgery itself is readable');
    assert.equal(
      codeOf(() => node.init(remapped)),
      'PARENTCHAIN_METADATA_MISMATCH',
    );
    assert.equal(node.init().number, 1, 'the real metadata still opens the view');
  } finally {
    await node.core.close();
  }
});

test('a runtime upgrade in a verified header stops imports, duties and signing until newer metadata comes', async () => {
  const node = new Node();
  try {
    node.init();
    node.import(node.block());
    const oldCall = node.registerCall();
    assert.deepEqual(oldCall.subarray(0, 2), Uint8Array.of(0, 8), 'system.remark_with_event at 0/8');
    // Without a verified upgrade the host cannot swap the metadata, not even for a newer version.
    const swapped = devMetadata({
      specVersion: 901,
      swap: { pallet: 'System', calls: ['remark_with_event', 'remark'] },
    });
    assert.equal(
      codeOf(() => node.core.parentchainMetadata(swapped)),
      'PARENTCHAIN_METADATA_MISMATCH',
    );
    node.core.parentchainMetadata(DEV_METADATA); // the sealed metadata again: nothing changes
    assert.deepEqual(node.registerCall().subarray(0, 2), Uint8Array.of(0, 8));
    node.import(node.block(RUNTIME_UPDATED));
    const upgrade = node.head;
    // The blocks after the upgrade are not read with the old indices.
    const next = node.block();
    assert.equal(
      codeOf(() => node.core.parentchainImport([next])),
      'PARENTCHAIN_METADATA_REQUIRED',
    );
    assert.equal(node.core.parentchainInfo().number, upgrade.number);
    assert.deepEqual(node.core.parentchainDuties({ peerId: 'peer', p2pAddresses: [] }), [], 'no duties meanwhile');
    assert.equal(
      codeOf(() => node.core.signExtrinsic(payload(oldCall, upgrade))),
      'PARENTCHAIN_RUNTIME_MISMATCH',
      'nothing signed meanwhile',
    );
    // The old runtime's metadata again, or a forged one of the same version: not an upgrade.
    assert.equal(
      codeOf(() => node.core.parentchainMetadata(DEV_METADATA)),
      'PARENTCHAIN_METADATA_STALE',
    );
    // The new runtime (spec 901) moved system.remark_with_event to remark's index 1.
    const upgraded = devMetadata({
      specVersion: 901,
      swap: { pallet: 'System', calls: ['remark_with_event', 'remark'] },
    });
    node.core.parentchainMetadata(upgraded);
    assert.equal(
      codeOf(() => node.core.signExtrinsic(payload(oldCall, upgrade, 901))),
      'SIGNING_REFUSED',
      'call bytes built for the old runtime are void',
    );
    node.import(next);
    await node.restart(); // what was followed is sealed
    node.init(DEV_METADATA); // the host's metadata of an older version does not take the runtime back
    const newCall = node.registerCall();
    assert.deepEqual(newCall.subarray(0, 2), Uint8Array.of(0, 1), 'indices derived again from the new metadata');
    assert.equal(
      codeOf(() => node.core.signExtrinsic(payload(newCall, node.head))),
      'PARENTCHAIN_RUNTIME_MISMATCH',
      'a payload of the old spec version',
    );
    assert.equal(
      codeOf(() => node.core.signExtrinsic(payload(oldCall, node.head, 901))),
      'SIGNING_REFUSED',
      'call bytes of the old runtime are void',
    );
    assert.equal(node.core.signExtrinsic(payload(newCall, node.head, 901)).length, 64);
  } finally {
    await node.core.close();
  }
});

test('a runtime change is read from the header digest; an unknown digest item is a bad header', () => {
  const header = (digest: Uint8Array) => encodeHeader(new Uint8Array(32), 70_000, digest);
  assert.equal(announcesRuntimeChange(header(compact.enc(0))), false);
  assert.equal(announcesRuntimeChange(header(concatBytes(compact.enc(1), PRE_RUNTIME))), false);
  assert.equal(announcesRuntimeChange(header(concatBytes(compact.enc(2), PRE_RUNTIME, Uint8Array.of(8)))), true);
  assert.equal(
    codeOf(() => announcesRuntimeChange(header(concatBytes(compact.enc(1), Uint8Array.of(3))))),
    'PARENTCHAIN_BAD_HEADER',
  );
  assert.equal(
    codeOf(() => announcesRuntimeChange(header(concatBytes(compact.enc(1), Uint8Array.of(0), compact.enc(100))))),
    'PARENTCHAIN_BAD_HEADER',
    'an item running past the end',
  );
});

test('newer runtimes read too (V14 Polkadot, V15 Kusama Asset Hub); with CheckMetadataHash it signs only mode Disabled', async () => {
  const real = async (name: string) => {
    const hex: string = (await import(`@polkadot/types-support/metadata/${name}-hex`)).default;
    const bytes = new Uint8Array(Buffer.from(hex.slice(2), 'hex'));
    return bytes.slice(Buffer.from(bytes).indexOf('meta')); // V15 comes as Option<Vec<u8>> (metadata_at_version)
  };
  const polkadot = readRuntimeFacts(await real('v14/polkadot'));
  assert.deepEqual(polkadot.callIndices.remarkWithEvent, { pallet: 0, call: 7 });
  assert.deepEqual(polkadot.callIndices.proxy, { pallet: 29, call: 0 });
  assert.equal(polkadot.callIndices.proxyRealAccountId, false, 'a MultiAddress');
  const kah = await real('v15/asset-hub-kusama');
  const facts = readRuntimeFacts(kah);
  assert.deepEqual(facts.callIndices.batchAll, { pallet: 40, call: 2 });
  assert.deepEqual(facts.additional.at(-1), { identifier: 'CheckMetadataHash', size: 1 });
  const node = new Node();
  try {
    node.init(kah);
    node.import(node.block());
    const call = node.registerCall();
    const signed = concatBytes(payload(call, node.head, facts.specVersion, facts.transactionVersion), Uint8Array.of(0));
    const withHash = concatBytes(signed.subarray(0, signed.length - 1), Uint8Array.of(1), new Uint8Array(32).fill(9));
    assert.equal(
      codeOf(() => node.core.signExtrinsic(withHash)),
      'PARENTCHAIN_RUNTIME_MISMATCH',
      'Some(hash)',
    );
    const some = concatBytes(signed.subarray(0, signed.length - 1), Uint8Array.of(1));
    assert.equal(
      codeOf(() => node.core.signExtrinsic(some)),
      'PARENTCHAIN_RUNTIME_MISMATCH',
      'Some, short',
    );
    assert.equal(node.core.signExtrinsic(signed).length, 64, 'None: mode Disabled');
  } finally {
    await node.core.close();
  }
});
