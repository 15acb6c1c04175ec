// Submitting extrinsics and watching for their inclusion: local nonces, a funds check before
// sending, resubmission of the same signed bytes across connection loss, and inclusion found by
// walking blocks for the extrinsic hash, so an outage never causes a second execution.
import type { ApiPromise } from '@polkadot/api';
import type { SignerPayloadRaw, SignerResult } from '@polkadot/types/types';
import { u8aToHex, hexToU8a, u8aConcat, u8aEq } from '@polkadot/util';
import { ValidateerError, hasCode } from '../../protocol/errors.ts';
import type { Balance, CallSpec, ExtrinsicSigner, SubmitOptions, SubmitResult } from '../api.ts';
import { isConnectionError, sleep, type RpcConnection } from './connection.ts';
import type { BlockReader } from './blocks.ts';
import { buildCall, spends } from './calls.ts';

const MULTISIG_ED25519 = 0;
const MULTISIG_SR25519 = 1;

/** What the adapter tells the submitter about accounts. */
export interface AccountQueries {
  address(account: Uint8Array): string;
  balance(account: Uint8Array): Promise<Balance>;
  existentialDeposit(): bigint;
}

interface Sent {
  hash: Uint8Array;
  nonce: number;
  fee: bigint;
  fromNumber: number;
  deathNumber: number;
}

export class ExtrinsicSubmitter {
  readonly #api: ApiPromise;
  readonly #connection: RpcConnection;
  readonly #reader: BlockReader;
  readonly #accounts: AccountQueries;
  readonly #mortality: number;
  readonly #nonces = new Map<string, number>();
  readonly #locks = new Map<string, Promise<unknown>>();

  constructor(
    deps: { api: ApiPromise; connection: RpcConnection; reader: BlockReader; accounts: AccountQueries },
    mortalityBlocks: number,
  ) {
    this.#api = deps.api;
    this.#connection = deps.connection;
    this.#reader = deps.reader;
    this.#accounts = deps.accounts;
    this.#mortality = mortalityBlocks;
  }

