// Parentchain calls the enclave builds and signs itself. The enclave never signs a payload it did not
// compose: the untrusted host asks for a duty, gets call bytes back, and the signing request must
// start with exactly those bytes. Encodings follow the standard pallets' call layouts; the pallet and
// call indices come from the chain's metadata (given by the host once, sealed with the light client).
import { Bytes, Struct, compact, u8, u16, u32 } from 'scale-ts';
import { bytesView, concatBytes } from '../../protocol/bytes.ts';
import { PROXY_TYPE_ANY } from '../../protocol/pure-proxy.ts';

export { pureProxyAccount } from '../../protocol/pure-proxy.ts';

const index = Struct({ pallet: u8, call: u8 });
const v1Indices = {
  remarkWithEvent: index,
  transferKeepAlive: index,
  batchAll: index,
  proxy: index,
  createPure: index,
  addProxy: index,
};
/** The sealed indices before removeProxy (data directories of earlier builds; read once, then resealed). */
export const CallIndicesV1 = Struct(v1Indices);
export const CallIndices = Struct({ ...v1Indices, removeProxy: index });
/**
 * pallet_proxy's remove_proxy: call 2 of the pallet (third in declaration order, pinned by `#[pallet::call_index(2)]`
 * since).
 */
export const REMOVE_PROXY_CALL = 2;
/**
 * The indices (sealed), and how the runtime's pallet_proxy takes accounts: a MultiAddress
 * (AccountIdLookupOf, pallet_proxy since 2022; the default) or a bare AccountId32 (older runtimes,
 * such as the dev chain's Rococo Asset Hub genesis runtime). The formats come from the current
 * runtime's metadata at every start and are not sealed: a wrong one only makes calls that fail.
 */
export type CallIndices = ReturnType<typeof CallIndices.dec> & {
  proxyRealAccountId?: boolean;
  addProxyDelegateAccountId?: boolean;
};
export type CallName = keyof ReturnType<typeof CallIndices.dec>;

/** MultiAddress::Id */
const MULTI_ADDRESS_ID = 0;

const head = (ix: CallIndices, name: CallName) => Uint8Array.of(ix[name].pallet, ix[name].call);
const u128c = (v: bigint) => compact.enc(v);
const id = (account: Uint8Array) => concatBytes(Uint8Array.of(MULTI_ADDRESS_ID), account);

export function remarkCall(ix: CallIndices, remark: Uint8Array): Uint8Array {
  return concatBytes(head(ix, 'remarkWithEvent'), Bytes().enc(remark));
}

export function transferKeepAliveCall(ix: CallIndices, dest: Uint8Array, amount: bigint): Uint8Array {
  return concatBytes(head(ix, 'transferKeepAlive'), id(dest), u128c(amount));
}

export function batchAllCall(ix: CallIndices, calls: Uint8Array[]): Uint8Array {
  return concatBytes(head(ix, 'batchAll'), compact.enc(calls.length), ...calls);
}

/** proxy.proxy(real, force_proxy_type: None, call) */
export function proxyCall(ix: CallIndices, real: Uint8Array, call: Uint8Array): Uint8Array {
  return concatBytes(head(ix, 'proxy'), ix.proxyRealAccountId ? real : id(real), Uint8Array.of(0), call);
}

/** proxy.createPure(Any, delay 0, index 0) */
export function createPureCall(ix: CallIndices): Uint8Array {
  return concatBytes(head(ix, 'createPure'), Uint8Array.of(PROXY_TYPE_ANY), u32.enc(0), u16.enc(0));
}

/** proxy.addProxy(delegate, Any, delay 0) */
export function addProxyCall(ix: CallIndices, delegate: Uint8Array): Uint8Array {
  return concatBytes(
    head(ix, 'addProxy'),
    ix.addProxyDelegateAccountId ? delegate : id(delegate),
    Uint8Array.of(PROXY_TYPE_ANY),
    u32.enc(0),
  );
}

/**
 * proxy.removeProxy(delegate, Any, delay 0): the same arguments as addProxy, in the same account format (one pallet
 * version).
 */
export function removeProxyCall(ix: CallIndices, delegate: Uint8Array): Uint8Array {
  return concatBytes(
    head(ix, 'removeProxy'),
    ix.addProxyDelegateAccountId ? delegate : id(delegate),
    Uint8Array.of(PROXY_TYPE_ANY),
    u32.enc(0),
  );
}

/** Bytes of `needle` occur in `haystack` (a cheap filter: which extrinsics may carry a message of ours). */
export function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  return bytesView(haystack).indexOf(bytesView(needle)) >= 0;
}

/**
 * Reads the mortality of a signing payload: call bytes, then the era (0x00 = immortal, else two
 * bytes), then the other extensions, then the additional data that names the genesis hash followed
 * by the era's birth block hash. Returns null for immortal transactions (the enclave refuses those
 * for duties: it could never tell that one has expired).
 */
export function payloadMortality(
  payload: Uint8Array,
  callLength: number,
  genesisHash: Uint8Array,
): { period: number; birthHash: Uint8Array } | null {
  const first = payload[callLength];
  if (first === undefined || first === 0) return null;
  const encoded = first + (payload[callLength + 1] << 8);
  const period = 2 << (encoded % 16);
  // The birth block hash follows the genesis hash in the additional data (CheckGenesis then CheckMortality).
  // The last occurrence that leaves room for it: a birth hash that starts with the genesis hash's
  // last bytes (1 in 256 blocks for chopsticks' 0x4545…45) makes a later, overlapping match.
  const bytes = bytesView(payload);
  const genesis = bytesView(genesisHash);
  for (let at = bytes.lastIndexOf(genesis); at >= callLength + 2; at = bytes.lastIndexOf(genesis, at - 1)) {
    if (at + 64 <= payload.length) return { period, birthHash: payload.slice(at + 32, at + 64) };
  }
  return null;
}
