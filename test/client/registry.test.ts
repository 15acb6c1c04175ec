// The client's registry lookup over a fake parentchain: a signing key counts as a member of the shard only
// through its own finalized, successful registration with a quote the policy accepts, and not after it left.
// Registrations are made with the enclave's own quote provider and report data (so the client's copy of the
// format is checked against the enclave's).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { registryLookup, type RegistryChain } from '../../src/client/registry.ts';
import { encodeShardPolicy, shardIdOf } from '../../src/protocol/shard-policy.ts';
import { DEV_AUTHORITY } from '../../src/protocol/registration.ts';
import { simulatedProvider } from '../../src/enclave/keys/attestation.ts';
import { registrationUserData } from '../../src/enclave/parentchain/registry.ts';
import { pureProxyAccount } from '../../src/enclave/parentchain/calls.ts';
import { encodeMessage } from '../../src/protocol/parentchain-messages.ts';
import { concatBytes } from '../../src/protocol/bytes.ts';
import { ed25519Generate, ed25519PublicFromSeed, sha256 } from '../../src/crypto/primitives.ts';
import type { ParentchainBlock, ParentchainCall, ParentchainExtrinsic } from '../../src/parentchain/api.ts';

const policyOf = (name: string, authorities: Uint8Array[]) =>
  encodeShardPolicy({ name, authorities, measurements: [], governance: [] });
// The shards' identities commit to their attestation roots: the client checks registrations against those.
const SHARD_POLICY = policyOf('client registry test', [DEV_AUTHORITY]);
const SHARD = shardIdOf(SHARD_POLICY);
const OTHER_POLICY = policyOf('another shard', [DEV_AUTHORITY]);
const OTHER_SHARD = shardIdOf(OTHER_POLICY);
const known = { shardPolicies: [SHARD_POLICY, OTHER_POLICY] };
const MEASUREMENT = new Uint8Array(32).fill(0x77);

function registration(signingKey: Uint8Array, opts: { shard?: Uint8Array; authoritySeed?: Uint8Array } = {}) {
  const shard = opts.shard ?? SHARD;
  const value = {
    shard,
    signingKey,
    p2pAddresses: ['/ip4/127.0.0.1/tcp/1'],
    peerId: 'peer',
    encryptionKey: signingKey,
  };
  const provider = simulatedProvider(
    MEASUREMENT,
    new Uint8Array(32),
    ...(opts.authoritySeed ? [opts.authoritySeed] : []),
  );
  const quote = provider.quote(
    concatBytes(signingKey, registrationUserData(shard, value.peerId, value.p2pAddresses, value.encryptionKey)),
  );
  return encodeMessage({ tag: 'register', value: { ...value, quote } });
}

const remark = (r: Uint8Array): ParentchainCall => ({
  pallet: 'system',
  method: 'remarkWithEvent',
  args: {},
  remark: r,
});
const batch = (calls: ParentchainCall[]): ParentchainCall => ({
  pallet: 'utility',
  method: 'batchAll',
  args: {},
  calls,
});

class FakeChain implements RegistryChain {
  readonly blocks: ParentchainBlock[] = [];
  fetched = 0;
  constructor() {
    this.add([]);
  }
  add(extrinsics: { signer?: Uint8Array; call: ParentchainCall; success?: boolean }[]): void {
    const number = this.blocks.length;
    const hash = sha256(Uint8Array.of(number & 0xff, number >> 8));
    this.blocks.push({
      header: {
        number,
        hash,
        parentHash: new Uint8Array(32),
        stateRoot: new Uint8Array(32),
        extrinsicsRoot: new Uint8Array(32),
        encoded: new Uint8Array(0),
      },
      raw: [],
      extrinsics: extrinsics.map((x, index): ParentchainExtrinsic => ({
        index,
        hash: new Uint8Array(32),
        encoded: new Uint8Array(0),
        signer: x.signer,
        call: x.call,
        success: x.success ?? true,
        events: [],
      })),
      events: [],
    });
  }
  async finalizedHead() {
    return this.blocks.at(-1)!.header;
  }
  async blockHash(n: number) {
    return this.blocks[n]?.header.hash;
  }
  async block(hash: Uint8Array) {
    this.fetched++;
    return this.blocks.find((b) => Buffer.from(b.header.hash).equals(hash))!;
  }
}

const refused = { code: 'UNTRUSTED_ENCLAVE' };

test('a member registered by its own extrinsic with a trusted quote is found, also inside a batch', async () => {
  const chain = new FakeChain();
  const a = ed25519Generate().publicKey;
  const b = ed25519Generate().publicKey;
  chain.add([{ signer: a, call: remark(registration(a)) }]);
  chain.add([{ signer: b, call: batch([remark(new Uint8Array(3)), remark(registration(b))]) }]);
  const member = registryLookup(chain, known);
  await member(SHARD, a);
  await member(SHARD, b);
  await assert.rejects(member(OTHER_SHARD, a), refused);
  // Scans continue where they stopped: a second lookup fetches no block twice.
  const fetched = chain.fetched;
  await member(SHARD, a);
  assert.equal(chain.fetched, fetched);
});

