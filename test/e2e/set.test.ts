// End to end, a validateer set without a parentchain (authorities from config): three real processes
// over libp2p take turns by Aura, gossip blocks and calls, import each other's blocks, a node that
// was killed catches up by blocks-by-range, and one that was cut off and fell far behind on a branch
// of its own steps back to the fork point. (The parentchain set is in set-parentchain.test.ts.)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ValidateerClient } from '../../src/client/client.ts';
import { devAccount } from '../../src/client/accounts.ts';
import type { Network } from '../../src/p2p/network.ts';
import {
  SignedBlock,
  bodyRoot,
  headerHash,
  headerSigningPayload,
  signatureHash,
  transitionsAad,
  type Header,
} from '../../src/protocol/block.ts';
import { slotAt } from '../../src/protocol/aura.ts';
import {
  aesGcmSeal,
  ed25519PrivateKey,
  ed25519PublicFromSeed,
  ed25519Sign,
  randomNonce,
} from '../../src/crypto/primitives.ts';
import { devShardSecrets } from '../../src/enclave/keys/keys.ts';
import { joinItems } from '../../src/enclave/state/state.ts';
import { decodeExact } from '../../src/protocol/wire.ts';
import {
  cleanupTempDirs,
  createEnclaveKeys,
  restartNode,
  scrapeMetrics,
  startNode,
  startTestPeer,
  tempDir,
  waitFor,
  type NodeHandle,
  OWN_NODES,
} from './harness.ts';
import { toHex } from '../../src/protocol/bytes.ts';
import { DEV_SHARD } from '../../src/protocol/shard-policy.ts';

const SLOT_MS = 300;
/** Blocks per blocks-by-range request: a node more than this far behind uses the onboarding sync. */
const SYNC_BATCH = 8;
const SHARD = DEV_SHARD;
/** A fourth authority no node runs: its slots are skipped, and the test signs forged blocks with it. */
const ROGUE_SEED = new Uint8Array(32).fill(9);
const ROGUE = toHex(ed25519PublicFromSeed(ROGUE_SEED));
const nodes: NodeHandle[] = [];
const clients: ValidateerClient[] = [];
const keys: string[] = [];
const dataDirs: string[] = [];

function config(i: number, bootstrap: string[]) {
  return {
    slotMs: SLOT_MS,
    dataDir: dataDirs[i],
    extraConfig: {
      authorities: [...keys, ROGUE],
      enclave: { devShardSecrets: true },
      p2p: { bootstrap, devControl: true, maxBlocksPerRequest: SYNC_BATCH },
      sidechain: { snapshotInterval: 20 },
    },
  };
}

async function network(c: ValidateerClient): Promise<{ peerId: string; addresses: string[]; peers: string[] }> {
  return c.rpc.request('system_network');
}

before(async () => {
  const root = tempDir();
  for (let i = 0; i < 3; i++) dataDirs.push(join(root, `v${i + 1}`));
  keys.push(...(await createEnclaveKeys(dataDirs, { devShardSecrets: true })));
  // The first authority creates block 0; the others fetch it from the network.
  nodes.push(await startNode(config(0, [])));
  clients.push(await ValidateerClient.connect(nodes[0].rpcUrl, OWN_NODES));
  const first = (await network(clients[0])).addresses;
  for (let i = 1; i < 3; i++) {
    nodes.push(await startNode(config(i, first)));
    clients.push(await ValidateerClient.connect(nodes[i].rpcUrl, OWN_NODES));
  }
});

after(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  await Promise.all(nodes.map((n) => n.stop()));
  cleanupTempDirs();
});

async function sameHead(timeoutMs = 30_000): Promise<void> {
  await waitFor(
    async () => {
      const heads = await Promise.all(clients.map((c) => c.head()));
      const n = Math.min(...heads.map((h) => h.number));
      // Heads move every slot: compare the block at a common height.
      const hashes = await Promise.all(clients.map((c) => c.rpc.request<string>('chain_getBlockHash', [n])));
      return n > 0 && hashes.every((h) => h === hashes[0]);
    },
    'the same chain on all validateers',
    timeoutMs,
    100,
  );
}

test("three validateers take turns (the offline fourth authority's slots are skipped), import each other's blocks and agree", async () => {
  await sameHead();
  const h0 = (await clients[0].head()).number;
  await waitFor(async () => (await clients[0].head()).number >= h0 + 9, 'nine more blocks', 30_000, 100);
  // Every authority authored some of the last blocks (Aura round robin).
  const authors = new Set<string>();
  const head = await clients[0].head();
  for (let n = head.number; n > head.number - 9; n--) {
    const h = await clients[0].rpc.request<{ author: string }>('chain_getHeader', [n]);
    authors.add(h.author);
  }
  assert.deepEqual([...authors].sort(), [...keys].sort());
  await sameHead();
  for (const n of nodes) {
    const m = await scrapeMetrics(n.metricsUrl);
    assert.ok((m.get('validateer_p2p_peers') ?? 0) >= 1, 'peers');
    assert.ok((m.get('validateer_sidechain_blocks_imported_total{result="imported"}') ?? 0) > 0, 'imports');
  }
});

