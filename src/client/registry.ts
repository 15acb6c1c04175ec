// The client's own view of a shard's members, read from the parentchain instead of from a validateer:
// a signing key is a member when a finalized, successful extrinsic signed by that key carries its
// `register` message for the shard with a quote the client's attestation policy accepts, and no later
// `unregister` of it. The shard's vault is the pure proxy its first `vault` message by a member created
// (where shields send funds: not an address to take from an endpoint). Finalized blocks are scanned by
// number, a bounded number of them per lookup.
import type { Parentchain, ParentchainCall } from '../parentchain/api.ts';
import { MESSAGE_MAGIC, decodeMessage, type ParentchainMessage } from '../protocol/parentchain-messages.ts';
import { verifyRegistrationQuote, type AttestationPolicy } from '../protocol/registration.ts';
import { DEV_SHARD_POLICY, decodeShardPolicy, shardIdOf } from '../protocol/shard-policy.ts';
import { ValidateerError } from '../protocol/errors.ts';
import { hexKey, same } from '../protocol/bytes.ts';
import { pureProxyAccount } from '../protocol/pure-proxy.ts';

export type RegistryChain = Pick<Parentchain, 'finalizedHead' | 'blockHash' | 'block'>;

export interface RegistryLookupOptions {
  /** First parentchain block to scan (the shard's start, e.g. the validateers' checkpoint); default 0. */
  fromBlock?: number;
  /** Most blocks one lookup scans; beyond that it refuses (REGISTRY_SCAN_LIMIT) rather than trust. Default 100,000. */
  maxBlocks?: number;
  /**
   * Shard policies the client knows (SCALE bytes, e.g. from the operator's `validateer shard-policy create`): a shard's
   * registrations are checked against the authorities and measurements of the policy whose hash is its id. Without one,
   * only the dev shard (its built-in policy) can be looked up; any other shard is refused (UNKNOWN_SHARD_POLICY).
   */
  shardPolicies?: Uint8Array[];
}

/** Calls looked at in one extrinsic at most (nested batches included): the rest cannot hold a member's message. */
const MAX_CALLS_PER_EXTRINSIC = 4096;
const DEFAULT_MAX_BLOCKS = 100_000;

/** A membership check over the parentchain: resolves if `signer` is an active member of `shard`, else throws. */
export type MembershipCheck = (shard: Uint8Array, signer: Uint8Array) => Promise<void>;
/** The shard's vault on the parentchain as the client itself found it, or null while it has none. */
export type VaultLookup = (shard: Uint8Array) => Promise<Uint8Array | null>;

interface ShardView {
  /** The attestation roots of the shard's policy. */
  policy: AttestationPolicy;
  next: number;
  members: Set<string>;
  vault: Uint8Array | null;
  /** The scan in progress: scans of one shard run one after another, as each continues where the last stopped. */
  scanning: Promise<void>;
}

