// The parentchain runtime the enclave signs for: call indices, spec and transaction versions and the
// signed-extension layout, all derived from one set of metadata bytes (metadata.ts) and sealed with the view.
//
// What holds: the indices and the versions cannot disagree, since both come from the same bytes; every
// payload the enclave signs carries exactly those versions (checkPayload), and the chain's own
// CheckSpecVersion/CheckTxVersion reject it under any other runtime, so a runtime upgrade makes old
// signatures fail instead of executing as other calls. The enclave follows upgrades: a verified header
// with a RuntimeEnvironmentUpdated digest stops imports and signing until the host hands metadata of a
// newer spec version, from which the indices are derived again.
// Pinned runtimes (PINNED_RUNTIMES, part of the measured code): for a (genesis, spec version) listed there only
// the metadata of that hash is taken, at the first start, on reopening and at an upgrade. The dev chain's runtime
// is fixed (chopsticks' genesis wasm ships in an npm package: statemine 900), so there a forged metadata of the
// real spec version is refused too. Metadata of a spec version not pinned there (a forged "901" at the first
// start, say) is taken as on other chains: its payloads name that version, which the chain refuses unless it runs it.
// What does not hold on other chains (or other spec versions): metadata the host forges for the real spec version
// (remapped indices) cannot be told from the real one without running the runtime. CheckMetadataHash (RFC-0078)
// would let the chain check it, but the enclave does not yet compute the digest, so it signs only mode Disabled.
// There same-version metadata differing from the sealed one is refused, so a forgery has to come at the first
// start or at an upgrade; the spec and transaction versions in every payload still bind it to one runtime.
import { Bytes, Option, Struct, Vector, bool, str, u32 } from 'scale-ts';
import { EnclaveError } from '../boundary/errors.ts';
import { blake2_256 } from './trie.ts';
import { readRuntimeFacts, type RuntimeFacts } from './metadata.ts';
import type { CallIndices } from './calls.ts';
import { CHOPSTICKS_GENESIS } from './light-client.ts';
import { hexKey, same } from '../../protocol/bytes.ts';

/** Sealed next to the call indices (view-format.ts). */
export const SealedRuntime = Struct({
  specVersion: u32,
  transactionVersion: u32,
  metadataHash: Bytes(32),
  proxyRealAccountId: bool,
  addProxyDelegateAccountId: bool,
  additional: Vector(Struct({ identifier: str, size: u32 })),
  /** A verified block whose header said the runtime changed, and no metadata of the new runtime yet. */
  upgradedAt: Option(u32),
});
export type SealedRuntime = ReturnType<typeof SealedRuntime.dec>;

const DIGEST_RUNTIME_UPDATED = 8;

/**
 * Runtimes whose metadata this build knows: blake2_256 of the metadata bytes (as state_getMetadata returns them)
 * by genesis and spec version. The dev chain's: test/fixtures/statemine-900.metadata, what chopsticks serves.
 */
export const PINNED_RUNTIMES: readonly { genesis: Uint8Array; specVersion: number; metadataHash: string }[] = [
  {
    genesis: CHOPSTICKS_GENESIS,
    specVersion: 900,
    metadataHash: '60b8719940600f9e4db213f63604fa8c06f18094d9745a0302878b96aaf264b2',
  },
];

/** Refuses metadata (by its hash) other than the pinned one for this genesis and spec version, if one is pinned. */
function checkPinned(genesis: Uint8Array, specVersion: number, metadataHash: Uint8Array): void {
  const pin = PINNED_RUNTIMES.find((p) => same(p.genesis, genesis) && p.specVersion === specVersion);
  if (pin && hexKey(metadataHash) !== pin.metadataHash) {
    throw new EnclaveError(
      'PARENTCHAIN_METADATA_MISMATCH',
      `metadata for spec version ${specVersion} of parentchain 0x${hexKey(genesis).slice(0, 16)}… is not the ` +
        `runtime this enclave pins for it (hash 0x${hexKey(metadataHash).slice(0, 16)}…, pinned ` +
        `0x${pin.metadataHash.slice(0, 16)}…): its call indices cannot be trusted`,
    );
  }
}

function derive(metadata: Uint8Array, genesis: Uint8Array): { facts: RuntimeFacts; sealed: SealedRuntime } {
  const facts = readRuntimeFacts(metadata);
  checkPinned(genesis, facts.specVersion, blake2_256(metadata));
  for (const [id, size] of [
    ['CheckSpecVersion', 4],
    ['CheckTxVersion', 4],
    ['CheckGenesis', 32],
    ['CheckMortality', 32],
  ] as const) {
    if (!facts.additional.some((a) => a.identifier === id && a.size === size))
      throw new EnclaveError('PARENTCHAIN_METADATA_UNSUPPORTED', `the runtime has no ${id} extension`);
  }
  const { proxyRealAccountId, addProxyDelegateAccountId } = facts.callIndices;
  return {
    facts,
    sealed: {
      specVersion: facts.specVersion,
      transactionVersion: facts.transactionVersion,
      metadataHash: blake2_256(metadata),
      proxyRealAccountId: proxyRealAccountId === true,
      addProxyDelegateAccountId: addProxyDelegateAccountId === true,
      additional: facts.additional,
      upgradedAt: undefined,
    },
  };
}

