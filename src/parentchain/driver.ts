// The untrusted half of the parentchain link: scans finalized blocks and hands them to the enclave's
// light client in batches, sends the extrinsics the enclave asks for (registration, vault, payouts)
// and the anchors the finality votes call for (consensus/finality.ts), and tracks sidechain finality
// from observed anchors.
// Everything it relays is verified inside the enclave; it only decides when, never what.
import type { Method, Params, Result } from '../enclave/boundary/api.ts';
import type { BlockStore } from '../sidechain/store.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { ExtrinsicSigner, FinalizedScanner, Parentchain, ParentchainBlock } from './api.ts';
import { MESSAGE_MAGIC } from '../protocol/parentchain-messages.ts';
import type { Logger } from 'pino';
import { bytesView, same, toHex } from '../protocol/bytes.ts';
import { ValidateerError, codeOf, hasCode } from '../protocol/errors.ts';
import { isActiveAt } from '../protocol/membership.ts';

export interface ParentchainDriverOptions {
  importBatch: number;
  prefetch: number;
  genesisHash: Uint8Array | null;
  checkpoint: { number: number; hash: Uint8Array } | null;
  peerId: string;
  p2pAddresses: string[];
  shard: Uint8Array;
}

type ImportParams = Params<'parentchainImport'>['blocks'][number];
export interface Finality {
  number: number;
  hash: Uint8Array;
}

/** The enclave as the driver uses it: its message API (the Enclave class, or a fake in tests). */
export interface EnclaveCalls {
  call<M extends Method>(method: M, params: Params<M>): Promise<Result<M>>;
}

export interface ParentchainDriverDeps {
  enclave: EnclaveCalls;
  parentchain: Parentchain;
  /** Asked whether an anchored block is in the local chain. */
  store: Pick<BlockStore, 'isCanonical'>;
  metrics: Metrics;
  logger: Logger;
  /** The enclave's signing key: its parentchain account. */
  signingKey: Uint8Array;
}

export class ParentchainDriver {
  private readonly enclave: EnclaveCalls;
  private readonly parentchain: Parentchain;
  private readonly store: Pick<BlockStore, 'isCanonical'>;
  private readonly metrics: Metrics;
  private readonly logger: Logger;
  private readonly opts: ParentchainDriverOptions;
  private readonly signer: ExtrinsicSigner;
  private scanner: FinalizedScanner | null = null;
  private batch: ImportParams[] = [];
  private importing: Promise<void> = Promise.resolve();
  private finalizedNumber = 0;
  private stopped = false;
  private unsubscribe: (() => void) | null = null;
  private balanceTimer: NodeJS.Timeout | undefined;
  private readonly submitting = new Set<string>();
  private readonly tasks = new Set<Promise<unknown>>();
  private dutiesAgain = false;
  private dutiesRunning: Promise<void> | null = null;
  finalized: Finality | null = null;
  /** Every validateer ever registered (hex signing keys): whose blocks are worth verifying at all. */
  readonly everMembers = new Set<string>();
  /** The last anchor seen in a finalized parentchain block (final, though maybe not in our chain yet). */
  lastAnchor: Finality | null = null;
  /** Every member the registry knows (active or not), in registration order. */
  members: Result<'parentchainInfo'>['members'] = [];
  /** The highest sidechain number the enclave voted at (sealed in its signing guard). */
  lastVote: Result<'parentchainInfo'>['lastVote'] = null;
  private membersListener: ((m: Result<'parentchainInfo'>['members']) => void) | null = null;
  private others: Result<'parentchainInfo'>['members'] = [];
  private importedListener: (() => void) | null = null;
  processedNumber = 0;
  /** The parentchain block everMembers and members are current as of (processedNumber runs ahead during an apply). */
  private registryNumber = 0;
  /** Members active at registryNumber (hex signing keys). */
  private activeKeys = new Set<string>();
  /** Whether finalizedNumber is the parentchain's (set in start()): before that we cannot say we are caught up. */
  private finalizedKnown = false;

  constructor(deps: ParentchainDriverDeps, opts: ParentchainDriverOptions) {
    this.enclave = deps.enclave;
    this.parentchain = deps.parentchain;
    this.store = deps.store;
    this.metrics = deps.metrics;
    this.logger = deps.logger;
    this.opts = opts;
    this.signer = {
      publicKey: deps.signingKey,
      scheme: 'ed25519',
      sign: async (payload) => (await deps.enclave.call('signExtrinsic', { payload })).signature,
    };
  }

