// The sealed format of the parentchain view (the current layout and the ones before it), and the
// shapes the host hands in: imported blocks and the parameters a view starts from. Split from view.ts.
import { Bytes, Option, Struct, Vector, str, u32, u128 } from 'scale-ts';
import { decodeExact } from '../../protocol/wire.ts';
import type { Checkpoint } from './light-client.ts';
import { CallIndices, CallIndicesV1, REMOVE_PROXY_CALL } from './calls.ts';
import { Effect, RegistryData, RegistryDataV1, type ExtrinsicOutcome } from './registry-data.ts';
import { EMPTY_NONCES, NonceState, UNKNOWN_NONCE } from './nonces.ts';
import { SealedRuntime } from './runtime.ts';

/** A duty signed and maybe includable: until its death, or until the verified chain shows its nonce consumed. */
export const InFlight = Struct({ duty: str, birthHash: Bytes(32), period: u32, death: Option(u32), nonce: u32 });
export type InFlight = ReturnType<typeof InFlight.dec>;
/** In-flight records of layouts before nonces were bound (read with nonce UNKNOWN_NONCE). */
const InFlightV3 = Struct({ duty: str, birthHash: Bytes(32), period: u32, death: Option(u32) });
/** The sealed fields after the call indices. */
const viewTail = <R, F>(registry: R, inFlight: F) => ({
  existentialDeposit: u128,
  head: Struct({ number: u32, hash: Bytes(32) }),
  registry,
  pending: Vector(Effect),
  inFlight,
  /** Recent verified block hashes: a duty's birth block is looked up here to know when it dies. */
  recent: Vector(Struct({ number: u32, hash: Bytes(32) })),
});
/**
 * Effects of parentchain blocks up to `settled` were executed by an anchored sidechain block and dropped. Layouts
 * before it read as 0 (nothing known settled).
 */
const settled = { settled: u32 };
/** The runtime the indices belong to follows them (runtime.ts). */
export const SealedView = Struct({
  genesisHash: Bytes(32),
  callIndices: CallIndices,
  runtime: SealedRuntime,
  ...viewTail(RegistryData, Vector(InFlight)),
  ...settled,
  /** The account's nonces (nonces.ts). Layouts before it read with nothing bound and the nonce to be learnt. */
  nonces: NonceState,
});
/**
 * Earlier layouts: without the sealed runtime and nonces (V3: the runtime is then taken from the host's metadata once,
 * and sealed), also without the recorded proxy deposits (V2), and before that also without removeProxy (V1).
 */
export const SealedViewV3 = Struct({
  genesisHash: Bytes(32),
  callIndices: CallIndices,
  ...viewTail(RegistryData, Vector(InFlightV3)),
  ...settled,
});
export type SealedViewData = Omit<ReturnType<typeof SealedView.dec>, 'runtime'> & { runtime?: SealedRuntime };
export const SealedViewV2 = Struct({
  genesisHash: Bytes(32),
  callIndices: CallIndices,
  ...viewTail(RegistryDataV1, Vector(InFlightV3)),
});
export const SealedViewV1 = Struct({
  genesisHash: Bytes(32),
  callIndices: CallIndicesV1,
  ...viewTail(RegistryDataV1, Vector(InFlightV3)),
});

/**
 * The sealed view, in the current layout or an earlier one. removeProxy is then pallet_proxy's fixed call index.
 * Vault proxies added before deposits were recorded get deposit 0: what leaves the vault must come from a verified
 * batch, and a deposit from the host's configuration is exactly what this must not trust. The cost is that such a
 * proxy's deposit stays in the vault when it is removed (the vault keeps a little more than it owes), never less.
 * In-flight records without a nonce expire at their death only; the account nonce is learnt from the next blocks
 * (and the host's floor, ParentchainInitParams.accountNonce).
 */
export function decodeSealedView(bytes: Uint8Array): SealedViewData {
  try {
    return decodeExact(SealedView, bytes, 'sealed parentchain view');
  } catch (err) {
    const unbound = (inFlight: ReturnType<typeof InFlightV3.dec>[]) => ({
      inFlight: inFlight.map((f) => ({ ...f, nonce: UNKNOWN_NONCE })),
      nonces: EMPTY_NONCES,
    });
    try {
      const v3 = decodeExact(SealedViewV3, bytes, 'sealed parentchain view');
      return { ...v3, ...unbound(v3.inFlight) };
    } catch {
      // an older layout still
    }
    for (const layout of [SealedViewV2, SealedViewV1]) {
      let old: ReturnType<typeof SealedViewV1.dec>;
      try {
        old = decodeExact(layout, bytes, 'sealed parentchain view');
      } catch {
        continue;
      }
      const ix = old.callIndices as ReturnType<typeof CallIndices.dec>;
      return {
        ...old,
        callIndices: { ...ix, removeProxy: ix.removeProxy ?? { pallet: ix.addProxy.pallet, call: REMOVE_PROXY_CALL } },
        registry: { ...old.registry, proxyDeposits: [] },
        settled: 0,
        ...unbound(old.inFlight),
      };
    }
    throw err;
  }
}

export interface ImportedBlock {
  header: Uint8Array;
  extrinsics: Uint8Array[];
  /** For (at least) every extrinsic whose bytes carry our magic and our shard id. */
  outcomes: ExtrinsicOutcome[];
}
/**
 * proxyDepositFactor comes from the current runtime at every start and is not sealed (a runtime upgrade
 * may change it). A wrong one from the host makes a proxy duty fail, or moves more of this enclave's
 * own account into the shard's vault than the deposit takes: nothing leaves the shard.
 */
export interface ParentchainInitParams {
  genesisHash: Uint8Array;
  checkpoint?: Checkpoint;
  /** The runtime's metadata (`state_getMetadata`): the enclave derives the call indices from it (runtime.ts). */
  metadata: Uint8Array;
  existentialDeposit: bigint;
  proxyDepositFactor: bigint;
  /**
   * The host's reading of this enclave account's next nonce: only a floor for the nonces the enclave hands out
   * (a data directory of an earlier build learns its account's nonce from it), never evidence that one is consumed.
   */
  accountNonce?: number;
}
export interface Duty {
  key: string;
  callData: Uint8Array;
  description: string;
  /** The account nonce to sign it at (the enclave signs no other). */
  nonce: number;
}
