// The shard's view of the parentchain, derived deterministically from verified finalized blocks:
// the registered validateer set (in registration order), the vault, the last anchor, and the effects
// that sidechain blocks must execute (shields, indirect invocations, payouts). Every enclave that
// reads the same blocks derives the same registry.
import { HpkeSuite } from '../../crypto/hpke.ts';
import { HPKE_INFO_SHIELD } from '../../protocol/wire.ts';
import { isOurRemark, tryDecodeMessage, type ParentchainMessage } from '../../protocol/parentchain-messages.ts';
import { verifySimulatedQuote } from '../keys/attestation.ts';
import { pureProxyAccount } from './calls.ts';
import type { Call } from './extrinsic.ts';
import { same, toHex } from '../../protocol/bytes.ts';
import { isActiveAt } from '../../protocol/membership.ts';
import { quorumFault, type VotePayload } from '../../protocol/finality.ts';

import {
  EFFECT,
  Effect,
  Member,
  RegistryData,
  registrationUserData,
  type DecodedExtrinsic,
  type Observation,
  type RegistryContext,
} from './registry-data.ts';

export { HPKE_INFO_SHIELD };
const shieldSuite = new HpkeSuite(HPKE_INFO_SHIELD);
// Its data types are registry-data.ts's; importers name them from here, beside the Registry that applies them.
export { EFFECT, Effect, Member, RegistryData, registrationUserData } from './registry-data.ts';
export type { DecodedExtrinsic, ExtrinsicOutcome, Observation, RegistryContext } from './registry-data.ts';

const empty = new Uint8Array(0);
const ZERO = new Uint8Array(32);

/** The vote payload an anchor's votes sign: its own fields. */
export function anchorPayload(a: Extract<ParentchainMessage, { tag: 'anchor' }>['value']): VotePayload {
  const { shard, sidechainNumber, sidechainHash, previousAnchor, parentchainProcessed, authoritySetAt } = a;
  return { shard, number: sidechainNumber, hash: sidechainHash, previousAnchor, parentchainProcessed, authoritySetAt };
}

export class Registry {
  data: RegistryData;
  /**
   * Parentchain block processed by the last anchored (so final) sidechain block seen since start: its effects are
   * executed for good.
   */
  anchoredProcessed: number | undefined;
  private readonly ctx: RegistryContext;

  constructor(ctx: RegistryContext, data?: RegistryData) {
    this.ctx = ctx;
    this.data = data ?? {
      members: [],
      vault: undefined,
      vaultProxies: [],
      reserveFunded: undefined,
      lastAnchor: undefined,
      proxyDeposits: [],
    };
  }

  /** Members active as of parentchain block `number`, in registration order. */
  activeAt(number: number): Member[] {
    return this.data.members.filter((m) => isActiveAt(m, number));
  }

  /** Signing keys of the members active at `number`, in registration order. */
  keysAt(number: number): Uint8Array[] {
    return this.activeAt(number).map((m) => m.signingKey);
  }

  isActive(key: Uint8Array, number: number): boolean {
    return this.activeAt(number).some((m) => same(m.signingKey, key));
  }

  /**
   * The block at which the first active member at `number` (the payer) became first, if another member was the
   * first before it (a handover: payouts that one signed may still land), else undefined (a new shard, or the same
   * enclave again). Membership changes only at registration and unregistration blocks, so it is found among them.
   */
  payerHandoverAt(number: number): number | undefined {
    const payer = this.activeAt(number)[0];
    if (!payer) return undefined;
    const firstAt = (n: number) => this.activeAt(n)[0];
    const changes = [...new Set(this.data.members.flatMap((m) => [m.registeredAt, m.unregisteredAt ?? number + 1]))]
      .filter((c) => c <= number)
      .sort((a, b) => b - a);
    // The latest change before which the payer was not first (there is one: the payer's own registration).
    const since = changes.find((c) => !same(firstAt(c - 1)?.signingKey ?? empty, payer.signingKey));
    if (since === undefined) return undefined;
    const other = (n: number) => {
      const f = firstAt(n);
      return f !== undefined && !same(f.signingKey, payer.signingKey);
    };
    return changes.some((c) => c < since && other(c)) ? since : undefined;
  }

  isVaultProxy(key: Uint8Array): boolean {
    return this.data.vaultProxies.some((p) => same(p, key));
  }

  /** Everyone who was ever a member (replay accepts their blocks). */
  everMember(key: Uint8Array): boolean {
    return this.data.members.some((m) => same(m.signingKey, key));
  }

