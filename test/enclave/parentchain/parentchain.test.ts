// The enclave's side of the parentchain without a chain: the call encoders, the light client over
// synthetic SCALE headers, the registry over host-decoded extrinsics bound to fake extrinsic bytes,
// and the sealed view with its duties, driven through EnclaveCore (test/parentchain/calls.test.ts
// checks the encoders and the pure proxy account against the real runtime).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compact, u16, u32, u64 } from 'scale-ts';
import { EnclaveCore, type EnclaveOptions } from '../../../src/enclave/core.ts';
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
} from '../../../src/enclave/parentchain/calls.ts';
import { CHOPSTICKS_GENESIS, LightClient, decodeHeader } from '../../../src/enclave/parentchain/light-client.ts';
import {
  EFFECT,
  HPKE_INFO_SHIELD,
  Registry,
  registrationUserData,
  type Effect,
  type Observation,
  type RegistryContext,
} from '../../../src/enclave/parentchain/registry.ts';
import { MAX_DUTY_PERIOD, RECENT_KEPT } from '../../../src/enclave/parentchain/duty-calls.ts';
import { SealedView, SealedViewV1, SealedViewV2, SealedViewV3 } from '../../../src/enclave/parentchain/view-format.ts';
import { readExtrinsic } from '../../../src/enclave/parentchain/extrinsic.ts';
import { blake2_256, orderedTrieRoot } from '../../../src/enclave/parentchain/trie.ts';
import {
  DEV_AUTHORITY_PUBLIC,
  simulatedProvider,
  verifySimulatedQuote,
} from '../../../src/enclave/keys/attestation.ts';
import { computeMeasurement } from '../../../src/enclave/keys/measurement.ts';
import { SIM_SIGNER_ID, Sealer } from '../../../src/enclave/keys/sealing.ts';
import { loadOrCreateKeys } from '../../../src/enclave/keys/keys.ts';
import { VIEW_LABEL, ViewEnvelope } from '../../../src/enclave/keys/signing-guard.ts';
import { openRotation } from '../../../src/enclave/keys/rotation.ts';
import {
  SignedBlock,
  bodyRoot,
  headerSigningPayload,
  transitionsAad,
  type SignedBlock as SignedBlockT,
} from '../../../src/protocol/block.ts';
import type { KeyObject } from 'node:crypto';
import { HpkeSuite } from '../../../src/crypto/hpke.ts';
import {
  aesGcmOpen,
  ed25519PublicFromSeed,
  ed25519Sign,
  sha256,
  x25519Generate,
} from '../../../src/crypto/primitives.ts';
import { decodeExact } from '../../../src/protocol/wire.ts';
import { decodeMessage, encodeMessage, type ParentchainMessage } from '../../../src/protocol/parentchain-messages.ts';
import { voteMessage, type VotePayload } from '../../../src/protocol/finality.ts';
import { buildTransfer, shield, signCall } from '../../../src/client/calls.ts';
import { devAccount, type Account } from '../../../src/client/accounts.ts';
import { codeOf } from '../../helpers/errors.ts';
import { codeOf as codeOfError } from '../../../src/protocol/errors.ts';
import { DEV_METADATA, devMetadata } from '../../helpers/metadata.ts';
import { ProvisionRequest, ProvisionResponse } from '../../../src/enclave/keys/provisioning.ts';
import { enclaveApi } from '../../../src/enclave/boundary/api.ts';
import { concatBytes, hexKey, same } from '../../../src/protocol/bytes.ts';
import { testShard } from '../../helpers/shard.ts';
import {
  ADDRS,
  ED,
  FakeChain,
  GENESIS,
  Host,
  IX,
  METADATA,
  PEER,
  POLICY,
  POOL,
  PROXY_FACTOR,
  SHARD,
  addProxy,
  authored,
  batch,
  callOffsetOf,
  createPure,
  decodeCall,
  encodeHeader,
  importInto,
  inherent,
  memberPair,
  msg,
  proxy,
  remark,
  removeProxy,
  removeTempDirs,
  signedExtrinsic,
  signingPayload,
  tempDir,
  transfer,
  type Block,
  type Call,
} from '../../helpers/fake-parentchain.ts';

const te = new TextEncoder();
const OTHER_SHARD = new Uint8Array(32).fill(0x22);
/** A header digest of one item: RuntimeEnvironmentUpdated (the block changed the runtime). */
const RUNTIME_UPDATED_DIGEST = Uint8Array.of(4, 8);
/** Sidechain amounts, above the parentchain's existential deposit like real payouts. */
const UNIT = 10_000_000n;
const MEASUREMENT = computeMeasurement();
const key32 = (label: string) => sha256(te.encode(label));
after(removeTempDirs);

// ---------- registry fixtures ----------

const provider = simulatedProvider(MEASUREMENT, SIM_SIGNER_ID);
const shieldingKeys = x25519Generate();
const shieldSuite = new HpkeSuite(HPKE_INFO_SHIELD);

function registryCtx(shard = SHARD): RegistryContext {
  return {
    shard,
    callIndices: IX,
    trustedAuthorities: [DEV_AUTHORITY_PUBLIC],
    allowedMeasurements: [MEASUREMENT],
    shielding: { secretKey: shieldingKeys.secretKey, publicKey: shieldingKeys.publicKey },
  };
}

const ENC_KEY = key32('encryption key');

function registerMessage(
  signingKey: Uint8Array,
  o: { quote?: Uint8Array; shard?: Uint8Array; peerId?: string; addrs?: string[]; encryptionKey?: Uint8Array } = {},
): ParentchainMessage {
  const shard = o.shard ?? SHARD;
  const peerId = o.peerId ?? PEER;
  const p2pAddresses = o.addrs ?? ADDRS;
  const encryptionKey = o.encryptionKey ?? ENC_KEY;
  const quote =
    o.quote ??
    provider.quote(concatBytes(signingKey, registrationUserData(shard, peerId, p2pAddresses, encryptionKey)));
  return { tag: 'register', value: { shard, quote, signingKey, p2pAddresses, peerId, encryptionKey } };
}

function sealRecipient(recipient: Uint8Array, aad = SHARD, to = shieldingKeys.publicKey): Uint8Array {
  const { enc, ciphertext } = shieldSuite.seal(to, recipient, aad);
  return concatBytes(enc, ciphertext);
}

/** One extrinsic applied to a registry, as block `number` index 1. */
function apply(
  reg: Registry,
  number: number,
  s: {
    signer?: Uint8Array;
    call: Call;
    success?: boolean;
  },
) {
  const out: Observation[] = [];
  const encoded = s.signer
    ? signedExtrinsic(s.signer, s.call.bytes)
    : concatBytes(compact.enc(s.call.bytes.length + 1), Uint8Array.of(4), s.call.bytes);
  const x = readExtrinsic(IX, encoded, callOffsetOf(encoded, s.call.bytes));
  assert.ok(typeof x !== 'string', `the enclave decodes the extrinsic: ${String(x)}`);
  const effects: Effect[] = reg.apply(number, { index: 1, ...x, success: s.success ?? true }, out);
  return { effects, out, kinds: out.map((o) => o.kind) };
}

function assertIgnored(r: ReturnType<typeof apply>, detail: RegExp): void {
  assert.deepEqual(r.kinds, ['ignored'], JSON.stringify(r.out));
  assert.match(r.out[0].detail, detail);
  assert.deepEqual(r.effects, []);
}

// =============================================================================================
// Encoders

test("encoders: the standard pallets' call layouts", () => {
  const dest = key32('dest');
  assert.deepEqual(remarkCall(IX, Uint8Array.of(1, 2, 3)), Uint8Array.of(0, 8, 0x0c, 1, 2, 3));
  // a remark over 63 bytes takes a two-byte compact length
  assert.deepEqual(remarkCall(IX, new Uint8Array(64)).subarray(0, 4), Uint8Array.of(0, 8, 0x01, 0x01));
  assert.deepEqual(
    transferKeepAliveCall(IX, dest, 1n),
    concatBytes(Uint8Array.of(10, 3, 0), dest, Uint8Array.of(0x04)),
  );
  assert.deepEqual(
    transferKeepAliveCall(IX, dest, 2n ** 128n - 1n).subarray(35),
    concatBytes(Uint8Array.of(0x33), new Uint8Array(16).fill(0xff)),
  );
  const inner = [transferKeepAliveCall(IX, dest, 5n), remarkCall(IX, Uint8Array.of(9))];
  assert.deepEqual(batchAllCall(IX, inner), concatBytes(Uint8Array.of(40, 2, 0x08), ...inner));
  assert.deepEqual(batchAllCall(IX, []), Uint8Array.of(40, 2, 0));
  assert.deepEqual(
    proxyCall(IX, dest, inner[1]),
    concatBytes(Uint8Array.of(42, 0, 0), dest, Uint8Array.of(0), inner[1]),
  );
  assert.deepEqual(createPureCall(IX), Uint8Array.of(42, 4, 0, 0, 0, 0, 0, 0, 0));
  assert.deepEqual(addProxyCall(IX, dest), concatBytes(Uint8Array.of(42, 1, 0), dest, Uint8Array.of(0, 0, 0, 0, 0)));
  // older pallet_proxy (the dev chain's runtime) takes bare AccountId32s
  assert.deepEqual(
    proxyCall({ ...IX, proxyRealAccountId: true }, dest, inner[1]),
    concatBytes(Uint8Array.of(42, 0), dest, Uint8Array.of(0), inner[1]),
  );
  assert.deepEqual(
    addProxyCall({ ...IX, addProxyDelegateAccountId: true }, dest),
    concatBytes(Uint8Array.of(42, 1), dest, Uint8Array.of(0, 0, 0, 0, 0)),
  );
  // the enclave's decoder reads the nested payout call back
  const payoutRemark = encodeMessage({ tag: 'payout', value: { shard: SHARD, withdrawal: 3n } });
  const payout = proxy(dest, batch([transfer(key32('beneficiary'), 10n ** 15n), remark(payoutRemark)]));
  assert.deepEqual(decodeCall(payout.bytes).call, {
    kind: 'proxy',
    real: dest,
    call: {
      kind: 'batchAll',
      calls: [
        { kind: 'transferKeepAlive', dest: key32('beneficiary'), amount: 10n ** 15n },
        { kind: 'remark', remark: payoutRemark },
      ],
    },
  });
});

test("pureProxyAccount: blake2_256 of the pallet's entropy, different per spawner, height and extrinsic index", () => {
  const spawner = key32('spawner');
  const a = pureProxyAccount(spawner, 7, 2);
  const entropy = concatBytes(
    te.encode('modlpy/proxy____'),
    spawner,
    u32.enc(7),
    u32.enc(2),
    Uint8Array.of(0),
    u16.enc(0),
  );
  assert.deepEqual(a, blake2_256(entropy));
  assert.notDeepEqual(pureProxyAccount(spawner, 8, 2), a);
  assert.notDeepEqual(pureProxyAccount(spawner, 7, 3), a);
  assert.notDeepEqual(pureProxyAccount(key32('other'), 7, 2), a);
});

test('contains: finds call bytes in views at any offset', () => {
  const hay = concatBytes(new Uint8Array(10).fill(1), Uint8Array.of(5, 6, 7), new Uint8Array(10).fill(2));
  assert.equal(contains(hay, Uint8Array.of(5, 6, 7)), true);
  assert.equal(contains(hay, Uint8Array.of(5, 7)), false);
  // subarrays share a larger buffer: only their own window counts
  assert.equal(contains(hay.subarray(11), Uint8Array.of(5, 6, 7)), false);
  assert.equal(contains(hay.subarray(0, 12), Uint8Array.of(5, 6, 7)), false);
  assert.equal(contains(hay.subarray(10, 13), hay.subarray(10, 13)), true);
});

test('payloadMortality: period and birth hash of mortal payloads; null for immortal or malformed ones', () => {
  const call = remarkCall(IX, Uint8Array.of(1, 2, 3));
  const birth = { number: 1234, hash: key32('birth') };
  for (const period of [4, 64, 2048, 65536]) {
    const m = payloadMortality(signingPayload(call, { genesis: GENESIS, birth, period }), call.length, GENESIS);
    assert.equal(m?.period, period);
    assert.deepEqual(m?.birthHash, birth.hash);
  }
  // with CheckMetadataHash's Option<hash> (None) after the birth hash
  assert.deepEqual(
    payloadMortality(
      signingPayload(call, { genesis: GENESIS, birth, trailing: Uint8Array.of(0) }),
      call.length,
      GENESIS,
    )?.birthHash,
    birth.hash,
  );
  assert.equal(
    payloadMortality(signingPayload(call, { genesis: GENESIS, birth: null }), call.length, GENESIS),
    null,
    'immortal',
  );
  const truncated = signingPayload(call, { genesis: GENESIS, birth }).slice(0, -1);
  assert.equal(payloadMortality(truncated, call.length, GENESIS), null, 'no room for a birth hash');
  assert.equal(
    payloadMortality(signingPayload(call, { genesis: key32('other genesis'), birth }), call.length, GENESIS),
    null,
    'another chain',
  );
  // the genesis hash inside the call does not count
  const inCall = remarkCall(IX, concatBytes(GENESIS, birth.hash));
  assert.equal(payloadMortality(concatBytes(inCall, Uint8Array.of(0x65, 0x00)), inCall.length, GENESIS), null);
  // chopsticks' genesis 0x4545…45 and a birth hash that starts with 0x45: the overlapping later match is skipped
  const b45 = { number: 99, hash: concatBytes(Uint8Array.of(0x45, 0x45), key32('x').subarray(2)) };
  const m = payloadMortality(
    signingPayload(call, { genesis: CHOPSTICKS_GENESIS, birth: b45 }),
    call.length,
    CHOPSTICKS_GENESIS,
  );
  assert.deepEqual(m?.birthHash, b45.hash);
});

// =============================================================================================
// Light client

test('light client: accepts a hash chain whose bodies match their extrinsics roots', () => {
  const chain = new FakeChain();
  const lc = new LightClient(GENESIS, { number: 0, hash: GENESIS });
  const x = [1, 2, 3].map((i) => signedExtrinsic(key32(`s${i}`), remarkCall(IX, new Uint8Array(40 * i).fill(i))));
  for (const b of [
    chain.block(),
    chain.block([{ signer: key32('a'), call: remark(Uint8Array.of(1)) }]),
    ...chain.blocks(3),
  ]) {
    const h = lc.import(b.header, b.extrinsics);
    assert.equal(h.number, b.number);
    assert.deepEqual(h.hash, b.hash);
    assert.deepEqual(lc.hash, b.hash);
  }
  assert.equal(lc.number, 5);
  // a block with many extrinsics (keys beyond one byte), and one without any
  const many = Array.from({ length: 70 }, (_, i) => signedExtrinsic(key32(`m${i}`), remarkCall(IX, Uint8Array.of(i))));
  const h6 = encodeHeader({ parentHash: lc.hash, number: 6, extrinsicsRoot: orderedTrieRoot(many, 0) });
  lc.import(h6, many);
  const h7 = encodeHeader({
    parentHash: lc.hash,
    number: 7,
    extrinsicsRoot: orderedTrieRoot([], 0),
    digest: concatBytes(compact.enc(1), Uint8Array.of(6), te.encode('aura'), compact.enc(8), new Uint8Array(8)),
  });
  assert.deepEqual(lc.import(h7, []).hash, blake2_256(h7), 'the hash covers the digest too');
  // a V1 (state version 1) root: long extrinsics stored by hash
  const h8 = encodeHeader({ parentHash: lc.hash, number: 8, extrinsicsRoot: orderedTrieRoot(x, 1) });
  assert.equal(lc.import(h8, x).number, 8);
});

test('light client: rejects a wrong parent, a skipped or repeated number and a tampered body; the head stays', () => {
  const chain = new FakeChain();
  const lc = new LightClient(GENESIS, { number: 0, hash: GENESIS });
  const b1 = chain.block([{ signer: key32('a'), call: remark(Uint8Array.of(1, 2)) }]);
  lc.import(b1.header, b1.extrinsics);
  const b2 = chain.block([{ signer: key32('a'), call: remark(Uint8Array.of(3, 4)) }]);
  const b3 = chain.block();
  const code = (h: Uint8Array, x: Uint8Array[]) => codeOf(() => lc.import(h, x));
  assert.equal(code(b3.header, b3.extrinsics), 'PARENTCHAIN_BROKEN_CHAIN', 'skipped number');
  assert.equal(code(b1.header, b1.extrinsics), 'PARENTCHAIN_BROKEN_CHAIN', 'repeated block');
  const wrongParent = encodeHeader({
    parentHash: key32('elsewhere'),
    number: 2,
    extrinsicsRoot: orderedTrieRoot(b2.extrinsics, 0),
  });
  assert.equal(code(wrongParent, b2.extrinsics), 'PARENTCHAIN_BROKEN_CHAIN', 'wrong parent');
  const wrongNumber = encodeHeader({
    parentHash: b1.hash,
    number: 3,
    extrinsicsRoot: orderedTrieRoot(b2.extrinsics, 0),
  });
  assert.equal(code(wrongNumber, b2.extrinsics), 'PARENTCHAIN_BROKEN_CHAIN', 'right parent, wrong number');
  const tampered = b2.extrinsics.map((x, i) =>
    i === 1 ? Uint8Array.from(x, (v, j) => (j === x.length - 1 ? v ^ 1 : v)) : x,
  );
  assert.equal(code(b2.header, tampered), 'PARENTCHAIN_BAD_BODY', 'tampered extrinsic');
  assert.equal(code(b2.header, b2.extrinsics.slice(0, 1)), 'PARENTCHAIN_BAD_BODY', 'hidden extrinsic');
  assert.equal(code(b2.header, [...b2.extrinsics, inherent(9)]), 'PARENTCHAIN_BAD_BODY', 'invented extrinsic');
  assert.equal(code(b2.header, [...b2.extrinsics].reverse()), 'PARENTCHAIN_BAD_BODY', 'reordered extrinsics');
  assert.equal(code(b2.header, [blake2_256(concatBytes(...b2.extrinsics))]), 'PARENTCHAIN_BAD_BODY');
  assert.equal(code(b2.header.subarray(0, 60), b2.extrinsics), 'PARENTCHAIN_BAD_HEADER');
  assert.equal(lc.number, 1);
  assert.deepEqual(lc.hash, b1.hash);
  assert.equal(lc.import(b2.header, b2.extrinsics).number, 2, 'the genuine block still imports');
});

test("light client: chopsticks' concatenated-extrinsics root only for the 0x4545…45 genesis", () => {
  const x = [inherent(1), signedExtrinsic(key32('a'), remarkCall(IX, new Uint8Array(50).fill(7)))];
  const concatRoot = blake2_256(concatBytes(...x));
  const dev = new LightClient(CHOPSTICKS_GENESIS, { number: 0, hash: CHOPSTICKS_GENESIS });
  const trieHeader = encodeHeader({ parentHash: CHOPSTICKS_GENESIS, number: 1, extrinsicsRoot: orderedTrieRoot(x, 0) });
  assert.equal(
    codeOf(() => dev.import(trieHeader, x)),
    'PARENTCHAIN_BAD_BODY',
  );
  const devHeader = encodeHeader({ parentHash: CHOPSTICKS_GENESIS, number: 1, extrinsicsRoot: concatRoot });
  assert.equal(
    codeOf(() => dev.import(devHeader, [x[1], x[0]])),
    'PARENTCHAIN_BAD_BODY',
    'still bound to the body',
  );
  assert.equal(dev.import(devHeader, x).number, 1);
  // any other genesis: the trie root, never the concatenation
  const real = new LightClient(GENESIS, { number: 0, hash: GENESIS });
  assert.equal(
    codeOf(() => real.import(encodeHeader({ parentHash: GENESIS, number: 1, extrinsicsRoot: concatRoot }), x)),
    'PARENTCHAIN_BAD_BODY',
  );
  assert.equal(
    real.import(encodeHeader({ parentHash: GENESIS, number: 1, extrinsicsRoot: orderedTrieRoot(x, 0) }), x).number,
    1,
  );
});

