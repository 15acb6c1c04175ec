// Building the protocol's few calls (CallSpec) for the connected chain's runtime, the call indices
// the enclave encodes itself, and what a call takes from its signer beyond the fee.
import type { ApiPromise } from '@polkadot/api';
import type { SubmittableExtrinsic } from '@polkadot/api/types';
import { u8aToHex } from '@polkadot/util';
import { ValidateerError } from '../../protocol/errors.ts';
import type { CallSpec, Parentchain } from '../api.ts';

export function buildCall(api: ApiPromise, spec: CallSpec): SubmittableExtrinsic<'promise'> {
  const tx = api.tx;
  switch (spec.kind) {
    case 'remark': {
      // As hex: polkadot-js reads a Uint8Array for Bytes as already length-prefixed.
      const remark = u8aToHex(spec.remark);
      return spec.withEvent === false ? tx.system.remark(remark) : tx.system.remarkWithEvent(remark);
    }
    case 'transferKeepAlive':
      return tx.balances.transferKeepAlive(u8aToHex(spec.dest), spec.amount);
    case 'batchAll':
      return tx.utility.batchAll(spec.calls.map((c) => buildCall(api, c)));
    case 'proxy':
      return tx.proxy.proxy(u8aToHex(spec.real), null, buildCall(api, spec.call));
    case 'createPure': {
      // Renamed from proxy.anonymous (same arguments) in 2022; the Rococo Asset Hub genesis runtime has the old name.
      const create =
        tx.proxy.createPure ?? (tx.proxy as unknown as Record<string, typeof tx.proxy.createPure>).anonymous;
      if (!create) throw new ValidateerError('PARENTCHAIN_UNSUPPORTED', 'the runtime has no proxy.createPure');
      return create('Any', spec.delay ?? 0, spec.index ?? 0);
    }
    case 'addProxy':
      return tx.proxy.addProxy(u8aToHex(spec.delegate), 'Any', spec.delay ?? 0);
    case 'removeProxy':
      return tx.proxy.removeProxy(u8aToHex(spec.delegate), 'Any', spec.delay ?? 0);
    case 'raw':
      return tx(api.createType('Call', spec.callData));
  }
}

export function callIndices(api: ApiPromise): ReturnType<Parentchain['callIndices']> {
  const tx = api.tx;
  const proxy = tx.proxy as unknown as Record<string, { callIndex: Uint8Array } | undefined>;
  const pick = (fn: { callIndex: Uint8Array } | undefined, name: string) => {
    if (!fn) throw new ValidateerError('PARENTCHAIN_UNSUPPORTED', `the runtime has no ${name}`);
    return { pallet: fn.callIndex[0], call: fn.callIndex[1] };
  };
  return {
    remarkWithEvent: pick(tx.system.remarkWithEvent, 'system.remarkWithEvent'),
    transferKeepAlive: pick(tx.balances.transferKeepAlive, 'balances.transferKeepAlive'),
    batchAll: pick(tx.utility.batchAll, 'utility.batchAll'),
    proxy: pick(tx.proxy.proxy, 'proxy.proxy'),
    createPure: pick(proxy.createPure ?? proxy.anonymous, 'proxy.createPure'),
    addProxy: pick(tx.proxy.addProxy, 'proxy.addProxy'),
    removeProxy: pick(tx.proxy.removeProxy, 'proxy.removeProxy'),
    proxyRealAccountId: accountIdArg(tx.proxy.proxy),
    addProxyDelegateAccountId: accountIdArg(tx.proxy.addProxy),
  };
}

/** Whether a call's first argument is a bare AccountId32 (older pallet_proxy) rather than a MultiAddress. */
function accountIdArg(fn: { meta: { args: { type: { toString(): string } }[] } }): boolean {
  return /^AccountId(32)?$/.test(fn.meta.args[0]?.type.toString() ?? '');
}

/** A pallet_proxy deposit constant (0 when the runtime has no such pallet or constant). */
export function proxyConst(api: ApiPromise, name: 'proxyDepositBase' | 'proxyDepositFactor'): bigint {
  const consts = api.consts.proxy as unknown as Record<string, { toBigInt(): bigint } | undefined> | undefined;
  return consts?.[name]?.toBigInt() ?? 0n;
}

/** What the call itself takes from the signer's free balance (transfers, proxy deposits). */
export function spends(api: ApiPromise, spec: CallSpec): bigint {
  const proxyDeposit = proxyConst(api, 'proxyDepositBase') + proxyConst(api, 'proxyDepositFactor');
  switch (spec.kind) {
    case 'transferKeepAlive':
      return spec.amount;
    case 'batchAll':
      return spec.calls.reduce((sum, c) => sum + spends(api, c), 0n);
    case 'createPure':
    case 'addProxy':
      return proxyDeposit;
    default:
      return 0n;
  }
}
