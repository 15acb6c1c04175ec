// One validateer end to end, as a real process: client library and CLI against it, crash
// consistency under load (SIGKILL + restart on the same data dir), and no secrets at rest or in logs.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ValidateerClient, type CallUpdate, type HeaderJson } from '../../src/client/client.ts';
import { devAccount, resolvePublicKey, toAddress, type Account } from '../../src/client/accounts.ts';
import { buildTransfer } from '../../src/client/calls.ts';
import { Sealer } from '../../src/enclave/keys/sealing.ts';
import { computeMeasurement } from '../../src/enclave/keys/measurement.ts';
import { loadOrCreateKeys } from '../../src/enclave/keys/keys.ts';
import {
  GENESIS_AMOUNT,
  cleanupTempDirs,
  filesContaining,
  listFiles,
  restartNode,
  runCli,
  scrapeMetrics,
  sleep,
  startNode,
  tempDir,
  waitFor,
  type NodeHandle,
  OWN_NODES,
} from './harness.ts';
import { same, toHex } from '../../src/protocol/bytes.ts';

const HASH_RE = /^0x[0-9a-f]{64}$/;
const SLOT_MS = 200;
const nodes: NodeHandle[] = [];
const clients: ValidateerClient[] = [];

async function node(opts: Parameters<typeof startNode>[0] = {}): Promise<NodeHandle> {
  const n = await startNode(opts);
  nodes.push(n);
  return n;
}
async function connect(url: string): Promise<ValidateerClient> {
  const c = await ValidateerClient.connect(url, OWN_NODES);
  clients.push(c);
  return c;
}

after(async () => {
  await Promise.allSettled(clients.map((c) => c.close()));
  await Promise.allSettled(nodes.map((n) => n.stop()));
  cleanupTempDirs();
});

const eqBytes = (a: Uint8Array, b: Uint8Array) => same(a, b);

async function callBlock(c: ValidateerClient, hash: string): Promise<number | null> {
  return c.rpc.request<number | null>('author_callBlock', [hash]);
}