  /** What the batch that added `delegate` as a vault proxy paid into the vault (0 when nothing, or not recorded). */
  proxyDeposit(delegate: Uint8Array): bigint {
    return this.data.proxyDeposits.find((d) => same(d.delegate, delegate))?.amount ?? 0n;
  }

  /**
   * Interprets one verified extrinsic of block `number`, as the enclave decoded it from its bytes (extrinsic.ts).
   * Returns effects for the sidechain.
   */
  apply(number: number, x: DecodedExtrinsic, out: Observation[]): Effect[] {
    const top = x.call;
    const messages = collectMessages(top, this.ctx.shard);
    if (messages.length === 0) return []; // e.g. another shard's message naming ours: not ours
    const effects: Effect[] = [];
    if (!x.success) {
      // A payout the vault could not make (e.g. below the existential deposit for a new account):
      // the withdrawal is refunded on the sidechain rather than retried forever.
      for (const { message, parent } of messages) {
        if (message.tag !== 'payout') continue;
        const p = this.payoutTransfer(number, x, parent, top);
        if (p) {
          out.push({ kind: 'payout', detail: `withdrawal ${message.value.withdrawal} failed: refunded` });
          effects.push({
            parentchainNumber: number,
            kind: EFFECT.payoutFailed,
            account: p.dest,
            amount: p.amount,
            withdrawal: message.value.withdrawal,
            request: empty,
          });
        }
      }
      if (effects.length === 0) ignore(out, `extrinsic ${number}-${x.index}: failed on the parentchain`);
      return effects;
    }
    for (const { message, parent } of messages) {
      const e = this.applyMessage(number, x, message, parent, top, out);
      if (e) effects.push(e);
    }
    return effects;
  }