test('calls submitted round-robin to all validateers are each included exactly once', async () => {
  const alice = await devAccount('//Alice');
  const bob = await devAccount('//Bob');
  const before = await clients[1].balance(bob);
  const nonce0 = await clients[0].nonce(alice);
  const results = await Promise.all(
    Array.from({ length: 12 }, (_, i) =>
      clients[i % 3].transfer(alice, bob.publicKey, 1n, { nonce: nonce0 + i, timeoutMs: 60_000 }),
    ),
  );
  assert.equal(new Set(results.map((r) => r.hash)).size, 12);
  await sameHead();
  await waitFor(
    async () => {
      const b = await Promise.all(clients.map((c) => c.balance(bob)));
      return b.every((x) => x === before + 12n);
    },
    'bob credited 12 on every validateer',
    30_000,
    200,
  );
  assert.equal(await clients[2].nonce(alice), nonce0 + 12);
});

test('a killed validateer leaves the others producing; restarted, it catches up', async () => {
  await nodes[2].kill('SIGKILL');
  const h = (await clients[0].head()).number;
  await waitFor(async () => (await clients[0].head()).number >= h + 6, 'the other two go on', 30_000, 100);
  await clients[2].close().catch(() => undefined);
  nodes[2] = await restartNode(nodes[2], config(2, (await network(clients[0])).addresses));
  clients[2] = await ValidateerClient.connect(nodes[2].rpcUrl, OWN_NODES);
  await sameHead(60_000);
  const a = await clients[0].head();
  await waitFor(
    async () => (await clients[2].head()).number >= a.number,
    'the restarted node at the head',
    30_000,
    100,
  );
});

async function forgedBlock(
  parent: Uint8Array,
  change: (h: Header) => void,
  signWith: Uint8Array | null,
): Promise<Uint8Array> {
  const p = decodeExact(SignedBlock, parent, 'block');
  const number = p.header.number + 1n;
  const nonce = randomNonce();
  // Empty transitions under the dev shard's state key (derivable from the shard id, as every dev enclave does).
  const ciphertext = aesGcmSeal(devShardSecrets(SHARD).stateKey, nonce, joinItems([]), transitionsAad(SHARD, number));
  const body = { transitions: { keyId: 1, nonce, ciphertext }, calls: [], rotation: undefined };
  const header: Header = {
    ...p.header,
    parentHash: headerHash(p.header),
    parentSignatureHash: signatureHash(p.signature),
    number,
    slot: slotAt(Date.now(), SLOT_MS),
    author: ed25519PublicFromSeed(ROGUE_SEED),
    transitionsRoot: bodyRoot(body),
    timestampMs: BigInt(Date.now()),
  };
  change(header);
  const signature = signWith ? ed25519Sign(ed25519PrivateKey(signWith), headerSigningPayload(header)) : p.signature;
  return SignedBlock.enc({ header, body, signature });
}

test('forged blocks are rejected and their sender penalised: bad signature, wrong slot author, wrong state commitment', async () => {
  const target = await network(clients[0]);
  const metric = async (name: string) => (await scrapeMetrics(nodes[0].metricsUrl)).get(name) ?? 0;
  const REJECTS = 'validateer_gossip_messages_total{topic="blocks",result="reject"}';
  const penalties0 = await metric('validateer_p2p_penalties_total');
  // Each forgery comes from a fresh peer: after a reject, gossipsub's score may already mute the sender.
  async function fromRogue(
    what: string,
    attempt: (rogue: Network, headBlock: () => Promise<Uint8Array>) => Promise<boolean>,
    intervalMs: number,
  ): Promise<void> {
    const rogue = await startTestPeer(SHARD, target.addresses);
    try {
      await waitFor(() => rogue.connectedPeers().includes(target.peerId), 'the rogue peer connected', 20_000);
      const headBlock = async () =>
        (await rogue.requestBlocksByRange(target.peerId, (await clients[0].head()).number, 1))[0];
      const before = await metric(REJECTS);
      // Published until node 0 has our subscription and counts the reject.
      await waitFor(
        async () => (await metric(REJECTS)) > before || ((await attempt(rogue, headBlock)) && false),
        what,
        30_000,
        intervalMs,
      );
    } finally {
      await rogue.stop();
    }
  }

  // 1. In the rogue's own slot, validly signed, but the state commitment does not follow from its (empty) transitions.
  let sentIn = -1n;
  await fromRogue(
    'the wrong-commitment block rejected',
    async (rogue, headBlock) => {
      const slot = slotAt(Date.now(), SLOT_MS);
      if (slot % 4n !== 3n || slot === sentIn) return false; // once per rogue slot
      sentIn = slot;
      await rogue.publishBlock(
        await forgedBlock(
          await headBlock(),
          (h) => {
            h.slot = slot;
            h.stateCommitment = new Uint8Array(32).fill(1);
          },
          ROGUE_SEED,
        ),
      );
      return true;
    },
    50,
  );
  // 2. Signed by an authority (the rogue key), but for the next slot (after its parent's, within the
  // allowed clock drift), which belongs to another authority.
  await fromRogue(
    'the wrong-author block rejected',
    async (rogue, headBlock) => {
      const next = slotAt(Date.now(), SLOT_MS) + 1n;
      if (next % 4n === 3n) return false;
      await rogue.publishBlock(
        await forgedBlock(
          await headBlock(),
          (h) => {
            h.slot = next;
          },
          ROGUE_SEED,
        ),
      );
      return true;
    },
    700,
  );
  // 3. A real block with a changed header: its author's signature no longer verifies (checked before any import work).
  let badSignatureFrom = '';
  await fromRogue(
    'the bad-signature block rejected',
    async (rogue, headBlock) => {
      badSignatureFrom = rogue.peerId;
      const b = decodeExact(SignedBlock, await headBlock(), 'block');
      b.header.timestampMs += 1n;
      await rogue.publishBlock(SignedBlock.enc(b));
      return true;
    },
    1000,
  );

  assert.ok((await metric('validateer_p2p_penalties_total')) >= penalties0 + 3, 'the sender was penalised for each');
  // The bad signature is refused before import ('block rejected' is the enclave's refusal): the penalty says why, and
  // whom.
  const penalised = nodes[0]
    .logs()
    .filter((l) => l.msg === 'peer penalised' && l.peer === badSignatureFrom)
    .map((l) => l.code);
  assert.ok(
    penalised.includes('BLOCK_BAD_SIGNATURE'),
    `the bad-signature sender penalised for BLOCK_BAD_SIGNATURE (${penalised.join(',')})`,
  );
  const codes = nodes[0]
    .logs()
    .filter((l) => l.msg === 'block rejected')
    .map((l) => l.code);
  assert.ok(codes.includes('BLOCK_WRONG_AUTHOR'), `wrong author logged (${codes.join(',')})`);
  assert.ok(codes.includes('BLOCK_BAD_COMMITMENT'), `bad commitment logged (${codes.join(',')})`);
  // The set is unharmed: it goes on and agrees.
  await sameHead();
});

