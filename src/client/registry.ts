// The client's own view of a shard's members, read from the parentchain instead of from a validateer:
// a signing key is a member when a finalized, successful extrinsic signed by that key carries its
// `register` message for the shard with a quote the client's attestation policy accepts, and no later
// `unregister` of it. Finalized blocks are scanned by number, a bounded number of them per lookup.
import type { Parentchain, ParentchainCall } from '../parentchain/api.ts';
import { MESSAGE_MAGIC, decodeMessage, type ParentchainMessage } from '../protocol/parentchain-messages.ts';
import { DEV_AUTHORITY, verifyRegistrationQuote, type AttestationPolicy } from '../protocol/registration.ts';
import { ValidateerError } from '../protocol/errors.ts';
import { hexKey, same } from '../protocol/bytes.ts';

export type RegistryChain = Pick<Parentchain, 'finalizedHead' | 'blockHash' | 'block'>;

export interface RegistryLookupOptions {
  /** First parentchain block to scan (the shard's start, e.g. the validateers' checkpoint); default 0. */
  fromBlock?: number;
  /** Most blocks one lookup scans; beyond that it refuses (REGISTRY_SCAN_LIMIT) rather than trust. Default 100,000. */
  maxBlocks?: number;
  /** Default: the simulated dev authority and any measurement, which proves nothing off a dev chain. */
  policy?: AttestationPolicy;
}

/** Calls looked at in one extrinsic at most (nested batches included): the rest cannot hold a member's message. */
const MAX_CALLS_PER_EXTRINSIC = 4096;
const DEFAULT_MAX_BLOCKS = 100_000;

/** A membership check over the parentchain: resolves if `signer` is an active member of `shard`, else throws. */
export type MembershipCheck = (shard: Uint8Array, signer: Uint8Array) => Promise<void>;

export function registryLookup(chain: RegistryChain, opts: RegistryLookupOptions = {}): MembershipCheck {
  const policy = opts.policy ?? { trustedAuthorities: [DEV_AUTHORITY] };
  const maxBlocks = opts.maxBlocks ?? DEFAULT_MAX_BLOCKS;
  // Per shard: the next block to scan and the members so far (scans continue where the last one stopped).
  const shards = new Map<string, { next: number; members: Set<string> }>();

  async function scan(shard: Uint8Array): Promise<Set<string>> {
    const key = hexKey(shard);
    let s = shards.get(key);
    if (!s) shards.set(key, (s = { next: opts.fromBlock ?? 0, members: new Set() }));
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
        for (const m of messagesIn(x.call)) apply(s.members, shard, x.signer, m, policy);
      }
    }
    return s.members;
  }

  return async (shard, signer) => {
    const members = await scan(shard);
    if (!members.has(hexKey(signer)))
      throw new ValidateerError('UNTRUSTED_ENCLAVE', 'the enclave is not a registered, attested member of the shard');
  };
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