  private applyMessage(
    number: number,
    x: DecodedExtrinsic,
    m: ParentchainMessage,
    parent: Call | undefined,
    top: Call,
    out: Observation[],
  ): Effect | undefined {
    const where = `extrinsic ${number}-${x.index}`;
    const signer = x.signer;
    const effect = (kind: number, fields: Partial<Effect>): Effect => ({
      parentchainNumber: number,
      kind,
      account: empty,
      amount: 0n,
      withdrawal: 0n,
      request: empty,
      ...fields,
    });
    switch (m.tag) {
      case 'register': {
        const v = m.value;
        if (!signer || !same(signer, v.signingKey))
          return void ignore(out, `${where}: registration not signed by its signing key`);
        let measurement: Uint8Array;
        try {
          const q = verifySimulatedQuote(v.quote, {
            trustedAuthorities: this.ctx.trustedAuthorities,
            allowedMeasurements: this.ctx.allowedMeasurements,
          });
          if (!same(q.reportData.subarray(0, 32), v.signingKey)) throw new Error('quote does not bind the signing key');
          if (
            !same(
              q.reportData.subarray(32),
              registrationUserData(this.ctx.shard, v.peerId, v.p2pAddresses, v.encryptionKey),
            )
          )
            throw new Error('quote does not bind the peer id, addresses and encryption key');
          measurement = q.measurement;
        } catch (err) {
          return void ignore(
            out,
            `${where}: registration of ${toHex(v.signingKey)} ignored: ${(err as Error).message}`,
          );
        }
        const existing = this.data.members.find(
          (mm) => same(mm.signingKey, v.signingKey) && mm.unregisteredAt === undefined,
        );
        if (existing) {
          existing.peerId = v.peerId;
          existing.p2pAddresses = v.p2pAddresses;
          existing.encryptionKey = v.encryptionKey;
          out.push({ kind: 'registered', detail: `${toHex(v.signingKey)} updated its addresses` });
          return;
        }
        this.data.members.push({
          signingKey: v.signingKey,
          measurement,
          peerId: v.peerId,
          p2pAddresses: v.p2pAddresses,
          encryptionKey: v.encryptionKey,
          registeredAt: number,
          registeredIndex: x.index,
          unregisteredAt: undefined,
        });
        out.push({ kind: 'registered', detail: toHex(v.signingKey) });
        return;
      }
      case 'unregister': {
        const member = this.data.members.find(
          (mm) => same(mm.signingKey, m.value.signingKey) && mm.unregisteredAt === undefined,
        );
        if (!member || !signer || !same(signer, m.value.signingKey))
          return void ignore(out, `${where}: unregister of a non-member or by another account`);
        member.unregisteredAt = number;
        out.push({ kind: 'unregistered', detail: toHex(m.value.signingKey) });
        return;
      }
      case 'vault': {
        if (this.data.vault) return void ignore(out, `${where}: the shard already has a vault`);
        if (!signer || !this.isActive(signer, number))
          return void ignore(out, `${where}: vault created by a non-member`);
        const creates =
          parent?.kind === 'batchAll' && parent === top && parent.calls.some((c) => c.kind === 'createPure' && c.plain);
        if (!creates) return void ignore(out, `${where}: vault remark without proxy.createPure(Any, 0, 0)`);
        const account = pureProxyAccount(signer, number, x.index);
        this.data.vault = { account, createdAt: number };
        this.data.vaultProxies = [signer];
        out.push({ kind: 'vault', detail: toHex(account) });
        return;
      }
      case 'reserve':
      case 'shield': {
        const vault = this.data.vault;
        // Exactly [transfer, remark]: with more calls one transfer could be claimed by several remarks.
        const transfer =
          parent === top && parent?.kind === 'batchAll' && parent.calls.length === 2
            ? parent.calls.find((c) => c.kind === 'transferKeepAlive')
            : undefined;
        if (!vault || !transfer || !same(transfer.dest, vault.account))
          return void ignore(out, `${where}: ${m.tag} without a transfer to the vault in the same batch`);
        if (m.tag === 'reserve') {
          this.data.reserveFunded ??= number;
          out.push({ kind: 'reserve', detail: String(transfer.amount) });
          return;
        }
        const r = m.value.recipient;
        const recipient =
          r.length > 32
            ? shieldSuite.open(this.ctx.shielding, r.subarray(0, 32), r.subarray(32), this.ctx.shard)
            : null;
        if (!recipient || recipient.length !== 32) {
          // The funds are in the vault but nobody can be credited: reported, never guessed.
          return void ignore(out, `${where}: shield of ${transfer.amount} to an undecryptable recipient`);
        }
        out.push({ kind: 'shield', detail: `${transfer.amount}` });
        return effect(EFFECT.shield, { account: recipient, amount: transfer.amount });
      }
      case 'invoke':
        out.push({ kind: 'invoke', detail: where });
        return effect(EFFECT.invoke, { request: m.value.request });
      case 'proxy': {
        // proxy(vault, batchAll[addProxy, remark]), alone or after a transfer that pays the proxy deposit into the
        // vault.
        const funding =
          top.kind === 'batchAll' && top.calls.length === 2 && top.calls[0].kind === 'transferKeepAlive'
            ? top.calls[0]
            : undefined;
        const batch = this.throughVault(funding && top.kind === 'batchAll' ? top.calls[1] : top);
        const adds =
          batch?.kind === 'batchAll' &&
          parent === batch &&
          batch.calls.length === 2 &&
          batch.calls.some((c) => c.kind === 'addProxy' && c.plain && same(c.delegate, m.value.delegate));
        if (!signer || !this.isActive(signer, number) || !adds)
          return void ignore(out, `${where}: vault proxy not added by a member through the vault`);
        if (!this.data.vaultProxies.some((p) => same(p, m.value.delegate))) {
          this.data.vaultProxies.push(m.value.delegate);
          // What may leave the vault when this proxy goes: only what this verified batch paid into it.
          const paid = funding && same(funding.dest, this.data.vault!.account) ? funding.amount : 0n;
          this.data.proxyDeposits = this.data.proxyDeposits.filter((d) => !same(d.delegate, m.value.delegate));
          if (paid > 0n) this.data.proxyDeposits.push({ delegate: m.value.delegate, amount: paid });
        }
        out.push({ kind: 'proxy', detail: toHex(m.value.delegate) });
        return;
      }
      case 'unproxy': {
        // proxy(vault, batchAll[removeProxy(delegate), transferKeepAlive(signer, deposit), remark]) by a member,
        // for a delegate that is no longer a member (a member's proxy is never removed: the vault keeps a controller).
        const batch = this.throughVault(top);
        const calls = batch?.kind === 'batchAll' && parent === batch && batch.calls.length === 3 ? batch.calls : [];
        const [remove, refund] = calls;
        const removes =
          remove?.kind === 'removeProxy' &&
          remove.plain &&
          same(remove.delegate, m.value.delegate) &&
          refund?.kind === 'transferKeepAlive' &&
          signer !== undefined &&
          same(refund.dest, signer);
        if (!signer || !this.isActive(signer, number) || !removes)
          return void ignore(out, `${where}: vault proxy not removed by a member through the vault`);
        if (this.isActive(m.value.delegate, number))
          return void ignore(out, `${where}: ${toHex(m.value.delegate)} is a member; its vault proxy stays`);
        // The refund leaves the vault: exactly what the batch that added this proxy paid in, whatever a host says.
        const deposit = this.proxyDeposit(m.value.delegate);
        if (refund.amount !== deposit)
          return void ignore(out, `${where}: refunds ${refund.amount}, not the recorded deposit ${deposit}`);
        this.data.vaultProxies = this.data.vaultProxies.filter((p) => !same(p, m.value.delegate));
        this.data.proxyDeposits = this.data.proxyDeposits.filter((d) => !same(d.delegate, m.value.delegate));
        out.push({ kind: 'unproxy', detail: toHex(m.value.delegate) });
        return;
      }
      case 'payout': {
        const transfer = this.payoutTransfer(number, x, parent, top);
        if (!transfer) return void ignore(out, `${where}: payout not made by a member through the vault`);
        out.push({ kind: 'payout', detail: `withdrawal ${m.value.withdrawal}` });
        return effect(EFFECT.payout, {
          account: transfer.dest,
          amount: transfer.amount,
          withdrawal: m.value.withdrawal,
        });
      }
      case 'anchor': {
        // Only a member's enclave account makes the registry verify votes: anyone else's remark costs no signature.
        if (!signer || !this.isActive(signer, number))
          return void ignoreAnchor(out, `${where}: anchor by a non-member`);
        const a = m.value;
        const last = this.data.lastAnchor;
        if (last && a.sidechainNumber <= last.number)
          return void ignoreAnchor(out, `${where}: anchor ${a.sidechainNumber} is not above ${last.number}`);
        // Anchors chain: one made without knowing the last anchor may be on another fork, and
        // finality must never jump between forks.
        if (last ? !same(a.previousAnchor, last.hash) : !same(a.previousAnchor, ZERO))
          return void ignoreAnchor(out, `${where}: anchor ${a.sidechainNumber} does not follow the last anchor`);
        // A strict majority of the set that authored the block and of the set now, so no single host finalizes a
        // branch of its own.
        const fault =
          a.authoritySetAt >= number
            ? `its authority set at #${a.authoritySetAt} is not before this block`
            : quorumFault(anchorPayload(a), this.keysAt(a.authoritySetAt), a.votes, this.keysAt(number));
        if (fault) return void ignoreAnchor(out, `${where}: anchor ${a.sidechainNumber} without a quorum: ${fault}`);
        this.data.lastAnchor = { number: a.sidechainNumber, hash: a.sidechainHash, parentchainNumber: number };
        this.anchoredProcessed = Math.max(this.anchoredProcessed ?? 0, a.parentchainProcessed.number);
        out.push({ kind: 'anchor', detail: String(a.sidechainNumber) });
        return;
      }
    }
  }

