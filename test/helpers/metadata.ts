// Runtime metadata for tests: the dev chain's real metadata (statemine 900, `state_getMetadata` of the
// chopsticks devnet, saved in test/fixtures), and variants of it a host could hand the enclave: another
// spec or transaction version, pallet_proxy taking MultiAddress arguments, remapped call indices.
import { readFileSync } from 'node:fs';
import { u32 } from 'scale-ts';
import { MetadataV14, METADATA_MAGIC } from '../../src/enclave/parentchain/metadata.ts';
import { concatBytes } from '../../src/protocol/bytes.ts';
import type { CallIndices } from '../../src/enclave/parentchain/calls.ts';

export const DEV_METADATA = new Uint8Array(
  readFileSync(new URL('../fixtures/statemine-900.metadata', import.meta.url)),
);

/** The dev runtime's call indices (Rococo Asset Hub genesis), as the enclave derives them from DEV_METADATA. */
export const DEV_CALL_INDICES: CallIndices = {
  remarkWithEvent: { pallet: 0, call: 8 },
  transferKeepAlive: { pallet: 10, call: 3 },
  batchAll: { pallet: 40, call: 2 },
  proxy: { pallet: 42, call: 0 },
  createPure: { pallet: 42, call: 4 },
  addProxy: { pallet: 42, call: 1 },
  removeProxy: { pallet: 42, call: 2 },
};

type Metadata = ReturnType<typeof MetadataV14.dec>;

export interface MetadataVariant {
  specVersion?: number;
  transactionVersion?: number;
  /** pallet_proxy's proxy/add_proxy/remove_proxy take a MultiAddress (newer runtimes) instead of an AccountId32. */
  multiAddressProxy?: boolean;
  /** Swaps the call indices of two calls of one pallet (a remap the host would like the enclave to sign with). */
  swap?: { pallet: string; calls: [string, string] };
  /** Swaps the names of two calls of one pallet (indices and arguments stay). */
  swapNames?: { pallet: string; calls: [string, string] };
  /** Puts these signed extensions' identifiers in place of the runtime's (same types). */
  renameExtension?: { from: string; to: string };
}

/** The dev chain's metadata, changed as asked (with no changes: the fixture's bytes exactly). */
export function devMetadata(v: MetadataVariant = {}): Uint8Array {
  const m = MetadataV14.dec(DEV_METADATA.slice(5));
  if (v.specVersion !== undefined || v.transactionVersion !== undefined) patchVersion(m, v);
  if (v.multiAddressProxy) multiAddressProxy(m);
  if (v.swap) swap(m, v.swap.pallet, v.swap.calls);
  if (v.swapNames) swapNames(m, v.swapNames.pallet, v.swapNames.calls);
  if (v.renameExtension) {
    const e = m.extrinsic.signedExtensions.find((x) => x.identifier === v.renameExtension!.from)!;
    e.identifier = v.renameExtension.to;
  }
  return concatBytes(METADATA_MAGIC, Uint8Array.of(14), MetadataV14.enc(m));
}

function variants(m: Metadata, pallet: string) {
  const p = m.pallets.find((x) => x.name === pallet)!;
  const def = m.types.find((t) => Number(t.id) === Number(p.calls))!.def;
  if (def.tag !== 'variant') throw new Error(`${pallet} calls are not an enum`);
  return def.value;
}

function patchVersion(m: Metadata, v: MetadataVariant): void {
  const c = m.pallets.find((p) => p.name === 'System')!.constants.find((x) => x.name === 'Version')!;
  const bytes = new Uint8Array(c.value);
  // spec name, impl name (compact-prefixed strings of < 64 bytes), authoring version, then spec version.
  let at = 0;
  for (let i = 0; i < 2; i++) at += 1 + (bytes[at] >> 2);
  if (v.specVersion !== undefined) bytes.set(u32.enc(v.specVersion), at + 4);
  // impl version, then the APIs (compact count of 12-byte entries), then the transaction version.
  at += 12;
  const apis = bytes[at] & 3 ? (bytes[at] | (bytes[at + 1] << 8)) >> 2 : bytes[at] >> 2;
  at += (bytes[at] & 3 ? 2 : 1) + apis * 12;
  if (v.transactionVersion !== undefined) bytes.set(u32.enc(v.transactionVersion), at);
  c.value = bytes;
}

function multiAddressProxy(m: Metadata): void {
  const dest = variants(m, 'Balances').find((x) => x.name === 'transfer_keep_alive')!.fields[0].type;
  for (const call of variants(m, 'Proxy')) {
    if (['proxy', 'add_proxy', 'remove_proxy'].includes(call.name)) call.fields[0].type = dest;
  }
}

function swap(m: Metadata, pallet: string, [a, b]: [string, string]): void {
  const vs = variants(m, pallet);
  const x = vs.find((v) => v.name === a)!;
  const y = vs.find((v) => v.name === b)!;
  [x.index, y.index] = [y.index, x.index];
}

function swapNames(m: Metadata, pallet: string, [a, b]: [string, string]): void {
  const vs = variants(m, pallet);
  const x = vs.find((v) => v.name === a)!;
  const y = vs.find((v) => v.name === b)!;
  [x.name, y.name] = [y.name, x.name];
}
