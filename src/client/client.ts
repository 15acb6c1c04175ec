// The client library: shielded calls and signed getters against a validateer's JSON-RPC endpoint.
import { RpcClientError, connectRpc, type RpcClient } from './rpc.ts';
import { buildGetter, buildTransfer, buildUnshield, type ShieldingKey, type Signer } from './calls.ts';
import { type GetterReply, type Memo, type TrustedGetter } from '../protocol/wire.ts';
import { ValidateerError, errorCode } from '../protocol/errors.ts';
import { fromHex, toHex } from '../protocol/bytes.ts';

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
  private key: (ShieldingKey & { shard: Uint8Array }) | undefined;

  private constructor(rpc: RpcClient) {
    this.rpc = rpc;
  }

  static async connect(url = DEFAULT_RPC): Promise<ValidateerClient> {
    return new ValidateerClient(await connectRpc(url));
  }

  async shieldingKey(): Promise<ShieldingKey & { shard: Uint8Array }> {
    if (!this.key) {
      const k = await this.rpc.request<{ shard: string; keyId: number; publicKey: string }>('author_getShieldingKey');
      this.key = { shard: fromHex(k.shard), keyId: k.keyId, publicKey: fromHex(k.publicKey) };
    }
    return this.key;
  }

  async getter(signer: Signer, getter: TrustedGetter): Promise<GetterReply> {
    const key = await this.shieldingKey();
    const g = buildGetter(signer, getter, key, key.shard);
    const reply = await this.rpc.request<string>('state_executeGetter', [toHex(g.request)]);
    return g.open(fromHex(reply));
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
