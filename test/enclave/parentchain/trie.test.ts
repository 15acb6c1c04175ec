// extrinsicsRoot checks against three references: node encodings written out by hand, smoldot's trie
// (an independent implementation, shipped as wasm with chopsticks) and the real runtime replaying
// real blocks of the dev chain. The last is needed because chopsticks does not put the runtime's
// root in its headers: it writes blake2_256(concatenated extrinsics) there instead (see below).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { calculate_state_root, run_task, type JsCallback } from '@acala-network/chopsticks-executor';
import { blake2_256, orderedTrieRoot, verifyExtrinsicsRoot } from '../../../src/enclave/parentchain/trie.ts';
import { startDevChain, type DevChain } from '../../../src/parentchain/devchain.ts';
import { connectParentchain, type SubstrateParentchain } from '../../../src/parentchain/substrate.ts';
import { keyringSigner } from '../../../src/parentchain/signers.ts';
import type { ExtrinsicSigner, ParentchainBlock } from '../../../src/parentchain/api.ts';
import { fromHex, toHex } from '../../../src/protocol/bytes.ts';

const EMPTY_TRIE_ROOT = '0x03170a2e7597b7b7e3d84c05391d139a62b157e78786d8c082f29dcf4c111314';
const CODE_KEY = '0x3a636f6465'; // ':code'

let chain: DevChain;
let pc: SubstrateParentchain;
let raw: WsProvider;
/** Blocks built in `before`, by what they hold. */
const built: { what: string; block: ParentchainBlock }[] = [];

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);
const hexRoot = (values: Uint8Array[], v: 0 | 1) => toHex(orderedTrieRoot(values, v));

/** SCALE compact for the small indices used here. */
function compact(i: number): Uint8Array {
  return i < 64 ? Uint8Array.of(i << 2) : Uint8Array.of(((i << 2) | 1) & 0xff, i >> 6);
}

function withoutLengthPrefix(x: Uint8Array): Uint8Array {
  const mode = x[0] & 3;
  return x.subarray(mode === 0 ? 1 : mode === 1 ? 2 : mode === 2 ? 4 : 5 + (x[0] >> 2));
}

/** smoldot's root of the trie {compact(i) -> values[i]}. */
async function smoldotRoot(values: Uint8Array[], version: 0 | 1): Promise<string> {
  return calculate_state_root(
    values.map((v, i) => [toHex(compact(i)), toHex(v)]),
    version,
  ) as Promise<string>;
}

/**
 * The extrinsicsRoot the runtime itself computes for a block's body: replays the block on the
 * runtime (initialize, apply every extrinsic, finalize) in chopsticks' executor over the parent's
 * state, read over RPC, and takes the root from the header finalize_block returns.
 */
function runtimeExtrinsicsRoot(block: ParentchainBlock): Promise<Uint8Array> {
  let root = replayed.get(block);
  if (!root) replayed.set(block, (root = replay(block)));
  return root;
}
const replayed = new Map<ParentchainBlock, Promise<Uint8Array>>();

async function replay(block: ParentchainBlock): Promise<Uint8Array> {
  const at = toHex(block.header.parentHash);
  const storage: JsCallback = {
    getStorage: async (key) => (await raw.send<string | null>('state_getStorage', [key, at])) ?? undefined,
    getNextKey: async (prefix, key) => (await raw.send<string[]>('state_getKeysPaged', [prefix, 1, key, at]))[0],
    offchainGetStorage: () => Promise.reject(new Error('no offchain storage')),
    offchainTimestamp: () => Promise.reject(new Error('no offchain')),
    offchainRandomSeed: () => Promise.reject(new Error('no offchain')),
    offchainSubmitTransaction: () => Promise.reject(new Error('no offchain')),
  };
  const calls = [
    ['Core_initialize_block', [toHex(block.header.encoded)]],
    ...block.extrinsics.map((x) => ['BlockBuilder_apply_extrinsic', [toHex(x.encoded)]]),
    ['BlockBuilder_finalize_block', []],
  ];
  const wasm = await raw.send<string>('state_getStorage', [CODE_KEY, at]);
  const task = {
    id: block.header.number,
    wasm,
    calls,
    mockSignatureHost: 0,
    allowUnresolvedImports: false,
    runtimeLogLevel: 0,
    storageProofSize: 0,
  };
  const result = (await run_task(task, storage)) as { Call?: { result: string }; Error?: string };
  assert.ok(result.Call, `replaying #${block.header.number}: ${result.Error}`);
  return pc.api.registry.createType('Header', result.Call.result).extrinsicsRoot.toU8a();
}

