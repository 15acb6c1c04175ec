// The parentchain driver against a fake Parentchain port and a fake enclave (both in memory): it hands
// finalized blocks to the enclave in batches and in order, restarts from the enclave's verified head
// after a failed import, sends the extrinsics the enclave asks for (signed by the enclave) once, and
// sends the anchors the finality votes call for, counting their fees.
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { ParentchainDriver, type EnclaveCalls, type ParentchainDriverOptions } from '../../src/parentchain/driver.ts';
import type {
  CallSpec,
  ExtrinsicSigner,
  FinalizedScanner,
  Parentchain,
  ParentchainBlock,
  ParentchainHeader,
  ScanOptions,
  SubmitOptions,
  SubmitResult,
} from '../../src/parentchain/api.ts';
import type { Method, Params, Result } from '../../src/enclave/boundary/api.ts';
import { createMetrics, type Metrics } from '../../src/metrics/metrics.ts';
import { createLogger } from '../../src/node/logger.ts';
import { MESSAGE_MAGIC } from '../../src/protocol/parentchain-messages.ts';
import { concatBytes, same, toHex } from '../../src/protocol/bytes.ts';
import { ValidateerError, hasCode } from '../../src/protocol/errors.ts';

const SHARD = new Uint8Array(32).fill(0x5a);
const SIGNING_KEY = new Uint8Array(32).fill(0xe1);
const SIGNATURE = new Uint8Array(64).fill(0x51);

/** A header whose encoding is just its number (4 bytes LE), so the fake enclave can read it back. */
function header(number: number): ParentchainHeader {
  const encoded = new Uint8Array(4);
  new DataView(encoded.buffer).setUint32(0, number, true);
  return {
    number,
    hash: new Uint8Array(32).fill(number + 1),
    parentHash: new Uint8Array(32).fill(number),
    stateRoot: new Uint8Array(32),
    extrinsicsRoot: new Uint8Array(32),
    encoded,
  };
}
const numberOf = (encoded: Uint8Array) => new DataView(encoded.buffer, encoded.byteOffset).getUint32(0, true);

/** Block n; `remark` puts one signed extrinsic in it (a system.remark with these bytes). */
function block(number: number, remark?: Uint8Array): ParentchainBlock {
  const raw = remark ? [concatBytes(Uint8Array.of(0xaa), remark)] : [];
  const extrinsics = remark
    ? [
        {
          index: 0,
          hash: new Uint8Array(32),
          encoded: raw[0],
          signer: new Uint8Array(32).fill(3),
          success: true,
          events: [],
          call: { pallet: 'system', method: 'remarkWithEvent', args: {}, remark },
        },
      ]
    : [];
  return { header: header(number), raw, extrinsics, events: [] };
}

/** A chain of finalized blocks 0..head; new ones are appended by finalize(). Scans deliver in order. */
class FakeParentchain implements Parentchain {
  readonly blocks: ParentchainBlock[] = [block(0)];
  readonly scans: { from: number; fromParentHash?: Uint8Array }[] = [];
  readonly submitted: { signer: ExtrinsicSigner; callData: Uint8Array; signature: Uint8Array; nonce?: number }[] = [];
  /** While set, submissions wait for it (an extrinsic sitting in the pool). */
  hold: Promise<void> | null = null;
  readonly #waiters = new Set<() => void>();
  readonly #headListeners = new Set<(h: ParentchainHeader) => void>();

