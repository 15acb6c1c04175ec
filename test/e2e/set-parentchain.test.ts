// End to end, a validateer set on the chopsticks devnet (a real Substrate runtime): four real
// processes register on the parentchain, find each other through the registry, take turns by Aura,
// agree on the chain and its state, include every call once, survive a kill -9, and converge after a
// network partition without losing a final call (anchored in a finalized parentchain block).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { EnclaveCore } from '../../src/enclave/core.ts';
import { ProvisionRequest, requestBinding } from '../../src/enclave/keys/provisioning.ts';
import { simulatedProvider } from '../../src/enclave/keys/attestation.ts';
import { SIM_SIGNER_ID, Sealer } from '../../src/enclave/keys/sealing.ts';
import { aesGcmOpen, sha256 } from '../../src/crypto/primitives.ts';
import { loadOrCreateKeys } from '../../src/enclave/keys/keys.ts';
import { computeMeasurement } from '../../src/enclave/keys/measurement.ts';
import { SignedBlock, transitionsAad } from '../../src/protocol/block.ts';
import { configSchema } from '../../src/config/schema.ts';
import { startDevChain, type DevChain } from '../../src/parentchain/devchain.ts';
import { ValidateerClient, type HeaderJson } from '../../src/client/client.ts';
import { devAccount } from '../../src/client/accounts.ts';
import { decodeExact } from '../../src/protocol/wire.ts';
import {
  cleanupTempDirs,
  createEnclaveKeys,
  freePorts,
  restartNode,
  runCli,
  scrapeMetrics,
  sleep,
  startNodes,
  startTestPeer,
  tempDir,
  waitFor,
  type NodeHandle,
  type StartNodeOptions,
  OWN_NODES,
} from './harness.ts';
import { concatBytes, fromHex, toHex } from '../../src/protocol/bytes.ts';
import { codeOf } from '../../src/protocol/errors.ts';
import { DEV_SHARD_POLICY } from '../../src/protocol/shard-policy.ts';

const N = 4;
const SLOT_MS = 400;
const BLOCK_MS = 1000;
const ANCHOR_INTERVAL = 5;
const UNIT = 10n ** 12n;
/** The default shard (the nodes run with the schema's default). */
const SHARD = fromHex(configSchema.parse({}).shard);

let chain: DevChain;
let readyMs = 0;
let nodes: NodeHandle[] = [];
const clients: ValidateerClient[] = [];
const keys: string[] = [];
const dataDirs: string[] = [];
const ports: { p2p: number; rpc: number; metrics: number }[] = [];

interface NetworkInfo {
  peerId: string;
  addresses: string[];
  peers: string[];
}

function options(i: number): StartNodeOptions {
  return {
    slotMs: SLOT_MS,
    dataDir: dataDirs[i],
    rpcPort: ports[i].rpc,
    metricsPort: ports[i].metrics,
    extraConfig: {
      parentchain: { endpoint: chain.endpoint, anchorInterval: ANCHOR_INTERVAL },
      // A fixed listen port: the registered address stays valid across the restart.
      p2p: { devControl: true, listen: [`/ip4/127.0.0.1/tcp/${ports[i].p2p}`] },
      sidechain: { snapshotInterval: 20 },
    },
  };
}

function network(c: ValidateerClient): Promise<NetworkInfo> {
  return c.rpc.request<NetworkInfo>('system_network');
}

function header(c: ValidateerClient, n: number): Promise<HeaderJson | null> {
  return c.rpc.request<HeaderJson | null>('chain_getHeader', [n]);
}

function blockHash(c: ValidateerClient, n: number): Promise<string | null> {
  return c.rpc.request<string | null>('chain_getBlockHash', [n]);
}

async function finalizedNumber(c: ValidateerClient): Promise<{ number: number; hash: string }> {
  const hash = await c.finalizedHead();
  const h = await c.rpc.request<HeaderJson | null>('chain_getHeader', [hash]);
  return { number: h?.number ?? 0, hash };
}

async function heads(): Promise<number[]> {
  return (await Promise.all(clients.map((c) => c.head()))).map((h) => h.number);
}

