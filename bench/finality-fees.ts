// What the set's enclave accounts paid on the parentchain between two finalized parentchain blocks: their free
// balance at both blocks, and every extrinsic they signed in between (by message kind, with the fee its events
// show). The finality bench divides by the anchors among them; the extrinsics of other
// kinds say whether the balance drop is anchors only.
import '@polkadot/api-augment';
import { ApiPromise, WsProvider } from '@polkadot/api';
import { u8aToHex } from '@polkadot/util';
import { decodeAddress } from '@polkadot/util-crypto';
import { tryDecodeMessage } from '../src/protocol/parentchain-messages.ts';

export interface ParentchainWindow {
  fromBlock: number;
  toBlock: number;
  /** Sum of the accounts' free balances at `fromBlock` and at `toBlock`, base units. */
  balanceBefore: bigint;
  balanceAfter: bigint;
  /** Extrinsics signed by the accounts in (fromBlock, toBlock], by message kind ('other' when not one of ours). */
  extrinsics: Record<string, number>;
  /** Fees of those extrinsics (balances.Withdraw from the signer less its refund Deposit), by the same kinds. */
  fees: Record<string, bigint>;
}

export class ParentchainReader {
  private readonly api: ApiPromise;

  private constructor(api: ApiPromise) {
    this.api = api;
  }

  static async connect(endpoint: string): Promise<ParentchainReader> {
    const api = await ApiPromise.create({ provider: new WsProvider(endpoint), noInitWarn: true, throwOnConnect: true });
    return new ParentchainReader(api);
  }

  async finalizedNumber(): Promise<number> {
    const hash = await this.api.rpc.chain.getFinalizedHead();
    return (await this.api.rpc.chain.getHeader(hash)).number.toNumber();
  }

  async window(accounts: string[], fromBlock: number, toBlock: number): Promise<ParentchainWindow> {
    const ours = new Set(accounts.map((a) => a.toLowerCase()));
    const w: ParentchainWindow = {
      fromBlock,
      toBlock,
      balanceBefore: await this.balances(accounts, fromBlock),
      balanceAfter: await this.balances(accounts, toBlock),
      extrinsics: {},
      fees: {},
    };
    for (let n = fromBlock + 1; n <= toBlock; n++) {
      const hash = await this.api.rpc.chain.getBlockHash(n);
      const [block, events] = await Promise.all([
        this.api.rpc.chain.getBlock(hash),
        this.api.at(hash).then((at) => at.query.system.events()),
      ]);
      block.block.extrinsics.forEach((ext, index) => {
        if (!ext.isSigned) return;
        const signer = u8aToHex(decodeAddress(ext.signer.toString()));
        if (!ours.has(signer)) return;
        const kind = messageKind(ext.method.section, ext.method.method, ext.method.args[0]?.toU8a(true));
        w.extrinsics[kind] = (w.extrinsics[kind] ?? 0) + 1;
        // The fee: what Balances withdrew from the signer for it, less what it refunded (this runtime emits no
        // TransactionFeePaid). The call itself moves no funds of the signer for an anchor, a plain remark.
        for (const { phase, event } of events) {
          if (!phase.isApplyExtrinsic || phase.asApplyExtrinsic.toNumber() !== index) continue;
          if (event.section !== 'balances' || (event.method !== 'Withdraw' && event.method !== 'Deposit')) continue;
          const [who, amount] = event.data;
          if (u8aToHex(decodeAddress(who.toString())) !== signer) continue;
          const v = BigInt(amount.toString());
          w.fees[kind] = (w.fees[kind] ?? 0n) + (event.method === 'Withdraw' ? v : -v);
        }
      });
    }
    return w;
  }

  close(): Promise<void> {
    return this.api.disconnect();
  }

  private async balances(accounts: string[], block: number): Promise<bigint> {
    const at = await this.api.at(await this.api.rpc.chain.getBlockHash(block));
    let sum = 0n;
    for (const a of accounts) sum += (await at.query.system.account(a)).data.free.toBigInt();
    return sum;
  }
}

/** The message tag of a top-level remark of ours (an anchor is one), else 'other'. */
function messageKind(section: string, method: string, firstArg: Uint8Array | undefined): string {
  if (section !== 'system' || !method.startsWith('remark') || !firstArg) return 'other';
  return tryDecodeMessage(firstArg).message?.tag ?? 'other';
}
