// The client does not believe its RPC endpoint. Each test runs a real JSON-RPC server on 127.0.0.1 as
// an endpoint would answer: honestly relaying a genuine enclave, handing out its own shielding key, or
// answering getters with another enclave's (or a re-signed) reply.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EnclaveCore } from '../../src/enclave/core.ts';
import { startRpcServer, type RpcHandler, type RpcServer } from '../../src/rpc/server.ts';
import { ValidateerClient, type ClientTrust } from '../../src/client/client.ts';
import { devAccount, type Account } from '../../src/client/accounts.ts';
import { buildTransfer } from '../../src/client/calls.ts';
import { HpkeSuite } from '../../src/crypto/hpke.ts';
import { ed25519Generate, ed25519Sign, x25519Generate } from '../../src/crypto/primitives.ts';
import { SignedGetterReply, getterReplyDigest, shieldingKeyDigest } from '../../src/protocol/enclave-proofs.ts';
import {
  GetterReply,
  HPKE_INFO_GETTER,
  HPKE_INFO_REPLY,
  SealedReply,
  ShieldedRequest,
  TrustedGetterSigned,
  decodeExact,
} from '../../src/protocol/wire.ts';
import { fromHex, toHex } from '../../src/protocol/bytes.ts';
import { runCli } from '../e2e/harness.ts';
import { testShard } from '../helpers/shard.ts';

const { shard: SHARD, shardPolicy: POLICY } = testShard('endpoint trust test shard');
const POOL = { maxPending: 100, maxNonceAhead: 8, futureTtlMs: 30000 };
const ALICE_START = 123_456n;
const FORGED = 999_999_999n;

let alice: Account;
const dirs: string[] = [];
const servers: RpcServer[] = [];
const clients: ValidateerClient[] = [];
const cores: EnclaveCore[] = [];