test('light client: starts from a checkpoint; block numbers with long compact encodings', () => {
  const checkpoint = { number: 1_073_741_822, hash: key32('checkpoint') };
  const chain = new FakeChain(GENESIS, checkpoint);
  const lc = new LightClient(GENESIS, checkpoint);
  for (const b of chain.blocks(3)) assert.equal(lc.import(b.header, b.extrinsics).number, b.number);
  assert.equal(lc.number, 1_073_741_825, 'crossed into the big-integer compact mode');
  assert.equal(decodeHeader(chain.block().header).number, 1_073_741_826);
});

// =============================================================================================
// Registry

test('registry: a registration with a valid quote is accepted; forged, mismatched or failed ones are ignored', () => {
  const reg = new Registry(registryCtx());
  const k = key32('enclave k');
  const other = key32('enclave other');
  const userData = registrationUserData(SHARD, PEER, ADDRS, ENC_KEY);
  const quoteFor = (p = provider, data = concatBytes(k, userData)) => p.quote(data);
  const flip = (b: Uint8Array, i: number) =>
    Uint8Array.from(b, (v, j) => (j === (i < 0 ? b.length + i : i) ? v ^ 1 : v));

  assertIgnored(
    apply(reg, 3, {
      signer: k,
      call: msg(
        registerMessage(k, {
          quote: quoteFor(simulatedProvider(MEASUREMENT, SIM_SIGNER_ID, key32('rogue authority'))),
        }),
      ),
    }),
    /not trusted/,
  );
  assertIgnored(
    apply(reg, 3, { signer: k, call: msg(registerMessage(k, { quote: flip(quoteFor(), -1) })) }),
    /signature does not verify/,
  );
  assertIgnored(
    apply(reg, 3, { signer: k, call: msg(registerMessage(k, { quote: flip(quoteFor(), 5) })) }),
    /signature does not verify/,
  );
  assertIgnored(
    apply(reg, 3, { signer: k, call: msg(registerMessage(k, { quote: quoteFor().subarray(1) })) }),
    /malformed/,
  );
  assertIgnored(
    apply(reg, 3, {
      signer: k,
      call: msg(registerMessage(k, { quote: quoteFor(simulatedProvider(key32('other code'), SIM_SIGNER_ID)) })),
    }),
    /measurement is not allowed/,
  );
  assertIgnored(
    apply(reg, 3, {
      signer: k,
      call: msg(registerMessage(k, { quote: quoteFor(provider, concatBytes(other, userData)) })),
    }),
    /does not bind the signing key/,
  );
  assertIgnored(
    apply(reg, 3, { signer: k, call: msg(registerMessage(k, { quote: quoteFor(), addrs: ['/ip4/6.6.6.6/tcp/1'] })) }),
    /peer id, addresses and encryption key/,
  );
  // the host swaps in an encryption key of its own: the quote no longer binds it
  assertIgnored(
    apply(reg, 3, {
      signer: k,
      call: msg(registerMessage(k, { quote: quoteFor(), encryptionKey: key32('host key') })),
    }),
    /encryption key/,
  );
  assertIgnored(
    apply(reg, 3, {
      signer: k,
      call: msg(
        registerMessage(k, {
          quote: quoteFor(provider, concatBytes(k, registrationUserData(OTHER_SHARD, PEER, ADDRS, ENC_KEY))),
        }),
      ),
    }),
    /peer id, addresses and encryption key/,
  );
  // signed by another account than the key it registers
  assertIgnored(apply(reg, 3, { signer: other, call: msg(registerMessage(k)) }), /not signed by its signing key/);
  // unsigned
  assertIgnored(apply(reg, 3, { call: msg(registerMessage(k)) }), /not signed by its signing key/);
  // failed on the parentchain
  assertIgnored(
    apply(reg, 3, { signer: k, success: false, call: msg(registerMessage(k)) }),
    /failed on the parentchain/,
  );
  // for another shard: not ours, silently skipped (a parentchain carries many shards)
  const elsewhere = apply(reg, 3, { signer: k, call: msg(registerMessage(k, { shard: OTHER_SHARD })) });
  assert.deepEqual([elsewhere.kinds, elsewhere.effects], [[], []]);
  // foreign remarks and malformed ones of ours are skipped too
  assert.deepEqual(apply(reg, 3, { signer: k, call: remark(te.encode('hello')) }).kinds, []);
  assert.deepEqual(
    apply(reg, 3, { signer: k, call: remark(concatBytes(te.encode('vldtr'), Uint8Array.of(1, 0xff))) }).kinds,
    [],
  );
  assert.equal(reg.data.members.length, 0);

  const ok = apply(reg, 4, { signer: k, call: msg(registerMessage(k)) });
  assert.deepEqual(ok.kinds, ['registered']);
  assert.deepEqual(ok.effects, []);
  const [m] = reg.data.members;
  assert.deepEqual(m.signingKey, k);
  assert.deepEqual(m.measurement, MEASUREMENT);
  assert.deepEqual(
    [m.peerId, m.p2pAddresses, m.registeredAt, m.registeredIndex, m.unregisteredAt],
    [PEER, ADDRS, 4, 1, undefined],
  );
  assert.equal(reg.isActive(k, 3), false);
  assert.equal(reg.isActive(k, 4), true);
});

test('registry: registration order, re-registration, unregistration and activeAt', () => {
  const reg = new Registry(registryCtx());
  const [a, b, c] = ['a', 'b', 'c'].map((n) => key32(`member ${n}`));
  const register = (k: Uint8Array, at: number, addrs = ADDRS) =>
    apply(reg, at, { signer: k, call: msg(registerMessage(k, { addrs })) }).kinds;
  const unregister = (k: Uint8Array, at: number, signer = k) =>
    apply(reg, at, { signer, call: msg({ tag: 'unregister', value: { shard: SHARD, signingKey: k } }) });
  const keys = (n: number) => reg.activeAt(n).map((m) => hexKey(m.signingKey));

  assert.deepEqual(register(b, 3), ['registered']);
  assert.deepEqual(register(a, 5), ['registered']);
  assert.deepEqual(keys(2), []);
  assert.deepEqual(keys(4), [hexKey(b)]);
  assert.deepEqual(keys(5), [hexKey(b), hexKey(a)], 'registration order, not key order');
  // a registered key registering again updates its addresses and keeps its place
  assert.deepEqual(register(b, 6, ['/dns4/b.example/tcp/1']), ['registered']);
  assert.equal(reg.data.members.length, 2);
  assert.deepEqual(reg.activeAt(6)[0].p2pAddresses, ['/dns4/b.example/tcp/1']);
  // unregistering takes someone else's signature: ignored; and a non-member cannot unregister
  assertIgnored(unregister(b, 7, a), /non-member or by another account/);
  assertIgnored(unregister(c, 7), /non-member or by another account/);
  assert.deepEqual(unregister(b, 7).kinds, ['unregistered']);
  assert.deepEqual(keys(6), [hexKey(b), hexKey(a)], 'history stays');
  assert.deepEqual(keys(7), [hexKey(a)]);
  assert.equal(reg.everMember(b), true);
  assert.equal(reg.everMember(c), false);
  // coming back puts it at the end
  assert.deepEqual(register(c, 8), ['registered']);
  assert.deepEqual(register(b, 9), ['registered']);
  assert.deepEqual(keys(9), [hexKey(a), hexKey(c), hexKey(b)]);
  assert.equal(reg.data.members.length, 4);
});

/** A registry with member `m` (block 2) and its vault (block 3, extrinsic 1). */
/** The seed of registryWithVault's member (a real ed25519 key: it signs finality votes). */
const FIRST_MEMBER_SEED = key32('first member');

function registryWithVault(): { reg: Registry; m: Uint8Array; vault: Uint8Array } {
  const reg = new Registry(registryCtx());
  const m = ed25519PublicFromSeed(FIRST_MEMBER_SEED);
  apply(reg, 2, { signer: m, call: msg(registerMessage(m)) });
  const r = apply(reg, 3, { signer: m, call: batch([createPure(), msg({ tag: 'vault', value: { shard: SHARD } })]) });
  assert.deepEqual(r.kinds, ['vault']);
  return { reg, m, vault: pureProxyAccount(m, 3, 1) };
}

test('registry: the vault is the pure proxy a member creates in batchAll[createPure, remark(vault)]', () => {
  const reg = new Registry(registryCtx());
  const m = key32('first member');
  const outsider = key32('outsider');
  const vaultMsg = msg({ tag: 'vault', value: { shard: SHARD } });
  apply(reg, 2, { signer: m, call: msg(registerMessage(m)) });
  assertIgnored(apply(reg, 3, { signer: outsider, call: batch([createPure(), vaultMsg]) }), /non-member/);
  assertIgnored(apply(reg, 3, { signer: m, call: vaultMsg }), /without proxy.createPure/);
  assertIgnored(
    apply(reg, 3, { signer: m, call: batch([remark(Uint8Array.of(1)), vaultMsg]) }),
    /without proxy.createPure/,
  );
  // createPure with another proxy type, delay or index is not the vault's
  const otherPure = {
    bytes: concatBytes(Uint8Array.of(IX.createPure.pallet, IX.createPure.call, 0, 1, 0, 0, 0, 0, 0)),
  };
  assertIgnored(apply(reg, 3, { signer: m, call: batch([otherPure, vaultMsg]) }), /without proxy.createPure/);
  // createPure nested deeper than the top-level batch does not make the signer the spawner
  assertIgnored(
    apply(reg, 3, { signer: m, call: proxy(key32('x'), batch([createPure(), vaultMsg])) }),
    /without proxy.createPure/,
  );
  assertIgnored(
    apply(reg, 3, { signer: m, success: false, call: batch([createPure(), vaultMsg]) }),
    /failed on the parentchain/,
  );
  assert.equal(reg.data.vault === undefined, true);

  const ok = apply(reg, 4, { signer: m, call: batch([createPure(), vaultMsg]) });
  assert.deepEqual(ok.kinds, ['vault']);
  assert.deepEqual(reg.data.vault, { account: pureProxyAccount(m, 4, 1), createdAt: 4 });
  assertIgnored(apply(reg, 5, { signer: m, call: batch([createPure(), vaultMsg]) }), /already has a vault/);
  assert.deepEqual(reg.data.vault?.account, pureProxyAccount(m, 4, 1));
});

test('registry: shields credit the HPKE-sealed recipient only for a transfer to the vault in the same batch', () => {
  const { reg, vault } = registryWithVault();
  const alice = key32('parentchain alice');
  const bob = key32('sidechain bob');
  const shieldTo = (recipient: Uint8Array) => msg({ tag: 'shield', value: { shard: SHARD, recipient } });
  // before the reserve: shields are fine (the reserve only keeps the vault alive)
  const ok = apply(reg, 10, { signer: alice, call: batch([transfer(vault, 5_000n), shieldTo(sealRecipient(bob))]) });
  assert.deepEqual(ok.kinds, ['shield']);
  assert.deepEqual(ok.effects, [
    {
      parentchainNumber: 10,
      kind: EFFECT.shield,
      account: bob,
      amount: 5_000n,
      withdrawal: 0n,
      request: new Uint8Array(0),
    },
  ]);

  assertIgnored(
    apply(reg, 11, {
      signer: alice,
      call: batch([transfer(key32('not the vault'), 5_000n), shieldTo(sealRecipient(bob))]),
    }),
    /without a transfer to the vault/,
  );
  assertIgnored(
    apply(reg, 11, { signer: alice, call: shieldTo(sealRecipient(bob)) }),
    /without a transfer to the vault/,
  );
  assertIgnored(
    apply(reg, 11, {
      signer: alice,
      success: false,
      call: batch([transfer(vault, 5_000n), shieldTo(sealRecipient(bob))]),
    }),
    /failed/,
  );
  // a transfer outside the batch (proxy-wrapped) does not count
  assertIgnored(
    apply(reg, 11, {
      signer: alice,
      call: proxy(key32('x'), batch([transfer(vault, 5n), shieldTo(sealRecipient(bob))])),
    }),
    /without a transfer to the vault/,
  );
  // undecryptable recipients: garbage, another shard as AAD, another shielding key, too short
  assertIgnored(
    apply(reg, 11, { signer: alice, call: batch([transfer(vault, 5n), shieldTo(new Uint8Array(80).fill(3))]) }),
    /undecryptable/,
  );
  assertIgnored(
    apply(reg, 11, { signer: alice, call: batch([transfer(vault, 5n), shieldTo(sealRecipient(bob, OTHER_SHARD))]) }),
    /undecryptable/,
  );
  assertIgnored(
    apply(reg, 11, {
      signer: alice,
      call: batch([transfer(vault, 5n), shieldTo(sealRecipient(bob, SHARD, x25519Generate().publicKey))]),
    }),
    /undecryptable/,
  );
  assertIgnored(apply(reg, 11, { signer: alice, call: batch([transfer(vault, 5n), shieldTo(bob)]) }), /undecryptable/);
  assertIgnored(
    apply(reg, 11, { signer: alice, call: batch([transfer(vault, 5n), shieldTo(sealRecipient(bob.subarray(0, 31)))]) }),
    /undecryptable/,
  );
  // one transfer claimed by two shield remarks credits nobody (not twice)
  const twice = apply(reg, 11, {
    signer: alice,
    call: batch([transfer(vault, 5_000n), shieldTo(sealRecipient(bob)), shieldTo(sealRecipient(alice))]),
  });
  assert.deepEqual(twice.effects, []);
  assert.deepEqual(twice.kinds, ['ignored', 'ignored']);
  // no vault yet: nothing to shield into
  const bare = new Registry(registryCtx());
  assertIgnored(
    apply(bare, 11, { signer: alice, call: batch([transfer(vault, 5n), shieldTo(sealRecipient(bob))]) }),
    /without a transfer to the vault/,
  );
});

test('registry: the reserve, indirect invocations and anchors', () => {
  const { reg, m, vault } = registryWithVault();
  const reserve = msg({ tag: 'reserve', value: { shard: SHARD } });
  assertIgnored(
    apply(reg, 4, { signer: m, call: batch([transfer(key32('x'), ED), reserve]) }),
    /without a transfer to the vault/,
  );
  assert.deepEqual(apply(reg, 5, { signer: m, call: batch([transfer(vault, ED), reserve]) }).kinds, ['reserve']);
  assert.equal(reg.data.reserveFunded, 5);
  assert.deepEqual(apply(reg, 6, { signer: m, call: batch([transfer(vault, ED), reserve]) }).kinds, ['reserve']);
  assert.equal(reg.data.reserveFunded, 5, 'the first one counts');

  // anyone may invoke; the request stays opaque here
  const inv = apply(reg, 7, {
    signer: key32('anyone'),
    call: msg({ tag: 'invoke', value: { shard: SHARD, request: Uint8Array.of(1, 2, 3) } }),
  });
  assert.deepEqual(inv.kinds, ['invoke']);
  assert.deepEqual(
    inv.effects.map((e) => [e.kind, e.parentchainNumber, [...e.request]]),
    [[EFFECT.invoke, 7, [1, 2, 3]]],
  );
  // several of ours in one batch: each counts, in order
  const two = apply(reg, 7, {
    signer: key32('anyone'),
    call: batch([1, 2].map((n) => msg({ tag: 'invoke', value: { shard: SHARD, request: Uint8Array.of(n) } }))),
  });
  assert.deepEqual(
    two.effects.map((e) => e.request[0]),
    [1, 2],
  );

  // The member registered at #2 is the whole set: its vote is the majority.
  const payloadOf = (n: bigint, previousAnchor: Uint8Array, processed: number): VotePayload => ({
    shard: SHARD,
    number: n,
    hash: key32(`block ${n}`),
    previousAnchor,
    parentchainProcessed: { number: processed, hash: key32(`p${processed}`) },
    authoritySetAt: 2,
  });
  const anchor = (
    n: bigint,
    previousAnchor: Uint8Array = new Uint8Array(32),
    processed = 1,
    votes = [
      { index: 0, signature: ed25519Sign(FIRST_MEMBER_SEED, voteMessage(payloadOf(n, previousAnchor, processed))) },
    ],
    authoritySetAt = 2,
  ): Call =>
    msg({
      tag: 'anchor',
      value: {
        shard: SHARD,
        sidechainNumber: n,
        sidechainHash: key32(`block ${n}`),
        previousAnchor,
        parentchainProcessed: { number: processed, hash: key32(`p${processed}`) },
        authoritySetAt,
        votes,
      },
    });
  const assertAnchorIgnored = (r: ReturnType<typeof apply>, detail: RegExp) => {
    assert.deepEqual(r.kinds, ['anchorIgnored'], JSON.stringify(r.out));
    assert.match(r.out[0].detail, detail);
  };
  assertAnchorIgnored(apply(reg, 8, { signer: key32('outsider'), call: anchor(10n) }), /anchor by a non-member/);
  // votes: none, forged, signed by another key, duplicated, for another payload, or an authority set not before
  assertAnchorIgnored(apply(reg, 8, { signer: m, call: anchor(10n, undefined, 1, []) }), /0 of 1 votes: no majority/);
  const forged = { index: 0, signature: new Uint8Array(64).fill(7) };
  assertAnchorIgnored(apply(reg, 8, { signer: m, call: anchor(10n, undefined, 1, [forged]) }), /bad signature/);
  const byOther = ed25519Sign(key32('not a member'), voteMessage(payloadOf(10n, new Uint8Array(32), 1)));
  assertAnchorIgnored(
    apply(reg, 8, { signer: m, call: anchor(10n, undefined, 1, [{ index: 0, signature: byOther }]) }),
    /bad signature/,
  );
  const good = ed25519Sign(FIRST_MEMBER_SEED, voteMessage(payloadOf(10n, new Uint8Array(32), 1)));
  assertAnchorIgnored(
    apply(reg, 8, {
      signer: m,
      call: anchor(10n, undefined, 1, [
        { index: 0, signature: good },
        { index: 0, signature: good },
      ]),
    }),
    /2 votes for a set of 1/,
  );
  const forBlock11 = ed25519Sign(FIRST_MEMBER_SEED, voteMessage(payloadOf(11n, new Uint8Array(32), 1)));
  assertAnchorIgnored(
    apply(reg, 8, { signer: m, call: anchor(10n, undefined, 1, [{ index: 0, signature: forBlock11 }]) }),
    /bad signature/,
  );
  assertAnchorIgnored(apply(reg, 8, { signer: m, call: anchor(10n, undefined, 1, undefined, 8) }), /not before/);
  assertAnchorIgnored(apply(reg, 8, { signer: m, call: anchor(10n, undefined, 1, undefined, 1) }), /no authority set/);
  assert.deepEqual([reg.data.lastAnchor, reg.anchoredProcessed], [undefined, undefined]);
  assert.equal(reg.anchoredProcessed, undefined);
  assert.deepEqual(
    apply(reg, 8, { signer: m, call: anchor(10n) }).kinds,
    ['anchor'],
    'the first anchor names no previous one',
  );
  assert.deepEqual(reg.data.lastAnchor, { number: 10n, hash: key32('block 10'), parentchainNumber: 8 });
  assert.equal(reg.anchoredProcessed, 1, "effects up to the anchored block's parentchain block are executed for good");
  assertAnchorIgnored(apply(reg, 9, { signer: m, call: anchor(10n, key32('block 10')) }), /not above 10/);
  assertAnchorIgnored(apply(reg, 9, { signer: m, call: anchor(9n, key32('block 10')) }), /not above 10/);
  // anchors chain: one that does not name the last anchored block as its previous anchor may be on another fork
  assertAnchorIgnored(apply(reg, 9, { signer: m, call: anchor(20n) }), /anchor 20 does not follow the last anchor/);
  assertAnchorIgnored(
    apply(reg, 9, { signer: m, call: anchor(20n, key32('block 9')) }),
    /does not follow the last anchor/,
  );
  assert.deepEqual([reg.data.lastAnchor?.number, reg.anchoredProcessed], [10n, 1]);
  assert.deepEqual(apply(reg, 9, { signer: m, call: anchor(20n, key32('block 10'), 5) }).kinds, ['anchor']);
  assert.equal(reg.data.lastAnchor?.number, 20n);
  assert.equal(reg.data.lastAnchor?.parentchainNumber, 9);
  assert.equal(reg.anchoredProcessed, 5);
});