describe('one validateer end to end', { timeout: 150_000 }, () => {
  let n1: NodeHandle;
  let c1: ValidateerClient;
  let alice: Account;
  let bob: Account;
  let charlie: Account;

  test('a. transfers with memos through the client library; balances, memos, nonces, head', async () => {
    [alice, bob, charlie] = await Promise.all(['//Alice', '//Bob', '//Charlie'].map(devAccount));
    n1 = await node();
    c1 = await connect(n1.rpcUrl);

    assert.equal(await c1.balance(alice), GENESIS_AMOUNT);
    assert.equal(await c1.balance(bob), GENESIS_AMOUNT);
    assert.equal(await c1.nonce(alice), 0);
    assert.deepEqual(await c1.memos(bob), { total: 0, items: [] });

    const amounts = [1_000n, 25_000n, 7n];
    const results: { hash: string; blockHash: string; blockNumber: number }[] = [];
    for (let i = 0; i < amounts.length; i++) {
      const updates: CallUpdate[] = [];
      const r = await c1.transfer(alice, bob.publicKey, amounts[i], {
        memo: `hello bob #${i}`,
        onUpdate: (u) => updates.push(u),
      });
      assert.match(r.hash, HASH_RE);
      assert.match(r.blockHash, HASH_RE);
      if (results.length > 0)
        assert.ok(r.blockNumber > results[results.length - 1].blockNumber, 'a later transfer lands in a later block');
      assert.equal(updates[0]?.status, 'ready', `first update is ready: ${JSON.stringify(updates)}`);
      assert.equal(updates[updates.length - 1].status, 'inBlock');
      assert.equal(await c1.nonce(alice), i + 1, 'nonce increments per included call');
      assert.equal(await callBlock(c1, r.hash), r.blockNumber, 'the node indexes the call under its block');
      assert.equal(await c1.rpc.request('chain_getBlockHash', [r.blockNumber]), r.blockHash);
      const header = await c1.rpc.request<HeaderJson>('chain_getHeader', [r.blockNumber]);
      assert.ok(header.calls >= 1);
      results.push(r);
    }
    const sent = amounts.reduce((a, b) => a + b, 0n);
    assert.equal(await c1.balance(alice), GENESIS_AMOUNT - sent);
    assert.equal(await c1.balance(bob), GENESIS_AMOUNT + sent);
    assert.equal(await c1.nonce(bob), 0, 'receiving does not touch the nonce');

    // Memos: newest first, with sender, amount and the block that included them.
    const memos = await c1.memos(bob);
    assert.equal(memos.total, 3);
    assert.deepEqual(
      memos.items.map((m) => m.text),
      ['hello bob #2', 'hello bob #1', 'hello bob #0'],
    );
    assert.deepEqual(
      memos.items.map((m) => m.amount),
      [7n, 25_000n, 1_000n],
    );
    assert.deepEqual(
      memos.items.map((m) => Number(m.block)),
      results.map((r) => r.blockNumber).reverse(),
    );
    for (const m of memos.items) assert.ok(eqBytes(m.from, alice.publicKey), 'memo sender is Alice');
    const page = await c1.memos(bob, 1, 1);
    assert.equal(page.total, 3);
    assert.deepEqual(
      page.items.map((m) => m.text),
      ['hello bob #1'],
    );

    // A transfer without a memo stores none; Bob's nonce starts at 0.
    const back = await c1.transfer(bob, alice.publicKey, 500n);
    assert.equal(await c1.nonce(bob), 1);
    assert.equal((await c1.memos(alice)).total, 0);
    assert.equal((await c1.memos(bob)).total, 3);
    assert.equal(await c1.balance(alice), GENESIS_AMOUNT - sent + 500n);
    assert.equal(await c1.balance(bob), GENESIS_AMOUNT + sent - 500n);
    assert.ok(back.blockNumber > results[2].blockNumber);

    // The head keeps growing (empty blocks every slot) and links to its parent.
    const h1 = await c1.head();
    const h2 = await waitFor(
      async () => {
        const h = await c1.head();
        return h.number >= h1.number + 3 ? h : undefined;
      },
      'the head to grow by 3 blocks',
      20_000,
    );
    const parent = await c1.rpc.request<HeaderJson>('chain_getHeader', [h2.number - 1]);
    assert.equal(h2.parentHash, parent.hash);
    assert.ok(h2.slot > parent.slot);

    // The metrics endpoint tells the same story.
    const m = await scrapeMetrics(n1.metricsUrl);
    assert.ok(m.get('validateer_sidechain_head_number')! >= h2.number);
    assert.ok(m.get('validateer_sidechain_blocks_produced_total')! >= h2.number);
    assert.ok(m.get('validateer_event_log_entries')! >= h2.number + 1);
    assert.equal(m.get('validateer_calls_total{result="included"}'), 4);
    assert.equal(m.get('validateer_calls_total{result="invalid"}'), 0);
    assert.equal(m.get('validateer_state_accounts'), 3);
    assert.ok(m.get('validateer_rpc_requests_total{method="author_submitAndWatchCall",outcome="ok"}')! >= 4);
    assert.ok(m.get('validateer_rpc_requests_total{method="state_executeGetter",outcome="ok"}')! >= 10);
    assert.ok([...m.keys()].some((k) => k.startsWith('validateer_build_info{')));
  });

  test('b. the CLI against the running node', async () => {
    assert.ok(n1, 'needs the node from test a');
    // Without a parentchain the CLI trusts the enclave signing key it is given (here: the node's own).
    const rpc = ['client', '--rpc', n1.rpcUrl, '--pin-signer', toHex((await c1.shieldingKey()).signer)];
    const charlieBefore = await c1.balance(charlie);
    const aliceNonce = await c1.nonce(alice);

    const t = await runCli([...rpc, 'transfer', '//Alice', '//Charlie', '7', '--memo', 'cli-test']);
    assert.equal(t.code, 0, `transfer failed: ${t.stderr}`);
    const m = /transfer (0x[0-9a-f]{64}) included in block #(\d+) (0x[0-9a-f]{64})/.exec(t.stdout);
    assert.ok(m, `transfer output names a block: ${t.stdout}`);
    const block = Number(m[2]);
    assert.equal(await callBlock(c1, m[1]), block);
    assert.equal(await c1.rpc.request('chain_getBlockHash', [block]), m[3]);
    assert.equal(await c1.nonce(alice), aliceNonce + 1);

    const [bal, head, memos] = await Promise.all([
      runCli([...rpc, 'balance', '//Charlie']),
      runCli([...rpc, 'head']),
      runCli([...rpc, 'memos', '//Charlie']),
    ]);
    assert.equal(bal.code, 0, bal.stderr);
    assert.equal(bal.stdout.trim(), (charlieBefore + 7n).toString());
    assert.equal(head.code, 0, head.stderr);
    const hm = /^#(\d+) (0x[0-9a-f]{64})/.exec(head.stdout);
    assert.ok(hm, `head output: ${head.stdout}`);
    assert.ok(Number(hm[1]) >= block);
    assert.equal(memos.code, 0, memos.stderr);
    assert.match(memos.stdout, /^1 memo\(s\)/);
    assert.ok(memos.stdout.includes(`#${block} from ${alice.address} amount 7: cli-test`), memos.stdout);

    // new-account: an SS58 address whose key lands in the keystore (0600), usable as a signer.
    const ks = join(tempDir(), 'keystore');
    const na = await runCli([...rpc, '--keystore', ks, 'new-account']);
    assert.equal(na.code, 0, na.stderr);
    const address = na.stdout.trim();
    assert.match(address, /^[1-9A-HJ-NP-Za-km-z]{47,48}$/);
    const pub = await resolvePublicKey(address);
    assert.equal(toAddress(pub), address);
    const keyFile = join(ks, address);
    assert.ok(existsSync(keyFile), 'key file written to the keystore');
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    assert.equal((JSON.parse(readFileSync(keyFile, 'utf8')) as { address: string }).address, address);

    const fund = await runCli([...rpc, 'transfer', '//Alice', address, '5']);
    assert.equal(fund.code, 0, fund.stderr);
    const nb = await runCli([...rpc, '--keystore', ks, 'balance', address]);
    assert.equal(nb.code, 0, nb.stderr);
    assert.equal(nb.stdout.trim(), '5');
    // Without the key the getter cannot be signed: a clear error, not a crash.
    const noKey = await runCli([...rpc, '--keystore', join(ks, 'elsewhere'), 'balance', address]);
    assert.notEqual(noKey.code, 0);
    assert.match(noKey.stderr, /NO_KEY/);
  });

  test('c. crash consistency: SIGKILL under load, restart on the same data dir', async (t) => {
    const n = await node({ slotMs: SLOT_MS });
    const senders = await Promise.all(['//Alice', '//Bob', '//Charlie'].map(devAccount));
    // A cycle: everyone sends and receives, so the totals must add up across all three.
    const recipients = [senders[1], senders[2], senders[0]];
    interface Sent {
      sender: number;
      to: number;
      nonce: number;
      amount: bigint;
      hash: string;
      included?: { blockNumber: number; blockHash: string };
    }
    const log: Sent[] = [];
    let aborted = false;
    let abort!: () => void;
    const abortSignal = new Promise<void>((r) => (abort = r));
    let includedCount = 0;

    // One in-flight call: resolves with its block, or 'aborted' once the node is being killed.
    // (Not client.transfer(): its watch ignores a dropped connection, see test e.)
    const watch = (c: ValidateerClient, request: Uint8Array) =>
      new Promise<{ blockNumber: number; blockHash: string } | 'aborted'>((resolve, reject) => {
        void abortSignal.then(() => resolve('aborted'));
        c.rpc
          .subscribe('author_submitAndWatchCall', [toHex(request)], (u) => {
            const up = u as CallUpdate;
            if (up.status === 'inBlock') resolve({ blockNumber: up.blockNumber, blockHash: up.blockHash });
            else if (up.status === 'invalid') reject(new Error(`call rejected: ${up.code} ${up.message}`));
          })
          .catch(reject);
      });

    const loop = async (i: number) => {
      const c = await connect(n.rpcUrl);
      const key = await c.shieldingKey();
      let nonce = await c.nonce(senders[i]);
      while (!aborted) {
        const amount = BigInt(1_000 + 100 * i + nonce);
        const { request, hash } = buildTransfer(
          senders[i],
          { to: recipients[i].publicKey, amount, memo: `load ${i}/${nonce}`, nonce },
          key,
          key.shard,
        );
        const rec: Sent = { sender: i, to: (i + 1) % 3, nonce, amount, hash: '0x' + hash };
        log.push(rec);
        let r;
        try {
          r = await watch(c, request);
        } catch (err) {
          if (aborted) return;
          throw err;
        }
        if (r === 'aborted') return;
        rec.included = r;
        includedCount++;
        nonce++;
      }
    };
    const loops = [0, 1, 2].map(loop);
    const loopsDone = Promise.all(loops);
    await Promise.race([
      // >= 20 calls, and past block 11 so the snapshot at #10 is on disk and the restart can use it.
      waitFor(
        () => includedCount >= 20 && log.some((s) => s.included && s.included.blockNumber >= 12),
        'at least 20 included calls before the kill',
        60_000,
        10,
      ),
      loopsDone.then(() => assert.fail('senders stopped before the kill')),
    ]);
    // Aim the kill at block production: slots start at multiples of the slot duration (wall clock),
    // and proposing + persisting + notifying takes a few ms from there.
    const now = Date.now();
    await sleep((Math.floor(now / SLOT_MS) + 1) * SLOT_MS - now + Math.floor(Math.random() * 12));
    aborted = true;
    abort();
    const exit = await n.kill('SIGKILL');
    assert.equal(exit.signal, 'SIGKILL');
    await loopsDone;

    const reported = log.filter((s) => s.included);
    const maxReported = Math.max(...reported.map((s) => s.included!.blockNumber));
    for (let i = 0; i < 3; i++) {
      const mine = log.filter((s) => s.sender === i);
      assert.deepEqual(
        mine.filter((s) => s.included).map((s) => s.nonce),
        [...Array(mine.filter((s) => s.included).length).keys()],
        'reported nonces are contiguous from 0',
      );
      assert.ok(mine.filter((s) => !s.included).length <= 1, 'at most one call in flight per sender');
    }

    const n2 = await restartNode(n);
    nodes.push(n2);
    const c = await connect(n2.rpcUrl);
    const head0 = await c.head();
    assert.ok(
      head0.number >= maxReported,
      `head #${head0.number} after restart is at least the highest reported block #${maxReported}`,
    );

    // Every call reported in a block is still there, in that very block.
    const checks = await c.rpc.batch(
      reported.flatMap((s) => [
        { method: 'author_callBlock', params: [s.hash] },
        { method: 'chain_getBlockHash', params: [s.included!.blockNumber] },
      ]),
    );
    reported.forEach((s, k) => {
      assert.deepEqual(
        checks[2 * k],
        { result: s.included!.blockNumber },
        `call ${s.hash} still in block #${s.included!.blockNumber}`,
      );
      assert.deepEqual(
        checks[2 * k + 1],
        { result: s.included!.blockHash },
        `block #${s.included!.blockNumber} hash unchanged`,
      );
    });

    // In-flight calls may or may not have made it; the sender's nonce says which, and the index agrees.
    const included: Sent[] = [...reported];
    for (let i = 0; i < 3; i++) {
      const done = reported.filter((s) => s.sender === i).length;
      const inflight = log.find((s) => s.sender === i && !s.included);
      const nonce = await c.nonce(senders[i]);
      const where = inflight ? await callBlock(c, inflight.hash) : null;
      if (nonce === done + 1) {
        assert.ok(inflight, `sender ${i}: nonce ${nonce} but no call in flight`);
        assert.ok(
          where !== null && where <= head0.number,
          `sender ${i}: in-flight call counted by the nonce is indexed`,
        );
        included.push(inflight);
      } else {
        assert.equal(nonce, done, `sender ${i}: nonce equals the number of included calls`);
        assert.equal(where, null, `sender ${i}: in-flight call not counted by the nonce is not indexed either`);
      }
    }
    t.diagnostic(
      `killed with ${reported.length} calls reported in blocks (up to #${maxReported}), ${log.length - reported.length} in flight of which ` +
        `${included.length - reported.length} made it; head after restart #${head0.number}`,
    );
    for (let i = 0; i < 3; i++) {
      const out = included.filter((s) => s.sender === i).reduce((a, s) => a + s.amount, 0n);
      const into = included.filter((s) => s.to === i).reduce((a, s) => a + s.amount, 0n);
      assert.equal(await c.balance(senders[i]), GENESIS_AMOUNT - out + into, `balance of sender ${i}`);
      const memos = await c.memos(senders[i], 0, 1);
      const received = included.filter((s) => s.to === i).sort((a, b) => b.nonce - a.nonce);
      assert.equal(memos.total, received.length, `memo count of ${i}`);
      if (received.length > 0) assert.equal(memos.items[0].text, `load ${received[0].sender}/${received[0].nonce}`);
    }
    const total = (await Promise.all(senders.map((s) => c.balance(s)))).reduce((a, b) => a + b, 0n);
    assert.equal(total, 3n * GENESIS_AMOUNT, 'no value created or destroyed');

    // Production resumes, and every sender can continue with its next nonce.
    await waitFor(async () => (await c.head()).number >= head0.number + 3, 'the head to grow after restart', 20_000);
    const more = await Promise.all(senders.map((s, i) => c.transfer(s, recipients[i].publicKey, 1n)));
    for (const r of more) assert.ok(r.blockNumber > head0.number);

    // The restart replayed the event log, from a snapshot (interval 10), with no unusable snapshot.
    const rebuilt = n2.logs().find((l) => l.msg === 'state rebuilt from the event log');
    assert.ok(rebuilt, `replay logged: ${n2.stderr().slice(0, 2000)}`);
    assert.ok((rebuilt.head as number) >= maxReported);
    assert.equal(typeof rebuilt.fromSnapshot, 'number', 'replay started from a snapshot');
    assert.ok(!n2.logs().some((l) => l.msg === 'snapshot unusable, trying an older one'));
    assert.match(n2.stdout(), /state\s+replayed to #\d+/);

    // A clean stop, then an offline replay verifying every block's state commitment.
    const stopped = await n2.stop();
    assert.equal(stopped.code, 0);
    assert.match(n2.stdout(), /stopped cleanly/);
    // (One at a time: the block store is locked by whoever has it open.)
    const verify = await runCli(['replay', '--config', n2.configFile, '--verify'], { timeoutMs: 60_000 });
    const fromGenesis = await runCli(['replay', '--config', n2.configFile, '--from-genesis', '--json'], {
      timeoutMs: 60_000,
    });
    assert.equal(verify.code, 0, verify.stderr);
    const rm =
      /replayed (\d+) blocks to #(\d+) in \d+ ms from genesis; 3 accounts; state commitment of every block verified/.exec(
        verify.stdout,
      );
    assert.ok(rm, verify.stdout);
    assert.ok(Number(rm[2]) >= head0.number + 3);
    // The fast path (no per-block check, whole log) reaches the same head and state.
    assert.equal(fromGenesis.code, 0, fromGenesis.stderr);
    const fg = JSON.parse(fromGenesis.stdout) as { headNumber: number; fromSnapshot: number | null; accounts: number };
    assert.equal(fg.headNumber, Number(rm[2]));
    assert.equal(fg.fromSnapshot, null);
    assert.equal(fg.accounts, 3);
    // And the node restarts from a snapshot once more, to the same head.
    const n3 = await restartNode(n2);
    nodes.push(n3);
    const again = n3.logs().find((l) => l.msg === 'state rebuilt from the event log');
    assert.equal(again?.head, Number(rm[2]));
    const c3 = await connect(n3.rpcUrl);
    // An offline replay cannot open the store under a running node: a clear error, no damage.
    const locked = await runCli(['replay', '--config', n3.configFile], { timeoutMs: 30_000 });
    assert.notEqual(locked.code, 0);
    assert.match(locked.stderr, /STORE_OPEN_FAILED/);
    assert.equal(
      await c3.balance(senders[0]),
      await (async () => {
        const out = included.filter((s) => s.sender === 0).reduce((a, s) => a + s.amount, 0n) + 1n;
        const into = included.filter((s) => s.to === 0).reduce((a, s) => a + s.amount, 0n) + 1n;
        return GENESIS_AMOUNT - out + into;
      })(),
    );
    await waitFor(
      async () => (await c3.head()).number > Number(rm[2]) + 2,
      'production after the second restart',
      20_000,
    );
    const sigint = await n3.kill('SIGINT');
    assert.equal(sigint.code, 0, 'SIGINT stops cleanly too');
    assert.match(n3.stdout(), /stopped cleanly/);
  });

  test('d. no secrets at rest or in logs', async (t) => {
    // Most verbose logging: no level may log secrets.
    const n = await node({ extraConfig: { log: { level: 'trace' } } });
    const c = await connect(n.rpcUrl);
    const [a, b, dave] = await Promise.all(['//Alice', '//Bob', '//Dave'].map(devAccount));
    const memo = `zebra-${randomBytes(12).toString('hex')}`;
    const r1 = await c.transfer(a, b.publicKey, 11n, { memo });
    const r2 = await c.transfer(a, b.publicKey, 12n, { memo: `${memo} again` });
    // Failure paths too: a rejected call (Dave has nothing) and a replay of an included one.
    // The client reports a refusal at submission like a rejection at block time: code = the reason.
    const rejectedWith = (code: string) => (err: { code?: unknown }) => err.code === code;
    await assert.rejects(
      c.transfer(dave, b.publicKey, 5n, { memo: `${memo} rejected` }),
      rejectedWith('INSUFFICIENT_BALANCE'),
    );
    const key = await c.shieldingKey();
    const replay = buildTransfer(a, { to: b.publicKey, amount: 11n, memo, nonce: 0 }, key, key.shard);
    await assert.rejects(c.submitAndWatch(replay.request), rejectedWith('STALE_NONCE'));
    const m = await c.memos(b);
    assert.deepEqual(
      m.items.map((x) => x.text),
      [`${memo} again`, memo],
      'the memo is stored (readable through the getter)',
    );
    const shard = (await c.rpc.request<{ shard: string }>('author_getShieldingKey')).shard;
    // Wait past the next snapshot so a sealed snapshot holding the memos is on disk too.
    const snapAt = Math.ceil((r2.blockNumber + 1) / 10) * 10;
    await waitFor(async () => (await c.head()).number > snapAt, `a snapshot at #${snapAt}`, 30_000);
    await c.close();
    const exit = await n.stop();
    assert.equal(exit.code, 0);
    assert.match(n.stdout(), /stopped cleanly/);

    // The enclave's keys, read with the enclave's own modules (the key file must already exist).
    assert.ok(existsSync(join(n.dataDir, 'enclave', 'keys.sealed')));
    assert.ok(existsSync(join(n.dataDir, 'enclave', 'sim-platform-secret')));
    const { keys, created } = loadOrCreateKeys(n.dataDir, Sealer.simulated(n.dataDir, computeMeasurement()));
    assert.equal(created, false);
    assert.ok(
      n.stdout().includes(`signing key   ${toHex(keys.signingPublic)}`),
      'these are the keys the node ran with',
    );

    const secrets: [string, Uint8Array][] = [
      ['Alice seed', a.seed],
      ['Bob seed', b.seed],
      ['Dave seed', dave.seed],
      ['enclave signing seed', keys.signingSeed],
      ['enclave shielding secret', keys.shieldingSecret],
      ...[...keys.stateKeys].map(([id, k]): [string, Uint8Array] => [`state key ${id}`, k]),
    ];
    const needles: [string, Uint8Array | string][] = [[`memo`, memo]];
    for (const [name, bytes] of secrets) {
      assert.equal(bytes.length, 32, name);
      const buf = Buffer.from(bytes);
      needles.push(
        [`${name} (raw)`, bytes],
        [`${name} (hex)`, buf.toString('hex')],
        [`${name} (HEX)`, buf.toString('hex').toUpperCase()],
        [`${name} (base64)`, buf.toString('base64')],
        [`${name} (base64url)`, buf.toString('base64url')],
      );
    }

    const files = [...listFiles(n.dataDir), ...listFiles(join(n.root, 'logs'))];
    assert.ok(files.some((f) => f.endsWith(join('enclave', 'keys.sealed'))));
    assert.ok(files.some((f) => f.includes(join(n.dataDir, 'chain'))));

    // The scan can find things: public data in the store and logs, and every needle in a canary file.
    const shardRaw = Buffer.from(shard.slice(2), 'hex');
    assert.ok(filesContaining(files, shardRaw).length > 0, 'the shard id (raw) is in the block store');
    assert.ok(
      filesContaining(files, Buffer.from(r1.blockHash.slice(2), 'hex')).length > 0,
      'a block hash (raw) is in the block store',
    );
    const genesis = n.logs().find((l) => l.msg === 'genesis block created');
    assert.ok(genesis && typeof genesis.hash === 'string');
    assert.ok(filesContaining(files, genesis.hash).includes(n.logFiles.stderr), 'the genesis hash (hex) is in the log');
    const canary = join(tempDir(), 'canary.bin');
    for (const [name, needle] of needles) {
      writeFileSync(canary, Buffer.concat([randomBytes(1000), Buffer.from(needle), randomBytes(1000)]));
      assert.deepEqual(filesContaining([canary], needle), [canary], `the scan finds ${name} in a canary file`);
    }

    for (const [name, needle] of needles) {
      assert.deepEqual(filesContaining(files, needle), [], `${name} appears in no file`);
    }
    t.diagnostic(
      `scanned ${files.length} files (${files.reduce((a, f) => a + statSync(f).size, 0)} bytes) for ${needles.length} needles`,
    );
  });

  test('e. a pending client.transfer() fails promptly when the node dies', async () => {
    const n = await node();
    const c = await connect(n.rpcUrl);
    const [alice, bob] = await Promise.all(['//Alice', '//Bob'].map(devAccount));
    let subscribed = false;
    // A nonce gap keeps the call pending in the pool ('future'), so it is in flight when the node dies.
    const pending = c.transfer(alice, bob.publicKey, 1n, {
      nonce: (await c.nonce(alice)) + 5,
      timeoutMs: 5_000,
      onUpdate: (u) => {
        if (u.status === 'future') subscribed = true;
      },
    });
    const outcome = pending.then(
      () => 'resolved',
      (err: Error) => err,
    );
    await waitFor(() => subscribed, 'the call to be pending', 10_000, 10);
    const killedAt = Date.now();
    await n.kill('SIGKILL');
    const err = await outcome;
    const elapsed = Date.now() - killedAt;
    assert.ok(err instanceof Error);
    assert.ok(
      elapsed < 2_000,
      `transfer() should reject soon after the connection drops, took ${elapsed} ms: ${err.message}`,
    );
    assert.match(err.message, /clos/);
  });
});