/** Waits until all validateers have the same block at a common height >= minHeight; returns that height. */
async function sameChain(what: string, minHeight = 1, timeoutMs = 60_000): Promise<number> {
  return waitFor(
    async () => {
      const n = Math.min(...(await heads()));
      if (n < minHeight) return undefined;
      // Heads move every slot: compare the block at a common height.
      const hashes = await Promise.all(clients.map((c) => blockHash(c, n)));
      return hashes.every((h) => h !== null && h === hashes[0]) ? n : undefined;
    },
    what,
    timeoutMs,
    100,
  );
}

async function metric(node: NodeHandle, name: string): Promise<number> {
  return (await scrapeMetrics(node.metricsUrl)).get(name) ?? 0;
}

/**
 * Each node's warnings and errors, one line per distinct message with its count and last instance (for failure
 * messages).
 */
function warnings(): string {
  return nodes
    .map((node, i) => {
      const byMsg = new Map<string, { count: number; last: Record<string, unknown> }>();
      for (const l of node.logs()) {
        if ((l.level as number) < 40 || l.msg === 'parentchain message ignored') continue;
        const e = byMsg.get(String(l.msg)) ?? { count: 0, last: l };
        byMsg.set(String(l.msg), { count: e.count + 1, last: l });
      }
      const lines = [...byMsg].map(
        ([msg, { count, last }]) =>
          `${count}x ${msg} ${JSON.stringify({ from: last.from, peer: last.peer, code: last.code, err: last.err })}`,
      );
      return `  node ${i}: ${lines.join('\n          ')}`;
    })
    .join('\n');
}

before(async () => {
  const root = tempDir('validateer-set-pc-');
  for (let i = 0; i < N; i++) dataDirs.push(join(root, `v${i + 1}`));
  // The enclave accounts must be funded at parentchain genesis: create their keys first.
  keys.push(...(await createEnclaveKeys(dataDirs)));
  chain = await startDevChain({
    host: '127.0.0.1',
    blockTimeMs: BLOCK_MS,
    endowments: keys.map((k) => ({ publicKey: fromHex(k), amount: 10_000n * UNIT })),
  });
  // Every port picked up front and distinct: nodes starting at once must not pick the same one.
  const free = await freePorts(3 * N);
  for (let i = 0; i < N; i++) ports.push({ p2p: free[3 * i], rpc: free[3 * i + 1], metrics: free[3 * i + 2] });
  // All at once: only the first registered member creates block 0; the others are ready once they have it.
  const started = Date.now();
  nodes = await startNodes(dataDirs.map((_, i) => options(i)));
  readyMs = Date.now() - started;
  for (const n of nodes) clients.push(await ValidateerClient.connect(n.rpcUrl, OWN_NODES));
});

after(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  await Promise.all(nodes.map((n) => n.stop()));
  await chain?.close();
  cleanupTempDirs();
});

test('four validateers register, take turns and agree on the head and the state commitment', async (t) => {
  const t0 = Date.now();
  for (const c of clients) {
    await waitFor(
      async () => {
        const v = (await c.shardInfo()).validateers ?? [];
        return v.filter((m) => m.unregisteredAt === null).length === N;
      },
      'all four registered, as seen by every validateer',
      60_000,
      250,
    );
  }
  t.diagnostic(`all registered after ${Date.now() - t0} ms (nodes ready ${readyMs} ms after start)`);
  const registered = ((await clients[0].shardInfo()).validateers ?? []).map((v) => v.signingKey);
  assert.deepEqual([...registered].sort(), [...keys].sort());
  // The first member makes every member a proxy of the vault (paying each proxy's deposit), so any can pay out.
  await waitFor(
    async () => ((await clients[0].shardInfo()).vaultProxies ?? []).length === N,
    'every member a vault proxy',
    60_000,
    250,
  );
  assert.deepEqual([...((await clients[0].shardInfo()).vaultProxies ?? [])].sort(), [...keys].sort());

  // Every member authors in its Aura slots: the authors of a window of recent blocks cover the set.
  await waitFor(
    async () => {
      const head = await clients[0].head();
      const authors = new Set<string>();
      for (let n = head.number; n > Math.max(0, head.number - 12); n--)
        authors.add((await header(clients[0], n))!.author);
      return authors.size === N;
    },
    'blocks by all four authors',
    60_000,
    500,
  );

  t.diagnostic(`blocks by all four authors after ${Date.now() - t0} ms`);
  const n = await sameChain('the same chain on all validateers');
  t.diagnostic(`the same chain at #${n} after ${Date.now() - t0} ms`);
  const hs = await Promise.all(clients.map((c) => header(c, n)));
  for (const h of hs) {
    assert.ok(h);
    assert.equal(h.hash, hs[0]!.hash);
    assert.equal(h.stateCommitment, hs[0]!.stateCommitment, `state commitment at #${n}`);
  }
  for (const node of nodes) {
    await waitFor(
      async () => (await metric(node, 'validateer_p2p_peers')) >= 2,
      `peers >= 2 on ${node.rpcUrl}`,
      30_000,
      250,
    );
    assert.ok(
      (await metric(node, 'validateer_sidechain_blocks_imported_total{result="imported"}')) > 0,
      `imports on ${node.rpcUrl}`,
    );
  }
});

