// The client library: shielded calls and signed getters against a validateer's JSON-RPC endpoint
// (ws:// or wss://). The endpoint is not believed: keys and replies are checked against `ClientTrust`.
import { RpcClientError, connectRpc, type RpcClient } from './rpc.ts';
import { buildGetter, buildTransfer, buildUnshield, type ShieldingKey, type Signer } from './calls.ts';
import { checkSigner, verifyShieldingKey, type ClientTrust, type ShieldingKeyReply, type TrustedKey } from './trust.ts';
import { decodeExact, type GetterReply, type Memo, type TrustedGetter } from '../protocol/wire.ts';
import { SignedGetterReply } from '../protocol/enclave-proofs.ts';
import { ValidateerError, errorCode } from '../protocol/errors.ts';
import { hexKey, parseHex, toHex } from '../protocol/bytes.ts';

export type { ClientTrust } from './trust.ts';

export const DEFAULT_RPC = 'ws://127.0.0.1:2000';
export type CallUpdate =
  | { status: 'ready' | 'future' }
  | { status: 'inBlock'; blockHash: string; blockNumber: number }
  | { status: 'invalid'; code: string; message: string };

export interface ShardInfo {
  shard: string;
  parentchain: { endpoint: string; genesisHash: string; processed: { number: number; hash: string } } | null;
  vault?: string | null;
  vaultReserveFunded?: boolean;
  /** Enclave accounts that control the vault (proxies of it): any of them can pay out withdrawals. */
  vaultProxies?: string[];
  shieldedSupply?: string;
  unpaidWithdrawals?: number;
  lastAnchor?: { number: number; hash: string; parentchainNumber: number } | null;
  finalized?: { number: number; hash: string } | null;
  validateers?: {
    signingKey: string;
    measurement: string;
    peerId: string;
    p2pAddresses: string[];
    registeredAt: number;
    unregisteredAt: number | null;
  }[];
}

export interface HeaderJson {
  hash: string;
  parentHash: string;
  number: number;
  slot: number;
  author: string;
  stateCommitment: string;
  timestampMs: number;
  calls: number;
  /** The parentchain block this sidechain block builds on (its effects are executed up to there). */
  parentchain: { number: number; hash: string };
}

export class ValidateerClient {
  readonly rpc: RpcClient;
  private readonly trust: ClientTrust;
  private key: Promise<TrustedKey> | undefined;
  /** Enclaves whose getter replies are believed: the one that vouched for the key, and others checked since. */
  private readonly trustedSigners = new Set<string>();

  private constructor(rpc: RpcClient, trust: ClientTrust) {
    this.rpc = rpc;
    this.trust = trust;
  }

  /**
   * Connects to `url`. `trust` anchors what the client believes: without pinned keys or a registry lookup,
   * every shielding key (and so every call and getter) is refused; chain queries still work.
   */
  static async connect(url: string, trust: ClientTrust): Promise<ValidateerClient> {
    return new ValidateerClient(await connectRpc(url), trust);
  }

  /** The shard's shielding key, once an enclave the trust anchor vouches for has signed it. */
  shieldingKey(): Promise<ShieldingKey & { shard: Uint8Array; signer: Uint8Array }> {
    this.key ??= this.rpc
      .request<ShieldingKeyReply>('author_getShieldingKey')
      .then((r) => verifyShieldingKey(this.trust, r ?? ({} as ShieldingKeyReply)))
      .then((k) => {
        this.trustedSigners.add(hexKey(k.signer));
        return k;
      });
    // A refused or failed lookup is not cached: the next call asks again.
    this.key.catch(() => (this.key = undefined));
    return this.key;
  }

  async getter(signer: Signer, getter: TrustedGetter): Promise<GetterReply> {
    const key = await this.shieldingKey();
    const g = buildGetter(signer, getter, key, key.shard);
    const hex = await this.rpc.request<unknown>('state_executeGetter', [toHex(g.request)]);
    const bytes = typeof hex === 'string' && hex.startsWith('0x') ? parseHex(hex.slice(2)) : null;
    if (!bytes) throw new ValidateerError('UNTRUSTED_REPLY', 'getter reply is not hex bytes');
    let from: Uint8Array;
    try {
      from = decodeExact(SignedGetterReply, bytes, 'getter reply').signer;
    } catch {
      throw new ValidateerError('UNTRUSTED_REPLY', 'getter reply is not a signed reply');
    }
    if (!this.trustedSigners.has(hexKey(from))) {
      // Another member may answer (a set behind one address): it must pass the same check as the key's signer.
      await checkSigner(this.trust, key.shard, from, (why) => new ValidateerError('UNTRUSTED_REPLY', why));
      this.trustedSigners.add(hexKey(from));
    }
    return g.open(bytes, (s) => this.trustedSigners.has(hexKey(s)));
  }

  async balance(signer: Signer): Promise<bigint> {
    const r = await this.getter(signer, { tag: 'balance', value: signer.publicKey });
    if (r.tag !== 'balance') throw new ValidateerError('BAD_REPLY', `unexpected getter reply ${r.tag}`);
    return r.value;
  }