export class ParentchainRuntime {
  /** Shared with the registry's context: updated in place when the runtime changes. */
  readonly callIndices: CallIndices;
  private state: SealedRuntime;

  private constructor(callIndices: CallIndices, state: SealedRuntime) {
    this.callIndices = callIndices;
    this.state = state;
  }

  /**
   * From the sealed runtime and the host's metadata. At the first start (or from a view sealed before
   * this record existed) the metadata is taken as it is. Later, metadata of the sealed spec version must be
   * the sealed bytes; metadata of another version is not adopted here: the runtime changes only at a
   * verified upgrade block (update()), so blocks before it keep being read with the indices of their time.
   */
  static open(
    sealed: { callIndices?: CallIndices; runtime?: SealedRuntime },
    metadata: Uint8Array,
    genesis: Uint8Array,
  ): ParentchainRuntime {
    const fresh = derive(metadata, genesis);
    if (!sealed.runtime || !sealed.callIndices)
      return new ParentchainRuntime({ ...fresh.facts.callIndices }, fresh.sealed);
    const s = sealed.runtime;
    // A runtime sealed by a build without the pin (or with another one) is held to this build's pins too.
    if (s.specVersion !== 0) checkPinned(genesis, s.specVersion, s.metadataHash);
    if (fresh.sealed.specVersion === s.specVersion && !same(fresh.sealed.metadataHash, s.metadataHash)) {
      throw new EnclaveError(
        'PARENTCHAIN_METADATA_MISMATCH',
        `metadata for spec version ${s.specVersion} differs from the metadata this enclave sealed for it`,
      );
    }
    return ParentchainRuntime.fromSealed(sealed.callIndices, s);
  }

  /** No runtime known (a view sealed before this record): nothing is imported or signed until metadata comes. */
  static readonly UNKNOWN: SealedRuntime = {
    specVersion: 0,
    transactionVersion: 0,
    metadataHash: new Uint8Array(32),
    proxyRealAccountId: false,
    addProxyDelegateAccountId: false,
    additional: [],
    upgradedAt: 0,
  };

  static fromSealed(callIndices: CallIndices, s: SealedRuntime = ParentchainRuntime.UNKNOWN): ParentchainRuntime {
    const ix = {
      ...callIndices,
      proxyRealAccountId: s.proxyRealAccountId,
      addProxyDelegateAccountId: s.addProxyDelegateAccountId,
    };
    return new ParentchainRuntime(ix, s);
  }

  get sealed(): SealedRuntime {
    return this.state;
  }

  /** The sealed view's fields for the runtime: the indices and the runtime they belong to. */
  toSealed(): { callIndices: CallIndices; runtime: SealedRuntime } {
    return { callIndices: this.callIndices, runtime: this.state };
  }

  get specVersion(): number {
    return this.state.specVersion;
  }

  /** The block whose header announced a runtime change not yet followed, if any. */
  get upgradedAt(): number | undefined {
    return this.state.upgradedAt;
  }

  /**
   * Verifies a block with `light` (the light client's import) unless it follows an upgrade block not followed yet:
   * nothing more is read with the old indices. A header that announces a runtime change (its code applies from the
   * next block) stops the blocks after it. The digest is read before the light client moves on.
   */
  follow<H extends { number: number }>(header: Uint8Array, light: () => H): H {
    // Imports stop at the upgrade block, so any block while one is pending comes after it.
    if (this.state.upgradedAt !== undefined) {
      throw new EnclaveError(
        'PARENTCHAIN_METADATA_REQUIRED',
        `the runtime changed in block #${this.state.upgradedAt}: the enclave needs its new metadata`,
      );
    }
    const upgrades = announcesRuntimeChange(header);
    const h = light();
    if (upgrades) this.state = { ...this.state, upgradedAt: h.number };
    return h;
  }

