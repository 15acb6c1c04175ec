// The sealed format of the parentchain view (the current layout and the ones before it), and the
// shapes the host hands in: imported blocks and the parameters a view starts from. Split from view.ts.
import { Bytes, Option, Struct, Vector, str, u32, u128 } from 'scale-ts';
import { decodeExact } from '../../protocol/wire.ts';
import type { Checkpoint } from './light-client.ts';
import { CallIndices, CallIndicesV1, REMOVE_PROXY_CALL } from './calls.ts';
import { Effect, RegistryData, type RelevantExtrinsic } from './registry-data.ts';
import { EMPTY_NONCES, NonceState, UNKNOWN_NONCE } from './nonces.ts';

/** A duty signed and maybe includable: until its death, or until the verified chain shows its nonce consumed. */
export const InFlight = Struct({ duty: str, birthHash: Bytes(32), period: u32, death: Option(u32), nonce: u32 });
export type InFlight = ReturnType<typeof InFlight.dec>;
/** In-flight records of builds before nonces were bound (nonce UNKNOWN_NONCE once read). */
const InFlightV2 = Struct({ duty: str, birthHash: Bytes(32), period: u32, death: Option(u32) });
const head = Struct({ number: u32, hash: Bytes(32) });
/** Recent verified block hashes: a duty's birth block is looked up here to know when it dies. */
const recent = Vector(Struct({ number: u32, hash: Bytes(32) }));
/** The sealed fields after the call indices. */
const viewTail = {
  existentialDeposit: u128,
  head,
  registry: RegistryData,
  pending: Vector(Effect),
  inFlight: Vector(InFlight),
  recent,
  nonces: NonceState,
};
const viewTailV2 = {
  existentialDeposit: u128,
  head,
  registry: RegistryData,
  pending: Vector(Effect),
  inFlight: Vector(InFlightV2),
  recent,
};
export const SealedView = Struct({ genesisHash: Bytes(32), callIndices: CallIndices, ...viewTail });
/** The layout before nonces were bound. */
const SealedViewV2 = Struct({ genesisHash: Bytes(32), callIndices: CallIndices, ...viewTailV2 });
/** The layout of earlier builds, whose sealed indices had no removeProxy. */
const SealedViewV1 = Struct({ genesisHash: Bytes(32), callIndices: CallIndicesV1, ...viewTailV2 });

/**
 * The sealed view, in the current layout or an earlier one: removeProxy then taken from pallet_proxy's fixed call
 * index; in-flight records without a nonce (they expire at their death only) and an account nonce to be learnt.
 */
export function decodeSealedView(bytes: Uint8Array): ReturnType<typeof SealedView.dec> {
  try {
    return decodeExact(SealedView, bytes, 'sealed parentchain view');
  } catch (err) {
    let old: ReturnType<typeof SealedViewV2.dec>;
    try {
      old = decodeExact(SealedViewV2, bytes, 'sealed parentchain view');
    } catch {
      try {
        const v1 = decodeExact(SealedViewV1, bytes, 'sealed parentchain view');
        const removeProxy = { pallet: v1.callIndices.addProxy.pallet, call: REMOVE_PROXY_CALL };
        old = { ...v1, callIndices: { ...v1.callIndices, removeProxy } };
      } catch {
        throw err;
      }
    }
    return {
      ...old,
      inFlight: old.inFlight.map((f) => ({ ...f, nonce: UNKNOWN_NONCE })),
      nonces: EMPTY_NONCES,
    };
  }
}

export interface ImportedBlock {
  header: Uint8Array;
  extrinsics: Uint8Array[];
  relevant: RelevantExtrinsic[];
}
/**
 * proxyDepositFactor comes from the current runtime at every start and is not sealed (a runtime upgrade
 * may change it). A wrong one from the host makes a proxy duty fail, or moves more of this enclave's
 * own account into the shard's vault than the deposit takes: nothing leaves the shard.
 */
export interface ParentchainInitParams {
  genesisHash: Uint8Array;
  checkpoint?: Checkpoint;
  callIndices: CallIndices;
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