  /**
   * Opens the enclave's light client on this chain. Must run before the sidechain replay (it names the valid authors).
   */
  async init(): Promise<void> {
    const genesisHash = this.parentchain.genesisHash();
    if (this.opts.genesisHash && !same(this.opts.genesisHash, genesisHash)) {
      const configured = toHex(this.opts.genesisHash);
      throw new ValidateerError(
        'PARENTCHAIN_GENESIS_MISMATCH',
        `parentchain genesis ${toHex(genesisHash)} is not the configured ${configured}`,
      );
    }
    const info = await this.enclave.call('parentchainInit', {
      genesisHash,
      metadata: await this.metadataAtStart(genesisHash),
      existentialDeposit: this.parentchain.existentialDeposit(),
      proxyDepositFactor: this.parentchain.proxyDepositFactor(),
      accountNonce: await this.parentchain.accountNonce(this.signer.publicKey),
      ...(this.opts.checkpoint ? { checkpoint: this.opts.checkpoint } : {}),
    });
    const rollback = info.sealedRollback;
    if (rollback.lastRollback)
      this.logger.error(
        { rollbacks: rollback.rollbacks, dutiesRefusedUntil: rollback.dutiesRefusedUntil },
        `sealed enclave state was rolled back: ${rollback.lastRollback}`,
      );
    this.apply(info);
  }