test('the shard secrets reached every enclave by attested provisioning: the first member made them, the others asked', async () => {
  // Every enclave generated keys of its own; one shielding key for the shard now means they were handed over.
  const shielding = await Promise.all(
    clients.map((c) => c.rpc.request<{ publicKey: string }>('author_getShieldingKey')),
  );
  assert.equal(new Set(shielding.map((k) => k.publicKey)).size, 1);
  const first = ((await clients[0].shardInfo()).validateers ?? [])[0].signingKey;
  let served = 0;
  for (const [i, node] of nodes.entries()) {
    const received = await metric(node, 'validateer_provisioning_total{role="requester",result="ok"}');
    served += await metric(node, 'validateer_provisioning_total{role="provider",result="ok"}');
    assert.equal(
      received,
      keys[i] === first ? 0 : 1,
      `node ${i} received the secrets ${keys[i] === first ? 'never (it made them)' : 'once'}`,
    );
    if (keys[i] !== first)
      assert.ok(
        (await metric(node, 'validateer_attestation_verifications_total{result="ok"}')) >= 1,
        `node ${i} checked its provider's quote`,
      );
  }
  assert.equal(served, N - 1);
});

test('provisioning refusals over libp2p: an unregistered enclave, a forged quote and another enclave code are refused and counted', async () => {
  const target = await network(clients[0]);
  const stranger = EnclaveCore.open({
    dataDir: tempDir('validateer-stranger-'),
    shard: SHARD,
    shardPolicy: DEV_SHARD_POLICY,
    workers: 0,
    pool: { maxPending: 10, maxNonceAhead: 1, futureTtlMs: 1000 },
    authorities: [],
  });
  const peer = await startTestPeer(SHARD, target.addresses);
  try {
    await waitFor(() => peer.connectedPeers().includes(target.peerId), 'the stranger connected', 20_000);
    const refusal = async (request: Uint8Array) => {
      try {
        await peer.requestProvision(target.peerId, request);
        return 'answered';
      } catch (err) {
        assert.equal(codeOf(err), 'P2P_REFUSED', (err as Error).message);
        return /PROVISION_[A-Z_]+/.exec((err as Error).message)?.[0];
      }
    };
    // A real enclave with a valid quote that never registered for the shard.
    const request = stranger.provisionRequest(Date.now());
    assert.equal(await refusal(request), 'PROVISION_UNREGISTERED');
    // The same request with its quote's signature broken.
    const r = ProvisionRequest.dec(request);
    const flipped = Uint8Array.from(r.quote, (v, i) => (i === r.quote.length - 1 ? v ^ 1 : v));
    assert.equal(await refusal(ProvisionRequest.enc({ ...r, quote: flipped })), 'PROVISION_FORGED_QUOTE');
    // A correctly bound quote of other enclave code (signed by the trusted dev authority).
    const otherCode = simulatedProvider(sha256(new TextEncoder().encode('other enclave code')), SIM_SIGNER_ID).quote(
      concatBytes(r.requester, requestBinding(r)),
    );
    assert.equal(await refusal(ProvisionRequest.enc({ ...r, quote: otherCode })), 'PROVISION_WRONG_MEASUREMENT');
    for (const code of ['PROVISION_UNREGISTERED', 'PROVISION_FORGED_QUOTE', 'PROVISION_WRONG_MEASUREMENT']) {
      assert.ok(
        (await metric(nodes[0], `validateer_provisioning_total{role="provider",result="${code}"}`)) >= 1,
        `${code} counted`,
      );
    }
    assert.ok(
      nodes[0].logs().some((l) => l.msg === 'provisioning refused' && l.code === 'PROVISION_FORGED_QUOTE'),
      'the refusal is logged with its code',
    );
  } finally {
    await peer.stop();
    await stranger.close();
  }
});