before(async () => {
  alice = await devAccount('//Alice');
});
after(async () => {
  await Promise.allSettled(clients.map((c) => c.close()));
  await Promise.allSettled(servers.map((s) => s.close()));
  await Promise.allSettled(cores.map((c) => c.close()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** An enclave of the shard; with devSecrets two enclaves share the shielding key (as a removed member would). */
function enclave(devSecrets: boolean): EnclaveCore {
  const dataDir = mkdtempSync(join(tmpdir(), 'validateer-trust-'));
  dirs.push(dataDir);
  const core = EnclaveCore.open({
    dataDir,
    shard: SHARD,
    shardPolicy: POLICY,
    workers: 1,
    pool: POOL,
    authorities: [],
    devShardSecrets: devSecrets,
  });
  core.genesis([{ account: alice.publicKey, amount: ALICE_START }], Date.now());
  cores.push(core);
  return core;
}

/** What an honest node answers to author_getShieldingKey for this enclave. */
function keyReply(core: EnclaveCore) {
  const i = core.info();
  return {
    shard: toHex(SHARD),
    keyId: i.shieldingKeyId,
    publicKey: toHex(i.shieldingKey),
    signer: toHex(i.signingKey),
    signature: toHex(i.shieldingKeySignature!),
  };
}

const honestGetter =
  (core: EnclaveCore): RpcHandler =>
  (p) =>
    toHex(core.executeGetter(fromHex((p as string[])[0]), Date.now()));

/** An endpoint on a free port answering with these handlers; getter requests it receives are counted. */
async function endpoint(methods: Record<string, RpcHandler>): Promise<{ url: string; getters: () => number }> {
  let getters = 0;
  const server = await startRpcServer({
    host: '127.0.0.1',
    port: 0,
    maxFrameBytes: 1 << 20,
    maxBatch: 10,
    maxConnections: 10,
    methods: {
      ...methods,
      state_executeGetter: (p, ctx) => {
        getters++;
        return methods.state_executeGetter(p, ctx);
      },
    },
  });
  servers.push(server);
  return { url: server.url, getters: () => getters };
}

async function connect(url: string, trust: ClientTrust): Promise<ValidateerClient> {
  const c = await ValidateerClient.connect(url, trust);
  clients.push(c);
  return c;
}

/** A host with a key pair of its own: it reads every getter and answers with any balance it likes. */
function hostileHost(sign: 'none' | 'own-key') {
  const shielding = x25519Generate();
  const signing = ed25519Generate();
  const getterSuite = new HpkeSuite(HPKE_INFO_GETTER);
  const replySuite = new HpkeSuite(HPKE_INFO_REPLY);
  const methods: Record<string, RpcHandler> = {
    author_getShieldingKey: () => ({
      shard: toHex(SHARD),
      keyId: 1,
      publicKey: toHex(shielding.publicKey),
      ...(sign === 'own-key'
        ? {
            signer: toHex(signing.publicKey),
            signature: toHex(ed25519Sign(signing.secretKey, shieldingKeyDigest(SHARD, 1, shielding.publicKey))),
          }
        : {}),
    }),
    state_executeGetter: (p) => {
      const request = fromHex((p as string[])[0]);
      const req = decodeExact(ShieldedRequest, request, 'request');
      const plain = getterSuite.open(shielding, req.enc, req.ciphertext, req.shard)!;
      const g = decodeExact(TrustedGetterSigned, plain, 'getter');
      const { enc, ciphertext } = replySuite.seal(g.replyKey, GetterReply.enc({ tag: 'balance', value: FORGED }));
      const sealed = SealedReply.enc({ enc, ciphertext });
      if (sign === 'none') return toHex(sealed); // the reply format before enclaves signed replies
      const signature = ed25519Sign(signing.secretKey, getterReplyDigest(SHARD, request, sealed));
      return toHex(SignedGetterReply.enc({ sealed, signer: signing.publicKey, signature }));
    },
  };
  return methods;
}

test('honest path: an endpoint relaying a pinned enclave serves balances', async () => {
  const a = enclave(false);
  const e = await endpoint({ author_getShieldingKey: () => keyReply(a), state_executeGetter: honestGetter(a) });
  const bySigner = await connect(e.url, { signers: [a.info().signingKey], shard: SHARD });
  assert.equal(await bySigner.balance(alice), ALICE_START);
  const byKey = await connect(e.url, { shieldingKey: a.info().shieldingKey });
  assert.equal(await byKey.balance(alice), ALICE_START);
});

test('an endpoint handing out its own shielding key is refused before any getter is sent', async () => {
  const genuine = enclave(false);
  const anchors: ClientTrust[] = [
    { signers: [genuine.info().signingKey] },
    { shieldingKey: genuine.info().shieldingKey },
    { member: async () => Promise.reject(Object.assign(new Error('not a member'), { code: 'UNTRUSTED_ENCLAVE' })) },
    {}, // no anchor at all: nothing is believed
  ];
  for (const sign of ['none', 'own-key'] as const) {
    const e = await endpoint(hostileHost(sign));
    for (const trust of anchors) {
      const c = await connect(e.url, trust);
      await assert.rejects(c.balance(alice), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'UNTRUSTED_SHIELDING_KEY', `${sign} ${Object.keys(trust).join()}: ${err.message}`);
        return true;
      });
      await assert.rejects(c.shieldingKey(), { code: 'UNTRUSTED_SHIELDING_KEY' });
    }
    assert.equal(e.getters(), 0, 'no getter (and so no reply key) reached the hostile endpoint');
  }
});

test('a getter reply from an enclave the client does not trust, or re-signed, is refused', async () => {
  // A and B share the shard's shielding key; only A is trusted (B: e.g. a removed member, or a host's own).
  const a = enclave(true);
  const b = enclave(true);
  assert.deepEqual(a.info().shieldingKey, b.info().shieldingKey);
  await b.submit(
    [
      // B's state differs: its reply is what the endpoint wants the client to believe.
      buildTransfer(
        alice,
        { to: new Uint8Array(32).fill(9), amount: 6n, nonce: 0 },
        { keyId: b.info().shieldingKeyId, publicKey: b.info().shieldingKey },
        SHARD,
      ).request,
    ],
    Date.now(),
  );
  const p = b.propose({ slot: 1n, timestampMs: Date.now(), maxCalls: 10 });
  b.commit(p.hash);
  const trust: ClientTrust = { signers: [a.info().signingKey] };
  const fromB = await endpoint({ author_getShieldingKey: () => keyReply(a), state_executeGetter: honestGetter(b) });
  await assert.rejects((await connect(fromB.url, trust)).balance(alice), { code: 'UNTRUSTED_REPLY' });
  // B's sealed reply under A's name: the signature no longer matches.
  const reSigned = await endpoint({
    author_getShieldingKey: () => keyReply(a),
    state_executeGetter: (p) => {
      const request = fromHex((p as string[])[0]);
      const fake = decodeExact(SignedGetterReply, b.executeGetter(request, Date.now()), 'reply');
      const real = decodeExact(SignedGetterReply, a.executeGetter(request, Date.now()), 'reply');
      return toHex(SignedGetterReply.enc({ sealed: fake.sealed, signer: real.signer, signature: real.signature }));
    },
  });
  await assert.rejects((await connect(reSigned.url, trust)).balance(alice), { code: 'UNTRUSTED_REPLY' });
  // The same endpoint relaying A answers A's state.
  const honest = await endpoint({ author_getShieldingKey: () => keyReply(a), state_executeGetter: honestGetter(a) });
  assert.equal(await (await connect(honest.url, trust)).balance(alice), ALICE_START);
});

test('the CLI refuses a hostile endpoint and serves through a pinned enclave', async () => {
  const a = enclave(false);
  const honest = await endpoint({ author_getShieldingKey: () => keyReply(a), state_executeGetter: honestGetter(a) });
  const hostile = await endpoint(hostileHost('own-key'));
  const pin = ['--pin-signer', toHex(a.info().signingKey)];
  const cli = (args: string[]) => runCli(['client', ...args], { timeoutMs: 180_000 }); // a loaded machine starts slowly
  const [ok, refused, unanchored] = await Promise.all([
    cli(['--rpc', honest.url, ...pin, 'balance', '//Alice']),
    cli(['--rpc', hostile.url, ...pin, 'balance', '//Alice']),
    // No pin: the registry lookup on a parentchain that is not there refuses rather than trusts.
    cli(['--rpc', hostile.url, '--trust-parentchain', 'ws://127.0.0.1:1', 'balance', '//Alice']),
  ]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout.trim(), String(ALICE_START));
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /UNTRUSTED_SHIELDING_KEY/);
  assert.notEqual(unanchored.code, 0);
  assert.ok(!unanchored.stdout.includes(String(FORGED)), unanchored.stdout);
  assert.equal(hostile.getters(), 0);
});