  finalize(b: ParentchainBlock): void {
    assert.equal(b.header.number, this.blocks.length);
    this.blocks.push(b);
    for (const wake of this.#waiters) wake();
    for (const cb of this.#headListeners) cb(b.header);
  }

  genesisHash() {
    return this.blocks[0].header.hash;
  }
  ss58Prefix() {
    return 42;
  }
  async finalizedHead() {
    return this.blocks.at(-1)!.header;
  }
  async subscribeFinalizedHeads(cb: (h: ParentchainHeader) => void) {
    this.#headListeners.add(cb);
    return () => void this.#headListeners.delete(cb);
  }
  async header(at: number | Uint8Array) {
    return typeof at === 'number' ? this.blocks[at]?.header : this.blocks.find((b) => same(b.header.hash, at))?.header;
  }
  async blockHash(number: number) {
    return this.blocks[number]?.header.hash;
  }
  async block(hash: Uint8Array) {
    const found = this.blocks.find((b) => same(b.header.hash, hash));
    if (!found) throw new ValidateerError('PARENTCHAIN_MISSING_BLOCK', 'no such block');
    return found;
  }

  scanFinalized(
    fromNumber: number,
    onBlock: (b: ParentchainBlock) => Promise<void> | void,
    options: ScanOptions = {},
  ): FinalizedScanner {
    this.scans.push({
      from: fromNumber,
      ...(options.fromParentHash ? { fromParentHash: options.fromParentHash } : {}),
    });
    let next = fromNumber;
    let stopped = false;
    let wake: (() => void) | undefined;
    const done = (async () => {
      while (!stopped) {
        const b = this.blocks[next];
        if (b) {
          await onBlock(b); // a throw ends the scan: done rejects, as the real scanner's does
          next++;
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
          this.#waiters.add(resolve);
        });
        this.#waiters.delete(wake!);
      }
    })();
    return {
      get next() {
        return next;
      },
      done,
      stop: async () => {
        stopped = true;
        wake?.();
        await done.catch(() => undefined);
      },
    };
  }

  async submit(signer: ExtrinsicSigner, call: CallSpec, options: SubmitOptions = {}): Promise<SubmitResult> {
    assert.equal(call.kind, 'raw');
    const callData = call.kind === 'raw' ? call.callData : new Uint8Array();
    // The payload a real chain would sign: the call bytes, then the signed extensions.
    const signature = await signer.sign(concatBytes(callData, Uint8Array.of(0, 1, 2)));
    await this.hold;
    this.submitted.push({ signer, callData, signature, nonce: options.nonce });
    return {
      extrinsicHash: new Uint8Array(32),
      blockHash: this.blocks.at(-1)!.header.hash,
      blockNumber: this.blocks.length - 1,
      index: 1,
      nonce: this.submitted.length - 1,
      success: true,
      events: [],
      estimatedFee: 1n,
    };
  }

  async estimateFee() {
    return 1n;
  }
  async balance() {
    return { free: 1000n, reserved: 0n, frozen: 0n };
  }
  async accountNonce() {
    return 0;
  }
  encodeCall(): Uint8Array {
    throw new Error('not used by the driver');
  }
  existentialDeposit() {
    return 10n;
  }
  proxyDepositFactor() {
    return 0n;
  }
  /** Metadata "of" block `at`: its hash, so a test can tell which block's metadata the driver handed over. */
  async metadata(at?: Uint8Array) {
    return concatBytes(Uint8Array.of(0x6d, 0x65, 0x74, 0x61), at ?? new Uint8Array(0));
  }
  callIndices() {
    const ix = { pallet: 0, call: 0 };
    return {
      remarkWithEvent: ix,
      transferKeepAlive: ix,
      batchAll: ix,
      proxy: ix,
      createPure: ix,
      addProxy: ix,
      removeProxy: ix,
    };
  }
  async close() {}
}

type Duty = Result<'parentchainDuties'>['duties'][number];

/** The enclave's parentchain API: a light client that accepts only the next block, and a list of duties. */
class FakeEnclave implements EnclaveCalls {
  verified = { number: 0, hash: header(0).hash };
  /** Every batch the driver handed over, as block numbers. */
  readonly batches: number[][] = [];
  /** Outcomes of extrinsics carrying our magic handed over, by block number. */
  readonly relevant = new Map<number, number>();
  readonly signed: Uint8Array[] = [];
  /** An import that contains this block fails once (e.g. the enclave thread was busy restarting). */
  failOnceAt: number | null = null;
  /** This block changed the runtime: the blocks after it are refused until metadata comes. */
  upgradeAt: number | null = null;
  readonly metadataGiven: Uint8Array[] = [];
  duties: Duty[] = [];
  /** The registry: each member shows up once the import passes its registeredAt (an observation). */
  registrations: Result<'parentchainInfo'>['members'] = [];

  async call<M extends Method>(method: M, params: Params<M>): Promise<Result<M>> {
    return this.#handle(method, params as never) as Promise<Result<M>>;
  }