  /** The call that `call` makes as the vault: `inner` of proxy.proxy(vault, inner), else undefined. */
  private throughVault(call: Call): Call | undefined {
    const vault = this.data.vault;
    return call.kind === 'proxy' && vault && same(call.real, vault.account) ? call.call : undefined;
  }

  /**
   * The transfer of a payout: proxy(vault, batchAll[transferKeepAlive, remark]) signed by a member, or by a departed
   * one still a proxy of the vault (the payer before a handover: a payout it signed while first may land after it
   * left, and must be seen as paid, see duty-calls.ts).
   */
  private payoutTransfer(
    number: number,
    x: DecodedExtrinsic,
    parent: Call | undefined,
    top: Call,
  ): { dest: Uint8Array; amount: bigint } | undefined {
    if (!x.signer || !(this.isActive(x.signer, number) || this.isVaultProxy(x.signer))) return undefined;
    const batch = this.throughVault(top);
    if (batch?.kind !== 'batchAll' || parent !== batch) return undefined;
    return batch.calls.find((c) => c.kind === 'transferKeepAlive');
  }
}

/** Anchors ignored are told apart (a metric): a second submitter's copy, or one without a quorum. */
function ignoreAnchor(out: Observation[], detail: string): void {
  out.push({ kind: 'anchorIgnored', detail });
}

function ignore(out: Observation[], detail: string): [] {
  out.push({ kind: 'ignored', detail });
  return [];
}

/** Our messages for this shard anywhere in the decoded call (depth-bounded by the decoder), with their parent call. */
function collectMessages(root: Call, shard: Uint8Array): { message: ParentchainMessage; parent: Call | undefined }[] {
  const found: { message: ParentchainMessage; parent: Call | undefined }[] = [];
  const walk = (c: Call, parent: Call | undefined) => {
    if (c.kind === 'remark' && isOurRemark(c.remark)) {
      const { message } = tryDecodeMessage(c.remark);
      if (message && same(message.value.shard, shard)) found.push({ message, parent });
    }
    if (c.kind === 'batchAll') for (const child of c.calls) walk(child, c);
    if (c.kind === 'proxy') walk(c.call, c);
  };
  walk(root, undefined);
  return found;
}