  async estimateFee(signer: ExtrinsicSigner, spec: CallSpec): Promise<bigint> {
    const address = this.#accounts.address(signer.publicKey);
    const tx = buildCall(this.#api, spec);
    const info = await this.#connection.retry('paymentInfo', () => tx.paymentInfo(address));
    return info.partialFee.toBigInt();
  }

  /**
   * Signs, submits and waits for inclusion. Nonces come from a local cache (resynced from the chain
   * on any nonce error). After a connection loss the same signed bytes are resubmitted: with the
   * same nonce at most one copy can ever be included, and inclusion is found by scanning blocks for
   * the extrinsic hash, so an outage never causes a second execution.
   */
  async submit(signer: ExtrinsicSigner, spec: CallSpec, options: SubmitOptions = {}): Promise<SubmitResult> {
    const deadline = Date.now() + (options.timeoutMs ?? 120_000);
    const account = u8aToHex(signer.publicKey);
    for (let attempt = 0; ; attempt++) {
      const sent = await this.#withLock(account, () => this.#signAndSend(signer, spec, options, deadline));
      try {
        return await this.#awaitInclusion(sent, options.waitFor ?? 'inBlock', deadline);
      } catch (err) {
        // Expired unincluded: nothing was executed, so a fresh signature with a fresh nonce is safe (unless the
        // signer named the nonce: then it decides what to sign next).
        if (!hasCode(err, 'PARENTCHAIN_TX_DROPPED') || attempt >= 2 || options.nonce !== undefined) throw err;
        this.#nonces.delete(account);
        this.#connection.warn(`extrinsic ${u8aToHex(sent.hash)} expired without inclusion; resubmitting`);
      }
    }
  }

  async #signAndSend(signer: ExtrinsicSigner, spec: CallSpec, options: SubmitOptions, deadline: number): Promise<Sent> {
    const account = u8aToHex(signer.publicKey);
    const address = this.#accounts.address(signer.publicKey);
    for (let nonceRetry = 0; ; nonceRetry++) {
      const named = options.nonce;
      const nonce = named ?? this.#nonces.get(account) ?? (await this.chainNonce(address));
      const birth = await this.#reader.finalizedHead();
      const tx = buildCall(this.#api, spec);
      await this.#connection.retry('sign', () =>
        tx.signAsync(address, {
          nonce,
          tip: options.tip ?? 0n,
          blockHash: birth.hash,
          era: this.#api.createType('ExtrinsicEra', { current: birth.number, period: this.#mortality }),
          signer: { signRaw: (raw: SignerPayloadRaw) => signRaw(signer, raw) },
        }),
      );
      const info = await this.#connection.retry('paymentInfo', () =>
        this.#api.call.transactionPaymentApi.queryInfo(tx.toU8a(), tx.encodedLength),
      );
      const fee = info.partialFee.toBigInt();
      await this.#checkFunds(signer.publicKey, spec, fee + (options.tip ?? 0n));
      const sent: Sent = {
        hash: tx.hash.toU8a(),
        nonce,
        fee,
        fromNumber: birth.number,
        deathNumber: birth.number + this.#mortality,
      };
      const outcome = await this.#send(tx.toHex(), address, fee, deadline);
      if (named !== undefined) {
        this.#nonces.delete(account); // the cache follows the chain again for unnamed submissions
        if (outcome === 'nonceRejected')
          throw new ValidateerError('PARENTCHAIN_NONCE_USED', `nonce ${nonce} of ${address} is used or taken`);
        return sent;
      }
      if (outcome === 'nonceRejected') {
        this.#nonces.delete(account);
        if (nonceRetry < 3) continue;
        throw new ValidateerError('PARENTCHAIN_SUBMIT_REJECTED', `nonce ${nonce} of ${address} rejected repeatedly`);
      }
      if (outcome === 'accepted') this.#nonces.set(account, nonce + 1);
      else this.#nonces.delete(account);
      return sent;
    }
  }

  /**
   * Submits signed bytes, resubmitting the identical bytes across connection loss. 'maybeIncluded':
   * the nonce is now used, and an earlier copy that reached the node before the connection dropped
   * may be what used it, so the caller must look for it rather than sign again.
   */
  async #send(
    hex: string,
    address: string,
    fee: bigint,
    deadline: number,
  ): Promise<'accepted' | 'maybeIncluded' | 'nonceRejected'> {
    let mayHaveArrived = false;
    for (;;) {
      try {
        await this.#connection.provider.send('author_submitExtrinsic', [hex]);
        return 'accepted';
      } catch (err) {
        const message = (err as Error).message ?? String(err);
        if (isConnectionError(err)) {
          if (Date.now() > deadline)
            throw new ValidateerError('PARENTCHAIN_SUBMIT_TIMEOUT', `could not submit within the timeout: ${message}`);
          mayHaveArrived = true;
          this.#connection.warn(`submit: ${message}; retrying`);
          await sleep(500);
          continue;
        }
        if (/already imported|1013/i.test(message)) return 'accepted'; // an earlier copy is in the pool
        if (/payment|Inability to pay/i.test(message)) {
          throw new ValidateerError(
            'PARENTCHAIN_INSUFFICIENT_FUNDS',
            `${address} cannot pay the fee of ${fee}: ${message}`,
          );
        }
        if (/stale|outdated|Priority is too low|1014|future/i.test(message))
          return mayHaveArrived ? 'maybeIncluded' : 'nonceRejected';
        throw new ValidateerError('PARENTCHAIN_SUBMIT_REJECTED', `extrinsic rejected: ${message}`);
      }
    }
  }

  async chainNonce(address: string): Promise<number> {
    // system_accountNextIndex counts the node's pool too.
    return Number(await this.#connection.rpc<number>('system_accountNextIndex', [address]));
  }

  async #checkFunds(account: Uint8Array, spec: CallSpec, fee: bigint): Promise<void> {
    const { free, frozen } = await this.#accounts.balance(account);
    const need = fee + spends(this.#api, spec) + this.#accounts.existentialDeposit(); // fees are withdrawn keep-alive
    if (free - frozen < need) {
      const address = this.#accounts.address(account);
      throw new ValidateerError(
        'PARENTCHAIN_INSUFFICIENT_FUNDS',
        `${address} has ${free - frozen} spendable but needs ${need} (fee ${fee})`,
      );
    }
  }

  /**
   * Finds the extrinsic by hash walking blocks by number from the one after its birth. A dropped
   * verdict is only given after the finalized chain up to its death block was searched, since a
   * best-chain reorg can move an extrinsic to a block the best-chain walk already passed.
   */
  async #awaitInclusion(sent: Sent, waitFor: 'inBlock' | 'finalized', deadline: number): Promise<SubmitResult> {
    let finalizedOnly = waitFor === 'finalized';
    let next = sent.fromNumber + 1;
    for (;;) {
      if (Date.now() > deadline) {
        throw new ValidateerError(
          'PARENTCHAIN_SUBMIT_TIMEOUT',
          `extrinsic ${u8aToHex(sent.hash)} not included in time (it may still be until block ${sent.deathNumber})`,
        );
      }
      try {
        const top = finalizedOnly ? (await this.#reader.finalizedHead()).number : await this.#reader.bestNumber();
        for (; next <= Math.min(top, sent.deathNumber); next++) {
          const block = await this.#reader.blockAt(next, { events: 'signed' });
          const found = block.extrinsics.find((x) => u8aEq(x.hash, sent.hash));
          if (found) {
            return {
              extrinsicHash: sent.hash,
              blockHash: block.header.hash,
              blockNumber: block.header.number,
              index: found.index,
              nonce: sent.nonce,
              success: found.success ?? false,
              error: found.error,
              events: found.events,
              estimatedFee: sent.fee,
            };
          }
        }
        if (next > sent.deathNumber) {
          if (finalizedOnly) {
            throw new ValidateerError(
              'PARENTCHAIN_TX_DROPPED',
              `extrinsic ${u8aToHex(sent.hash)} expired at block ${sent.deathNumber} without inclusion`,
            );
          }
          finalizedOnly = true;
          next = sent.fromNumber + 1;
          continue;
        }
      } catch (err) {
        // connection loss, or a block number the node does not know yet: try again shortly
        if (!isConnectionError(err) && !hasCode(err, 'PARENTCHAIN_MISSING_BLOCK')) throw err;
      }
      await sleep(250);
    }
  }

  /** One submission per account at a time: nonces are taken in order. */
  async #withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(key) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.#locks.set(key, tail);
    try {
      return await run;
    } finally {
      if (this.#locks.get(key) === tail) this.#locks.delete(key);
    }
  }
}

async function signRaw(signer: ExtrinsicSigner, raw: SignerPayloadRaw): Promise<SignerResult> {
  const signature = await signer.sign(hexToU8a(raw.data));
  const type = signer.scheme === 'ed25519' ? MULTISIG_ED25519 : MULTISIG_SR25519;
  // MultiSignature: the variant byte then the 64-byte signature.
  return { id: 0, signature: u8aToHex(u8aConcat(Uint8Array.of(type), signature)) };
}