  async #handle(method: Method, params: Record<string, unknown>): Promise<unknown> {
    switch (method) {
      case 'parentchainInit':
        this.metadataGiven.push((params as Params<'parentchainInit'>).metadata);
        return this.#info();
      case 'parentchainInfo':
        return this.#info();
      case 'parentchainLoad':
        return { loaded: false };
      case 'parentchainMetadata':
        this.metadataGiven.push((params as Params<'parentchainMetadata'>).metadata);
        this.upgradeAt = null;
        return this.#info();
      case 'parentchainImport': {
        const blocks = (params as Params<'parentchainImport'>).blocks;
        const numbers = blocks.map((b) => numberOf(b.header));
        this.batches.push(numbers);
        if (this.failOnceAt !== null && numbers.includes(this.failOnceAt)) {
          this.failOnceAt = null;
          throw new ValidateerError('PARENTCHAIN_BAD_HEADER', 'import failed');
        }
        // A light client: only the block after the verified head extends it.
        for (const [k, b] of blocks.entries()) {
          if (this.upgradeAt !== null && numbers[k] > this.upgradeAt)
            throw new ValidateerError('PARENTCHAIN_METADATA_REQUIRED', 'the runtime changed');
          assert.equal(numbers[k], this.verified.number + 1, 'imports continue the verified head');
          this.verified = { number: numbers[k], hash: header(numbers[k]).hash };
          if (b.outcomes.length > 0) this.relevant.set(numbers[k], b.outcomes.length);
        }
        const observations = this.registrations
          .filter((m) => numbers.includes(m.registeredAt))
          .map(() => ({ kind: 'registered', detail: '' }));
        return { number: this.verified.number, hash: this.verified.hash, effects: 0, observations };
      }
      case 'parentchainDuties':
        return { duties: this.duties };
      case 'signExtrinsic':
        this.signed.push((params as Params<'signExtrinsic'>).payload);
        return { signature: SIGNATURE };
      default:
        throw new Error(`unexpected enclave call ${method}`);
    }
  }

  #info(): Result<'parentchainInfo'> {
    return {
      number: this.verified.number,
      hash: this.verified.hash,
      genesisHash: header(0).hash,
      members: this.registrations.filter((m) => m.registeredAt <= this.verified.number),
      vault: null,
      reserveFunded: false,
      vaultProxies: [],
      lastAnchor: null,
      dutiesInFlight: [],
      accountNonce: 0,
      pendingEffects: 0,
      shieldedSupply: 0n,
      unpaidWithdrawals: 0,
      sealedRollback: { rollbacks: 0, dutiesRefusedUntil: 0, lastRollback: null },
      lastVote: null,
    };
  }
}

const OPTIONS: ParentchainDriverOptions = {
  importBatch: 4,
  prefetch: 8,
  genesisHash: null,
  checkpoint: null,
  peerId: 'peer',
  p2pAddresses: [],
  shard: SHARD,
};

let running: ParentchainDriver[] = [];
afterEach(async () => {
  await Promise.all(running.map((d) => d.stop()));
  running = [];
});

async function startDriver(
  chain: FakeParentchain,
  enclave: FakeEnclave,
  options: Partial<ParentchainDriverOptions> = {},
) {
  const metrics = createMetrics();
  const driver = new ParentchainDriver(
    {
      enclave,
      parentchain: chain,
      store: { isCanonical: async () => true },
      metrics,
      logger: createLogger({ level: 'silent' }),
      signingKey: SIGNING_KEY,
    },
    { ...OPTIONS, ...options },
  );
  running.push(driver);
  await driver.init();
  await driver.start();
  return { driver, metrics };
}