test("registry: an anchor whose votes are a majority of its block's set but not of the members now is ignored", () => {
  // The first member alone authored the early blocks; two more joined since. Alone it must not finalize a branch from
  // before they joined (its host rewound it there): its one vote is a majority of that old set only.
  const { reg, m } = registryWithVault();
  const seeds = [key32('second member'), key32('third member')];
  const keys = seeds.map((seed) => ed25519PublicFromSeed(seed));
  keys.forEach((k, i) =>
    assert.deepEqual(apply(reg, 4 + i, { signer: k, call: msg(registerMessage(k)) }).kinds, ['registered']),
  );
  const payloadAt = (setAt: number): VotePayload => ({
    shard: SHARD,
    number: 10n,
    hash: key32('block 10'),
    previousAnchor: new Uint8Array(32),
    parentchainProcessed: { number: setAt, hash: key32(`p${setAt}`) },
    authoritySetAt: setAt,
  });
  const anchorWith = (setAt: number, signers: { index: number; seed: Uint8Array }[]): Call =>
    msg({
      tag: 'anchor',
      value: {
        ...(({ number, hash, ...rest }) => ({ ...rest, sidechainNumber: number, sidechainHash: hash }))(
          payloadAt(setAt),
        ),
        votes: signers.map(({ index, seed }) => ({
          index,
          signature: ed25519Sign(seed, voteMessage(payloadAt(setAt))),
        })),
      },
    });
  const r = apply(reg, 8, { signer: m, call: anchorWith(2, [{ index: 0, seed: FIRST_MEMBER_SEED }]) });
  assert.deepEqual(r.kinds, ['anchorIgnored'], JSON.stringify(r.out));
  assert.match(r.out[0].detail, /1 votes of members now, of 3: no majority/);
  assert.equal(reg.data.lastAnchor, undefined);
  // The set that authored a later block, with two of its three votes: a majority of it and of the members now.
  const ok = apply(reg, 8, {
    signer: m,
    call: anchorWith(5, [
      { index: 0, seed: FIRST_MEMBER_SEED },
      { index: 2, seed: seeds[1] },
    ]),
  });
  assert.deepEqual(ok.kinds, ['anchor'], JSON.stringify(ok.out));
});

test('registry: a payout is proxy(vault, batchAll[transfer, remark(payout)]) by a member', () => {
  const { reg, m, vault } = registryWithVault();
  const ben = key32('beneficiary');
  const payout = (w: bigint) => msg({ tag: 'payout', value: { shard: SHARD, withdrawal: w } });
  const ok = apply(reg, 6, { signer: m, call: proxy(vault, batch([transfer(ben, 2_000n), payout(4n)])) });
  assert.deepEqual(ok.kinds, ['payout']);
  assert.deepEqual(ok.effects, [
    {
      parentchainNumber: 6,
      kind: EFFECT.payout,
      account: ben,
      amount: 2_000n,
      withdrawal: 4n,
      request: new Uint8Array(0),
    },
  ]);
  assertIgnored(
    apply(reg, 6, { signer: key32('outsider'), call: proxy(vault, batch([transfer(ben, 2_000n), payout(4n)])) }),
    /not made by a member through the vault/,
  );
  assertIgnored(
    apply(reg, 6, { signer: m, call: proxy(key32('not the vault'), batch([transfer(ben, 2_000n), payout(4n)])) }),
    /not made by a member through the vault/,
  );
  assertIgnored(
    apply(reg, 6, { signer: m, call: batch([transfer(ben, 2_000n), payout(4n)]) }),
    /not made by a member through the vault/,
  );
  // included but failed (the vault could not pay): the withdrawal is refunded on the sidechain
  const failed = apply(reg, 6, {
    signer: m,
    success: false,
    call: proxy(vault, batch([transfer(ben, 2_000n), payout(4n)])),
  });
  assert.deepEqual(failed.kinds, ['payout']);
  assert.match(failed.out[0].detail, /withdrawal 4 failed: refunded/);
  assert.deepEqual(failed.effects, [
    {
      parentchainNumber: 6,
      kind: EFFECT.payoutFailed,
      account: ben,
      amount: 2_000n,
      withdrawal: 4n,
      request: new Uint8Array(0),
    },
  ]);
  assertIgnored(
    apply(reg, 6, {
      signer: key32('outsider'),
      success: false,
      call: proxy(vault, batch([transfer(ben, 2_000n), payout(4n)])),
    }),
    /failed on the parentchain/,
  );
});

test('registry: a vault proxy is proxy(vault, batchAll[addProxy, remark(proxy)]) by a member, alone or after a transfer paying its deposit', () => {
  const { reg, m, vault } = registryWithVault();
  const adds = (d: Uint8Array, real = vault) =>
    proxy(real, batch([addProxy(d), msg({ tag: 'proxy', value: { shard: SHARD, delegate: d } })]));
  const [d1, d2, d3] = [key32('delegate 1'), key32('delegate 2'), key32('delegate 3')];
  assert.deepEqual(apply(reg, 6, { signer: m, call: adds(d1) }).kinds, ['proxy']);
  assert.deepEqual(
    apply(reg, 7, { signer: m, call: batch([transfer(vault, 1_000n), adds(d2)]) }).kinds,
    ['proxy'],
    'deposit paid in the same batch',
  );
  assert.ok(reg.isVaultProxy(d1) && reg.isVaultProxy(d2));
  assertIgnored(
    apply(reg, 8, { signer: key32('outsider'), call: batch([transfer(vault, 1_000n), adds(d3)]) }),
    /vault proxy not added by a member/,
  );
  assertIgnored(
    apply(reg, 8, { signer: m, call: batch([transfer(vault, 1_000n), adds(d3, key32('not the vault'))]) }),
    /vault proxy not added by a member/,
  );
  // only the deposit's transfer may come before it
  assertIgnored(
    apply(reg, 8, { signer: m, call: batch([remark(Uint8Array.of(1)), adds(d3)]) }),
    /vault proxy not added by a member/,
  );
  // the delegate named in the remark must be the one the extrinsic's bytes add
  const mismatched = proxy(vault, batch([addProxy(d1), msg({ tag: 'proxy', value: { shard: SHARD, delegate: d3 } })]));
  assertIgnored(
    apply(reg, 8, { signer: m, call: batch([transfer(vault, 1_000n), mismatched]) }),
    /vault proxy not added by a member through the vault/,
  );
  assert.ok(!reg.isVaultProxy(d3));
});

test("registry: a departed member's vault proxy is removed by proxy(vault, batchAll[removeProxy, refund to the signer, remark(unproxy)]) by a member", () => {
  const { reg, m, vault } = registryWithVault();
  const other = key32('member 2');
  apply(reg, 6, { signer: other, call: msg(registerMessage(other)) });
  const adds = (d: Uint8Array) =>
    proxy(vault, batch([addProxy(d), msg({ tag: 'proxy', value: { shard: SHARD, delegate: d } })]));
  // the batch that adds it pays its deposit into the vault: that much, and no more, may be refunded
  apply(reg, 7, { signer: m, call: batch([transfer(vault, 1_000n), adds(other)]) });
  assert.equal(reg.proxyDeposit(other), 1_000n);
  const removes = (
    d: Uint8Array,
    o: { real?: Uint8Array; refundTo?: Uint8Array; named?: Uint8Array; refund?: bigint } = {},
  ) =>
    proxy(
      o.real ?? vault,
      batch([
        removeProxy(d),
        transfer(o.refundTo ?? m, o.refund ?? 1_000n),
        msg({ tag: 'unproxy', value: { shard: SHARD, delegate: o.named ?? d } }),
      ]),
    );
  // a member's proxy stays
  assertIgnored(apply(reg, 8, { signer: m, call: removes(other) }), /is a member; its vault proxy stays/);
  assert.ok(reg.isVaultProxy(other));
  apply(reg, 9, { signer: other, call: msg({ tag: 'unregister', value: { shard: SHARD, signingKey: other } }) });
  assertIgnored(
    apply(reg, 10, { signer: key32('outsider'), call: removes(other, { refundTo: key32('outsider') }) }),
    /not removed by a member through the vault/,
  );
  assertIgnored(
    apply(reg, 10, { signer: m, call: removes(other, { real: key32('not the vault') }) }),
    /not removed by a member through the vault/,
  );
  assertIgnored(
    apply(reg, 10, { signer: m, call: removes(other, { refundTo: key32('someone else') }) }),
    /not removed by a member through the vault/,
  );
  // the delegate named in the remark must be the one the extrinsic's bytes remove
  assertIgnored(
    apply(reg, 10, { signer: m, call: removes(key32('another'), { named: other }) }),
    /not removed by a member through the vault/,
  );
  // a refund other than the recorded deposit takes funds out of the vault (or leaves the delegate's record wrong)
  assertIgnored(
    apply(reg, 10, { signer: m, call: removes(other, { refund: 1_001n }) }),
    /refunds 1001, not the recorded deposit 1000/,
  );
  assertIgnored(
    apply(reg, 10, { signer: m, call: removes(other, { refund: 999n }) }),
    /refunds 999, not the recorded deposit 1000/,
  );
  assert.ok(reg.isVaultProxy(other), 'nothing removed by the ignored extrinsics');
  assert.deepEqual(apply(reg, 10, { signer: m, call: removes(other) }).kinds, ['unproxy']);
  assert.equal(reg.proxyDeposit(other), 0n, 'the record goes with the proxy');
  assert.ok(!reg.isVaultProxy(other) && reg.isVaultProxy(m));
});

// =============================================================================================
// The view and its duties, through EnclaveCore

let alice: Account;
let bob: Account;
let charlie: Account;
before(async () => {
  alice = await devAccount('//Alice');
  bob = await devAccount('//Bob');
  charlie = await devAccount('//Charlie');
});

test('EnclaveCore in process: register, vault, reserve, shield, unshield, payout exactly once, invoke, anchor', async () => {
  const host = new Host(new FakeChain());
  const core = host.core;
  try {
    core.genesis([{ account: alice.publicKey, amount: 1_000n }], Date.now());
    assert.equal(
      codeOf(() => host.duties()),
      'NO_PARENTCHAIN',
    );
    const first = host.init();
    assert.deepEqual(
      [first.number, first.members, first.vault, first.reserveFunded, first.dutiesInFlight],
      [0, [], null, false, []],
    );
    host.import(...host.chain.blocks(2));
    // nobody is registered: this enclave may not author yet
    assert.equal(
      codeOf(() => core.propose({ slot: host.slot, timestampMs: Date.now(), maxCalls: 10 })),
      'NOT_AUTHORITY',
    );

    // 1. registration: a remark with a quote binding the signing key, peer id and addresses
    const [reg] = host.duties();
    assert.equal(reg.key, 'register');
    const regCall = decodeCall(reg.callData).call;
    assert.equal(regCall.kind, 'remark');
    const regMsg = decodeMessage(regCall.kind === 'remark' ? regCall.remark : new Uint8Array(0));
    assert.equal(regMsg?.tag, 'register');
    if (regMsg?.tag !== 'register') return;
    assert.deepEqual(
      [regMsg.value.signingKey, regMsg.value.shard, regMsg.value.peerId, regMsg.value.p2pAddresses],
      [host.key, SHARD, PEER, ADDRS],
    );
    const q = verifySimulatedQuote(regMsg.value.quote, {
      trustedAuthorities: [DEV_AUTHORITY_PUBLIC],
      allowedMeasurements: [MEASUREMENT],
    });
    assert.deepEqual(
      q.reportData,
      concatBytes(host.key, registrationUserData(SHARD, PEER, ADDRS, host.core.info().encryptionKey)),
    );
    host.sign(reg.callData);
    assert.deepEqual(host.info().dutiesInFlight, ['register']);
    assert.equal(
      codeOf(() => host.sign(reg.callData)),
      'DUTY_IN_FLIGHT',
    );
    assert.deepEqual(host.dutyKeys(), [], 'not offered while in flight');
    const registered = host.include(reg.callData);
    assert.deepEqual(
      registered.observations.map((o) => o.kind),
      ['registered'],
    );
    const afterReg = host.info();
    assert.deepEqual(
      afterReg.members.map((m) => [m.signingKey, m.registeredAt, m.registeredIndex, m.unregisteredAt]),
      [[host.key, 3, 1, null]],
    );
    assert.deepEqual(afterReg.dutiesInFlight, [], 'done');
    assert.equal(
      codeOf(() => host.sign(reg.callData)),
      'SIGNING_REFUSED',
      "a done duty's bytes are no longer signable",
    );

    // 2. the vault, then 3. its keep-alive reserve
    const [vaultDuty] = host.duties();
    assert.equal(vaultDuty.key, 'vault');
    assert.deepEqual(
      vaultDuty.callData,
      batchAllCall(IX, [createPureCall(IX), remarkCall(IX, encodeMessage({ tag: 'vault', value: { shard: SHARD } }))]),
    );
    const v = host.perform('vault');
    const vault = pureProxyAccount(host.key, v.block.number, 1);
    assert.deepEqual(host.info().vault, vault);
    const [reserveDuty] = host.duties();
    assert.deepEqual(
      reserveDuty.callData,
      batchAllCall(IX, [
        transferKeepAliveCall(IX, vault, ED),
        remarkCall(IX, encodeMessage({ tag: 'reserve', value: { shard: SHARD } })),
      ]),
    );
    host.perform('reserve');
    assert.equal(host.info().reserveFunded, true);
    assert.deepEqual(host.dutyKeys(), []);
    host.produce(); // the first block authored as a registered member

    // 4. a shield from a parentchain account credits the sealed recipient in the next block
    const payer = key32('parentchain payer');
    const shieldCall = batch([
      transfer(vault, 5n * UNIT),
      msg({
        tag: 'shield',
        value: { shard: SHARD, recipient: sealRecipient(bob.publicKey, SHARD, host.shieldingKey.publicKey) },
      }),
    ]);
    const shielded = host.import(host.chain.block([{ signer: payer, call: shieldCall }]));
    assert.deepEqual([shielded.effects, shielded.observations.map((o) => o.kind)], [1, ['shield']]);
    assert.equal(host.info().pendingEffects, 1);
    assert.equal(host.balance(bob), 0n, 'not before a block executes it');
    const p1 = host.produce();
    assert.deepEqual(p1.rejected, []);
    assert.equal(host.balance(bob), 5n * UNIT);
    assert.deepEqual([host.info().shieldedSupply, host.info().pendingEffects], [5n * UNIT, 0]);
    assert.equal(host.keptEffects(), 1, 'executed, but kept until an anchor makes the block that executed it final');

    // 5. an unshield burns and records a withdrawal
    const beneficiary = key32('parentchain beneficiary');
    const unshield = shield(
      signCall(bob, { tag: 'unshield', value: { from: bob.publicKey, beneficiary, amount: 2n * UNIT } }, 0, SHARD),
      host.shieldingKey,
      SHARD,
    );
    assert.equal((await core.submit([unshield], Date.now()))[0].status, 'ready');
    assert.equal(host.produce().included.length, 1);
    const burnBlock = core.status().headNumber;
    assert.equal(host.balance(bob), 3n * UNIT);
    assert.deepEqual([host.info().shieldedSupply, host.info().unpaidWithdrawals], [3n * UNIT, 1]);
    // 6. never paid while the burn's block is not final (a fork could abandon it)
    assert.equal(host.info().lastAnchor, null);
    assert.deepEqual(host.dutyKeys(), [], "the burn's block is not anchored: no payout");
    // an anchor below the burn does not make it final; it settles the shield its block executed
    const below = host.anchorCall(burnBlock - 1);
    host.sign(below);
    const stale = host.anchorCall(burnBlock); // built before the next anchor is seen: names no previous anchor
    assert.equal(host.nonces.get(hexKey(stale)), host.nonces.get(hexKey(below))! + 1, 'the next free nonce');
    assert.deepEqual(
      host.include(below).observations.map((o) => o.kind),
      ['anchor'],
    );
    assert.equal(host.keptEffects(), 0, "the shield's block is final: its effect is dropped");
    assert.deepEqual(host.dutyKeys(), [], 'anchored below the burn: still no payout');
    // anchors chain: one that does not follow the last anchor is ignored; the enclave builds none below it
    host.sign(stale);
    const unchained = host.include(stale).observations;
    assert.deepEqual(
      unchained.map((o) => o.kind),
      ['anchorIgnored'],
    );
    assert.match(unchained[0].detail, /does not follow the last anchor/);
    assert.equal(host.info().lastAnchor?.number, burnBlock - 1);
    assert.equal(
      codeOf(() => host.anchorCall(burnBlock - 1)),
      'ANCHOR_NOT_DESCENDANT',
    );
    assert.deepEqual(host.dutyKeys(), []);
    // the burn's block anchored: final, and the payout duty pays it exactly once
    host.anchor(burnBlock);
    assert.deepEqual(host.dutyKeys(), ['payout:0']);
    const [pay] = host.duties();
    assert.equal(pay.key, 'payout:0');
    const payoutMsg = remarkCall(IX, encodeMessage({ tag: 'payout', value: { shard: SHARD, withdrawal: 0n } }));
    assert.deepEqual(
      pay.callData,
      proxyCall(IX, vault, batchAllCall(IX, [transferKeepAliveCall(IX, beneficiary, 2n * UNIT), payoutMsg])),
    );
    host.sign(pay.callData);
    assert.equal(
      codeOf(() => host.sign(pay.callData)),
      'DUTY_IN_FLIGHT',
    );
    assert.deepEqual(host.dutyKeys(), []);
    assert.deepEqual(
      host.include(pay.callData).observations.map((o) => o.kind),
      ['payout'],
    );
    assert.deepEqual(host.info().dutiesInFlight, []);
    assert.equal(
      codeOf(() => host.sign(pay.callData)),
      'SIGNING_REFUSED',
      'paid: never signed again',
    );
    assert.deepEqual(host.dutyKeys(), [], 'seen paid, not yet settled: not offered');
    host.produce();
    assert.deepEqual([host.info().unpaidWithdrawals, host.info().pendingEffects], [0, 0]);
    assert.equal(host.keptEffects(), 1, 'the payout is kept (and looks done) until an anchor');
    assert.deepEqual(host.dutyKeys(), []);
    assert.equal(
      codeOf(() => host.sign(pay.callData)),
      'SIGNING_REFUSED',
    );

    // 7. an indirect invocation executes the shielded call it carries
    const t = buildTransfer(bob, { to: charlie.publicKey, amount: 500n, nonce: 1 }, host.shieldingKey, SHARD);
    const invoked = host.import(
      host.chain.block([{ signer: payer, call: msg({ tag: 'invoke', value: { shard: SHARD, request: t.request } }) }]),
    );
    assert.equal(invoked.effects, 1);
    const p2 = host.produce();
    assert.deepEqual([p2.included, p2.rejected], [[t.hash], []]);
    assert.deepEqual([host.balance(bob), host.balance(charlie)], [3n * UNIT - 500n, 500n]);

    // 8. anchors: signed without exactly-once tracking (immortal is fine), observed as the last anchor
    const head = core.status().headNumber;
    assert.equal(host.keptEffects(), 2, 'the payout and the invocation');
    const anchor = host.anchorCall(head);
    host.sign(anchor, null);
    host.sign(anchor); // again: a lost anchor may be re-sent
    assert.deepEqual(
      host.include(anchor).observations.map((o) => o.kind),
      ['anchor'],
    );
    assert.deepEqual(host.info().lastAnchor, {
      number: head,
      hash: core.status().headHash,
      parentchainNumber: host.chain.head.number,
    });
    assert.equal(host.keptEffects(), 0, 'settled by the anchor');
    assert.deepEqual(host.dutyKeys(), [], 'the payout settled: still never offered again');
    assert.equal(
      codeOf(() => host.sign(pay.callData)),
      'SIGNING_REFUSED',
    );
    assert.equal(
      codeOf(() => host.anchorCall(head)),
      'ANCHOR_NOT_DESCENDANT',
      'not above the last anchor',
    );
    assert.equal(
      codeOf(() => host.anchorCall(head + 100)),
      'UNKNOWN_BLOCK',
    );
  } finally {
    await host.close();
  }
});