test('calls submitted round-robin to all validateers are each included exactly once', async () => {
  const alice = await devAccount('//Alice');
  const bob = await devAccount('//Bob');
  await sameChain('the same chain before the calls');
  const bobBefore = await clients[0].balance(bob);
  const nonce0 = await clients[0].nonce(alice);
  const count = 12;
  const results = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      clients[i % N].transfer(alice, bob.publicKey, 1n, { nonce: nonce0 + i, timeoutMs: 60_000 }),
    ),
  );
  assert.equal(new Set(results.map((r) => r.hash)).size, count);
  await waitFor(
    async () => {
      const b = await Promise.all(clients.map((c) => c.balance(bob)));
      const nonces = await Promise.all(clients.map((c) => c.nonce(alice)));
      return b.every((x) => x === bobBefore + BigInt(count)) && nonces.every((x) => x === nonce0 + count);
    },
    `bob credited ${count} and alice's nonce ${nonce0 + count} on every validateer`,
    60_000,
    250,
  );
  // Each call is indexed in one block of the common chain.
  await sameChain('the same chain after the calls', Math.max(...results.map((r) => r.blockNumber)));
  for (const c of clients) {
    for (const r of results) assert.equal(await c.callBlock(r.hash), r.blockNumber);
  }
});

test('a killed validateer leaves the others producing; restarted, it catches up to the same chain', async () => {
  await nodes[3].kill('SIGKILL');
  const live = clients.slice(0, 3);
  const h = (await live[0].head()).number;
  await waitFor(async () => (await live[0].head()).number >= h + 6, 'the other three go on', 60_000, 100);
  await waitFor(
    async () => {
      const n = Math.min(...(await Promise.all(live.map((c) => c.head()))).map((x) => x.number));
      const hashes = await Promise.all(live.map((c) => blockHash(c, n)));
      return n > h && hashes.every((x) => x === hashes[0]);
    },
    'the other three on one chain',
    60_000,
    100,
  );

  await clients[3].close().catch(() => undefined);
  nodes[3] = await restartNode(nodes[3], options(3));
  clients[3] = await ValidateerClient.connect(nodes[3].rpcUrl, OWN_NODES);
  const top = (await live[0].head()).number;
  const n = await sameChain('the restarted node on the same chain', top, 60_000);
  const hs = await Promise.all(clients.map((c) => header(c, n)));
  for (const x of hs) assert.equal(x?.stateCommitment, hs[0]?.stateCommitment);
});

