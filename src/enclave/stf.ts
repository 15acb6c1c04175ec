// The state transition function: balances with nonces, transfers with memos. Pure over an Overlay;
// a failing call changes nothing (checks come before writes).
import type { TrustedCall } from '../codec/wire.ts';
import { MAX_MEMO_BYTES } from '../codec/wire.ts';
import { RejectCode } from './errors.ts';
import type { Account, Overlay } from './state.ts';

export type StfResult = { ok: true } | { ok: false; code: RejectCode; message: string };

/** Checks that do not depend on execution order (run at submission and again at execution). */
export function precheck(call: TrustedCall, sender: Account): StfResult {
  const c = call.value;
  if (c.memo !== undefined && Buffer.byteLength(c.memo, 'utf8') > MAX_MEMO_BYTES) {
    return { ok: false, code: RejectCode.MEMO_TOO_LONG, message: `memo is longer than ${MAX_MEMO_BYTES} bytes` };
  }
  if (c.amount > sender.balance) {
    return { ok: false, code: RejectCode.INSUFFICIENT_BALANCE, message: `insufficient balance: ${sender.balance} < ${c.amount}` };
  }
  return { ok: true };
}

export function execute(overlay: Overlay, call: TrustedCall, nonce: number, blockNumber: bigint): StfResult {
  const { from, to, amount, memo } = call.value;
  const sender = overlay.account(from);
  if (nonce !== sender.nonce) {
    return { ok: false, code: RejectCode.STALE_NONCE, message: `nonce ${nonce} is not the account nonce ${sender.nonce}` };
  }
  const pre = precheck(call, sender);
  if (!pre.ok) return pre;
  overlay.setAccount(from, { ...sender, balance: sender.balance - amount, nonce: sender.nonce + 1 });
  // Read the recipient after the sender's write so a self-transfer sees its own update.
  const recipient = overlay.account(to);
  const memoCount = memo === undefined ? recipient.memoCount : recipient.memoCount + 1;
  overlay.setAccount(to, { ...recipient, balance: recipient.balance + amount, memoCount });
  if (memo !== undefined) overlay.addMemo(to, recipient.memoCount, { from, amount, text: memo, block: blockNumber });
  return { ok: true };
}