test('admitPayload: only payloads that start with call bytes the enclave built, mortal for duties', async () => {
  const host = new Host(new FakeChain());
  try {
    assert.equal(
      codeOf(() => host.core.signExtrinsic(Uint8Array.of(1, 2, 3))),
      'NO_PARENTCHAIN',
    );
    host.init();
    host.import(...host.chain.blocks(3));
    const [reg] = host.duties();
    const refused = (payload: Uint8Array) => codeOf(() => host.core.signExtrinsic(payload));
    const genesis = host.chain.genesis;
    const birth = host.chain.head;
    assert.equal(refused(signingPayload(remarkCall(IX, te.encode('anything')), { genesis, birth })), 'SIGNING_REFUSED');
    assert.equal(
      refused(signingPayload(transferKeepAliveCall(IX, host.key, 10n ** 18n), { genesis, birth })),
      'SIGNING_REFUSED',
    );
    assert.equal(refused(reg.callData), 'SIGNING_REFUSED', 'the call alone is not a payload');
    assert.equal(
      refused(signingPayload(reg.callData.subarray(0, reg.callData.length - 1), { genesis, birth })),
      'SIGNING_REFUSED',
    );
    const flipped = Uint8Array.from(reg.callData, (v, i) => (i === 40 ? v ^ 1 : v));
    assert.equal(refused(signingPayload(flipped, { genesis, birth })), 'SIGNING_REFUSED');
    // immortal: not for a duty; for another chain (another genesis in its additional data): not at all
    const nonce = reg.nonce;
    assert.equal(refused(signingPayload(reg.callData, { genesis, birth: null, nonce })), 'DUTY_IMMORTAL');
    assert.equal(
      refused(signingPayload(reg.callData, { genesis: key32('other genesis'), birth, nonce })),
      'PARENTCHAIN_RUNTIME_MISMATCH',
    );
    assert.deepEqual(host.info().dutiesInFlight, [], 'refusals leave nothing in flight');
    host.sign(reg.callData);
    assert.deepEqual(host.info().dutiesInFlight, ['register']);
  } finally {
    await host.close();
  }
});

test('a signed duty is not offered or signed again until the light client passes its death, also across a restart', async () => {
  const chain = new FakeChain();
  const dataDir = tempDir();
  let host = new Host(chain, dataDir);
  try {
    host.init();
    host.import(...chain.blocks(5));
    // two offers of the registration (the second after an address change): signing one puts the duty in flight
    const [a] = host.duties();
    const [b] = host.core.parentchainDuties({ peerId: PEER, p2pAddresses: ['/ip4/10.0.0.7/tcp/30333'] });
    assert.notDeepEqual(a.callData, b.callData);
    const birth = chain.head; // #5: the transaction is valid in blocks 5..68
    host.sign(a.callData);
    assert.equal(
      codeOf(() => host.sign(b.callData)),
      'DUTY_IN_FLIGHT',
    );
    assert.equal(
      codeOf(() => host.sign(a.callData, birth, 128)),
      'DUTY_IN_FLIGHT',
    );

    // restart: the in-flight record is sealed; authorizations are not (the host must ask again)
    await host.close();
    host = new Host(chain, dataDir);
    const reopened = host.init();
    assert.deepEqual(reopened.dutiesInFlight, ['register']);
    assert.equal(reopened.number, 5);
    assert.deepEqual(host.dutyKeys(), []);
    assert.equal(
      codeOf(() => host.sign(a.callData)),
      'SIGNING_REFUSED',
    );

    host.import(...chain.blocks(62)); // #67
    assert.deepEqual(host.dutyKeys(), [], 'could still be included in #68');
    host.import(chain.block()); // #68: the last block it could be in
    assert.deepEqual(host.info().dutiesInFlight, ['register']);
    host.import(chain.block()); // #69 = birth + 64
    assert.deepEqual(host.info().dutiesInFlight, []);
    const [again] = host.duties();
    assert.equal(again.key, 'register');
    // re-signed with a birth the light client has not seen yet: its death is known once it is
    const ahead = chain.blocks(3); // #70..#72, not imported
    host.sign(again.callData, ahead[2]);
    host.import(...ahead, ...chain.blocks(63)); // up to #135 = 72 + 63
    assert.deepEqual(host.info().dutiesInFlight, ['register']);
    host.import(chain.block()); // #136 = 72 + 64
    assert.deepEqual(host.info().dutiesInFlight, []);
    // seen done before its death: done, never offered again
    const [third] = host.duties();
    host.sign(third.callData);
    assert.deepEqual(
      host.include(third.callData).observations.map((o) => o.kind),
      ['registered'],
    );
    assert.deepEqual([host.info().dutiesInFlight, host.info().members.length], [[], 1]);
    assert.equal(
      codeOf(() => host.sign(third.callData)),
      'SIGNING_REFUSED',
    );
  } finally {
    await host.close();
  }
});

test('a payout signed before a crash is never signed again: in flight after restart, done once seen', async () => {
  const chain = new FakeChain();
  const dataDir = tempDir();
  let host = new Host(chain, dataDir);
  try {
    host.init();
    const beneficiary = key32('beneficiary');
    await withWithdrawal(host, beneficiary);
    const snapshot = await host.core.snapshot();
    const [pay] = host.duties();
    assert.equal(pay.key, 'payout:0');
    host.sign(pay.callData);

    // crash and restart: state from the snapshot, the parentchain view from its sealed file
    const slot = host.slot; // the clock goes on: the next block's slot is after the snapshot head's
    await host.close();
    host = new Host(chain, dataDir);
    host.slot = slot;
    host.init();
    host.core.beginReplay(snapshot.sealed, false);
    await host.core.finishReplay();
    assert.equal(host.info().lastAnchor?.number, snapshot.number);
    assert.equal(
      host.core['finalNumber'](),
      BigInt(snapshot.number),
      "the sealed anchor: the burn's block is still final after the replay",
    );
    assert.deepEqual([host.info().unpaidWithdrawals, host.info().dutiesInFlight], [1, ['payout:0']]);
    assert.deepEqual(host.dutyKeys(), [], 'unpaid, but in flight: not offered');
    // the signed payout lands
    assert.deepEqual(
      host.include(pay.callData).observations.map((o) => o.kind),
      ['payout'],
    );
    assert.deepEqual(host.dutyKeys(), []);
    host.produce();
    assert.equal(host.info().unpaidWithdrawals, 0);
    host.import(...chain.blocks(70));
    assert.deepEqual(host.dutyKeys(), [], 'paid: never offered again');
  } finally {
    await host.close();
  }
});

test('a payout never included is offered again after its death; one the vault could not make is refunded', async () => {
  const chain = new FakeChain();
  const dataDir = tempDir();
  let host = new Host(chain, dataDir);
  try {
    host.core.genesis([], Date.now());
    host.init();
    host.import(chain.block());
    host.perform('register');
    const v = host.perform('vault');
    const vault = pureProxyAccount(host.key, v.block.number, 1);
    host.perform('reserve');
    host.import(
      chain.block([
        {
          signer: key32('payer'),
          call: batch([
            transfer(vault, 9n * UNIT),
            msg({
              tag: 'shield',
              value: { shard: SHARD, recipient: sealRecipient(bob.publicKey, SHARD, host.shieldingKey.publicKey) },
            }),
          ]),
        },
      ]),
    );
    // restart before a block executed the shield: the effect is sealed, still pending
    const snapshot = await host.core.snapshot();
    await host.close();
    host = new Host(chain, dataDir);
    host.init();
    host.core.beginReplay(snapshot.sealed, false);
    await host.core.finishReplay();
    assert.equal(host.info().pendingEffects, 1);
    host.produce();
    assert.equal(host.balance(bob), 9n * UNIT);

    await host.core.submit(
      [
        shield(
          signCall(
            bob,
            { tag: 'unshield', value: { from: bob.publicKey, beneficiary: key32('b'), amount: 4n * UNIT } },
            0,
            SHARD,
          ),
          host.shieldingKey,
          SHARD,
        ),
      ],
      Date.now(),
    );
    host.produce();
    assert.equal(host.balance(bob), 5n * UNIT);
    assert.deepEqual(host.dutyKeys(), [], "the burn's block is not final yet: no payout");
    assert.equal(host.keptEffects(), 1, 'the shield, executed but not yet final');
    host.anchor();
    assert.equal(host.keptEffects(), 0);
    const [pay] = host.duties();
    assert.equal(pay.key, 'payout:0');
    const birth = chain.head.number;
    host.sign(pay.callData);
    // never included (dropped by the pool, say): offered again once it can no longer be
    host.import(...chain.blocks(63));
    assert.deepEqual(host.dutyKeys(), []);
    host.import(chain.block());
    assert.equal(chain.head.number, birth + 64);
    assert.deepEqual(host.dutyKeys(), ['payout:0']);
    host.sign(pay.callData);
    // included but failed: done (refunded), neither offered nor signable again
    const failed = host.include(pay.callData, { success: false });
    assert.deepEqual(
      failed.observations.map((o) => o.kind),
      ['payout'],
    );
    assert.deepEqual(host.info().dutiesInFlight, []);
    assert.deepEqual(host.dutyKeys(), []);
    assert.equal(
      codeOf(() => host.sign(pay.callData)),
      'SIGNING_REFUSED',
    );
    host.produce();
    assert.equal(host.balance(bob), 9n * UNIT);
    assert.deepEqual([host.info().unpaidWithdrawals, host.info().shieldedSupply], [0, 9n * UNIT]);
    assert.deepEqual(host.dutyKeys(), []);
  } finally {
    await host.close();
  }
});

test('a payout included while the host misreports where its call starts is never offered or signed again, even past its death', async () => {
  const chain = new FakeChain();
  const host = new Host(chain);
  try {
    host.init();
    await withWithdrawal(host, key32('beneficiary'));
    const [pay] = host.duties();
    assert.equal(pay.key, 'payout:0');
    host.sign(pay.callData);
    // Included, but the host names a wrong call offset: the registry cannot read it as a payout.
    const b = chain.block([{ signer: host.key, call: decodeCall(pay.callData), nonce: pay.nonce }]);
    b.outcomes[0].callOffset -= 1;
    assertIgnoredImport(host.import(b), /./);
    assert.deepEqual(host.info().dutiesInFlight, [], 'its own bytes consumed its nonce: done');
    assert.equal(host.info().accountNonce, pay.nonce + 1);
    host.import(...chain.blocks(70)); // far past its death
    host.produce();
    assert.equal(host.info().unpaidWithdrawals, 1, 'the sidechain never saw it paid');
    assert.deepEqual(host.dutyKeys(), [], 'yet it is never offered again');
    for (const nonce of [pay.nonce, pay.nonce + 1, pay.nonce + 7])
      assert.equal(
        codeOf(() => host.sign(pay.callData, chain.head, 64, nonce)),
        'SIGNING_REFUSED',
        `nonce ${nonce}`,
      );
    // Across a restart too: the inclusion is sealed.
    await host.close();
    const again = new Host(chain, host.dataDir);
    try {
      again.init();
      assert.deepEqual(again.dutyKeys(), []);
    } finally {
      await again.close();
    }
  } finally {
    await host.close();
  }
});

test('a payout is signed only at its bound nonce until another extrinsic consumes that nonce; then it takes a new one and is paid once', async () => {
  const chain = new FakeChain();
  const dataDir = tempDir();
  let host = new Host(chain, dataDir);
  try {
    host.init();
    await withWithdrawal(host, key32('beneficiary'));
    // A restart: the enclave forgets the nonces of unsigned offers (only signatures are sealed).
    const snapshot = await host.core.snapshot();
    const slot = host.slot;
    await host.close();
    host = new Host(chain, dataDir);
    host.slot = slot;
    host.init();
    host.core.beginReplay(snapshot.sealed, false);
    await host.core.finishReplay();
    host.produce();
    // The host asks for two anchors, then for the duties: none is signed yet, so all name the free nonce n.
    const anchor = host.anchorCall(host.core.status().headNumber);
    host.produce();
    const other = host.anchorCall(host.core.status().headNumber);
    const [pay] = host.duties();
    const n = pay.nonce;
    assert.deepEqual([host.nonces.get(hexKey(anchor)), host.nonces.get(hexKey(other))], [n, n]);
    host.sign(anchor, null); // immortal: it can be included at any time
    host.sign(pay.callData);
    assert.equal(
      codeOf(() => host.sign(other)),
      'DUTY_WRONG_NONCE',
      'once bound to the payout, n is signed for no other',
    );
    // Withheld past the payout's death: offered again, at n only.
    host.import(...chain.blocks(64));
    assert.deepEqual(
      host.duties().map((d) => [d.key, d.nonce]),
      [['payout:0', n]],
    );
    assert.equal(
      codeOf(() => host.sign(pay.callData, chain.head, 64, n + 1)),
      'DUTY_WRONG_NONCE',
    );
    assert.equal(
      codeOf(() => host.sign(pay.callData, chain.head, 64, n - 1)),
      'DUTY_WRONG_NONCE',
      'consumed',
    );
    // Nothing else is signed at the payout's nonce, and anchors are given another.
    host.produce();
    const next = host.anchorCall(host.core.status().headNumber);
    assert.equal(host.nonces.get(hexKey(next)), n + 1);
    assert.equal(
      codeOf(() => host.sign(next, chain.head, 64, n)),
      'DUTY_WRONG_NONCE',
      'held by the payout',
    );
    host.sign(pay.callData); // at n
    // The host includes the first anchor at n instead: no signature of the payout can be included any more.
    assert.deepEqual(
      host.include(anchor, { nonce: n }).observations.map((o) => o.kind),
      ['anchor'],
    );
    assert.deepEqual(host.info().dutiesInFlight, [], 'its nonce is gone');
    const [repay] = host.duties();
    assert.equal(repay.key, 'payout:0');
    assert.notEqual(repay.nonce, n);
    assert.equal(
      codeOf(() => host.sign(pay.callData, chain.head, 64, n)),
      'DUTY_WRONG_NONCE',
      'n is consumed',
    );
    host.sign(repay.callData);
    assert.deepEqual(
      host.include(repay.callData, { nonce: repay.nonce }).observations.map((o) => o.kind),
      ['payout'],
    );
    host.produce();
    assert.equal(host.info().unpaidWithdrawals, 0);
    host.import(...chain.blocks(70));
    assert.deepEqual(host.dutyKeys(), []);
    assert.equal(
      codeOf(() => host.sign(repay.callData)),
      'SIGNING_REFUSED',
    );
  } finally {
    await host.close();
  }
});

test("a restart keeps a payout's sealed nonce: offered again at it after its death, refused at any other", async () => {
  const chain = new FakeChain();
  const dataDir = tempDir();
  let host = new Host(chain, dataDir);
  try {
    host.init();
    await withWithdrawal(host, key32('beneficiary'));
    const snapshot = await host.core.snapshot();
    const [pay] = host.duties();
    const n = pay.nonce;
    host.sign(pay.callData);
    const slot = host.slot;
    await host.close();
    host = new Host(chain, dataDir);
    host.slot = slot;
    host.init();
    host.core.beginReplay(snapshot.sealed, false);
    await host.core.finishReplay();
    assert.deepEqual(host.info().dutiesInFlight, ['payout:0']);
    assert.equal(host.info().accountNonce, n, 'what the verified blocks showed before the restart');
    host.import(...chain.blocks(64)); // past its death, never included
    const [again] = host.duties();
    assert.deepEqual([again.key, again.nonce], ['payout:0', n]);
    assert.equal(
      codeOf(() => host.sign(again.callData, chain.head, 64, n + 1)),
      'DUTY_WRONG_NONCE',
    );
    host.sign(again.callData);
    assert.deepEqual(
      host.include(again.callData).observations.map((o) => o.kind),
      ['payout'],
    );
    host.produce();
    assert.deepEqual([host.info().unpaidWithdrawals, host.dutyKeys()], [0, []]);
  } finally {
    await host.close();
  }
});