test('a partition 3+1 heals into one chain: only the majority finalizes while cut, final calls kept, abandoned calls included later', async (t) => {
  const alice = await devAccount('//Alice');
  const bob = await devAccount('//Bob');
  const charlie = await devAccount('//Charlie');
  await sameChain('one chain before the partition', 1, 60_000);
  const ids = (await Promise.all(clients.map(network))).map((x) => x.peerId);
  // Finality needs a strict majority of the set's votes: three of four finalize, the one alone cannot.
  const halfA = [0, 1, 2];
  const halfB = [3];
  const bobBefore = await clients[0].balance(bob);
  const aliceNonce0 = await clients[0].nonce(alice);
  const charlieNonce0 = await clients[0].nonce(charlie);
  const finalBefore = Math.max(...(await Promise.all(clients.map(async (c) => (await finalizedNumber(c)).number))));

  // Cut: each node refuses the peers of the other half.
  for (const i of halfA) await clients[i].rpc.request('dev_setBlockedPeers', [halfB.map((j) => ids[j])]);
  for (const i of halfB) await clients[i].rpc.request('dev_setBlockedPeers', [halfA.map((j) => ids[j])]);
  await waitFor(
    async () => {
      const nets = await Promise.all(clients.map(network));
      return nets.every((net, i) => {
        const other = halfA.includes(i) ? halfB : halfA;
        return other.every((j) => !net.peers.includes(ids[j]));
      });
    },
    'the set cut in two',
    30_000,
    100,
  );
  const cutAt = Math.max(...(await heads()));

  // Distinct senders per half: //Alice only on half A, //Charlie only on half B. Each half then builds
  // a gap-free nonce sequence for its own sender, and whichever branch wins, the other branch's calls
  // are still valid on it (their sender's nonces were not touched there), so all of them can be
  // included after the heal. With one sender on both halves, the two branches would use the same
  // nonces for different calls, and the losing branch's calls would be invalid (or stuck behind a nonce
  // gap) on the winning one: "every accepted call is included" would not hold, by design.
  const AMOUNT_A = 1n;
  const AMOUNT_B = 1000n;
  interface Sent {
    half: 'A' | 'B';
    node: number;
    nonce: number;
    promise: Promise<{ hash: string; blockHash: string; blockNumber: number }>;
    inBlock?: { hash: string; blockHash: string; blockNumber: number };
    final?: boolean;
  }
  const sent: Sent[] = [];
  const send = (half: 'A' | 'B', node: number, nonce: number): void => {
    const signer = half === 'A' ? alice : charlie;
    const s: Sent = { half, node, nonce, promise: undefined as never };
    s.promise = clients[node].transfer(signer, bob.publicKey, half === 'A' ? AMOUNT_A : AMOUNT_B, {
      nonce,
      timeoutMs: 150_000,
    });
    s.promise.then(
      (r) => (s.inBlock = r),
      () => undefined,
    );
    sent.push(s);
  };
  /**
   * Marks calls reported final: in a block at or below the finalized head of the node that reported them, on its
   * finalized chain.
   */
  const markFinal = async (): Promise<void> => {
    for (const s of sent) {
      if (!s.inBlock || s.final) continue;
      const c = clients[s.node];
      const f = await finalizedNumber(c);
      if (s.inBlock.blockNumber <= f.number && (await blockHash(c, s.inBlock.blockNumber)) === s.inBlock.blockHash)
        s.final = true;
    }
  };
  const diverged = async (): Promise<boolean> => {
    const [a, b] = [await clients[halfA[0]].head(), await clients[halfB[0]].head()];
    const n = Math.min(a.number, b.number);
    return n > cutAt && (await blockHash(clients[halfA[0]], n)) !== (await blockHash(clients[halfB[0]], n));
  };

  // Keep both halves busy while cut, until a call made during the cut is final and the branches differ;
  // then a few more rounds, so that calls wait in the pool of a half that may have stopped authoring.
  let aNonce = aliceNonce0;
  let bNonce = charlieNonce0;
  let extra = -1;
  const cutDeadline = Date.now() + 75_000;
  for (let round = 0; extra !== 0; round++) {
    send('A', halfA[round % halfA.length], aNonce++);
    send('B', halfB[round % halfB.length], bNonce++);
    await sleep(SLOT_MS); // pacing of submissions only; nothing is asserted on it
    await markFinal();
    if (extra < 0 && sent.some((s) => s.final) && (await diverged())) extra = 4;
    else if (extra > 0) extra--;
    if (Date.now() > cutDeadline) {
      const fins = await Promise.all(clients.map(finalizedNumber));
      assert.fail(
        `while cut: no call became final on diverged branches in 75 s (heads ${(await heads()).join(',')}, finalized ${fins.map((f) => f.number).join(',')}, calls in blocks ${sent.filter((s) => s.inBlock).length}/${sent.length})`,
      );
    }
  }
  await markFinal();
  const preHeal = await heads();
  const finals = sent.filter((s) => s.final);
  const fins = await Promise.all(clients.map(finalizedNumber));
  t.diagnostic(
    `cut at #${cutAt} (finalized before: #${finalBefore}); pre-heal heads ${preHeal.join(',')}; finalized ${fins.map((f) => f.number).join(',')}; ` +
      `${sent.length} calls sent, ${sent.filter((s) => s.inBlock).length} in blocks, ${finals.length} final (half A ${finals.filter((s) => s.half === 'A').length}, half B ${finals.filter((s) => s.half === 'B').length})`,
  );
  assert.ok(finals.length > 0, 'some call reported final while cut');
  assert.deepEqual(
    finals.filter((s) => s.half === 'B'),
    [],
    'no call became final on the minority side: one validateer of four cannot finalize its branch',
  );

  // Heal.
  for (const c of clients) await c.rpc.request('dev_setBlockedPeers', [[]]);
  const top = Math.max(...preHeal);
  const n = await sameChain('all four on one chain after the heal', top, 60_000).catch(async (err: Error) => {
    throw new Error(`${err.message}; heads now ${(await heads()).join(',')}; warnings:\n${warnings()}`, { cause: err });
  });
  t.diagnostic(`converged at #${n}`);

  // Every call sent while cut is accepted and ends up included exactly once on the converged chain.
  const aCount = sent.filter((s) => s.half === 'A').length;
  const bCount = sent.filter((s) => s.half === 'B').length;
  const expectedBob = bobBefore + BigInt(aCount) * AMOUNT_A + BigInt(bCount) * AMOUNT_B;
  try {
    await waitFor(
      async () => {
        for (const c of clients) {
          if ((await c.nonce(alice)) !== aliceNonce0 + aCount) return false;
          if ((await c.nonce(charlie)) !== charlieNonce0 + bCount) return false;
          if ((await c.balance(bob)) !== expectedBob) return false;
        }
        return true;
      },
      `alice's nonce ${aliceNonce0 + aCount}, charlie's ${charlieNonce0 + bCount} and bob's balance ${expectedBob} on every validateer`,
      90_000,
      500,
    );
  } catch (err) {
    const state = await Promise.all(
      clients.map(
        async (c) =>
          `alice ${await c.nonce(alice)} charlie ${await c.nonce(charlie)} bob ${await c.balance(bob)} head ${(await c.head()).number}`,
      ),
    );
    throw new Error(`${(err as Error).message}; now: ${state.join(' | ')}`, { cause: err });
  }
  const outcomes = await Promise.allSettled(sent.map((s) => s.promise));
  const rejected = outcomes.flatMap((o) => (o.status === 'rejected' ? [(o.reason as Error).message] : []));
  assert.deepEqual(rejected, [], 'every call sent while cut was accepted and reported in a block');

  // Calls reported final were never lost: each is in the very block it was reported in, on every node.
  await sameChain('one chain after the calls', n);
  for (const s of finals) {
    for (const c of clients) {
      assert.equal(
        await c.callBlock(s.inBlock!.hash),
        s.inBlock!.blockNumber,
        `final call ${s.inBlock!.hash} still in block #${s.inBlock!.blockNumber}`,
      );
      assert.equal(await blockHash(c, s.inBlock!.blockNumber), s.inBlock!.blockHash);
    }
  }
  const reorgs = await Promise.all(nodes.map((node) => metric(node, 'validateer_sidechain_reorgs_total')));
  t.diagnostic(`reorgs per node: ${reorgs.join(',')}`);
  assert.ok(
    reorgs.some((r) => r > 0),
    'at least one validateer reorganised',
  );
});

