// The duties of a member: the calls it should have sent given the registry (registration, the vault,
// its reserve, vault proxies, payouts), each under a key its exactly-once tracking follows. Split from
// view.ts, which filters what is in flight and names the nonce each is signed at.
import { encodeMessage } from '../../protocol/parentchain-messages.ts';
import { hexKey, same } from '../../protocol/bytes.ts';
import type { Withdrawal } from '../state/state.ts';
import {
  addProxyCall,
  batchAllCall,
  createPureCall,
  proxyCall,
  remarkCall,
  removeProxyCall,
  transferKeepAliveCall,
  type CallIndices,
} from './calls.ts';
import { registrationUserData, type Registry } from './registry.ts';

/** The longest mortality a duty is signed with (view.ts admitPayload): a payout signed by a payer dies by then. */
export const MAX_DUTY_PERIOD = 256;
/**
 * Verified blocks remembered by hash (view.ts). A birth block not among them is assumed within this many blocks of
 * the verified head (so is the signing guard's bound on a duty's death).
 */
export const RECENT_KEPT = 512;

export interface DutySource {
  registry: Registry;
  callIndices: CallIndices;
  signingKey: Uint8Array;
  existentialDeposit: bigint;
  proxyDepositFactor: bigint;
  /** The light client head. */
  number: number;
  dutyDone(key: string): boolean;
}

export interface DutyInput {
  quote: (userData: Uint8Array) => Uint8Array;
  shard: Uint8Array;
  peerId: string;
  p2pAddresses: string[];
  encryptionKey: Uint8Array;
  unpaid: Withdrawal[];
}

/**
 * What this enclave should send now. Registration while it is not a member; the first member
 * creates the vault, funds its keep-alive reserve, makes every member a proxy of the vault, and
 * pays out withdrawals.
 */
export function dutyCalls(
  s: DutySource,
  input: DutyInput,
  offer: (key: string, callData: Uint8Array, description: string) => void,
): void {
  const r = s.registry;
  const number = s.number;
  if (!r.isActive(s.signingKey, number)) {
    const quote = input.quote(registrationUserData(input.shard, input.peerId, input.p2pAddresses, input.encryptionKey));
    const message = encodeMessage({
      tag: 'register',
      value: {
        shard: input.shard,
        quote,
        signingKey: s.signingKey,
        p2pAddresses: input.p2pAddresses,
        peerId: input.peerId,
        encryptionKey: input.encryptionKey,
      },
    });
    offer('register', remarkCall(s.callIndices, message), 'register this enclave');
    return;
  }
  const first = r.activeAt(number)[0];
  if (!first || !same(first.signingKey, s.signingKey)) return;
  const ix = s.callIndices;
  const vault = r.data.vault;
  if (!vault) {
    offer(
      'vault',
      batchAllCall(ix, [
        createPureCall(ix),
        remarkCall(ix, encodeMessage({ tag: 'vault', value: { shard: input.shard } })),
      ]),
      'create the shard vault',
    );
    return;
  }
  if (r.data.reserveFunded === undefined) {
    const remark = remarkCall(ix, encodeMessage({ tag: 'reserve', value: { shard: input.shard } }));
    offer(
      'reserve',
      batchAllCall(ix, [transferKeepAliveCall(ix, vault.account, s.existentialDeposit), remark]),
      'fund the vault keep-alive reserve',
    );
  }
  // Every member's enclave account becomes a proxy of the vault, so any of them can pay out later.
  // pallet_proxy reserves the proxy's deposit from the vault, which holds only the keep-alive reserve
  // and shielded funds: this enclave's account pays the deposit into the vault in the same batch.
  for (const m of r.activeAt(number)) {
    const key = `proxy:${hexKey(m.signingKey)}`;
    if (s.dutyDone(key)) continue;
    const remark = remarkCall(
      ix,
      encodeMessage({ tag: 'proxy', value: { shard: input.shard, delegate: m.signingKey } }),
    );
    const add = proxyCall(ix, vault.account, batchAllCall(ix, [addProxyCall(ix, m.signingKey), remark]));
    const callData =
      s.proxyDepositFactor > 0n
        ? batchAllCall(ix, [transferKeepAliveCall(ix, vault.account, s.proxyDepositFactor), add])
        : add;
    offer(key, callData, `add validateer ${hexKey(m.signingKey).slice(0, 8)}… as a vault proxy`);
  }
  // A member that left no longer controls the vault. Only a proxy can act for the vault, and this
  // member (never removed itself) stays one, so the vault always keeps a controller. The removal
  // frees the departed one's deposit in the vault: it goes back to this enclave's account, so the
  // vault still holds exactly the reserve and the shielded funds.
  if (r.isVaultProxy(s.signingKey)) {
    for (const p of r.data.vaultProxies) {
      const key = `unproxy:${hexKey(p)}`;
      if (r.isActive(p, number) || s.dutyDone(key)) continue;
      const remark = remarkCall(ix, encodeMessage({ tag: 'unproxy', value: { shard: input.shard, delegate: p } }));
      // Exactly what the batch that added it paid into the vault (the registry accepts no other refund).
      const refund = transferKeepAliveCall(ix, s.signingKey, r.proxyDeposit(p));
      offer(
        key,
        proxyCall(ix, vault.account, batchAllCall(ix, [removeProxyCall(ix, p), refund, remark])),
        `remove departed validateer ${hexKey(p).slice(0, 8)}… as a vault proxy`,
      );
    }
  }
  // After a handover at H, the previous payer may have signed payouts (births up to H - 1, or unknown births assumed
  // within RECENT_KEPT of its head) that land until H + RECENT_KEPT + MAX_DUTY_PERIOD: only then is a withdrawal
  // still unpaid really unpaid. One landing earlier is a payout of the registry (signed by a vault proxy). This
  // rests on the old payer's light client having followed the real chain (no finality proofs yet, light-client.ts).
  const handover = r.payerHandoverAt(number);
  if (handover !== undefined && number < handover + MAX_DUTY_PERIOD + RECENT_KEPT) return;
  // And while a departed member is still a vault proxy: a signature of it that outlives the wait (its host lagged its
  // light client) then fails on the chain instead of paying a second time.
  if (r.data.vaultProxies.some((p) => !r.isActive(p, number))) return;
  for (const w of input.unpaid) {
    const key = `payout:${w.id}`;
    if (s.dutyDone(key)) continue;
    const remark = remarkCall(ix, encodeMessage({ tag: 'payout', value: { shard: input.shard, withdrawal: w.id } }));
    offer(
      key,
      proxyCall(ix, vault.account, batchAllCall(ix, [transferKeepAliveCall(ix, w.beneficiary, w.amount), remark])),
      `pay withdrawal ${w.id}`,
    );
  }
  return;
}