test('a payout in flight in a view sealed before nonces were bound stays in flight, and is seen done from its own bytes', async () => {
  const chain = new FakeChain();
  const dataDir = tempDir();
  let host = new Host(chain, dataDir);
  try {
    host.init();
    await withWithdrawal(host, key32('beneficiary'));
    const snapshot = await host.core.snapshot();
    const [pay] = host.duties();
    host.sign(pay.callData);
    const slot = host.slot;
    await host.close();
    // Rewrite the sealed view in the layout before nonces: in-flight records without one, no account nonces.
    const path = join(dataDir, 'enclave', 'parentchain.sealed');
    const sealer = Sealer.simulated(dataDir, MEASUREMENT);
    const envelope = ViewEnvelope.dec(sealer.unseal(VIEW_LABEL, new Uint8Array(readFileSync(path))));
    const view = SealedViewV3.enc(SealedView.dec(envelope.view)); // the encoder drops what V3 has not
    writeFileSync(path, sealer.seal('signer', VIEW_LABEL, ViewEnvelope.enc({ ...envelope, view })));
    host = new Host(chain, dataDir);
    host.slot = slot;
    host.init();
    host.core.beginReplay(snapshot.sealed, false);
    await host.core.finishReplay();
    assert.deepEqual([host.info().dutiesInFlight, host.info().accountNonce], [['payout:0'], 0], 'nonce unknown');
    host.import(...chain.blocks(3));
    assert.deepEqual([host.info().dutiesInFlight, host.dutyKeys()], [['payout:0'], []]);
    // Included at a nonce the view never bound, with a wrong call offset from the host: done all the same.
    const b = chain.block([{ signer: host.key, call: decodeCall(pay.callData), nonce: pay.nonce }]);
    b.outcomes[0].callOffset -= 1;
    assertIgnoredImport(host.import(b), /./);
    host.import(...chain.blocks(70));
    assert.deepEqual([host.info().dutiesInFlight, host.dutyKeys()], [[], []]);
  } finally {
    await host.close();
  }
});

function assertIgnoredImport(r: { observations: Observation[] }, detail: RegExp): void {
  assert.deepEqual(
    r.observations.map((o) => o.kind),
    ['ignored'],
  );
  assert.match(r.observations[0].detail, detail);
}

/**
 * Registers, creates and funds the vault, shields 9 UNIT to //Bob and unshields 4 UNIT of it
 * (withdrawal 0), then anchors the burn's block so that the withdrawal is final and payable.
 */
async function withWithdrawal(host: Host, beneficiary: Uint8Array): Promise<Uint8Array> {
  host.core.genesis([], Date.now());
  host.import(host.chain.block());
  host.perform('register');
  const v = host.perform('vault');
  const vault = pureProxyAccount(host.key, v.block.number, 1);
  host.perform('reserve');
  const recipient = sealRecipient(bob.publicKey, SHARD, host.shieldingKey.publicKey);
  host.import(
    host.chain.block([
      {
        signer: key32('payer'),
        call: batch([transfer(vault, 9n * UNIT), msg({ tag: 'shield', value: { shard: SHARD, recipient } })]),
      },
    ]),
  );
  host.produce();
  await host.core.submit(
    [
      shield(
        signCall(bob, { tag: 'unshield', value: { from: bob.publicKey, beneficiary, amount: 4n * UNIT } }, 0, SHARD),
        host.shieldingKey,
        SHARD,
      ),
    ],
    Date.now(),
  );
  host.produce();
  assert.equal(host.info().unpaidWithdrawals, 1);
  assert.deepEqual(host.dutyKeys(), [], "the burn's block is not final yet: no payout");
  host.anchor();
  assert.deepEqual(host.dutyKeys(), ['payout:0'], 'final once anchored');
  return vault;
}

test("proxy calls take the runtime's account format from its metadata, and follow an upgrade", async () => {
  const chain = new FakeChain();
  const dataDir = tempDir();
  let host = new Host(chain, dataDir);
  try {
    host.init(DEV_METADATA); // statemine 900: pallet_proxy takes bare AccountId32s
    const beneficiary = key32('beneficiary');
    const vault = await withWithdrawal(host, beneficiary);
    const inner = batchAllCall(IX, [
      transferKeepAliveCall(IX, beneficiary, 4n * UNIT),
      remarkCall(IX, encodeMessage({ tag: 'payout', value: { shard: SHARD, withdrawal: 0n } })),
    ]);
    assert.deepEqual(host.duties()[0].callData, concatBytes(Uint8Array.of(42, 0), vault, Uint8Array.of(0), inner));
    const snapshot = await host.core.snapshot();
    await host.close();
    host = new Host(chain, dataDir);
    host.init(DEV_METADATA);
    host.core.beginReplay(snapshot.sealed, false);
    await host.core.finishReplay();
    assert.deepEqual(
      host.duties()[0].callData.subarray(0, 35),
      concatBytes(Uint8Array.of(42, 0), vault, Uint8Array.of(0)),
    );
    // The runtime is upgraded to a pallet_proxy with MultiAddress arguments (the header says so; the host
    // then hands the new runtime's metadata).
    host.import(chain.block([], RUNTIME_UPDATED_DIGEST));
    host.core.parentchainMetadata(devMetadata({ multiAddressProxy: true, specVersion: 901 }));
    assert.deepEqual(host.duties()[0].callData, proxyCall(IX, vault, inner));
    assert.deepEqual(host.duties()[0].callData.subarray(0, 3), Uint8Array.of(42, 0, 0));
  } finally {
    await host.close();
  }
});

test('a view sealed by an earlier build (call indices without removeProxy, no runtime) opens and is resealed', async () => {
  const chain = new FakeChain();
  const dataDir = tempDir();
  let host = new Host(chain, dataDir);
  try {
    host.init();
    host.import(chain.block());
    await host.close();
    // Rewrite the sealed file in the oldest layout: the indices end with addProxy, the registry has no proxy
    // deposits, and no runtime follows the indices.
    const path = join(dataDir, 'enclave', 'parentchain.sealed');
    const sealer = Sealer.simulated(dataDir, MEASUREMENT);
    const viewOf = (sealed: Uint8Array) => ViewEnvelope.dec(sealer.unseal(VIEW_LABEL, sealed)).view;
    const current = viewOf(new Uint8Array(readFileSync(path)));
    const view = SealedView.dec(current);
    const { removeProxy: _, ...v1Indices } = view.callIndices;
    const { proxyDeposits: __, ...v1Registry } = view.registry;
    const old = SealedViewV1.enc({ ...view, callIndices: v1Indices, registry: v1Registry });
    // An earlier build sealed the bare view, and had no signing guard.
    writeFileSync(path, sealer.seal('signer', 'parentchain', old));
    rmSync(join(dataDir, 'enclave', 'signing-guard.sealed'));
    host = new Host(chain, dataDir);
    // No runtime was sealed: the indices come from the metadata once, and are sealed with it.
    host.init();
    assert.deepEqual(host.core['parentchain']!.callIndices.removeProxy, { pallet: 42, call: 2 });
    assert.equal(host.info().number, 1, 'the rest of the view survived');
    const resealed = viewOf(new Uint8Array(readFileSync(path)));
    assert.deepEqual(resealed, current, 'resealed in the current layout');
    assert.equal(host.info().sealedRollback.rollbacks, 0, 'an upgrade is not a rollback');
  } finally {
    await host.close();
  }
});

test('a duty someone else did is no longer signable (the reserve funded by a third party)', async () => {
  const host = new Host(new FakeChain());
  try {
    host.init();
    host.import(host.chain.block());
    host.perform('register');
    const v = host.perform('vault');
    const vault = pureProxyAccount(host.key, v.block.number, 1);
    const [reserve] = host.duties();
    assert.equal(reserve.key, 'reserve');
    const funded = host.import(
      host.chain.block([
        {
          signer: key32('a friend'),
          call: batch([transfer(vault, ED), msg({ tag: 'reserve', value: { shard: SHARD } })]),
        },
      ]),
    );
    assert.deepEqual(
      funded.observations.map((o) => o.kind),
      ['reserve'],
    );
    assert.deepEqual(host.dutyKeys(), []);
    assert.equal(
      codeOf(() => host.sign(reserve.callData)),
      'SIGNING_REFUSED',
    );
  } finally {
    await host.close();
  }
});

test('two enclaves derive the same registry; only the first member creates the vault and pays', async () => {
  const chain = new FakeChain();
  const a = new Host(chain);
  const b = new Host(chain);
  try {
    a.init();
    b.init();
    const both = (...blocks: Block[]) => [a.import(...blocks), b.import(...blocks)];
    both(chain.block());
    const [ra] = a.duties();
    const [rb] = b.duties();
    a.sign(ra.callData);
    b.sign(rb.callData);
    // both registrations in one block, b's first
    const blk = chain.block([
      { signer: b.key, call: decodeCall(rb.callData) },
      { signer: a.key, call: decodeCall(ra.callData) },
    ]);
    both(blk);
    for (const h of [a, b])
      assert.deepEqual(
        h.info().members.map((m) => hexKey(m.signingKey)),
        [hexKey(b.key), hexKey(a.key)],
      );
    assert.deepEqual(a.dutyKeys(), [], 'not the first member');
    const [vd] = b.duties();
    assert.equal(vd.key, 'vault');
    b.sign(vd.callData);
    both(chain.block([{ signer: b.key, call: decodeCall(vd.callData) }]));
    assert.deepEqual(a.info().vault, pureProxyAccount(b.key, chain.head.number, 1));
    assert.deepEqual(b.info().vault, a.info().vault);
    // a member's own bytes do not authorize the other enclave
    assert.equal(
      codeOf(() => a.sign(vd.callData)),
      'SIGNING_REFUSED',
    );
    // b (the creator) is the vault's only proxy; it adds a, so a could pay out later
    const pd = b.duties().find((d) => d.key.startsWith('proxy:'));
    assert.ok(pd, 'b offers to make a a vault proxy');
    assert.equal(pd.key, `proxy:${hexKey(a.key)}`);
    // pallet_proxy reserves the new proxy's deposit from the vault: b pays it in, in the same batch
    const vault = b.info().vault!;
    const addA = proxyCall(
      IX,
      vault,
      batchAllCall(IX, [
        addProxyCall(IX, a.key),
        remarkCall(IX, encodeMessage({ tag: 'proxy', value: { shard: SHARD, delegate: a.key } })),
      ]),
    );
    assert.deepEqual(pd.callData, batchAllCall(IX, [transferKeepAliveCall(IX, vault, PROXY_FACTOR), addA]));
    b.sign(pd.callData);
    both(chain.block([{ signer: b.key, call: decodeCall(pd.callData) }]));
    for (const h of [a, b]) assert.ok(h.core['parentchain']!.registry.isVaultProxy(a.key));
    assert.ok(!b.duties().some((d) => d.key.startsWith('proxy:')), 'done once seen');
    // the same extrinsic signed by a non-member is ignored
    const c = key32('not a member');
    both(
      chain.block([
        {
          signer: c,
          call: decodeCall(
            proxyCall(
              IX,
              b.info().vault!,
              batchAllCall(IX, [
                addProxyCall(IX, c),
                remarkCall(IX, encodeMessage({ tag: 'proxy', value: { shard: SHARD, delegate: c } })),
              ]),
            ),
          ),
        },
      ]),
    );
    assert.ok(!a.core['parentchain']!.registry.isVaultProxy(c));

    // a leaves: b removes it as a vault proxy, and takes back the deposit the removal frees in the vault
    const leave = a.unregisterCall();
    a.sign(leave);
    both(chain.block([{ signer: a.key, call: decodeCall(leave) }]));
    const ud = b.duties().find((d) => d.key.startsWith('unproxy:'));
    assert.ok(ud, 'b offers to remove the departed a');
    assert.equal(ud.key, `unproxy:${hexKey(a.key)}`);
    const unproxyMsg = remarkCall(IX, encodeMessage({ tag: 'unproxy', value: { shard: SHARD, delegate: a.key } }));
    assert.deepEqual(
      ud.callData,
      proxyCall(
        IX,
        vault,
        batchAllCall(IX, [removeProxyCall(IX, a.key), transferKeepAliveCall(IX, b.key, PROXY_FACTOR), unproxyMsg]),
      ),
    );
    b.sign(ud.callData);
    both(chain.block([{ signer: b.key, call: decodeCall(ud.callData) }]));
    for (const h of [a, b])
      assert.ok(
        !h.core['parentchain']!.registry.isVaultProxy(a.key) && h.core['parentchain']!.registry.isVaultProxy(b.key),
      );
    assert.ok(!b.duties().some((d) => d.key.startsWith('unproxy:')), 'done once seen');
  } finally {
    await a.close();
    await b.close();
  }
});

test('the view: a bad block stops the import after the verified prefix; another genesis is refused', async () => {
  const chain = new FakeChain();
  const dataDir = tempDir();
  let host = new Host(chain, dataDir);
  try {
    host.init();
    const [b1, b2, b3] = chain.blocks(3);
    const forged = { ...b2, extrinsics: [inherent(99)] };
    assert.equal(
      codeOf(() => host.import(b1, forged, b3)),
      'PARENTCHAIN_BAD_BODY',
    );
    assert.equal(host.info().number, 1);
    const noSuch = { ...b2, outcomes: [{ index: 5, success: true, callOffset: 0 }] };
    assert.equal(
      codeOf(() => host.import(noSuch)),
      'PARENTCHAIN_BAD_BODY',
    );
    assert.equal(host.info().number, 1, 'a block is applied whole or not at all');
    host.import(b2, b3);
    await host.close();
    host = new Host(chain, dataDir);
    assert.equal(
      codeOf(() =>
        host.core.parentchainInit({
          genesisHash: key32('another chain'),
          metadata: METADATA,
          existentialDeposit: ED,
          proxyDepositFactor: PROXY_FACTOR,
        }),
      ),
      'PARENTCHAIN_GENESIS_MISMATCH',
    );
    assert.equal(host.init().number, 3);
  } finally {
    await host.close();
  }
});

test('the view: a block whose extrinsic carries a message for our shard but came without its outcome is refused', async () => {
  const chain = new FakeChain();
  const host = new Host(chain, tempDir());
  try {
    host.init();
    const invoke = msg({ tag: 'invoke', value: { shard: SHARD, request: Uint8Array.of(1, 2, 3) } });
    const b1 = chain.block([{ signer: key32('a'), call: invoke }]);
    const hiding = { ...b1, outcomes: [] };
    assert.equal(
      codeOf(() => host.import(hiding)),
      'PARENTCHAIN_HIDDEN_EXTRINSIC',
    );
    assert.equal(host.info().number, 0, 'nothing was applied');
    host.import(b1);
    assert.equal(host.info().number, 1);
    // another shard's messages need no outcome at all
    const foreign = chain.block([
      { signer: key32('a'), call: msg({ tag: 'invoke', value: { shard: OTHER_SHARD, request: Uint8Array.of(1) } }) },
    ]);
    host.import({ ...foreign, outcomes: [] });
    assert.equal(host.info().number, 2);
  } finally {
    await host.close();
  }
});

// =============================================================================================
// Issue 18 item 1: the enclave decodes the verified extrinsics itself, so no extrinsic anyone posts (of any size,
// nesting or count) and no outcome the host reports stops the scan; item 6: the vault refunds only recorded deposits.

/** Imports as the enclave thread does: the params pass the boundary's schema first. */
function importThroughBoundary(host: Host, ...blocks: Block[]) {
  const parsed = enclaveApi.parentchainImport.params.parse({ blocks });
  return host.core.parentchainImport(parsed.blocks);
}

/** A registered member with its vault and reserve, having authored a first block. */
function memberWithVault(): { host: Host; vault: Uint8Array } {
  const host = new Host(new FakeChain());
  host.core.genesis([], Date.now());
  host.init();
  host.import(host.chain.block());
  host.perform('register');
  const v = host.perform('vault');
  host.perform('reserve');
  host.produce();
  return { host, vault: pureProxyAccount(host.key, v.block.number, 1) };
}

/** A shield of `amount` to `to` from a parentchain account, and whether it is credited once a block executes it. */
function shieldOf(host: Host, vault: Uint8Array, to: Account, amount: bigint): Call {
  return batch([
    transfer(vault, amount),
    msg({
      tag: 'shield',
      value: { shard: SHARD, recipient: sealRecipient(to.publicKey, SHARD, host.shieldingKey.publicKey) },
    }),
  ]);
}
function assertCredited(host: Host, to: Account, before: bigint, amount: bigint): void {
  host.produce();
  assert.equal(host.balance(to), before + amount, 'the shield is credited');
}

/** system.remark (call 0 of the system pallet) and utility.batch (call 0 of utility): not in the shard's call set. */
const systemRemark = (r: Uint8Array): Uint8Array =>
  concatBytes(Uint8Array.of(IX.remarkWithEvent.pallet, 0), compact.enc(r.length), r);
const utilityBatch = (calls: Uint8Array[]): Uint8Array =>
  concatBytes(Uint8Array.of(IX.batchAll.pallet, 0), compact.enc(calls.length), ...calls);
/** Our magic, version 1, an unknown tag, then the shard id (what //Eve posted). */
const eveRemark = concatBytes(te.encode('vldtr'), Uint8Array.of(1, 0xff), SHARD);

test('item 1: utility.batch of 299 remarks and one of ours is ignored, not a refused import; later shields credit', async () => {
  const { host, vault } = memberWithVault();
  try {
    const eve = key32('//Eve');
    const before = host.info().number;
    const attack = {
      bytes: utilityBatch([
        ...Array.from({ length: 299 }, () => systemRemark(Uint8Array.of(0))),
        systemRemark(eveRemark),
      ]),
    };
    const r = importThroughBoundary(host, host.chain.block([{ signer: eve, call: attack }]));
    assert.deepEqual(
      r.observations.map((o) => o.kind),
      ['ignored'],
    );
    assert.match(r.observations[0].detail, /none of the calls the shard accepts/);
    assert.equal(host.info().number, before + 1, 'the light client advanced');
    // the same remark alone (a message of ours with an unknown tag) is nothing: no effect, no error
    const alone = importThroughBoundary(host, host.chain.block([{ signer: eve, call: remark(eveRemark) }]));
    assert.deepEqual([alone.effects, alone.number], [0, before + 2]);
    const s = importThroughBoundary(
      host,
      host.chain.block([{ signer: eve, call: shieldOf(host, vault, bob, 7n * UNIT) }]),
    );
    assert.deepEqual(
      s.observations.map((o) => o.kind),
      ['shield'],
    );
    assertCredited(host, bob, 0n, 7n * UNIT);
  } finally {
    await host.close();
  }
});