  /**
   * The metadata of the runtime in force at the enclave's verified head (a sealed one, else the checkpoint or
   * genesis): the enclave reads the blocks after it with the indices derived from it. A node that no longer has
   * that block's state gives the current runtime's; the enclave keeps its sealed runtime unless it has none.
   */
  private async metadataAtStart(genesisHash: Uint8Array): Promise<Uint8Array> {
    const loaded = (await this.enclave.call('parentchainLoad', {})).loaded;
    const at = loaded
      ? (await this.enclave.call('parentchainInfo', {})).hash
      : (this.opts.checkpoint?.hash ?? genesisHash);
    try {
      return await this.parentchain.metadata(at);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'no metadata at the verified head; using the current runtime');
      return this.parentchain.metadata();
    }
  }

  /** After the enclave verified a runtime upgrade: the new runtime's metadata (the state after that block). */
  private async followRuntime(): Promise<void> {
    const head = await this.enclave.call('parentchainInfo', {});
    const info = await this.enclave.call('parentchainMetadata', {
      metadata: await this.parentchain.metadata(head.hash),
    });
    this.logger.info({ block: head.number }, 'parentchain runtime upgraded; the enclave follows its new metadata');
    this.apply(info);
  }

  /** Starts scanning finalized blocks from the light client head; restarts after any failure. */
  async start(): Promise<void> {
    this.unsubscribe = await this.parentchain.subscribeFinalizedHeads((h) => {
      this.finalizedNumber = Math.max(this.finalizedNumber, h.number);
      this.metrics.parentchainFinalizedNumber.set(this.finalizedNumber);
    });
    this.finalizedNumber = (await this.parentchain.finalizedHead()).number;
    this.finalizedKnown = true;
    this.metrics.parentchainFinalizedNumber.set(this.finalizedNumber);
    void this.scan();
    this.kickDuties();
    const balance = () =>
      this.parentchain
        .balance(this.signer.publicKey)
        .then((b) => this.metrics.parentchainAccountBalance.set(Number(b.free)))
        .catch(() => undefined); // unreachable: the scan logs that
    void balance();
    this.balanceTimer = setInterval(balance, 15_000);
    this.balanceTimer.unref();
  }

  private async scan(): Promise<void> {
    while (!this.stopped) {
      await this.importing.catch(() => undefined); // a failed import restarts the scan from the verified head
      const info = await this.enclave.call('parentchainInfo', {});
      this.batch = [];
      this.importing = Promise.resolve();
      this.scanner = this.parentchain.scanFinalized(info.number + 1, (b) => this.onBlock(b), {
        // Only extrinsics that name our shard are decoded (and only their blocks' events read).
        prefetch: this.opts.prefetch,
        fromParentHash: info.hash,
        events: 'signed',
        decodeOnly: this.opts.shard,
        onError: (err) =>
          this.logger.warn({ err: err.message }, 'parentchain unreachable; scanning resumes when it is back'),
      });
      try {
        await this.scanner.done;
      } catch (err) {
        if (this.stopped) return;
        if (codeOf(err) === 'PARENTCHAIN_METADATA_REQUIRED') {
          const followed = await this.followRuntime().then(
            () => true,
            (e: Error) => {
              this.logger.error(
                { code: codeOf(e), err: e.message },
                'could not follow the parentchain runtime upgrade',
              );
              return false;
            },
          );
          if (followed) continue;
        }
        this.logger.error(
          { code: codeOf(err), err: (err as Error).message },
          'parentchain scan failed; restarting from the verified head',
        );
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  private async onBlock(block: ParentchainBlock): Promise<void> {
    this.batch.push(toImport(block));
    this.finalizedNumber = Math.max(this.finalizedNumber, block.header.number);
    if (block.header.number >= this.finalizedNumber) {
      this.startImport();
      await this.importing; // caught up: the next block is seconds away
    } else if (this.batch.length >= this.opts.importBatch) {
      // Catching up: one batch is imported in the enclave while the next one is fetched.
      const previous = this.importing;
      this.startImport();
      await previous;
    }
  }

  /** Hands the collected batch to the enclave after the previous import (imports stay in order). */
  private startImport(): void {
    const blocks = this.batch;
    this.batch = [];
    if (blocks.length === 0) return;
    const previous = this.importing;
    const run = (async () => {
      await previous;
      await this.importNow(blocks);
    })();
    run.catch(() => undefined); // surfaced to the scan by the awaits in onBlock
    this.importing = run;
  }

  private async importNow(blocks: Params<'parentchainImport'>['blocks']): Promise<void> {
    const r = await this.enclave.call('parentchainImport', { blocks });
    this.processedNumber = r.number;
    this.metrics.parentchainProcessedNumber.set(r.number);
    this.metrics.parentchainBlocksImported.inc(blocks.length);
    for (const o of r.observations) {
      this.metrics.parentchainObservations.inc({ kind: o.kind });
      if (o.kind === 'anchorIgnored') this.metrics.anchorsIgnored.inc();
      if (o.kind === 'ignored') this.logger.warn({ detail: o.detail }, 'parentchain message ignored');
      else this.logger.info({ kind: o.kind, detail: o.detail }, 'parentchain message');
    }
    if (r.observations.length > 0) this.apply(await this.enclave.call('parentchainInfo', {}));
    else this.registryNumber = r.number; // a registry change is an observation: none, so the members still hold
    this.importedListener?.();
    this.kickDuties();
  }

  /** The addresses registered for this validateer (known once the network listens). */
  setP2pAddresses(addrs: string[]): void {
    this.opts.p2pAddresses = addrs;
  }

  /** Called with the active members (and their p2p addresses) whenever the registry changes. */
  onMembers(fn: (members: Result<'parentchainInfo'>['members']) => void): void {
    this.membersListener = fn;
    fn(this.others);
  }

  /** Called after every batch of parentchain blocks the enclave verified. */
  onImported(fn: () => void): void {
    this.importedListener = fn;
  }

  /**
   * Whether a signing key (0x hex) is or was a member, for a sidechain block built on parentchain block `at` (null:
   * genesis, whose author registered after it). false only when our registry covers `at`: the author was not
   * registered by then, so our enclave refuses the block. undefined while it does not: a member that joined since
   * may not be known here yet.
   */
  isAuthority(key: string, at: number | null): boolean | undefined {
    if (this.everMembers.has(key)) return true;
    return at !== null && at <= this.registryNumber ? false : undefined;
  }

  /**
   * A forwarded batch's sender (0x hex): a member now; a stranger (never registered, and our registry is caught up
   * with the finalized parentchain); else unsure (departed, or joined since our view: the relay may be ahead of us).
   */
  forwarder(key: string): 'member' | 'stranger' | 'unsure' {
    if (this.activeKeys.has(key)) return 'member';
    const caughtUp = this.finalizedKnown && this.registryNumber >= this.finalizedNumber;
    return caughtUp && !this.everMembers.has(key) ? 'stranger' : 'unsure';
  }

  /** Re-checks whether the last anchor is in the local chain (after imports and reorgs). */
  refreshFinality(): void {
    void this.updateFinality(this.lastAnchor);
  }

  private apply(i: Result<'parentchainInfo'>): void {
    for (const m of i.members) this.everMembers.add(toHex(m.signingKey));
    this.members = i.members;
    this.lastVote = i.lastVote;
    const active = i.members.filter((m) => isActiveAt(m, i.number));
    this.activeKeys = new Set(active.map((m) => toHex(m.signingKey)));
    this.registryNumber = i.number;
    this.others = active.filter((m) => !same(m.signingKey, this.signer.publicKey));
    this.membersListener?.(this.others);
    this.lastAnchor = i.lastAnchor ? { number: i.lastAnchor.number, hash: i.lastAnchor.hash } : null;
    this.processedNumber = i.number;
    this.metrics.parentchainProcessedNumber.set(i.number);
    this.metrics.sealedStateRollbacks.set(i.sealedRollback.rollbacks);
    void this.updateFinality(i.lastAnchor);
  }

  private async updateFinality(anchor: { number: number; hash: Uint8Array } | null): Promise<void> {
    if (!anchor || (this.finalized && anchor.number <= this.finalized.number)) return;
    // Final only if the anchored block is the one in our chain.
    if (!(await this.store.isCanonical(anchor.number, anchor.hash))) {
      this.logger.debug(
        { number: anchor.number, hash: toHex(anchor.hash) },
        'anchored block is not in the local chain (yet)',
      );
      return;
    }
    this.finalized = { number: anchor.number, hash: anchor.hash };
    this.metrics.sidechainFinalizedNumber.set(anchor.number);
  }

  /** Asks the enclave what it wants sent and sends it; one run at a time, re-run when asked meanwhile. */
  kickDuties(): void {
    if (this.stopped) return;
    if (this.dutiesRunning) {
      this.dutiesAgain = true;
      return;
    }
    this.dutiesRunning = this.runDuties().finally(() => {
      this.dutiesRunning = null;
      if (this.dutiesAgain) {
        this.dutiesAgain = false;
        this.kickDuties();
      }
    });
  }

  private async runDuties(): Promise<void> {
    let duties;
    try {
      duties = (
        await this.enclave.call('parentchainDuties', { peerId: this.opts.peerId, p2pAddresses: this.opts.p2pAddresses })
      ).duties;
    } catch (err) {
      this.logger.error({ err: (err as Error).message }, 'could not get parentchain duties');
      return;
    }
    for (const d of duties) {
      if (this.submitting.has(d.key)) continue;
      this.submitting.add(d.key);
      const kind = d.key.split(':')[0];
      this.track(this.send(kind, d, d.description).finally(() => this.submitting.delete(d.key)));
    }
  }

  /** Sends an anchor the enclave built from a quorum of votes; true once included. */
  async submitAnchor(number: number, call: { callData: Uint8Array; nonce: number }): Promise<boolean> {
    const fee = await this.send('anchor', call, `anchor sidechain block ${number}`);
    if (fee === null) return false;
    this.metrics.anchorsSubmitted.inc();
    this.metrics.anchorFees.inc(Number(fee));
    return true;
  }

  /** Signs at the nonce the enclave named (it signs no other) and submits; the fee once included, else null. */
  private async send(
    kind: string,
    call: { callData: Uint8Array; nonce: number },
    description: string,
  ): Promise<bigint | null> {
    try {
      const r = await this.parentchain.submit(
        this.signer,
        { kind: 'raw', callData: call.callData },
        { nonce: call.nonce },
      );
      this.metrics.countParentchainExtrinsic(kind, r.success ? 'success' : 'failed');
      if (r.success)
        this.logger.info({ block: r.blockNumber, fee: String(r.estimatedFee) }, `parentchain: ${description}`);
      else this.logger.error({ block: r.blockNumber, error: r.error }, `parentchain: ${description} failed`);
      return r.success ? r.estimatedFee : null;
    } catch (err) {
      this.metrics.countParentchainExtrinsic(
        kind,
        hasCode(err, 'PARENTCHAIN_INSUFFICIENT_FUNDS') ? 'insufficient_funds' : 'error',
      );
      // A clash of nonces (an anchor and a duty, say) settles itself: the enclave names others once it sees the chain.
      const level = hasCode(err, 'DUTY_IN_FLIGHT')
        ? 'debug'
        : hasCode(err, 'PARENTCHAIN_NONCE_USED', 'DUTY_WRONG_NONCE')
          ? 'warn'
          : 'error';
      this.logger[level]({ code: codeOf(err), err: (err as Error).message }, `parentchain: ${description} not sent`);
      return null;
    }
  }

  private track(p: Promise<unknown>): void {
    this.tasks.add(p);
    void p.finally(() => this.tasks.delete(p));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.balanceTimer);
    this.unsubscribe?.();
    await this.scanner?.stop();
    await this.importing.catch(() => undefined);
    await this.dutiesRunning;
    await Promise.allSettled([...this.tasks]);
  }
}

const MAGIC = bytesView(MESSAGE_MAGIC);

function toImport(block: ParentchainBlock): ImportParams {
  // Only extrinsics naming our shard are decoded; each that carries our magic goes with its outcome and where its
  // call starts (the enclave decodes the call itself, and refuses a block where one of ours has no outcome). One
  // polkadot-js could not decode gets the end as its call offset: the enclave then looks for the call itself.
  const outcomes = [];
  for (const x of block.extrinsics) {
    if (bytesView(x.encoded).indexOf(MAGIC) < 0) continue;
    outcomes.push({ index: x.index, success: x.success ?? false, callOffset: x.callOffset ?? x.encoded.length });
  }
  return { header: block.header.encoded, extrinsics: block.raw, outcomes };
}
