// Pure proxy helpers (the shard vault is a pure proxy account), over any Parentchain.
import { decodeAddress } from '@polkadot/util-crypto';
import { ValidateerError } from '../../protocol/errors.ts';
import type { ExtrinsicSigner, Parentchain, SubmitOptions, SubmitResult } from '../api.ts';

/** AccountId32 from an SS58 address or 0x hex. */
export function accountId(address: string): Uint8Array {
  return decodeAddress(address);
}

/** Creates a pure proxy account controlled by `signer` (proxy type Any); returns its AccountId32. */
export async function createPureProxy(
  chain: Parentchain,
  signer: ExtrinsicSigner,
  options: { index?: number } & SubmitOptions = {},
): Promise<{ pure: Uint8Array; result: SubmitResult }> {
  const result = await chain.submit(signer, { kind: 'createPure', index: options.index }, options);
  if (!result.success) throw new ValidateerError('PARENTCHAIN_DISPATCH_FAILED', `createPure failed: ${result.error}`);
  const created = result.events.find(
    (e) => e.pallet === 'proxy' && (e.name === 'PureCreated' || e.name === 'AnonymousCreated'),
  );
  const pure = created?.data.pure ?? created?.data.anonymous ?? created?.data['0'];
  if (typeof pure !== 'string')
    throw new ValidateerError('PARENTCHAIN_DISPATCH_FAILED', 'createPure emitted no PureCreated event');
  return { pure: decodeAddress(pure), result };
}

/** `signer` (a proxy of `pure`) sends balances.transferKeepAlive(dest, amount) as `pure`. */
export async function proxyTransfer(
  chain: Parentchain,
  signer: ExtrinsicSigner,
  pure: Uint8Array,
  dest: Uint8Array,
  amount: bigint,
  options: SubmitOptions = {},
): Promise<SubmitResult> {
  return chain.submit(
    signer,
    { kind: 'proxy', real: pure, call: { kind: 'transferKeepAlive', dest, amount } },
    options,
  );
}