test('item 1: nested batches, a batchAll of 10,000 calls, a remark of megabytes, blocks full of magic remarks', async () => {
  const { host, vault } = memberWithVault();
  try {
    const eve = key32('//Eve');
    const invoke = msg({ tag: 'invoke', value: { shard: SHARD, request: Uint8Array.of(1, 2, 3) } });
    let number = host.info().number;
    const next = (...blocks: Block[]) => {
      const r = importThroughBoundary(host, ...blocks);
      number += blocks.length;
      assert.equal(r.number, number, 'the light client advanced');
      return r;
    };
    // nesting deeper than any shape of ours: ignored (the decoder stops at depth 4)
    let nested = invoke;
    for (let i = 0; i < 5; i++) nested = batch([nested]);
    const deep = next(host.chain.block([{ signer: eve, call: nested }]));
    assert.deepEqual([deep.effects, deep.observations.map((o) => o.kind)], [0, ['ignored']]);
    // within depth 4 it is read (an invocation counts wherever it is)
    const shallow = next(host.chain.block([{ signer: eve, call: batch([batch([batch([invoke])])]) }]));
    assert.deepEqual(
      shallow.observations.map((o) => o.kind),
      ['invoke'],
    );
    // a batchAll of 10,000 remarks and ours: decoded in one pass
    const big = batch([...Array.from({ length: 10_000 }, () => remark(Uint8Array.of(0))), invoke]);
    assert.deepEqual(
      next(host.chain.block([{ signer: eve, call: big }])).observations.map((o) => o.kind),
      ['invoke'],
    );
    // a batch that claims more calls than its bytes could hold is refused before anything is allocated
    const claims = {
      bytes: concatBytes(Uint8Array.of(IX.batchAll.pallet, IX.batchAll.call), compact.enc(2 ** 30), invoke.bytes),
    };
    assert.deepEqual(
      next(host.chain.block([{ signer: eve, call: claims }])).observations.map((o) => o.kind),
      ['ignored'],
    );
    // a remark of 4 MB carrying our magic and shard
    const huge = remark(concatBytes(eveRemark, new Uint8Array(4 * 1024 * 1024)));
    assert.equal(next(host.chain.block([{ signer: eve, call: huge }])).effects, 0);
    // 2,000 magic remarks for another shard (the host may send their outcomes or not), then 2,000 naming ours
    const foreign = msg({ tag: 'invoke', value: { shard: OTHER_SHARD, request: Uint8Array.of(1) } });
    const full = host.chain.block(Array.from({ length: 2_000 }, () => ({ signer: eve, call: foreign })));
    assert.equal(next({ ...full, outcomes: full.outcomes.slice(0, 1_000) }).effects, 0);
    const ours = host.chain.block(Array.from({ length: 2_000 }, () => ({ signer: eve, call: remark(eveRemark) })));
    assert.equal(next(ours).effects, 0);
    // and the scan goes on: a shield after all of it is credited
    const s = next(host.chain.block([{ signer: eve, call: shieldOf(host, vault, bob, 3n * UNIT) }]));
    assert.deepEqual(
      s.observations.map((o) => o.kind),
      ['shield'],
    );
    assertCredited(host, bob, 0n, 3n * UNIT);
  } finally {
    await host.close();
  }
});

test('item 1: the host lying about where the call starts cannot change what the enclave reads', async () => {
  const { host, vault } = memberWithVault();
  try {
    const eve = key32('//Eve');
    // Eve remarks the bytes of a shield call: the chain only stored a remark, nothing reached the vault
    const inner = shieldOf(host, vault, bob, 1_000n * UNIT);
    const b = host.chain.block([{ signer: eve, call: remark(inner.bytes) }]);
    const innerOffset = b.extrinsics[1].length - inner.bytes.length;
    const pointed = importThroughBoundary(host, {
      ...b,
      outcomes: [{ index: 1, success: true, callOffset: innerOffset }],
    });
    assert.deepEqual(pointed.effects, 0, 'the real call (a remark) is read, not the shield inside its bytes');
    host.produce();
    assert.equal(host.balance(bob), 0n);
    // into the signature: ignored, as if the host had reported a failure
    const b2 = host.chain.block([{ signer: eve, call: shieldOf(host, vault, bob, 2n * UNIT) }]);
    const sig = importThroughBoundary(host, { ...b2, outcomes: [{ index: 1, success: true, callOffset: 10 }] });
    assert.deepEqual([sig.effects, sig.observations.map((o) => o.kind)], [0, ['ignored']]);
    assert.match(sig.observations[0].detail, /inside the signature/);
    // past the end (what a host sends for an extrinsic it could not decode): the enclave finds the call itself
    const b3 = host.chain.block([{ signer: eve, call: shieldOf(host, vault, bob, 2n * UNIT) }]);
    const far = importThroughBoundary(host, { ...b3, outcomes: [{ index: 1, success: true, callOffset: 1e9 }] });
    assert.deepEqual(
      far.observations.map((o) => o.kind),
      ['shield'],
    );
    assertCredited(host, bob, 0n, 2n * UNIT);
  } finally {
    await host.close();
  }
});

test('item 1: a withheld outcome refuses exactly that block; outcomes for other extrinsics are ignored', async () => {
  const { host, vault } = memberWithVault();
  try {
    const eve = key32('//Eve');
    const head = host.info().number;
    const b = host.chain.block([
      { signer: eve, call: remark(te.encode('hello')) },
      { signer: eve, call: shieldOf(host, vault, bob, 4n * UNIT) },
    ]);
    // the host withholds the shield's outcome
    assert.equal(
      codeOf(() => importThroughBoundary(host, { ...b, outcomes: [] })),
      'PARENTCHAIN_HIDDEN_EXTRINSIC',
    );
    assert.equal(host.info().number, head, 'nothing was applied');
    // two outcomes for one extrinsic, or one for an extrinsic that does not exist: a malformed block
    const twice = [...b.outcomes, { ...b.outcomes[1], success: false }];
    assert.equal(
      codeOf(() => importThroughBoundary(host, { ...b, outcomes: twice })),
      'PARENTCHAIN_BAD_BODY',
    );
    // outcomes for the inherent and a foreign remark are not looked at
    const extra = [
      { index: 0, success: false, callOffset: 0 },
      { index: 1, success: true, callOffset: 3 },
      b.outcomes[1],
    ];
    const r = importThroughBoundary(host, { ...b, outcomes: extra });
    assert.deepEqual([r.number, r.observations.map((o) => o.kind)], [head + 1, ['shield']]);
    assertCredited(host, bob, 0n, 4n * UNIT);
    // the schema bounds the outcomes by the extrinsics, not by anything inside a call
    assert.throws(() =>
      enclaveApi.parentchainImport.params.parse({
        blocks: [{ ...b, outcomes: Array.from({ length: 4 }, (_, i) => ({ index: i, success: true, callOffset: 0 })) }],
      }),
    );
  } finally {
    await host.close();
  }
});

test('item 6: the unproxy duty refunds the recorded deposit, whatever proxyDepositFactor the host starts the enclave with', async () => {
  const chain = new FakeChain();
  const a = new Host(chain);
  let b = new Host(chain);
  try {
    a.init();
    b.init();
    const both = (...blocks: Block[]) => [a.import(...blocks), b.import(...blocks)];
    both(chain.block());
    const [rb] = b.duties();
    b.sign(rb.callData);
    both(chain.block([{ signer: b.key, call: decodeCall(rb.callData) }]));
    const [ra] = a.duties();
    a.sign(ra.callData);
    both(chain.block([{ signer: a.key, call: decodeCall(ra.callData) }]));
    for (const key of ['vault', 'reserve', `proxy:${hexKey(a.key)}`]) {
      const d = b.duties().find((x) => x.key === key)!;
      b.sign(d.callData);
      both(chain.block([{ signer: b.key, call: decodeCall(d.callData) }]));
    }
    const vault = b.info().vault!;
    assert.equal(b.core['parentchain']!.registry.proxyDeposit(a.key), PROXY_FACTOR, 'what the batch paid in');
    const leave = a.unregisterCall();
    a.sign(leave);
    both(chain.block([{ signer: a.key, call: decodeCall(leave) }]));
    // b's host restarts it claiming a huge deposit factor
    await b.close();
    b = new Host(chain, b.dataDir);
    b.core.parentchainInit({
      genesisHash: chain.genesis,
      metadata: METADATA,
      existentialDeposit: ED,
      proxyDepositFactor: 10n ** 30n,
    });
    const ud = b.duties().find((d) => d.key.startsWith('unproxy:'))!;
    const unproxyMsg = remarkCall(IX, encodeMessage({ tag: 'unproxy', value: { shard: SHARD, delegate: a.key } }));
    assert.deepEqual(
      ud.callData,
      proxyCall(
        IX,
        vault,
        batchAllCall(IX, [removeProxyCall(IX, a.key), transferKeepAliveCall(IX, b.key, PROXY_FACTOR), unproxyMsg]),
      ),
    );
    // an unproxy refunding more is ignored by every registry
    const greedy = proxyCall(
      IX,
      vault,
      batchAllCall(IX, [removeProxyCall(IX, a.key), transferKeepAliveCall(IX, b.key, PROXY_FACTOR + 1n), unproxyMsg]),
    );
    for (const r of both(chain.block([{ signer: b.key, call: decodeCall(greedy) }])))
      assert.deepEqual(
        r.observations.map((o) => o.kind),
        ['ignored'],
      );
    assert.ok(b.core['parentchain']!.registry.isVaultProxy(a.key));
    b.sign(ud.callData);
    for (const r of both(chain.block([{ signer: b.key, call: decodeCall(ud.callData) }])))
      assert.deepEqual(
        r.observations.map((o) => o.kind),
        ['unproxy'],
      );
  } finally {
    await a.close();
    await b.close();
  }
});

test('item 6: a view sealed before deposits were recorded opens with deposit 0 for its vault proxies', async () => {
  const chain = new FakeChain();
  const dataDir = tempDir();
  let host = new Host(chain, dataDir);
  try {
    host.init();
    host.import(chain.block());
    await host.close();
    const path = join(dataDir, 'enclave', 'parentchain.sealed');
    const sealer = Sealer.simulated(dataDir, MEASUREMENT);
    // the view as the build before recorded deposits sealed it: the same envelope, the registry without deposits
    const envelope = ViewEnvelope.dec(sealer.unseal(VIEW_LABEL, new Uint8Array(readFileSync(path))));
    const view = SealedView.dec(envelope.view);
    const delegate = key32('added before the upgrade');
    const { proxyDeposits: _, ...v2Registry } = view.registry;
    const old = SealedViewV2.enc({ ...view, registry: { ...v2Registry, vaultProxies: [delegate] } });
    writeFileSync(path, sealer.seal('signer', VIEW_LABEL, ViewEnvelope.enc({ ...envelope, view: old })));
    host = new Host(chain, dataDir);
    host.init();
    const reg = host.core['parentchain']!.registry;
    assert.ok(reg.isVaultProxy(delegate));
    assert.equal(reg.proxyDeposit(delegate), 0n, 'never a value from the host');
  } finally {
    await host.close();
  }
});

test('offline replay: the sealed registry loads without a chain and names the registered authors', async () => {
  const chain = new FakeChain();
  const a = new Host(chain);
  try {
    a.init();
    a.perform('register');
    const other = key32('another member');
    const m = registerMessage(other);
    a.import(chain.block([{ signer: other, call: msg(m) }]));
    assert.equal(a.info().members.length, 2);
  } finally {
    await a.close();
  }
  const offline = EnclaveCore.open({
    dataDir: a.dataDir,
    shard: SHARD,
    shardPolicy: POLICY,
    dev: true, // the test policy trusts the dev authority; the chain is not the dev chain
    workers: 0,
    pool: POOL,
    authorities: [],
  });
  const fresh = EnclaveCore.open({
    dataDir: tempDir(),
    shard: SHARD,
    shardPolicy: POLICY,
    dev: true, // the test policy trusts the dev authority; the chain is not the dev chain
    workers: 0,
    pool: POOL,
    authorities: [],
  });
  try {
    assert.equal(offline['head'].isKnownAuthor(key32('another member')), false, 'unknown before loading');
    assert.equal(offline.parentchainLoad(), true);
    assert.equal(offline['head'].isKnownAuthor(key32('another member')), true);
    assert.equal(offline['head'].isKnownAuthor(key32('never registered')), false);
    assert.equal(fresh.parentchainLoad(), false);
  } finally {
    await offline.close();
    await fresh.close();
  }
});

test('provisioning: a registered enclave gets the shard secrets from the first member, end to end; every refusal has its code', async () => {
  const chain = new FakeChain();
  const a = new Host(chain);
  const b = new Host(chain);
  for (const h of [a, b]) h.init();
  const ra = a.perform('register');
  b.import(ra.block);
  const now = () => Date.now();
  type Outcome = { ok: boolean; code?: string; verification: string | null };
  const flip = (x: Uint8Array, i: number) => Uint8Array.from(x, (v, j) => (j === i ? v ^ 1 : v));
  const refusal = (o: Outcome) => (o.ok ? 'ok' : o.code);
  assert.equal(a.core.holdsShardSecrets(), true, 'the first member made the shard secrets');
  assert.equal(b.core.holdsShardSecrets(), false);
  assert.notDeepEqual(b.core.info().shieldingKey, a.core.info().shieldingKey);

  // B is not registered yet: refused; B cannot serve either (it holds no shard secrets)
  const early = a.core.provisionServe(b.core.provisionRequest(now()), now());
  assert.equal(refusal(early), 'PROVISION_UNREGISTERED');
  assert.equal(early.verification, 'PROVISION_UNREGISTERED');
  enclaveApi.provisionServe.result.parse(early);
  assert.equal(refusal(b.core.provisionServe(a.core.provisionRequest(now()), now())), 'PROVISION_NOT_READY');

  const [d] = b.duties().filter((x) => x.key === 'register');
  b.sign(d.callData);
  const rb = b.include(d.callData);
  a.import(rb.block);
  assert.equal(a.info().members.length, 2);

  // refusals on the provider's side
  const req = b.core.provisionRequest(now());
  const r = ProvisionRequest.dec(req);
  const other = (change: Partial<typeof r>) => ProvisionRequest.enc({ ...r, ...change });
  assert.equal(refusal(a.core.provisionServe(req.subarray(1), now())), 'PROVISION_MALFORMED');
  assert.equal(refusal(a.core.provisionServe(other({ shard: OTHER_SHARD }), now())), 'PROVISION_WRONG_SHARD');
  // the host swaps in its own ephemeral key: the quote no longer binds the request
  assert.equal(
    refusal(a.core.provisionServe(other({ ephemeral: x25519Generate().publicKey }), now())),
    'PROVISION_FORGED_QUOTE',
  );
  assert.equal(refusal(a.core.provisionServe(other({ quote: flip(r.quote, 40) }), now())), 'PROVISION_FORGED_QUOTE');
  const rogue = simulatedProvider(MEASUREMENT, SIM_SIGNER_ID, key32('rogue authority'));
  assert.equal(
    refusal(a.core.provisionServe(other({ quote: rogue.quote(r.quote.subarray(65, 129)) }), now())),
    'PROVISION_FORGED_QUOTE',
  );
  // a quote from other enclave code, correctly bound to B's request
  const binding = ProvisionRequestBinding(r);
  const otherCode = simulatedProvider(key32('other enclave code'), SIM_SIGNER_ID);
  assert.equal(
    refusal(a.core.provisionServe(other({ quote: otherCode.quote(concatBytes(b.key, binding)) }), now())),
    'PROVISION_WRONG_MEASUREMENT',
  );
  // too old a request (its quote is fresh, the request time is not)
  assert.equal(refusal(a.core.provisionServe(b.core.provisionRequest(now() - 10 * 60_000), now())), 'PROVISION_STALE');

  // the good request: answered once, refused as a replay after that
  const served = a.core.provisionServe(req, now());
  assert.equal(refusal(served), 'ok');
  assert.equal(served.verification, 'ok');
  enclaveApi.provisionServe.result.parse(served);
  assert.equal(refusal(a.core.provisionServe(req, now())), 'PROVISION_REPLAYED');
  if (!served.ok) return;

  // refusals on the requester's side: an unknown request, a tampered answer
  const resp = ProvisionResponse.dec(served.response);
  assert.equal(
    refusal(await b.core.provisionAccept(a.core.provisionRequest(now()), served.response, now())),
    'PROVISION_UNEXPECTED',
  );
  assert.equal(
    refusal(
      await b.core.provisionAccept(
        req,
        ProvisionResponse.enc({ ...resp, ciphertext: flip(resp.ciphertext, 3) }),
        now(),
      ),
    ),
    'PROVISION_FORGED_QUOTE',
  );
  assert.equal(b.core.holdsShardSecrets(), false, 'nothing installed');

  const accepted = await b.core.provisionAccept(req, served.response, now());
  assert.equal(refusal(accepted), 'ok');
  enclaveApi.provisionAccept.result.parse(accepted);
  assert.deepEqual(b.core.info().shieldingKey, a.core.info().shieldingKey);
  assert.equal(b.core.info().secretsOrigin, 'provisioned');
  assert.equal(b.core.holdsShardSecrets(), true);
  assert.equal(
    refusal(await b.core.provisionAccept(req, served.response, now())),
    'PROVISION_UNEXPECTED',
    'one answer per request',
  );
  // B now decrypts what A's clients send, and the secrets survive a restart (sealed, never in the clear)
  const t = buildTransfer(bob, { to: charlie.publicKey, amount: 1n, nonce: 0 }, a.shieldingKey, SHARD);
  assert.equal(
    (await b.core.submit([t.request], now()))[0].code,
    'INSUFFICIENT_BALANCE',
    'decrypted and verified: only the balance is missing',
  );
  // Shields B's light client read before this point used B's own shielding key: B authors only once the
  // chain it follows has executed the parentchain past it (A's blocks did, with the right key).
  const g = a.core.genesis([{ account: bob.publicKey, amount: 5n }], now());
  b.core.commit(b.core.importBlock(g.block, now()).hash);
  assert.equal(
    codeOf(() => b.core.propose({ slot: 1n, timestampMs: now(), maxCalls: 10 })),
    'NOT_CAUGHT_UP',
  );
  const again = EnclaveCore.open({
    dataDir: b.dataDir,
    shard: SHARD,
    shardPolicy: POLICY,
    dev: true, // the test policy trusts the dev authority; the chain is not the dev chain
    workers: 0,
    pool: POOL,
    authorities: [],
  });
  assert.deepEqual(again.info().shieldingKey, a.core.info().shieldingKey);
  assert.equal(again.info().secretsOrigin, 'provisioned');
  await again.close();
});

test("provisioning: a member's host with its own ephemeral key finds no quote that makes a peer answer it", async () => {
  const chain = new FakeChain();
  const a = new Host(chain);
  const b = new Host(chain);
  for (const h of [a, b]) h.init();
  b.import(a.perform('register').block);
  const [reg] = b.duties().filter((x) => x.key === 'register');
  const regCall = decodeCall(reg.callData).call;
  const registration = decodeMessage(regCall.kind === 'remark' ? regCall.remark : new Uint8Array(0));
  assert.equal(registration?.tag, 'register');
  b.sign(reg.callData);
  a.import(b.include(reg.callData).block);
  const now = () => Date.now();
  // B's host makes its own X25519 key and a request body around it, then collects every quote it can make
  // B's enclave produce: the quote API of today's boundary (if any), genuine requests, the registration,
  // the quote shown by `validateer keys`, and A's answer to a genuine request of B.
  const own = x25519Generate();
  const body = {
    shard: SHARD,
    ephemeral: own.publicKey,
    nonce: new Uint8Array(32).fill(9),
    timestampMs: BigInt(now()),
  };
  const quotes: [string, Uint8Array][] = [];
  const api = b.core as unknown as Record<string, ((...args: unknown[]) => unknown) | undefined>;
  if (typeof api.quote === 'function')
    quotes.push(['quote API', api.quote.call(b.core, ProvisionRequestBinding(body)) as Uint8Array]);
  if (typeof api.keysQuote === 'function') quotes.push(['keys quote', api.keysQuote.call(b.core) as Uint8Array]);
  const genuine = b.core.provisionRequest(now());
  quotes.push(['genuine request', ProvisionRequest.dec(genuine).quote]);
  quotes.push(['registration', (registration!.value as { quote: Uint8Array }).quote]);
  const answered = a.core.provisionServe(genuine, now());
  assert.ok(answered.ok);
  quotes.push(['response', ProvisionResponse.dec(answered.response).quote]);
  const suite = new HpkeSuite(te.encode('validateer/hpke/provision/v1'));
  for (const [what, quote] of quotes) {
    const request = ProvisionRequest.enc({ version: 1, requester: b.key, quote, ...body });
    const o = a.core.provisionServe(request, now());
    if (o.ok) {
      const r = ProvisionResponse.dec(o.response);
      const plain = suite.open(own, r.enc, r.ciphertext, sha256(request));
      assert.fail(`with the ${what}'s quote the host read ${plain?.length ?? 0} bytes of the shard secrets`);
    }
    assert.equal(o.code, 'PROVISION_FORGED_QUOTE', what);
  }
  await a.close();
  await b.close();
});