test('a validateer restarted after it was cut off on a branch of its own, far behind, steps back to the fork point and onboards the rest, dropping no peer', async () => {
  await sameHead();
  const ids = (await Promise.all(clients.map(network))).map((x) => x.peerId);
  await clients[2].rpc.request('dev_setBlockedPeers', [[ids[0], ids[1]]]);
  for (const i of [0, 1]) await clients[i].rpc.request('dev_setBlockedPeers', [[ids[2]]]);
  await waitFor(
    async () => (await network(clients[2])).peers.length === 0,
    'the third validateer cut off',
    30_000,
    100,
  );
  const cutAt = (await clients[2].head()).number;
  // Alone it authors its own slots (1 in 4), the other two 2 in 4: its branch falls behind by about a block a second.
  await waitFor(
    async () => {
      const [a, c] = await Promise.all([clients[0].head(), clients[2].head()]);
      return c.number > cutAt && a.number - c.number > 2 * SYNC_BATCH;
    },
    'the lone validateer more than two requests behind, with a block of its own',
    90_000,
    200,
  );
  const lone = await clients[2].head(); // above cutAt: a block it authored alone
  await nodes[2].kill('SIGKILL');
  assert.notEqual(
    await clients[0].rpc.request<string>('chain_getBlockHash', [lone.number]),
    lone.hash,
    'its head is on a branch of its own',
  );

  // Back, it asks its peers for their heads first: far ahead, so the onboarding sync, which cannot
  // extend a head that is not on their chain.
  for (const i of [0, 1]) await clients[i].rpc.request('dev_setBlockedPeers', [[]]);
  await clients[2].close().catch(() => undefined);
  nodes[2] = await restartNode(nodes[2], config(2, (await network(clients[0])).addresses));
  clients[2] = await ValidateerClient.connect(nodes[2].rpcUrl, OWN_NODES);
  await sameHead(60_000);
  await waitFor(
    async () =>
      (await clients[0].rpc.request<string>('chain_getBlockHash', [lone.number])) ===
      (await clients[2].rpc.request<string>('chain_getBlockHash', [lone.number])),
    'its branch abandoned',
    60_000,
    100,
  );
  const logged = () => nodes[2].logs().map((l) => String(l.msg));
  await waitFor(
    async () => logged().some((m) => m === 'onboarding sync done' || m === 'onboarding sync stopped'),
    'the onboarding sync over',
    60_000,
    100,
  );
  const msgs = logged();
  const seen = `its log: ${[...new Set(msgs)].join(' | ')}`;
  assert.ok(msgs.includes('reorg'), `it switched branches; ${seen}`);
  assert.ok(msgs.includes('onboarding sync done'), `the rest came by the onboarding sync; ${seen}`);
  assert.ok(!msgs.includes('onboarding sync: peer dropped'), `no peer dropped; ${seen}`);
  assert.equal(
    (await scrapeMetrics(nodes[2].metricsUrl)).get('validateer_p2p_penalties_total') ?? 0,
    0,
    'no peer penalised',
  );
});
