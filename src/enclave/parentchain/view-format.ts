// The sealed format of the parentchain view (the current layout and the one before it), and the
// shapes the host hands in: imported blocks and the parameters a view starts from. Split from view.ts.
import { Bytes, Option, Struct, Vector, str, u32, u128 } from 'scale-ts';
import { decodeExact } from '../../protocol/wire.ts';
import type { Checkpoint } from './light-client.ts';
import { CallIndices, CallIndicesV1, REMOVE_PROXY_CALL } from './calls.ts';
import { Effect, RegistryData, type RelevantExtrinsic } from './registry-data.ts';

export const InFlight = Struct({ duty: str, birthHash: Bytes(32), period: u32, death: Option(u32) });
export type InFlight = ReturnType<typeof InFlight.dec>;
/** The sealed fields after the call indices. */
const viewTail = {
  existentialDeposit: u128,
  head: Struct({ number: u32, hash: Bytes(32) }),
  registry: RegistryData,
  pending: Vector(Effect),
  inFlight: Vector(InFlight),
  /** Recent verified block hashes: a duty's birth block is looked up here to know when it dies. */
  recent: Vector(Struct({ number: u32, hash: Bytes(32) })),
  /** Effects of parentchain blocks up to here were executed by an anchored sidechain block and dropped. */
  settled: u32,
};
export const SealedView = Struct({ genesisHash: Bytes(32), callIndices: CallIndices, ...viewTail });
/** The layout of earlier builds, whose sealed indices had no removeProxy. */
const SealedViewV1 = Struct({ genesisHash: Bytes(32), callIndices: CallIndicesV1, ...viewTail });

/**
 * The sealed view, in the current layout or the previous one (removeProxy then taken from pallet_proxy's fixed call
 * index).
 */
export function decodeSealedView(bytes: Uint8Array): ReturnType<typeof SealedView.dec> {
  try {
    return decodeExact(SealedView, bytes, 'sealed parentchain view');
  } catch (err) {
    let old: ReturnType<typeof SealedViewV1.dec>;
    try {
      old = decodeExact(SealedViewV1, bytes, 'sealed parentchain view');
    } catch {
      throw err;
    }
    return {
      ...old,
      callIndices: {
        ...old.callIndices,
        removeProxy: { pallet: old.callIndices.addProxy.pallet, call: REMOVE_PROXY_CALL },
      },
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
}
export interface Duty {
  key: string;
  callData: Uint8Array;
  description: string;
}