test('forged, foreign, failed and withdrawn registrations do not make a member', async () => {
  const chain = new FakeChain();
  const [a, b, c, d, e] = Array.from({ length: 5 }, () => ed25519Generate().publicKey);
  const hostAuthority = new Uint8Array(32).fill(1);
  // a: quote by an authority of the host's own; b: posted by another account; c: the extrinsic failed;
  // d: registered for another shard; e: registered and then unregistered.
  chain.add([
    { signer: a, call: remark(registration(a, { authoritySeed: hostAuthority })) },
    { signer: a, call: remark(registration(b)) },
    { signer: c, call: remark(registration(c)), success: false },
    { signer: d, call: remark(registration(d, { shard: OTHER_SHARD })) },
    { signer: e, call: remark(registration(e)) },
  ]);
  chain.add([
    { signer: e, call: remark(encodeMessage({ tag: 'unregister', value: { shard: SHARD, signingKey: e } })) },
  ]);
  const member = registryLookup(chain, known);
  for (const k of [a, b, c, d, e]) await assert.rejects(member(SHARD, k), refused);
  // The host's authority attests members only of a shard whose policy (its identity) names it.
  const hostPolicy = policyOf('the host authority shard', [ed25519PublicFromSeed(hostAuthority)]);
  const hostShard = shardIdOf(hostPolicy);
  chain.add([{ signer: a, call: remark(registration(a, { authoritySeed: hostAuthority, shard: hostShard })) }]);
  await registryLookup(chain, { shardPolicies: [hostPolicy] })(hostShard, a);
  await assert.rejects(registryLookup(chain, { shardPolicies: [SHARD_POLICY, hostPolicy] })(SHARD, a), refused);
});

test("a shard whose policy the client does not know is refused, not checked against another shard's roots", async () => {
  const chain = new FakeChain();
  const a = ed25519Generate().publicKey;
  chain.add([{ signer: a, call: remark(registration(a)) }]);
  // No policy, or one that hashes to another shard: the registration's quote is never believed.
  await assert.rejects(registryLookup(chain)(SHARD, a), { code: 'UNKNOWN_SHARD_POLICY' });
  const lookalike = policyOf('client registry test ', [DEV_AUTHORITY]);
  await assert.rejects(registryLookup(chain, { shardPolicies: [lookalike] })(SHARD, a), {
    code: 'UNKNOWN_SHARD_POLICY',
  });
  await registryLookup(chain, known)(SHARD, a);
});

test('a lookup that would scan more than maxBlocks refuses instead of trusting', async () => {
  const chain = new FakeChain();
  const a = ed25519Generate().publicKey;
  for (let i = 0; i < 20; i++) chain.add([]);
  chain.add([{ signer: a, call: remark(registration(a)) }]);
  await assert.rejects(registryLookup(chain, { ...known, maxBlocks: 10 })(SHARD, a), { code: 'REGISTRY_SCAN_LIMIT' });
  await registryLookup(chain, { ...known, maxBlocks: 10, fromBlock: 15 })(SHARD, a);
});

test('the vault is the pure proxy of the first vault batch by a member, whoever else posts one', async () => {
  const chain = new FakeChain();
  const a = ed25519Generate().publicKey;
  const outsider = ed25519Generate().publicKey;
  const vaultBatch = batch([
    { pallet: 'proxy', method: 'createPure', args: {} },
    remark(encodeMessage({ tag: 'vault', value: { shard: SHARD } })),
  ]);
  const lookup = registryLookup(chain, known);
  chain.add([{ signer: outsider, call: vaultBatch }]); // block 1: not a member
  chain.add([{ signer: a, call: remark(registration(a)) }]); // block 2
  assert.equal(await lookup.vault(SHARD), null);
  chain.add([
    { signer: a, call: remark(new Uint8Array(1)) },
    { signer: a, call: vaultBatch },
  ]); // block 3, index 1
  chain.add([{ signer: a, call: vaultBatch }]); // a second vault is not the vault
  assert.deepEqual(await lookup.vault(SHARD), pureProxyAccount(a, 3, 1));
  assert.equal(await lookup.vault(OTHER_SHARD), null);
});

test('lookups of one shard at the same time scan every block once: none is skipped, so no registration is missed', async () => {
  const chain = new FakeChain();
  const keys = Array.from({ length: 12 }, () => ed25519Generate().publicKey);
  for (const k of keys) chain.add([{ signer: k, call: remark(registration(k)) }]);
  const member = registryLookup(chain, known);
  // All at once: each scan waits on the chain between blocks, so unserialised scans advance one shared position.
  const results = await Promise.allSettled(keys.map((k) => member(SHARD, k)));
  assert.deepEqual(
    results.map((r) => r.status),
    keys.map(() => 'fulfilled'),
  );
  assert.equal(chain.fetched, keys.length + 1, 'each block fetched once');
});
