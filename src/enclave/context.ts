// What the parts of the enclave share. core.ts builds one context and hands it, with the other parts
// each one needs, to every part. Its fields are replaced, not edited in place (a rotation's new keys,
// a replay's rebuilt state, the shielding key provisioning installs): parts read them here each time
// and keep no copies, so no part can act on a stale key or state.
import type { EnclaveKeys } from './keys/keys.ts';
import type { Sealer } from './keys/sealing.ts';
import type { SigningGuard } from './keys/signing-guard.ts';
import type { State, EpochRecord, Item, Known } from './state/state.ts';
import type { LtHash } from './state/lthash.ts';
import type { ParentchainView } from './parentchain/view.ts';
import type { CryptoThreads } from './calls/crypto-threads.ts';
import type { CallVerifier } from './calls/call-verifier.ts';
import type { PoolLimits } from './calls/pool.ts';
import type { ReplayRun } from './chain/replay.ts';
import { NO_PARENTCHAIN, type StfContext } from './state/stf.ts';
import { same } from '../protocol/bytes.ts';

export interface EnclaveOptions {
  dataDir: string;
  shard: Uint8Array;
  workers: number;
  /** Niceness of the crypto worker threads (config enclave.workerNice); 0 or absent = unchanged. */
  workerNice?: number;
  pool: PoolLimits;
  /** Block authors' signing keys when there is no parentchain; empty = this enclave alone. */
  authorities: Uint8Array[];
  /** The shard policy (protocol/shard-policy.ts) whose hash is `shard`: the shard's roots of trust. */
  shardPolicy: Uint8Array;
  /** Narrows the policy's attestation authorities (a subset of them; empty = the policy's). */
  trustedAuthorities?: Uint8Array[];
  /** Narrows the policy's measurements (a subset of them; empty = the policy's). */
  allowedMeasurements?: Uint8Array[];
  /** Accept the dev shard policy on a parentchain other than the embedded dev chain (`--dev`). */
  dev?: boolean;
  /** Aura slot length: a block's slot may be at most `maxDriftMs` ahead of the enclave's clock. */
  slotDurationMs?: number;
  maxDriftMs?: number;
  /** Derive the shard secrets from the shard id (dev set without provisioning; simulation only). */
  devShardSecrets?: boolean;
  /** A new state key epoch after this many blocks (0: only when the member set changes). A shard-wide parameter. */
  keyRotationBlocks?: number;
}

/** A block proposed or verified and not applied yet: `commit` applies it once the host has stored it. */
export interface StagedBlock {
  hash: Uint8Array;
  signatureHash: Uint8Array;
  number: bigint;
  slot: bigint;
  items: Item[];
  known: Known;
  lthash: LtHash;
  included: string[];
  parentchainNumber: number;
  parentchainHash: Uint8Array;
}

export interface EnclaveContext {
  readonly opts: EnclaveOptions;
  readonly sealer: Sealer;
  /** What this enclave signed and must not sign again; vouches for the sealed parentchain view. */
  readonly guard: SigningGuard;
  keys: EnclaveKeys;
  state: State;
  /** The light client and registry, once the host gave a parentchain (null: a dev set without one). */
  parentchain: ParentchainView | null;
  /** The replay under way: until it ends nothing proposes, imports or admits calls on the half-built state. */
  replaying: ReplayRun | null;
  /** The block `commit` applies next (at most one: a new proposal or import replaces it). */
  staged: StagedBlock | null;
  /** Both hold the shielding key: replaced together when provisioning installs the shard's. */
  crypto: CryptoThreads;
  localVerifier: CallVerifier;
}

export const ZERO32 = new Uint8Array(32);
/** Newest blocks kept as state layers: a reorg this shallow rewinds them instead of rebuilding from the event log. */
export const STATE_LAYERS = 8;

/** The state key epoch the state is in (epoch 0, the genesis key, before the first rotation). */
export function currentEpoch(ctx: EnclaveContext): EpochRecord {
  return ctx.state.epoch() ?? { epoch: 0, keyId: ctx.keys.currentStateKeyId, startNumber: 0n, membersHash: ZERO32 };
}

/**
 * Whether `signingKey` is in the set now: active as of the verified parentchain head (a departure counts from the block
 * that made it), or a configured authority without a parentchain (this enclave alone if none is configured).
 */
export function isCurrentMember(ctx: EnclaveContext, signingKey: Uint8Array): boolean {
  const pc = ctx.parentchain;
  if (pc) return pc.registry.isActive(signingKey, pc.lightClient.number);
  const authorities = ctx.opts.authorities;
  if (authorities.length === 0) return same(signingKey, ctx.keys.signingPublic);
  return authorities.some((a) => same(a, signingKey));
}

export function stfContext(ctx: EnclaveContext): StfContext {
  const pc = ctx.parentchain;
  return pc ? { vault: pc.registry.data.vault !== undefined } : NO_PARENTCHAIN;
}