async function until(what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function counter(metrics: Metrics, labels: string): Promise<number> {
  const line = (await metrics.registry.metrics())
    .split('\n')
    .find((l) => l.startsWith(`validateer_parentchain_extrinsics_total{${labels}}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

test('a backlog of finalized blocks goes to the enclave in batches of importBatch, in order; a new head alone', async () => {
  const chain = new FakeParentchain();
  for (let n = 1; n <= 20; n++)
    chain.finalize(
      block(n, n === 7 ? concatBytes(MESSAGE_MAGIC, Uint8Array.of(1, 2)) : n === 9 ? Uint8Array.of(1, 2) : undefined),
    );
  const enclave = new FakeEnclave();
  const { driver } = await startDriver(chain, enclave);
  await until('block 20 imported', () => enclave.verified.number === 20);
  assert.deepEqual(
    chain.scans.map((s) => s.from),
    [1],
    'one scan, from the verified head + 1',
  );
  assert.ok(same(chain.scans[0].fromParentHash!, header(0).hash), 'the scan checks it continues the verified head');
  assert.deepEqual(enclave.batches, [
    [1, 2, 3, 4],
    [5, 6, 7, 8],
    [9, 10, 11, 12],
    [13, 14, 15, 16],
    [17, 18, 19, 20],
  ]);
  // Only the extrinsic carrying our message magic goes with its outcome; a foreign remark does not.
  assert.deepEqual([...enclave.relevant], [[7, 1]]);
  assert.equal(driver.processedNumber, 20);

  chain.finalize(block(21));
  await until('block 21 imported', () => enclave.verified.number === 21);
  assert.deepEqual(enclave.batches.at(-1), [21], 'caught up: a new finalized block is imported at once');
});

test("after a failed import the scan restarts from the enclave's verified head; no block is lost or imported twice", async () => {
  const chain = new FakeParentchain();
  for (let n = 1; n <= 20; n++) chain.finalize(block(n));
  const enclave = new FakeEnclave();
  enclave.failOnceAt = 10;
  await startDriver(chain, enclave);
  await until('block 20 imported', () => enclave.verified.number === 20);
  assert.deepEqual(
    chain.scans.map((s) => s.from),
    [1, 9],
    'restarted after block 8, the last verified one',
  );
  assert.ok(same(chain.scans[1].fromParentHash!, header(8).hash));
  const failed = enclave.batches.findIndex((b) => b.includes(10));
  assert.deepEqual(enclave.batches[failed], [9, 10, 11, 12], 'the batch that failed');
  // Everything that was accepted, in order, each once (the light client asserts continuity too).
  const accepted = enclave.batches.filter((_, i) => i !== failed).flat();
  assert.deepEqual(
    accepted,
    Array.from({ length: 20 }, (_, i) => i + 1),
  );
});

test('after a runtime upgrade the enclave refuses blocks until the host hands the metadata at the upgrade block', async () => {
  const chain = new FakeParentchain();
  for (let n = 1; n <= 20; n++) chain.finalize(block(n));
  const enclave = new FakeEnclave();
  enclave.upgradeAt = 12;
  await startDriver(chain, enclave);
  await until('block 20 imported', () => enclave.verified.number === 20);
  assert.equal(enclave.metadataGiven.length, 2, 'at the start, then once after the upgrade');
  assert.ok(same(enclave.metadataGiven[0].subarray(4), header(0).hash), "at the start: the verified head's (genesis)");
  assert.ok(same(enclave.metadataGiven[1].subarray(4), header(12).hash), "then the upgrade block's");
});

test('the extrinsics the enclave asks for are signed by the enclave and sent once, also when asked again meanwhile', async () => {
  const chain = new FakeParentchain();
  const enclave = new FakeEnclave();
  const payout: Duty = { key: 'payout:7', callData: Uint8Array.of(9, 9, 9), description: 'pay withdrawal 7', nonce: 3 };
  let release!: () => void;
  chain.hold = new Promise((r) => (release = r));
  enclave.duties = [payout];
  const { driver, metrics } = await startDriver(chain, enclave);
  await until('the payout signed', () => enclave.signed.length === 1);
  // The enclave still offers it while the extrinsic waits for inclusion: it must not be sent again.
  for (let i = 0; i < 5; i++) driver.kickDuties();
  chain.finalize(block(1)); // an import asks for duties too
  await until('block 1 imported', () => enclave.verified.number === 1);
  enclave.duties = []; // from here on the light client has seen it done
  release();
  await until('the payout counted', async () => (await counter(metrics, 'call="payout",result="success"')) === 1);
  driver.kickDuties();
  assert.equal(chain.submitted.length, 1);
  assert.equal(enclave.signed.length, 1, 'signed once');
  const [sent] = chain.submitted;
  assert.deepEqual(sent.callData, payout.callData, 'the call bytes the enclave built');
  assert.ok(same(sent.signer.publicKey, SIGNING_KEY), 'sent from the enclave account');
  assert.ok(same(sent.signature, SIGNATURE), "with the enclave's signature");
  assert.equal(sent.nonce, payout.nonce, 'at the nonce the enclave named');
  assert.ok(
    same(enclave.signed[0].subarray(0, payout.callData.length), payout.callData),
    'the enclave signed a payload of its call',
  );
});

test('an anchor the enclave built is sent at its nonce, signed by the enclave, and its fee counted', async () => {
  const chain = new FakeParentchain();
  const enclave = new FakeEnclave();
  const { driver, metrics } = await startDriver(chain, enclave);
  assert.equal(await driver.submitAnchor(10, { callData: Uint8Array.of(0xac, 10), nonce: 50 }), true);
  assert.equal(await driver.submitAnchor(20, { callData: Uint8Array.of(0xac, 20), nonce: 51 }), true);
  assert.deepEqual(
    chain.submitted.map((s) => [[...s.callData], s.nonce]),
    [
      [[0xac, 10], 50],
      [[0xac, 20], 51],
    ],
  );
  assert.ok(
    chain.submitted.every((s) => same(s.signature, SIGNATURE)),
    "with the enclave's signature",
  );
  assert.equal(await counter(metrics, 'call="anchor",result="success"'), 2);
  const text = await metrics.registry.metrics();
  assert.match(text, /^validateer_anchors_submitted_total 2$/m);
  assert.match(text, /^validateer_parentchain_anchor_fees_total 2$/m, 'the fee of each (1 in the fake)');
});

test('a parentchain with another genesis than configured is refused with PARENTCHAIN_GENESIS_MISMATCH', async () => {
  const driver = new ParentchainDriver(
    {
      enclave: new FakeEnclave(),
      parentchain: new FakeParentchain(),
      store: { isCanonical: async () => true },
      metrics: createMetrics(),
      logger: createLogger({ level: 'silent' }),
      signingKey: SIGNING_KEY,
    },
    { ...OPTIONS, genesisHash: new Uint8Array(32).fill(0xff) },
  );
  await assert.rejects(driver.init(), (err: unknown) => hasCode(err, 'PARENTCHAIN_GENESIS_MISMATCH'));
});

test('who may author and forward, as our registry says: a stranger is refused only where our view covers it', async () => {
  const member = (registeredAt: number, key: number) => ({
    signingKey: new Uint8Array(32).fill(key),
    measurement: new Uint8Array(32),
    peerId: `p${key}`,
    p2pAddresses: [],
    registeredAt,
    registeredIndex: key,
    unregisteredAt: null,
  });
  const hex = (key: number) => toHex(new Uint8Array(32).fill(key));
  const chain = new FakeParentchain();
  for (let n = 1; n <= 6; n++) chain.finalize(block(n));
  const enclave = new FakeEnclave();
  enclave.registrations = [member(3, 0xa1), member(8, 0xb2)];
  const { driver } = await startDriver(chain, enclave);
  await until('block 6 imported', () => enclave.verified.number === 6);
  await until('the registry applied', () => driver.forwarder(hex(0xa1)) === 'member');

  assert.equal(driver.isAuthority(hex(0xa1), 5), true);
  // Not registered by parentchain block 6: its block built on 6 or below is invalid. Above 6: it may have joined since.
  assert.equal(driver.isAuthority(hex(0xb2), 6), false);
  assert.equal(driver.isAuthority(hex(0xb2), 7), undefined);
  assert.equal(driver.isAuthority(hex(0xb2), null), undefined, 'genesis names a first authority registered later');
  assert.equal(driver.forwarder(hex(0xb2)), 'stranger', 'caught up with the finalized chain: never registered');

  // A finalized block not imported yet (the head is heard at once): behind, so no one is a stranger for now.
  chain.finalize(block(7));
  assert.equal(driver.forwarder(hex(0xb2)), 'unsure');
  chain.finalize(block(8));
  await until('block 8 imported', () => enclave.verified.number === 8);
  await until('the join applied', () => driver.forwarder(hex(0xb2)) === 'member');
  assert.equal(driver.isAuthority(hex(0xb2), 8), true);
});