  async nonce(signer: Signer): Promise<number> {
    const r = await this.getter(signer, { tag: 'nonce', value: signer.publicKey });
    if (r.tag !== 'nonce') throw new ValidateerError('BAD_REPLY', `unexpected getter reply ${r.tag}`);
    return r.value;
  }

  async memos(signer: Signer, offset = 0, limit = 20): Promise<{ total: number; items: Memo[] }> {
    const r = await this.getter(signer, { tag: 'memos', value: { account: signer.publicKey, offset, limit } });
    if (r.tag !== 'memos') throw new ValidateerError('BAD_REPLY', `unexpected getter reply ${r.tag}`);
    return r.value;
  }

  /** Sends a transfer and resolves once it is in a block (or rejects with the enclave's reason). */
  async transfer(
    signer: Signer,
    to: Uint8Array,
    amount: bigint,
    opts: { memo?: string; nonce?: number; onUpdate?: (u: CallUpdate) => void; timeoutMs?: number } = {},
  ): Promise<{ hash: string; blockHash: string; blockNumber: number }> {
    const key = await this.shieldingKey();
    const nonce = opts.nonce ?? (await this.nonce(signer));
    const { request } = buildTransfer(signer, { to, amount, memo: opts.memo, nonce }, key, key.shard);
    return this.submitAndWatch(request, opts);
  }

  /** Burns `amount` on the sidechain; resolves once the burn is in a block (the payout follows on the parentchain). */
  async unshield(
    signer: Signer,
    beneficiary: Uint8Array,
    amount: bigint,
    opts: { nonce?: number; timeoutMs?: number } = {},
  ): Promise<{ hash: string; blockHash: string; blockNumber: number }> {
    const key = await this.shieldingKey();
    const nonce = opts.nonce ?? (await this.nonce(signer));
    const { request } = buildUnshield(signer, { beneficiary, amount, nonce }, key, key.shard);
    return this.submitAndWatch(request, opts);
  }

  /** The shard's vault from the client's own registry lookup: the endpoint's `shard_getInfo` could name any account. */
  async vault(): Promise<Uint8Array> {
    if (!this.trust.vault)
      throw new ValidateerError(
        'UNTRUSTED_ENCLAVE',
        'the vault is known only through a registry lookup on the parentchain',
      );
    const vault = await this.trust.vault((await this.shieldingKey()).shard);
    if (!vault) throw new ValidateerError('NO_VAULT', 'the shard has no vault yet (its first validateer creates it)');
    return vault;
  }

  shardInfo(): Promise<ShardInfo> {
    return this.rpc.request<ShardInfo>('shard_getInfo', []);
  }

  finalizedHead(): Promise<string> {
    return this.rpc.request<string>('chain_getFinalizedHead', []);
  }

  /** The sidechain block that included a call, or null. */
  callBlock(hash: string): Promise<number | null> {
    return this.rpc.request<number | null>('author_callBlock', [hash.startsWith('0x') ? hash : '0x' + hash]);
  }

  async submitAndWatch(
    request: Uint8Array,
    opts: { onUpdate?: (u: CallUpdate) => void; timeoutMs?: number } = {},
  ): Promise<{ hash: string; blockHash: string; blockNumber: number }> {
    let settle!: (u: CallUpdate) => void;
    const final = new Promise<CallUpdate>((resolve) => (settle = resolve));
    let hash: string;
    try {
      hash = await this.rpc.subscribe('author_submitAndWatchCall', [toHex(request)], (u) => {
        const update = u as CallUpdate;
        opts.onUpdate?.(update);
        if (update.status === 'inBlock' || update.status === 'invalid') settle(update);
      });
    } catch (err) {
      // Refused at submission: same error shape as a rejection at block time (code = reason).
      const data = err instanceof RpcClientError ? (err.data as { code?: string } | undefined) : undefined;
      if (data?.code)
        throw new ValidateerError(errorCode(data.code, 'BAD_REPLY'), err instanceof Error ? err.message : String(err));
      throw err;
    }
    const timeoutMs = opts.timeoutMs ?? 60_000;
    let timer: NodeJS.Timeout | undefined;
    const u = await Promise.race([
      final,
      this.rpc.closed.then((e) => {
        throw new ValidateerError('CONNECTION_CLOSED', `call ${hash} status unknown: ${e.message}`);
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new ValidateerError('TIMEOUT', `call ${hash} not in a block after ${timeoutMs} ms`)),
          timeoutMs,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    if (u.status === 'invalid')
      throw new ValidateerError(errorCode(u.code, 'BAD_REPLY'), `call rejected: ${u.message}`);
    if (u.status !== 'inBlock') throw new ValidateerError('BAD_REPLY', 'unexpected call update');
    return { hash, blockHash: u.blockHash, blockNumber: u.blockNumber };
  }

  head(): Promise<HeaderJson> {
    return this.rpc.request<HeaderJson>('chain_getHeader', []);
  }

  close(): Promise<void> {
    return this.rpc.close();
  }
}