async function waitForPool(count: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  while ((await raw.send<string[]>('author_pendingExtrinsics', [])).length < count) {
    if (Date.now() > deadline) throw new Error(`${count} extrinsics never reached the pool`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Submits the calls (one per signer), builds one block holding them and records it. */
async function blockWith(what: string, remarks: [ExtrinsicSigner, Uint8Array][]): Promise<void> {
  const results = remarks.map(([signer, remark]) => pc.submit(signer, { kind: 'remark', remark }));
  await waitForPool(remarks.length);
  const number = await chain.newBlock();
  const included = await Promise.all(results);
  assert.ok(
    included.every((r) => r.blockNumber === number && r.success),
    `${what}: all in #${number}`,
  );
  built.push({ what, block: await pc.block((await pc.blockHash(number))!) });
}

before(async () => {
  await cryptoWaitReady();
  chain = await startDevChain({ blockTimeMs: 0 });
  pc = await connectParentchain({ endpoint: chain.endpoint, onWarning: () => undefined });
  raw = new WsProvider(chain.endpoint, false);
  await raw.connect();
  await raw.isReady;
  const keyring = new Keyring({ type: 'sr25519' });
  const [alice, bob, charlie] = ['//Alice', '//Bob', '//Charlie'].map((uri) => keyringSigner(keyring.addFromUri(uri)));
  for (let i = 0; i < 2; i++) {
    const number = await chain.newBlock();
    built.push({ what: `inherents only (#${number})`, block: await pc.block((await pc.blockHash(number))!) });
  }
  await blockWith('a short remark', [[alice, Uint8Array.of(1, 2, 3)]]);
  await blockWith('a 200-byte remark', [[alice, bytes(200, 7)]]);
  await blockWith('remarks by three accounts', [
    [alice, bytes(5, 1)],
    [bob, bytes(40, 2)],
    [charlie, bytes(120, 3)],
  ]);
});

after(async () => {
  await raw?.disconnect();
  await pc?.close();
  await chain?.close();
});

test('the empty trie root is blake2_256(0x00), as in every genesis header', async () => {
  assert.equal(hexRoot([], 0), EMPTY_TRIE_ROOT);
  assert.equal(hexRoot([], 1), EMPTY_TRIE_ROOT);
  assert.equal(toHex(blake2_256(Uint8Array.of(0))), EMPTY_TRIE_ROOT);
  assert.equal(toHex((await pc.header(0))!.extrinsicsRoot), EMPTY_TRIE_ROOT);
  assert.equal(verifyExtrinsicsRoot(fromHex(EMPTY_TRIE_ROOT), []), true);
  assert.equal(verifyExtrinsicsRoot(fromHex(EMPTY_TRIE_ROOT), [Uint8Array.of(0)]), false);
});

test('small tries match their node encodings written out by hand', () => {
  const h = (...parts: (number[] | Uint8Array)[]) => toHex(blake2_256(Uint8Array.from(parts.flatMap((p) => [...p]))));
  // one value: a leaf, header 0b01 with 2 nibbles (key compact(0) = 0x00), value compact(1) ‖ 0xaa
  assert.equal(hexRoot([Uint8Array.of(0xaa)], 0), h([0x42, 0x00, 0x04, 0xaa]));
  // keys 0x00 and 0x04 share the nibble 0: a branch (0b10, 1 nibble, partial 0x00), children at
  // nibbles 0 and 4 (bitmap 0x0011 LE), each a leaf with no partial key, inlined as compact(len) ‖ node
  const leaf = (v: number[]) => [0x40, v.length << 2, ...v];
  const inline = (node: number[]) => [node.length << 2, ...node];
  assert.equal(
    hexRoot([Uint8Array.of(1, 2), Uint8Array.of(3)], 0),
    h([0x81, 0x00, 0x11, 0x00], inline(leaf([1, 2])), inline(leaf([3]))),
  );
  // a child node of 32 bytes or more is referenced by compact(32) ‖ its hash
  const big = [...bytes(40, 9)];
  assert.equal(
    hexRoot([Uint8Array.of(3), Uint8Array.from(big)], 0),
    h([0x81, 0x00, 0x11, 0x00], inline(leaf([3])), [0x80], fromHex(h(leaf(big)))),
  );
  // 32 bytes stay inline in V1; from 33 on a leaf is 0b001 (3 prefix bits) with the value's hash
  const v32 = bytes(32, 5);
  const v33 = bytes(33, 5);
  assert.equal(hexRoot([v32], 1), hexRoot([v32], 0));
  assert.equal(hexRoot([v32], 0), h([0x42, 0x00, 0x80], v32));
  assert.equal(hexRoot([v33], 0), h([0x42, 0x00, 0x84], v33));
  assert.equal(hexRoot([v33], 1), h([0x22, 0x00], blake2_256(v33)));
});

test("matches smoldot's trie for both layouts, one- and two-byte keys, around the 33-byte threshold", async () => {
  let checked = 0;
  for (const count of [1, 2, 3, 4, 16, 17, 64, 65, 300]) {
    for (const length of [0, 1, 31, 32, 33, 200]) {
      // lengths vary by index so siblings differ and some nodes straddle the 32-byte inline limit
      const values = Array.from({ length: count }, (_, i) => bytes(length + (i % 3), i & 0xff));
      for (const version of [0, 1] as const) {
        assert.equal(
          hexRoot(values, version),
          await smoldotRoot(values, version),
          `${count} values of ~${length} bytes, V${version}`,
        );
        checked++;
      }
    }
  }
  assert.equal(checked, 108);
});

// The runtime of the dev chain (Rococo Asset Hub's genesis runtime: spec "statemine" 900,
// RuntimeVersion state_version 0) builds extrinsicsRoot with the V0 layout. Every block holds the
// parachain validation-data inherent (over 1 KB), so V1 gives a different root for every block and
// the comparison below tells the layouts apart.
test('real blocks: the runtime computes the V0 root of the extrinsics, length prefixes included', async () => {
  const { specName, specVersion, stateVersion } = (await pc.api.rpc.state.getRuntimeVersion()).toJSON() as Record<
    string,
    unknown
  >;
  assert.deepEqual(
    { specName, specVersion, stateVersion },
    { specName: 'statemine', specVersion: 900, stateVersion: 0 },
  );
  const expected = [
    'inherents only',
    'inherents only',
    'a short remark',
    'a 200-byte remark',
    'remarks by three accounts',
  ];
  assert.deepEqual(
    built.map((b) => b.what.replace(/ \(#\d+\)$/, '')),
    expected,
  );
  for (const { what, block } of built) {
    const xs = block.extrinsics.map((x) => x.encoded);
    const signed = block.extrinsics.filter((x) => x.signer).length;
    assert.equal(
      signed,
      { 'a short remark': 1, 'a 200-byte remark': 1, 'remarks by three accounts': 3 }[what] ?? 0,
      what,
    );
    assert.ok(
      xs.some((x) => x.length >= 33),
      `${what}: V0 and V1 differ`,
    );
    const root = await runtimeExtrinsicsRoot(block);
    assert.equal(toHex(root), hexRoot(xs, 0), `${what}: V0`);
    assert.notEqual(toHex(root), hexRoot(xs, 1), `${what}: not V1`);
    assert.equal(verifyExtrinsicsRoot(root, xs), true, what);
    // without the compact length prefix of each extrinsic the root is different
    assert.equal(verifyExtrinsicsRoot(root, xs.map(withoutLengthPrefix)), false, `${what}: unprefixed`);
  }
});

test('real blocks: a flipped byte, a dropped, reordered or added extrinsic is rejected', async () => {
  for (const { what, block } of built) {
    const xs = block.extrinsics.map((x) => x.encoded);
    const root = await runtimeExtrinsicsRoot(block);
    for (let i = 0; i < xs.length; i++) {
      for (const at of [0, xs[i].length >> 1, xs[i].length - 1]) {
        const flipped = xs.map((x) => x.slice());
        flipped[i][at] ^= 0x01;
        assert.equal(verifyExtrinsicsRoot(root, flipped), false, `${what}: byte ${at} of #${i}`);
      }
      assert.equal(
        verifyExtrinsicsRoot(
          root,
          xs.filter((_, j) => j !== i),
        ),
        false,
        `${what}: without #${i}`,
      );
    }
    assert.equal(verifyExtrinsicsRoot(root, [...xs].reverse()), false, `${what}: reversed`);
    assert.equal(verifyExtrinsicsRoot(root, [...xs, xs[0]]), false, `${what}: duplicate appended`);
    assert.equal(verifyExtrinsicsRoot(root.subarray(0, 31), xs), false, `${what}: short root`);
  }
});

// chopsticks 1.5.1 (block-builder.js) discards the header of BlockBuilder_finalize_block and writes
// blake2_256(extrinsic ‖ extrinsic ‖ ...) as extrinsicsRoot (and a zero stateRoot), so a dev chain
// header never verifies: whoever checks extrinsicsRoot needs a dev-chain mode.
test('chopsticks headers carry blake2_256 of the concatenated extrinsics, not the trie root', () => {
  for (const { what, block } of built) {
    const xs = block.extrinsics.map((x) => x.encoded);
    assert.equal(toHex(block.header.extrinsicsRoot), toHex(blake2_256(Buffer.concat(xs))), what);
    assert.equal(verifyExtrinsicsRoot(block.header.extrinsicsRoot, xs), false, what);
  }
});

// Its speed is the bench's business (timing targets live in benchmarks, not in tests); here: a typical
// block verifies every time, and one changed byte of the root never does.
test('a typical block (timestamp and validation-data inherents, plus a remark) verifies repeatedly; a changed root never', () => {
  const typical = built.find((b) => b.what === 'a short remark')!.block.extrinsics.map((x) => x.encoded);
  for (const xs of [typical.slice(0, 2), typical]) {
    const root = orderedTrieRoot(xs, 0);
    const wrong = Uint8Array.from(root);
    wrong[31] ^= 1;
    for (let i = 0; i < 1000; i++) {
      assert.ok(verifyExtrinsicsRoot(root, xs));
      assert.equal(verifyExtrinsicsRoot(wrong, xs), false);
    }
  }
});
