// The state transition function: balances with nonces, transfers with memos, unshielding, and the
// parentchain effects (shield credits, payouts seen). Pure over an Overlay; a failing call changes
// nothing (checks come before writes). Rejection messages name no state (balances, nonces, amounts):
// they reach the host and any RPC client; the submitter reads its own account with a signed getter.
import type { TrustedCall } from '../../protocol/wire.ts';
import { MAX_MEMO_BYTES } from '../../protocol/wire.ts';
import { RejectCode } from '../../protocol/errors.ts';
import type { Account, Overlay } from './state.ts';
import { same } from '../../protocol/bytes.ts';

export type StfResult = { ok: true } | { ok: false; code: RejectCode; message: string };

/** What the STF knows of the parentchain: unshielding needs a vault. */
export interface StfContext {
  vault: boolean;
}
export const NO_PARENTCHAIN: StfContext = { vault: false };

/** Checks that do not depend on execution order (run at submission and again at execution). */
export function precheck(call: TrustedCall, sender: Account, ctx: StfContext = NO_PARENTCHAIN): StfResult {
  const c = call.value;
  if (
    call.tag === 'transfer' &&
    call.value.memo !== undefined &&
    Buffer.byteLength(call.value.memo, 'utf8') > MAX_MEMO_BYTES
  ) {
    return { ok: false, code: RejectCode.MEMO_TOO_LONG, message: `memo is longer than ${MAX_MEMO_BYTES} bytes` };
  }
  // A transfer of nothing would create accounts and store a memo for free (precheck runs at admission and execution).
  if (call.tag === 'transfer' && c.amount === 0n)
    return { ok: false, code: RejectCode.ZERO_AMOUNT, message: 'transfer amount must be positive' };
  if (call.tag === 'unshield') {
    if (!ctx.vault)
      return { ok: false, code: RejectCode.NO_VAULT, message: 'the shard has no vault on the parentchain (yet)' };
    if (c.amount === 0n)
      return { ok: false, code: RejectCode.AMOUNT_TOO_SMALL, message: 'unshield amount must be positive' };
  }
  if (c.amount > sender.balance) {
    return {
      ok: false,
      code: RejectCode.INSUFFICIENT_BALANCE,
      message: 'the amount exceeds the balance',
    };
  }
  return { ok: true };
}

export function execute(
  overlay: Overlay,
  call: TrustedCall,
  nonce: number,
  blockNumber: bigint,
  ctx: StfContext = NO_PARENTCHAIN,
): StfResult {
  const { from, amount } = call.value;
  const sender = overlay.account(from);
  if (nonce !== sender.nonce) {
    return {
      ok: false,
      code: RejectCode.STALE_NONCE,
      message: 'the nonce is not the account nonce',
    };
  }
  const pre = precheck(call, sender, ctx);
  if (!pre.ok) return pre;
  if (call.tag === 'unshield') {
    const shard = overlay.shard();
    // Only funds that came in through the vault can go out through it.
    if (amount > shard.shieldedSupply) {
      return {
        ok: false,
        code: RejectCode.EXCEEDS_SHIELDED_SUPPLY,
        message: 'the amount exceeds the funds shielded in the vault',
      };
    }
    overlay.setAccount(from, { ...sender, balance: sender.balance - amount, nonce: sender.nonce + 1 });
    overlay.setWithdrawal({ id: shard.nextWithdrawal, from, beneficiary: call.value.beneficiary, amount, paid: false });
    overlay.setShard({ shieldedSupply: shard.shieldedSupply - amount, nextWithdrawal: shard.nextWithdrawal + 1n });
    return { ok: true };
  }
  const { to, memo } = call.value;
  overlay.setAccount(from, { ...sender, balance: sender.balance - amount, nonce: sender.nonce + 1 });
  // Read the recipient after the sender's write so a self-transfer sees its own update.
  const recipient = overlay.account(to);
  const memoCount = memo === undefined ? recipient.memoCount : recipient.memoCount + 1;
  overlay.setAccount(to, { ...recipient, balance: recipient.balance + amount, memoCount });
  if (memo !== undefined) overlay.addMemo(to, recipient.memoCount, { from, amount, text: memo, block: blockNumber });
  return { ok: true };
}

/** Funds moved into the vault on the parentchain: credit the recipient. */
export function creditShield(overlay: Overlay, recipient: Uint8Array, amount: bigint): void {
  const a = overlay.account(recipient);
  overlay.setAccount(recipient, { ...a, balance: a.balance + amount });
  const shard = overlay.shard();
  overlay.setShard({ ...shard, shieldedSupply: shard.shieldedSupply + amount });
}

/** A payout seen on the parentchain: the withdrawal it names is settled, if it matches. */
export function settlePayout(overlay: Overlay, id: bigint, beneficiary: Uint8Array, amount: bigint): StfResult {
  const w = overlay.withdrawal(id);
  if (!w || w.paid)
    return { ok: false, code: RejectCode.UNKNOWN_WITHDRAWAL, message: `withdrawal ${id} is not pending` };
  if (w.amount !== amount || !same(w.beneficiary, beneficiary)) {
    return { ok: false, code: RejectCode.UNKNOWN_WITHDRAWAL, message: `payout for withdrawal ${id} does not match it` };
  }
  overlay.setWithdrawal({ ...w, paid: true });
  return { ok: true };
}

/**
 * The vault could not pay (e.g. a new beneficiary below the parentchain's existential deposit): the
 * burn is undone so no funds are lost; the withdrawal is settled and never paid.
 */
export function refundWithdrawal(overlay: Overlay, id: bigint): StfResult {
  const w = overlay.withdrawal(id);
  if (!w || w.paid)
    return { ok: false, code: RejectCode.UNKNOWN_WITHDRAWAL, message: `withdrawal ${id} is not pending` };
  const a = overlay.account(w.from);
  overlay.setAccount(w.from, { ...a, balance: a.balance + w.amount });
  const shard = overlay.shard();
  overlay.setShard({ ...shard, shieldedSupply: shard.shieldedSupply + w.amount });
  overlay.setWithdrawal({ ...w, paid: true });
  return { ok: true };
}