test('a validateer that leaves (`validateer leave`, node stopped) is dropped from the set; the others go on without it in a new state key epoch it holds no key for', async () => {
  const i = N - 1;
  const epochBefore = await metric(nodes[0], 'validateer_state_key_epoch');
  assert.ok(epochBefore >= 1, "the set's registrations began epochs");
  await nodes[i].stop();
  const r = await runCli(['leave', '--data-dir', dataDirs[i], '--parentchain', chain.endpoint], { timeoutMs: 90_000 });
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /unregistered \S+ in parentchain block #\d+ \(finalized\)/);
  const rest = clients.slice(0, i);
  for (const c of rest) {
    await waitFor(
      async () => {
        const m = ((await c.shardInfo()).validateers ?? []).find((v) => v.signingKey === keys[i]);
        return m !== undefined && m.unregisteredAt !== null;
      },
      'the unregistration seen by every remaining validateer',
      60_000,
      250,
    );
  }
  // Blocks after that are by the three remaining members only, and all three author.
  const from = (await rest[0].head()).number;
  const authors = await waitFor(
    async () => {
      const head = (await rest[0].head()).number;
      if (head < from + 9) return undefined;
      const seen = new Set<string>();
      for (let n = head; n > head - 9; n--) seen.add((await header(rest[0], n))!.author);
      return seen.size === N - 1 ? seen : undefined;
    },
    'nine blocks by the three remaining members',
    60_000,
    250,
  );
  assert.ok(!authors.has(keys[i]), 'the departed validateer authors no more');
  // Its enclave account no longer controls the shard's vault: the first member removed it as a proxy.
  for (const c of rest) {
    await waitFor(
      async () => {
        const proxies = (await c.shardInfo()).vaultProxies ?? [];
        return proxies.length === N - 1 && !proxies.includes(keys[i]) ? proxies : undefined;
      },
      'the departed validateer removed as a vault proxy',
      60_000,
      250,
    );
  }

  // The first block after the departure began a new epoch on every remaining validateer.
  for (const n of nodes.slice(0, i)) {
    await waitFor(
      async () => (await metric(n, 'validateer_state_key_epoch')) > epochBefore,
      'a new state key epoch after the departure',
      30_000,
      250,
    );
  }
  // Fetch a block of the new epoch over libp2p and try every key the departed data directory holds.
  const head = await rest[0].head();
  const target = await network(rest[0]);
  const peer = await startTestPeer(SHARD, target.addresses);
  try {
    await waitFor(() => peer.connectedPeers().includes(target.peerId), 'the test peer connected', 20_000);
    const [bytes] = await peer.requestBlocksByRange(target.peerId, head.number, 1);
    const b = decodeExact(SignedBlock, bytes, 'block');
    const departed = loadOrCreateKeys(dataDirs[i], Sealer.simulated(dataDirs[i], computeMeasurement())).keys;
    assert.ok(departed.stateKeys.size >= 1);
    assert.ok(
      !departed.stateKeys.has(b.body.transitions.keyId),
      "the new epoch's key id is unknown to the departed enclave",
    );
    const t = b.body.transitions;
    for (const key of departed.stateKeys.values()) {
      assert.equal(
        aesGcmOpen(key, t.nonce, t.ciphertext, transitionsAad(SHARD, b.header.number)),
        null,
        'no key of the departed enclave opens the transitions',
      );
    }
    // The node was stopped before the epoch began, so its key file proves little by itself: the block
    // that began the epoch wraps the new key for the remaining members only.
    const rotation = await waitFor(
      async () => {
        for (let n = head.number; n > Math.max(0, head.number - 200); n -= 16) {
          const from = Math.max(1, n - 15);
          const blocks = (await peer.requestBlocksByRange(target.peerId, from, n - from + 1)).map((x) =>
            decodeExact(SignedBlock, x, 'block'),
          );
          const found = blocks.find((x) => x.body.rotation?.keyId === t.keyId);
          if (found) return found.body.rotation!;
        }
        return undefined;
      },
      `the block that began epoch ${t.keyId}`,
      30_000,
      500,
    );
    const recipients = rotation.wraps.map((w) => toHex(w.member));
    assert.ok(!recipients.includes(keys[i].toLowerCase()), 'the departed member is not a recipient of the new key');
    assert.deepEqual(
      [...recipients].sort(),
      keys
        .slice(0, i)
        .map((k) => k.toLowerCase())
        .sort(),
      'every remaining member is',
    );
  } finally {
    await peer.stop();
  }
});