  /**
   * The host's metadata for the runtime after the upgrade block: a newer spec version (the runtime refuses
   * set_code without one). Returns false when nothing changed (no upgrade pending).
   */
  update(metadata: Uint8Array, genesis: Uint8Array): boolean {
    const fresh = derive(metadata, genesis);
    if (this.state.upgradedAt === undefined) {
      if (
        fresh.sealed.specVersion === this.state.specVersion &&
        same(fresh.sealed.metadataHash, this.state.metadataHash)
      )
        return false;
      throw new EnclaveError('PARENTCHAIN_METADATA_MISMATCH', 'no runtime upgrade was seen in a verified block');
    }
    if (fresh.sealed.specVersion <= this.state.specVersion) {
      throw new EnclaveError(
        'PARENTCHAIN_METADATA_STALE',
        `metadata of spec version ${fresh.sealed.specVersion} after an upgrade from ${this.state.specVersion}`,
      );
    }
    Object.assign(this.callIndices, fresh.facts.callIndices);
    this.state = fresh.sealed;
    return true;
  }

  /**
   * Refuses a signing payload (call ‖ extra ‖ additional) whose additional data names another runtime than
   * the one the call was encoded for, or while an upgrade is not followed yet. The additional data is the
   * payload's tail, laid out by the runtime's extensions (all of fixed size, see metadata.ts).
   */
  checkPayload(payload: Uint8Array, callLength: number, genesisHash: Uint8Array): void {
    const refuse = (why: string) => {
      throw new EnclaveError('PARENTCHAIN_RUNTIME_MISMATCH', why);
    };
    if (this.state.specVersion === 0) refuse('no runtime metadata sealed yet: run the node with its parentchain once');
    if (this.state.upgradedAt !== undefined)
      refuse(`the runtime changed in block #${this.state.upgradedAt}; the enclave signs again once it follows`);
    const total = this.state.additional.reduce((n, a) => n + a.size, 0);
    let at = payload.length - total;
    if (at <= callLength) refuse('the payload is too short for its extensions');
    const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    for (const a of this.state.additional) {
      if (a.identifier === 'CheckSpecVersion' && view.getUint32(at, true) !== this.state.specVersion)
        refuse(`the payload is for spec version ${view.getUint32(at, true)}, not ${this.state.specVersion}`);
      if (a.identifier === 'CheckTxVersion' && view.getUint32(at, true) !== this.state.transactionVersion)
        refuse(
          `the payload is for transaction version ${view.getUint32(at, true)}, not ${this.state.transactionVersion}`,
        );
      if (a.identifier === 'CheckGenesis' && !same(payload.subarray(at, at + 32), genesisHash))
        refuse('the payload names another genesis');
      if (a.identifier === 'CheckMetadataHash' && payload[at] !== 0)
        refuse('the enclave signs no metadata hash it did not compute');
      at += a.size;
    }
  }
}

/** Whether a header's digest holds RuntimeEnvironmentUpdated (the block changed the runtime code or heap pages). */
export function announcesRuntimeChange(header: Uint8Array): boolean {
  const r = { at: 32, bytes: header };
  compactAt(r); // number
  r.at += 64; // state root, extrinsics root
  const count = compactAt(r);
  for (let i = 0; i < count; i++) {
    const tag = header[r.at++];
    if (tag === DIGEST_RUNTIME_UPDATED) return true;
    // Other(Vec<u8>), or Consensus/Seal/PreRuntime(engine id, Vec<u8>); the length is read before r.at moves on.
    if (tag === 4 || tag === 5 || tag === 6) r.at += 4;
    else if (tag !== 0) throw new EnclaveError('PARENTCHAIN_BAD_HEADER', `header digest item of unknown kind ${tag}`);
    const length = compactAt(r);
    r.at += length;
    if (r.at > header.length) throw new EnclaveError('PARENTCHAIN_BAD_HEADER', 'header digest runs past its end');
  }
  return false;
}

/** A SCALE compact integer at r.at (up to 2^32, as lengths and block numbers are). */
function compactAt(r: { at: number; bytes: Uint8Array }): number {
  const b = r.bytes;
  const mode = (b[r.at] ?? 0) & 3;
  if (r.at >= b.length) throw new EnclaveError('PARENTCHAIN_BAD_HEADER', 'header ends early');
  let v: number;
  if (mode === 0) v = b[r.at] >>> 2;
  else if (mode === 1) v = (b[r.at] | (b[r.at + 1] << 8)) >>> 2;
  else if (mode === 2) v = (b[r.at] | (b[r.at + 1] << 8) | (b[r.at + 2] << 16) | (b[r.at + 3] << 24)) >>> 2;
  else {
    if (b[r.at] >>> 2 !== 0) throw new EnclaveError('PARENTCHAIN_BAD_HEADER', 'header length beyond 2^32');
    v = b[r.at + 1] + b[r.at + 2] * 2 ** 8 + b[r.at + 3] * 2 ** 16 + b[r.at + 4] * 2 ** 24;
    r.at += 5;
    return v;
  }
  r.at += 1 << mode;
  return v;
}