export function registryLookup(
  chain: RegistryChain,
  opts: RegistryLookupOptions = {},
): MembershipCheck & { vault: VaultLookup } {
  const policies = [DEV_SHARD_POLICY, ...(opts.shardPolicies ?? [])];
  const maxBlocks = opts.maxBlocks ?? DEFAULT_MAX_BLOCKS;
  // Per shard: the next block to scan and what was found so far (scans continue where the last one stopped).
  const shards = new Map<string, ShardView>();

  async function scan(shard: Uint8Array): Promise<ShardView> {
    const key = hexKey(shard);
    let s = shards.get(key);
    if (!s) {
      const policy = attestationPolicyOf(policies, shard);
      const fresh = {
        policy,
        next: opts.fromBlock ?? 0,
        members: new Set<string>(),
        vault: null,
        scanning: Promise.resolve(),
      };
      shards.set(key, (s = fresh));
    }
    const view = s;
    const run = view.scanning.then(() => advance(view, shard));
    view.scanning = run.catch(() => undefined);
    await run;
    return view;
  }

  async function advance(s: ShardView, shard: Uint8Array): Promise<void> {
    const head = (await chain.finalizedHead()).number;
    if (head - s.next + 1 > maxBlocks) {
      throw new ValidateerError(
        'REGISTRY_SCAN_LIMIT',
        `the registry lookup would scan more than ${maxBlocks} parentchain blocks: give a later start block`,
      );
    }
    for (; s.next <= head; s.next++) {
      const hash = await chain.blockHash(s.next);
      if (!hash) throw new ValidateerError('PARENTCHAIN_MISSING_BLOCK', `finalized block ${s.next} is unavailable`);
      const block = await chain.block(hash, { decodeOnly: MESSAGE_MAGIC, events: 'signed' });
      for (const x of block.extrinsics) {
        if (!x.signer || x.success !== true) continue;
        for (const m of messagesIn(x.call)) apply(s.members, shard, x.signer, m, s.policy);
        if (!s.vault && s.members.has(hexKey(x.signer)) && createsVault(x.call, shard))
          s.vault = pureProxyAccount(x.signer, s.next, x.index);
      }
    }
  }

  const member = async (shard: Uint8Array, signer: Uint8Array) => {
    if (!(await scan(shard)).members.has(hexKey(signer)))
      throw new ValidateerError('UNTRUSTED_ENCLAVE', 'the enclave is not a registered, attested member of the shard');
  };
  return Object.assign(member, { vault: async (shard: Uint8Array) => (await scan(shard)).vault });
}

/**
 * The attestation roots of `shard`: those of the known policy that hashes to the shard id (the shard's identity commits
 * to them, so no endpoint and no registration can name others). An empty measurement list means any measurement.
 */
function attestationPolicyOf(policies: Uint8Array[], shard: Uint8Array): AttestationPolicy {
  const bytes = policies.find((p) => same(shardIdOf(p), shard));
  if (!bytes)
    throw new ValidateerError(
      'UNKNOWN_SHARD_POLICY',
      `no shard policy hashes to shard ${hexKey(shard)}: give the shard's policy (or pin the enclave)`,
    );
  const p = decodeShardPolicy(bytes);
  return { trustedAuthorities: p.authorities, allowedMeasurements: p.measurements };
}

/** `batchAll[proxy.createPure(..), remark(vault)]` at the top of the extrinsic (as the enclaves' registry wants). */
function createsVault(call: ParentchainCall, shard: Uint8Array): boolean {
  if (call.pallet !== 'utility' || call.method !== 'batchAll' || !call.calls) return false;
  const creates = call.calls.some(
    (c) => c.pallet === 'proxy' && (c.method === 'createPure' || c.method === 'anonymous'),
  );
  return (
    creates &&
    call.calls.some((c) => {
      if (!c.remark) return false;
      try {
        const m = decodeMessage(c.remark);
        return m?.tag === 'vault' && same(m.value.shard, shard);
      } catch {
        return false;
      }
    })
  );
}

/** A member's own message changes its membership; anything else (another signer, a bad quote) is ignored. */
function apply(
  members: Set<string>,
  shard: Uint8Array,
  signer: Uint8Array,
  m: ParentchainMessage,
  policy: AttestationPolicy,
): void {
  if (m.tag !== 'register' && m.tag !== 'unregister') return;
  if (!same(m.value.shard, shard) || !same(m.value.signingKey, signer)) return;
  if (m.tag === 'unregister') return void members.delete(hexKey(signer));
  try {
    verifyRegistrationQuote(m.value, policy);
  } catch {
    return;
  }
  members.add(hexKey(signer));
}

function messagesIn(call: ParentchainCall): ParentchainMessage[] {
  const out: ParentchainMessage[] = [];
  const stack = [call];
  for (let seen = 0; stack.length > 0 && seen < MAX_CALLS_PER_EXTRINSIC; seen++) {
    const c = stack.pop()!;
    if (c.remark) {
      try {
        const m = decodeMessage(c.remark);
        if (m) out.push(m);
      } catch {
        // malformed or of another version: not a registration this client can check
      }
    }
    // Reversed onto the stack so messages come out in call order (a register before an unregister).
    for (let i = (c.calls?.length ?? 0) - 1; i >= 0; i--) stack.push(c.calls![i]);
  }
  return out;
}