test('roots of trust: a host naming its own attestation authority gets no forged member admitted or provisioned', async () => {
  // The host holds the key of an authority of its own, and a member key with no enclave behind it.
  const rogueSeed = key32('host-chosen authority');
  const rogue = simulatedProvider(MEASUREMENT, SIM_SIGNER_ID, rogueSeed);
  const rogueKey = ed25519PublicFromSeed(rogueSeed);
  const forged = key32('forged member');
  const attempts: [string, Partial<EnclaveOptions>, string][] = [
    ['config trusting its own authority', { trustedAuthorities: [rogueKey] }, 'POLICY_WIDENED'],
    ["config adding it to the policy's", { trustedAuthorities: [DEV_AUTHORITY_PUBLIC, rogueKey] }, 'POLICY_WIDENED'],
    [
      'a policy of its own under this shard id',
      {
        shardPolicy: testShard('parentchain test shard', { authorities: [DEV_AUTHORITY_PUBLIC, rogueKey] }).shardPolicy,
      },
      'POLICY_SHARD_MISMATCH',
    ],
    ['the shard policy itself', {}, 'opened'],
  ];
  for (const [what, options, expected] of attempts) {
    const chain = new FakeChain();
    let a: Host;
    try {
      a = new Host(chain, tempDir(), options);
    } catch (err) {
      assert.equal(codeOfError(err), expected, what);
      continue;
    }
    a.init();
    a.perform('register');
    const userData = registrationUserData(SHARD, PEER, ADDRS, ENC_KEY);
    const quote = rogue.quote(concatBytes(forged, userData));
    a.import(chain.block([{ signer: forged, call: msg(registerMessage(forged, { quote })) }]));
    assert.ok(!a.info().members.some((m) => same(m.signingKey, forged)), `${what}: the forged member was admitted`);
    const own = x25519Generate();
    const body = { shard: SHARD, ephemeral: own.publicKey, nonce: key32(what), timestampMs: BigInt(Date.now()) };
    const request = ProvisionRequest.enc({
      version: 1,
      requester: forged,
      quote: rogue.quote(concatBytes(forged, ProvisionRequestBinding(body))),
      ...body,
    });
    const served = a.core.provisionServe(request, Date.now());
    assert.ok(!served.ok, `${what}: the forged member was provisioned`);
    assert.equal(served.code, 'PROVISION_FORGED_QUOTE', what);
    await a.close();
    assert.equal(expected, 'opened', `${what}: the enclave opened`);
  }
});

test("roots of trust: a member's data directory opens for no other shard, so its secrets never serve a policy the host chose", async () => {
  const chain = new FakeChain();
  const a = new Host(chain);
  const b = new Host(chain);
  for (const h of [a, b]) h.init();
  b.import(a.perform('register').block);
  const [reg] = b.duties().filter((x) => x.key === 'register');
  b.sign(reg.callData);
  a.import(b.include(reg.callData).block);
  const now = () => Date.now();
  const req = b.core.provisionRequest(now());
  const served = a.core.provisionServe(req, now());
  assert.ok(served.ok);
  assert.ok((await b.core.provisionAccept(req, served.response, now())).ok);
  const shardKey = b.core.info().shieldingKey;
  await b.close();
  // B's host reopens B's data directory for a shard of its own, whose policy trusts its authority too
  const rogueSeed = key32('host-chosen authority');
  const rogue = simulatedProvider(MEASUREMENT, SIM_SIGNER_ID, rogueSeed);
  const hostShard = testShard('host shard', { authorities: [DEV_AUTHORITY_PUBLIC, ed25519PublicFromSeed(rogueSeed)] });
  const options = { dataDir: b.dataDir, ...hostShard, dev: true, workers: 0, pool: POOL, authorities: [] };
  let hostile: EnclaveCore;
  try {
    hostile = EnclaveCore.open(options);
  } catch (err) {
    assert.equal(codeOfError(err), 'POLICY_SHARD_MISMATCH');
    await a.close();
    return;
  }
  // It opened: the forged member registers in the host's shard and asks B's enclave for its secrets.
  hostile.parentchainInit({
    genesisHash: chain.genesis,
    metadata: METADATA,
    existentialDeposit: ED,
    proxyDepositFactor: PROXY_FACTOR,
  });
  const forged = key32('forged member');
  const userData = registrationUserData(hostShard.shard, PEER, ADDRS, ENC_KEY);
  const quote = rogue.quote(concatBytes(forged, userData));
  hostile.parentchainImport([
    chain.block([{ signer: forged, call: msg(registerMessage(forged, { shard: hostShard.shard, quote })) }]),
  ]);
  const own = x25519Generate();
  const body = { shard: hostShard.shard, ephemeral: own.publicKey, nonce: key32('nonce'), timestampMs: BigInt(now()) };
  const request = ProvisionRequest.enc({
    version: 1,
    requester: forged,
    quote: rogue.quote(concatBytes(forged, ProvisionRequestBinding(body))),
    ...body,
  });
  const stolen = hostile.provisionServe(request, now());
  const sameKey = same(hostile.info().shieldingKey, shardKey);
  await hostile.close();
  await a.close();
  assert.ok(!stolen.ok, `the forged member got the secrets of the enclave's shard (its own shielding key: ${sameKey})`);
  assert.fail("the enclave opened its shard's keys for another shard");
});

/** What a provisioning request's quote must bind besides the requester's key (recomputed independently). */
function ProvisionRequestBinding(r: {
  shard: Uint8Array;
  ephemeral: Uint8Array;
  nonce: Uint8Array;
  timestampMs: bigint;
}): Uint8Array {
  return sha256(
    concatBytes(te.encode('validateer/provision/request/v1'), r.shard, r.ephemeral, r.nonce, u64.enc(r.timestampMs)),
  );
}

// =============================================================================================
// State key epochs (key-rotation.ts), through EnclaveCore

test('state key epochs: a join and a departure each begin one, sealed to the members; the departed enclave holds no key to what follows; schedule; replay', async () => {
  const chain = new FakeChain();
  const opts = { keyRotationBlocks: 6 };
  const [a, b, c] = [
    new Host(chain, tempDir(), opts),
    new Host(chain, tempDir(), opts),
    new Host(chain, tempDir(), opts),
  ];
  const hosts = [a, b, c];
  const blocks: Uint8Array[] = [];
  const epoch = (h: Host) => h.core.status().stateKeyEpoch;
  const seen = (blk: Block, except: Host) => {
    for (const h of hosts) if (h !== except) h.import(blk);
  };
  const register = (h: Host) => {
    const [d] = h.duties().filter((x) => x.key === 'register');
    h.sign(d.callData);
    seen(h.include(d.callData).block, h);
  };
  const provision = async (to: Host) => {
    const req = to.core.provisionRequest(Date.now());
    const served = a.core.provisionServe(req, Date.now());
    assert.ok(served.ok);
    assert.ok((await to.core.provisionAccept(req, served.response, Date.now())).ok);
  };
  /** `author` proposes in its next slot; `importers` import and commit the block. */
  const produce = (author: Host, importers: Host[]) => {
    let slot = author.slot;
    while (!Buffer.from(author.core.slotAuthor(slot).author ?? []).equals(Buffer.from(author.key))) slot++;
    for (const h of hosts) h.slot = slot + 1n;
    const p = author.core.propose({ slot, timestampMs: Date.now(), maxCalls: 10 });
    author.core.commit(p.hash);
    for (const h of importers) h.core.commit(h.core.importBlock(p.block, Date.now()).hash);
    blocks.push(p.block);
    return decodeExact(SignedBlock, p.block, 'block');
  };
  try {
    for (const h of hosts) h.init();
    register(a);
    const g = a.core.genesis([{ account: alice.publicKey, amount: 1_000n }], Date.now());
    blocks.push(g.block);
    assert.equal(epoch(a), 0, 'genesis: epoch 0, the key a made alone');
    // Block 1 is the first with members: epoch 1, sealed to a alone.
    const b1 = produce(a, []);
    assert.deepEqual([epoch(a), b1.body.rotation?.wraps.map((w) => hexKey(w.member))], [1, [hexKey(a.key)]]);

    // b joins: registered and provisioned (every epoch so far), it imports the chain; the next block seals epoch 2 to a
    // and b.
    register(b);
    await provision(b);
    for (const blk of blocks) b.core.commit(b.core.importBlock(blk, Date.now()).hash);
    assert.equal(epoch(b), 1);
    const b2 = produce(a, [b]);
    assert.deepEqual([epoch(a), epoch(b)], [2, 2]);
    assert.deepEqual(
      b2.body.rotation?.wraps.map((w) => hexKey(w.member)),
      [hexKey(a.key), hexKey(b.key)],
    );
    assert.equal(b.core.info().stateKeyId, b2.body.rotation?.keyId, 'b opened its copy of the new key');
    const quiet = produce(b, [a]);
    assert.equal(quiet.body.rotation, undefined, 'no change, not due: no rotation');

    // c joins (epoch 3), then leaves: the next block begins epoch 4 for a and b only.
    register(c);
    await provision(c);
    // Had c missed epoch 2's key (sealed to a and b only), it could not import that block; asked again, it gets what it
    // lacks.
    const cMemory = (c.core as unknown as { keys: { stateKeys: Map<number, Uint8Array> } }).keys;
    const epoch2 = b2.body.rotation!.keyId;
    const held = cMemory.stateKeys.size;
    cMemory.stateKeys.delete(epoch2);
    for (const blk of blocks.slice(0, 2)) c.core.commit(c.core.importBlock(blk, Date.now()).hash);
    assert.equal(
      codeOf(() => c.core.importBlock(blocks[2], Date.now())),
      'STATE_KEY_UNKNOWN',
    );
    await provision(c);
    assert.equal((c.core as unknown as { keys: { stateKeys: Map<number, Uint8Array> } }).keys.stateKeys.size, held);
    for (const blk of blocks.slice(2)) c.core.commit(c.core.importBlock(blk, Date.now()).hash);
    const b3 = produce(a, [b, c]);
    assert.deepEqual([epoch(a), epoch(b), epoch(c)], [3, 3, 3]);
    assert.equal(b3.body.rotation?.wraps.length, 3);
    const leave = c.unregisterCall();
    c.sign(leave);
    const left = c.include(leave);
    a.import(left.block);
    b.import(left.block);
    const b4 = produce(a, []);
    assert.equal(epoch(a), 4);
    assert.deepEqual(
      b4.body.rotation?.wraps.map((w) => hexKey(w.member)),
      [hexKey(a.key), hexKey(b.key)],
    );
    // Nothing c's data directory holds opens the new epoch: its state keys, nor its encryption key on the wraps.
    const cKeys = loadOrCreateKeys(c.dataDir, Sealer.simulated(c.dataDir, MEASUREMENT)).keys;
    assert.ok(cKeys.stateKeys.size >= 4 && !cKeys.stateKeys.has(b4.body.transitions.keyId));
    const t = b4.body.transitions;
    for (const key of cKeys.stateKeys.values())
      assert.equal(aesGcmOpen(key, t.nonce, t.ciphertext, transitionsAad(SHARD, b4.header.number)), null);
    const relabelled = { ...b4.body.rotation!, wraps: b4.body.rotation!.wraps.map((w) => ({ ...w, member: c.key })) };
    assert.throws(
      () =>
        openRotation(relabelled, SHARD, b4.header.number, {
          signingKey: c.key,
          secretKey: cKeys.encryptionSecret,
          publicKey: cKeys.encryptionPublic,
        }),
      { code: 'BLOCK_BAD_ROTATION' },
    );
    // c (had it stayed running) cannot follow: the block's key is not sealed to it
    assert.equal(
      codeOf(() => c.core.importBlock(blocks.at(-1)!, Date.now())),
      'STATE_KEY_UNKNOWN',
    );

    // Forged blocks (re-signed with a's key, so only the epoch rules can catch them) are refused by b.
    const aSigning = (a.core as unknown as { keys: { signingKey: KeyObject } }).keys.signingKey;
    const forge = (blk: SignedBlockT, body: SignedBlockT['body']) => {
      const header = { ...blk.header, transitionsRoot: bodyRoot(body) };
      return SignedBlock.enc({ header, body, signature: ed25519Sign(aSigning, headerSigningPayload(header)) });
    };
    const importInto = (h: Host, bytes: Uint8Array) => h.core.commit(h.core.importBlock(bytes, Date.now()).hash);
    assert.equal(
      codeOf(() => b.core.importBlock(forge(b4, { ...b4.body, rotation: undefined }), Date.now())),
      'BLOCK_MISSING_ROTATION',
    );
    const fewer = { ...b4.body.rotation!, wraps: b4.body.rotation!.wraps.slice(0, 1) };
    assert.equal(
      codeOf(() => b.core.importBlock(forge(b4, { ...b4.body, rotation: fewer }), Date.now())),
      'BLOCK_BAD_ROTATION',
    );
    importInto(b, blocks.at(-1)!);
    assert.equal(epoch(b), 4);
    const quiet2 = produce(a, []);
    assert.equal(
      codeOf(() => b.core.importBlock(forge(quiet2, { ...quiet2.body, rotation: b4.body.rotation }), Date.now())),
      'BLOCK_UNEXPECTED_ROTATION',
    );
    importInto(b, blocks.at(-1)!);

    // Schedule: 6 blocks after epoch 4 began, epoch 5 begins with the same members.
    while (a.core.status().headNumber < Number(b4.header.number) + 5) produce(a, [b]);
    assert.equal(epoch(a), 4);
    const scheduled = produce(a, [b]);
    assert.deepEqual([epoch(a), epoch(b)], [5, 5]);
    assert.deepEqual(
      scheduled.body.rotation?.wraps.map((w) => hexKey(w.member)),
      [hexKey(a.key), hexKey(b.key)],
    );

    // Replay from genesis in a restarted b: every epoch's key is in its sealed key file.
    await b.close();
    const b2core = EnclaveCore.open({
      dataDir: b.dataDir,
      shard: SHARD,
      shardPolicy: POLICY,
      dev: true, // the test policy trusts the dev authority; the chain is not the dev chain
      workers: 0,
      pool: POOL,
      authorities: [],
      ...opts,
    });
    try {
      assert.ok(b2core.parentchainLoad());
      b2core.beginReplay(undefined, true);
      b2core.replayBlocks(blocks);
      const r = await b2core.finishReplay();
      assert.deepEqual([r.headNumber, r.stateKeyEpoch], [a.core.status().headNumber, 5]);
      assert.deepEqual(r.headHash, a.core.status().headHash);
    } finally {
      await b2core.close();
    }
  } finally {
    for (const h of hosts) if (h !== b) await h.close();
  }
});

// ---------- sealed state rolled back by the host (keys/signing-guard.ts) ----------

test('a parentchain.sealed put back by the host is detected: duties are refused until every one signed before is dead', async () => {
  const chain = new FakeChain();
  const dataDir = tempDir();
  const path = join(dataDir, 'enclave', 'parentchain.sealed');
  let host = new Host(chain, dataDir);
  try {
    host.init();
    host.import(chain.block());
    const [register] = host.duties();
    assert.equal(register.key, 'register');
    const before = readFileSync(path); // the view without the duty in flight
    const death = chain.head.number + 64; // Host.sign: born at the head, period 64
    host.sign(register.callData);
    assert.deepEqual(host.info().dutiesInFlight, ['register']);
    assert.equal(host.info().sealedRollback.rollbacks, 0);
    await host.close();

    writeFileSync(path, before);
    host = new Host(chain, dataDir);
    host.init();
    assert.deepEqual(host.info().dutiesInFlight, [], 'the old view has no record of the signed duty');
    assert.deepEqual(host.info().sealedRollback, {
      rollbacks: 1,
      dutiesRefusedUntil: death,
      lastRollback: host.info().sealedRollback.lastRollback,
    });
    assert.match(host.info().sealedRollback.lastRollback ?? '', /older than/);
    // Offered again, as the view knows nothing of it, but not signed: the first signature may still be included.
    const offered = () => {
      const duties = host.duties();
      assert.deepEqual(
        duties.map((d) => d.key),
        ['register'],
      );
      return duties[0].callData;
    };
    assert.equal(
      codeOf(() => host.sign(offered())),
      'SEALED_STATE_ROLLED_BACK',
    );
    // A restart does not clear it.
    await host.close();
    host = new Host(chain, dataDir);
    host.init();
    assert.equal(host.info().sealedRollback.rollbacks, 1);
    assert.equal(
      codeOf(() => host.sign(offered())),
      'SEALED_STATE_ROLLED_BACK',
    );
    // Once the light client has passed the first signature's death without seeing it, it is signed again.
    host.import(...chain.blocks(death - 1 - chain.head.number));
    assert.equal(
      codeOf(() => host.sign(offered())),
      'SEALED_STATE_ROLLED_BACK',
    );
    host.import(chain.block());
    host.sign(offered());
    assert.deepEqual(host.info().dutiesInFlight, ['register']);
  } finally {
    await host.close();
  }
});

test('a parentchain.sealed deleted by the host is a rollback too', async () => {
  const chain = new FakeChain();
  const dataDir = tempDir();
  let host = new Host(chain, dataDir);
  try {
    host.init();
    const first = chain.block();
    host.import(first);
    host.sign(host.duties()[0].callData);
    await host.close();
    rmSync(join(dataDir, 'enclave', 'parentchain.sealed'));
    host = new Host(chain, dataDir);
    host.init();
    assert.equal(host.info().number, 0, 'started again from the genesis');
    assert.equal(host.info().sealedRollback.rollbacks, 1);
    host.import(first); // the light client follows the chain again from genesis
    assert.equal(
      codeOf(() => host.sign(host.duties()[0].callData)),
      'SEALED_STATE_ROLLED_BACK',
    );
  } finally {
    await host.close();
  }
});

test('a signing guard put back older is detected by the view sealed after it, which restores its block record', async () => {
  const chain = new FakeChain();
  const dataDir = tempDir();
  const guardPath = join(dataDir, 'enclave', 'signing-guard.sealed');
  let host = new Host(chain, dataDir);
  try {
    host.init();
    const genesis = host.core.genesis([], Date.now());
    host.import(chain.block());
    host.perform('register');
    const before = readFileSync(guardPath); // before slot 1 was signed
    assert.equal(host.produce().number, 1);
    host.import(chain.block()); // the view, sealed after the block, carries the guard's block record
    await host.close();

    writeFileSync(guardPath, before);
    host = new Host(chain, dataDir);
    host.init();
    assert.equal(host.info().sealedRollback.rollbacks, 1);
    assert.match(host.info().sealedRollback.lastRollback ?? '', /signing guard/);
    // The host withholds block 1 (it replays genesis only) and asks for slot 1 again.
    host.core.beginReplay(undefined, false);
    host.core.replayBlocks([genesis.block]);
    await host.core.finishReplay();
    assert.equal(
      codeOf(() => host.core.propose({ slot: 1n, timestampMs: Date.now(), maxCalls: 10 })),
      'SLOT_ALREADY_SIGNED',
    );
    assert.equal(host.core.propose({ slot: 2n, timestampMs: Date.now(), maxCalls: 10 }).number, 1);
  } finally {
    await host.close();
  }
});

// =============================================================================================
// Parentchain effects in sidechain headers (chain/effects.ts), through EnclaveCore

/**
 * What a host hands its enclave for `block`, with every relevant extrinsic's outcome (its events) as this host reports
 * it: the one place to adapt when the importBlocks input changes.
 */
function reportedAs(block: Block, success: boolean): Block {
  return { ...block, outcomes: block.outcomes.map((x) => ({ ...x, success })) };
}

/** The parentchain block of a shield of `amount` to `recipient` (sealed to `to`'s shielding key) into `vault`. */
function shieldBlock(chain: FakeChain, to: Host, vault: Uint8Array, recipient: Uint8Array, amount: bigint): Block {
  const sealed = sealRecipient(recipient, SHARD, to.shieldingKey.publicKey);
  const call = batch([transfer(vault, amount), msg({ tag: 'shield', value: { shard: SHARD, recipient: sealed } })]);
  return chain.block([{ signer: key32('parentchain payer'), call }]);
}

test("effects: a failed shield the author's host reports as a success mints nothing elsewhere: the block is refused with EFFECTS_MISMATCH; an honest shield imports", async () => {
  const chain = new FakeChain();
  const { a, b, vault } = await memberPair(chain);
  try {
    importInto(b, authored(a, b).block);
    // An honest shield: both hosts report it as it happened, both enclaves credit it.
    const honest = shieldBlock(chain, a, vault, bob.publicKey, 5n * UNIT);
    a.import(reportedAs(honest, true));
    b.import(reportedAs(honest, true));
    importInto(b, authored(a, b).block);
    assert.deepEqual([a.balance(bob), b.balance(bob)], [5n * UNIT, 5n * UNIT]);
    // The transfer into the vault failed on the parentchain; A's host says it succeeded.
    const failed = shieldBlock(chain, a, vault, charlie.publicKey, 1000n * UNIT);
    a.import(reportedAs(failed, true));
    b.import(reportedAs(failed, false));
    const minted = authored(a, b);
    assert.equal(a.balance(charlie), 1000n * UNIT, "A's enclave believed its host");
    const head = b.core.status().headHash;
    assert.equal(
      codeOf(() => b.core.importBlock(minted.block, Date.now())),
      'EFFECTS_MISMATCH',
    );
    assert.deepEqual(b.core.status().headHash, head);
    assert.deepEqual([b.balance(charlie), b.info().shieldedSupply], [0n, 5n * UNIT]);
    // Nor as part of a run (onboarding, range sync).
    const run = await b.core.importBlocks([minted.block], Date.now());
    assert.deepEqual([run.imported.length, run.failure?.code], [0, 'EFFECTS_MISMATCH']);
  } finally {
    await a.close();
    await b.close();
  }
});

test("effects: a successful shield the author's host withholds (reports as failed) is refused too: the others expect it", async () => {
  const chain = new FakeChain();
  const { a, b, vault } = await memberPair(chain);
  try {
    importInto(b, authored(a, b).block);
    const shielded = shieldBlock(chain, a, vault, bob.publicKey, 5n * UNIT);
    a.import(reportedAs(shielded, false));
    b.import(reportedAs(shielded, true));
    const withheld = authored(a, b);
    assert.equal(
      codeOf(() => b.core.importBlock(withheld.block, Date.now())),
      'EFFECTS_MISMATCH',
    );
    assert.equal(b.balance(bob), 0n);
    // B, in its own slot on the head it kept, executes the shield itself.
    authored(b, a);
    assert.equal(b.balance(bob), 5n * UNIT);
  } finally {
    await a.close();
    await b.close();
  }
});

test('effects settled by an anchor: a member behind it imports the chain up to the anchored block unchecked, refuses what is not on the way to it (EFFECTS_UNKNOWN), and checks every block after it', async () => {
  const chain = new FakeChain();
  const { a, b, vault } = await memberPair(chain);
  const both = (blk: Block) => (a.import(blk), b.import(blk));
  const refused = (h: Host, block: Uint8Array) => codeOf(() => h.core.importBlock(block, Date.now()));
  try {
    const first = authored(a, b);
    importInto(b, first.block);
    // A fork that B follows before the anchor (checked then: its parentchain range is still pending).
    both(chain.block());
    const [fork2, fork3, fork4] = [authored(a, b), authored(a, b), authored(a, b)];
    importInto(b, fork2.block);
    importInto(b, fork3.block);
    // A abandons the fork: a shield, blocks 2 (executing it) and 3, and block 3's anchor.
    a.core.rewind(1, first.hash);
    both(shieldBlock(chain, a, vault, bob.publicKey, 5n * UNIT));
    const [main2, main3] = [authored(a, b), authored(a, b)];
    // B votes for block 3 on A's chain (a pair's majority is both), then its host takes it back to the fork.
    b.core.rewind(1, first.hash);
    importInto(b, main2.block);
    importInto(b, main3.block);
    const bVote = b.core.finalityVote(3);
    b.core.rewind(1, first.hash);
    importInto(b, fork2.block);
    importInto(b, fork3.block);
    b.import(a.anchor(3, [bVote]).block);
    assert.equal(b.core['parentchain']!.effectsSettled, chain.head.number - 1, 'settled up to what block 3 executed');
    assert.equal(b.keptEffects(), 0, 'the shield is no longer kept');
    // Below the anchored number, a block executing effects after the settled ones (not on the way to block 3).
    a.core.rewind(1, first.hash);
    const past = authored(a, b);
    a.core.rewind(1, first.hash);
    importInto(a, main2.block);
    importInto(a, main3.block);
    // B is behind the anchor: what it cannot check is accepted only on the way to the anchored block.
    assert.equal(refused(b, fork4.block), 'EFFECTS_UNKNOWN', 'past the anchored number');
    b.core.rewind(2, fork2.hash);
    assert.equal(refused(b, fork3.block), 'EFFECTS_UNKNOWN', 'another block at the anchored number');
    b.core.rewind(1, first.hash);
    assert.equal(refused(b, past.block), 'EFFECTS_UNKNOWN', 'effects after the settled ones');
    importInto(b, main2.block);
    importInto(b, main3.block);
    assert.equal(b.balance(bob), 5n * UNIT, 'the anchored chain executed the shield');
    // After the anchored block every block is checked again.
    const lie = shieldBlock(chain, a, vault, charlie.publicKey, 7n * UNIT);
    a.import(reportedAs(lie, true));
    b.import(reportedAs(lie, false));
    assert.equal(refused(b, authored(a, b).block), 'EFFECTS_MISMATCH');
  } finally {
    await a.close();
    await b.close();
  }
});

test('effects read before the shard secrets arrived: a member provisioned after a shield imports the block executing it, and checks the blocks after its provisioning', async () => {
  const chain = new FakeChain();
  let early: Block | undefined;
  const { a, b, vault } = await memberPair(chain, (a, b) => {
    // B reads this shield with its own shielding key, not the shard's: nobody to credit, for B.
    early = shieldBlock(chain, a, a.info().vault!, bob.publicKey, 5n * UNIT);
    a.import(early);
    const r = b.import(early);
    assert.deepEqual([r.effects, r.observations.map((o) => o.kind)], [0, ['ignored']]);
  });
  try {
    assert.ok(early);
    importInto(b, authored(a, b).block);
    assert.deepEqual([a.balance(bob), b.balance(bob)], [5n * UNIT, 5n * UNIT]);
    const lie = shieldBlock(chain, a, vault, charlie.publicKey, 7n * UNIT);
    a.import(reportedAs(lie, true));
    b.import(reportedAs(lie, false));
    assert.equal(
      codeOf(() => b.core.importBlock(authored(a, b).block, Date.now())),
      'EFFECTS_MISMATCH',
    );
  } finally {
    await a.close();
    await b.close();
  }
});

test('effects: an honest pair takes turns over shields, an invocation and anchors; every block imports on the other', async () => {
  const chain = new FakeChain();
  const { a, b, vault } = await memberPair(chain);
  const both = (blk: Block) => (a.import(blk), b.import(blk));
  try {
    for (let i = 0; i < 8; i++) {
      if (i % 2 === 0) both(shieldBlock(chain, a, vault, bob.publicKey, UNIT));
      if (i === 3) {
        const t = buildTransfer(bob, { to: charlie.publicKey, amount: 7n, nonce: 0 }, a.shieldingKey, SHARD);
        both(
          chain.block([
            { signer: key32('payer'), call: msg({ tag: 'invoke', value: { shard: SHARD, request: t.request } }) },
          ]),
        );
      }
      if (i === 5) b.import(a.anchor(undefined, [b.core.finalityVote(a.core.status().headNumber)]).block);
      const [author, other] = i % 2 === 0 ? [a, b] : [b, a];
      importInto(other, authored(author, other).block);
    }
    assert.deepEqual(a.core.status().headHash, b.core.status().headHash);
    assert.ok(b.core['parentchain']!.effectsSettled > 0, 'an anchor settled effects on the way');
    for (const h of [a, b]) assert.deepEqual([h.balance(bob), h.balance(charlie)], [4n * UNIT - 7n, 7n]);
  } finally {
    await a.close();
    await b.close();
  }
});

test('forwarded batches open only under the current epoch and from a current member: no grace for a past epoch or a departed member', async () => {
  const chain = new FakeChain();
  const [a, b, c] = [new Host(chain), new Host(chain), new Host(chain)];
  const hosts = [a, b, c];
  const blocks: Uint8Array[] = [];
  const seen = (blk: Block, except: Host) => {
    for (const h of hosts) if (h !== except) h.import(blk);
  };
  const register = (h: Host) => {
    const [d] = h.duties().filter((x) => x.key === 'register');
    h.sign(d.callData);
    seen(h.include(d.callData).block, h);
  };
  const join = async (h: Host) => {
    register(h);
    const req = h.core.provisionRequest(Date.now());
    const served = a.core.provisionServe(req, Date.now());
    assert.ok(served.ok);
    assert.ok((await h.core.provisionAccept(req, served.response, Date.now())).ok);
    for (const blk of blocks) h.core.commit(h.core.importBlock(blk, Date.now()).hash);
  };
  const produce = (author: Host, importers: Host[]) => {
    let slot = author.slot;
    while (!Buffer.from(author.core.slotAuthor(slot).author ?? []).equals(Buffer.from(author.key))) slot++;
    for (const h of hosts) h.slot = slot + 1n;
    const p = author.core.propose({ slot, timestampMs: Date.now(), maxCalls: 10 });
    author.core.commit(p.hash);
    for (const h of importers) h.core.commit(h.core.importBlock(p.block, Date.now()).hash);
    blocks.push(p.block);
  };
  /** `from` admits alice's transfer with `nonce` and returns the batch it forwards. */
  const forward = async (from: Host, nonce: number) => {
    const t = buildTransfer(alice, { to: bob.publicKey, amount: 1n, nonce }, from.shieldingKey, SHARD);
    const r = await from.core.submitAndForward([t.request], Date.now(), new Set([0]));
    assert.notEqual(r.results[0].status, 'invalid');
    return { hash: t.hash, batch: r.forwarded! };
  };
  const refused = (h: Host, batch: Uint8Array, code: string) =>
    assert.rejects(h.core.submitForwarded(batch, Date.now()), { code });
  try {
    for (const h of hosts) h.init();
    register(a);
    blocks.push(a.core.genesis([{ account: alice.publicKey, amount: 1_000n }], Date.now()).block);
    produce(a, []); // epoch 1, a alone
    await join(b);
    const epoch = () => [a, b].map((h) => h.core.status().stateKeyEpoch);
    assert.deepEqual(epoch(), [1, 1]);

    // Sealed by a (a member) under epoch 1; alice's nonce 1 waits for nonce 0, so no block takes it.
    const old = await forward(a, 1);
    produce(a, [b]); // b's join begins epoch 2
    assert.deepEqual(epoch(), [2, 2]);
    assert.ok(b.core['keys'].stateKeys.size >= 2, 'b still holds the epoch 1 key, yet refuses');
    await refused(b, old.batch, 'FORWARD_WRONG_EPOCH');
    // Nor while a replay the host began passes through epoch 1 again: the batch waits for the rebuilt head's epoch.
    b.core.beginReplay(undefined, true);
    b.core.replayBlocks(blocks.slice(0, 2));
    assert.equal(b.core['state'].epoch()?.epoch, 1);
    const duringReplay = refused(b, old.batch, 'FORWARD_WRONG_EPOCH');
    b.core.replayBlocks(blocks.slice(2));
    await b.core.finishReplay();
    await duringReplay;

    // The same kind of batch under the current epoch, from a current member: admitted.
    const current = await forward(a, 0);
    assert.deepEqual(await b.core.submitForwarded(current.batch, Date.now()), [
      { hash: current.hash, status: 'ready' },
    ]);

    // c joins (epoch 3), forwards a batch that b admits, and leaves.
    await join(c);
    produce(a, [b, c]);
    assert.deepEqual(epoch(), [3, 3]);
    const fromC = await forward(c, 2);
    const replayed = await forward(c, 3);
    assert.equal((await b.core.submitForwarded(fromC.batch, Date.now()))[0].status, 'ready');
    const leave = c.unregisterCall();
    c.sign(leave);
    const left = c.include(leave).block;
    a.import(left);
    b.import(left);
    // Still epoch 3 (no block since): the departure alone makes c's batches, earlier or new, refused.
    assert.deepEqual(epoch(), [3, 3]);
    const pool = b.core.status().poolSize;
    await refused(b, replayed.batch, 'FORWARD_NOT_MEMBER');
    await refused(b, (await forward(c, 4)).batch, 'FORWARD_NOT_MEMBER');
    assert.equal(b.core.status().poolSize, pool);
  } finally {
    for (const h of hosts) await h.close();
  }
});

test('a duty is signed for at most MAX_DUTY_PERIOD blocks: a longer mortality is refused before anything is sealed', async () => {
  const host = new Host(new FakeChain());
  try {
    host.init();
    host.import(...host.chain.blocks(3));
    const [reg] = host.duties();
    assert.equal(
      codeOf(() => host.sign(reg.callData, host.chain.head, MAX_DUTY_PERIOD * 2)),
      'DUTY_MORTALITY_TOO_LONG',
    );
    assert.deepEqual(host.info().dutiesInFlight, [], 'a refusal leaves nothing in flight');
    host.sign(reg.callData, host.chain.head, MAX_DUTY_PERIOD);
    assert.deepEqual(host.info().dutiesInFlight, ['register']);
  } finally {
    await host.close();
  }
});

/**
 * A and B (memberPair), A the first member: A funds the reserve and makes B a vault proxy; Bob shields 9 units and
 * unshields 4 (withdrawal 0, anchored), and A signs its payout, which the host keeps. Returns that payload's call.
 */
async function payoutSignedByFirst(chain: FakeChain) {
  const { a, b, vault } = await memberPair(chain);
  const both = (blk: Block) => (a.import(blk), b.import(blk));
  for (const d of a.duties()) {
    a.sign(d.callData);
    b.import(a.include(d.callData).block);
  }
  assert.ok(b.core['parentchain']!.registry.isVaultProxy(b.key), 'b can pay out for the vault');
  both(shieldBlock(chain, a, vault, bob.publicKey, 9n * UNIT));
  importInto(b, authored(a, b).block);
  const unshield = { from: bob.publicKey, beneficiary: key32('beneficiary'), amount: 4n * UNIT };
  await a.core.submit(
    [shield(signCall(bob, { tag: 'unshield', value: unshield }, 0, SHARD), a.shieldingKey, SHARD)],
    Date.now(),
  );
  importInto(b, authored(a, b).block);
  b.import(a.anchor(undefined, [b.core.finalityVote(a.core.status().headNumber)]).block);
  assert.equal(b.info().unpaidWithdrawals, 1);
  assert.deepEqual(b.dutyKeys(), [], 'b is not the payer');
  const [pay] = a.duties();
  assert.equal(pay.key, 'payout:0');
  a.sign(pay.callData);
  return { a, b, pay };
}

test('a payout left in flight by a departed payer: the next payer pays it only once every signature of the old one is dead, and once', async () => {
  const chain = new FakeChain();
  const { a, b } = await payoutSignedByFirst(chain);
  try {
    const leave = a.unregisterCall();
    a.sign(leave);
    const handover = a.include(leave).block;
    b.import(handover);
    // b is the payer from the handover on; a's payout (never included here) could land until it is dead.
    b.perform(`unproxy:${hexKey(a.key)}`);
    const payable = handover.number + MAX_DUTY_PERIOD + RECENT_KEPT;
    b.import(...chain.blocks(payable - 1 - chain.head.number));
    assert.deepEqual(b.dutyKeys(), [], 'no payout while a signature of the old payer may still land');
    b.import(chain.block());
    assert.equal(chain.head.number, payable);
    const [repay] = b.duties();
    assert.equal(repay.key, 'payout:0');
    b.sign(repay.callData);
    const paid = b.include(repay.callData);
    assert.deepEqual(
      paid.observations.map((o) => o.kind),
      ['payout'],
    );
    assert.deepEqual(b.dutyKeys(), [], 'paid once');
  } finally {
    await a.close();
    await b.close();
  }
});

test("a departed payer's payout landing after the handover is seen as paid: the next payer never pays it again", async () => {
  const chain = new FakeChain();
  const { a, b, pay } = await payoutSignedByFirst(chain);
  try {
    const leave = a.unregisterCall();
    a.sign(leave);
    b.import(a.include(leave).block);
    // a's signature lands after a left, before b removed it as a vault proxy: a real transfer out of the vault.
    const landed = a.include(pay.callData).block;
    assert.deepEqual(
      b.import(landed).observations.map((o) => o.kind),
      ['payout'],
    );
    b.import(...chain.blocks(MAX_DUTY_PERIOD + RECENT_KEPT + 1));
    assert.deepEqual(b.dutyKeys(), [`unproxy:${hexKey(a.key)}`], 'no second payout');
  } finally {
    await a.close();
    await b.close();
  }
});

test('no payout while a departed member is still a vault proxy, even after the wait: its late signatures must fail', async () => {
  const chain = new FakeChain();
  const { a, b } = await payoutSignedByFirst(chain);
  try {
    const leave = a.unregisterCall();
    a.sign(leave);
    const handover = a.include(leave).block;
    b.import(handover);
    b.import(...chain.blocks(MAX_DUTY_PERIOD + RECENT_KEPT));
    // b's host withholds the unproxy: a (its host keeping its light client behind) could still pay for the vault.
    assert.deepEqual(b.dutyKeys(), [`unproxy:${hexKey(a.key)}`]);
    b.perform(`unproxy:${hexKey(a.key)}`);
    const [repay] = b.duties();
    assert.equal(repay.key, 'payout:0');
    b.sign(repay.callData);
    assert.deepEqual(
      b.include(repay.callData).observations.map((o) => o.kind),
      ['payout'],
    );
    assert.deepEqual(b.dutyKeys(), [], 'paid once');
  } finally {
    await a.close();
    await b.close();
  }
});
