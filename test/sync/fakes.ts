// Fakes for the host-side chain logic's unit tests: a chain of encoded blocks, an in-memory store, an
// enclave that accepts every block (or refuses one by hash), and a network whose peers serve slices
// of a chain. Only the methods the chain logic calls are implemented.
import { SignedBlock, headerSigningPayload } from '../../src/protocol/block.ts';
import { describeBlock, type TreeBlock } from '../../src/sidechain/block-tree.ts';
import { ed25519PrivateKey, ed25519PublicFromSeed, ed25519Sign, sha256 } from '../../src/crypto/primitives.ts';
import { hexKey, same } from '../../src/protocol/bytes.ts';
import { createLogger, type Logger } from '../../src/node/logger.ts';
import { Writable } from 'node:stream';
import type { Enclave } from '../../src/enclave/boundary/host.ts';
import type { BlockStore, StoredBlock } from '../../src/sidechain/store.ts';
import type { Network, ChainStatus } from '../../src/p2p/network.ts';

const ZERO32 = new Uint8Array(32);
const enc = new TextEncoder();
const AUTHOR_SEED = new Uint8Array(32).fill(3);
export const AUTHOR = ed25519PublicFromSeed(AUTHOR_SEED);

/**
 * A block at `number` on `parent` (bytes) of branch `tag`, validly signed by AUTHOR, including the call hashes
 * `calls`. Branches whose tags differ in length modulo 4 have different slots (so they are no equivocation).
 */
export function encodeBlock(
  number: number,
  parent: Uint8Array,
  tag: string,
  slot = BigInt(number * 4 + (tag.length % 4)),
  calls: Uint8Array[] = [],
): Uint8Array {
  const header = {
    parentHash: parent,
    number: BigInt(number),
    shard: ZERO32,
    slot,
    author: AUTHOR,
    stateCommitment: sha256(enc.encode(`${tag}${number}`)),
    transitionsRoot: ZERO32,
    parentchainNumber: 0,
    parentchainHash: ZERO32,
    effectsRoot: ZERO32,
    timestampMs: 0n,
    parentSignatureHash: ZERO32,
  };
  const body = {
    transitions: { keyId: 1, nonce: new Uint8Array(12), ciphertext: enc.encode(tag) },
    calls,
    rotation: undefined,
  };
  return SignedBlock.enc({
    header,
    body,
    signature: ed25519Sign(ed25519PrivateKey(AUTHOR_SEED), headerSigningPayload(header)),
  });
}

/** Blocks `from`..`from+length-1` of branch `tag`, the first on `parent`. */
export function chainOf(from: number, length: number, parent: Uint8Array, tag: string): TreeBlock[] {
  const out: TreeBlock[] = [];
  for (let i = 0; i < length; i++) {
    const bytes = encodeBlock(from + i, out.at(-1)?.hashBytes ?? parent, tag);
    out.push(describeBlock(bytes, `peer-${tag}`, null).block);
  }
  return out;
}

/** The canonical chain in memory, with the BlockStore methods the chain logic uses. */
export class FakeStore {
  blocks: TreeBlock[] = [];
  constructor(initial: TreeBlock[] = []) {
    this.blocks = [...initial];
  }
  head() {
    const top = this.blocks.at(-1);
    return top ? { number: top.number, hash: top.hashBytes } : null;
  }
  async appendMany(bs: StoredBlock[]) {
    for (const b of bs) await this.append(b);
  }
  async append(b: StoredBlock) {
    if (b.number !== this.blocks.length) throw new Error(`block ${b.number} is not next`);
    this.blocks.push(describeBlock(b.bytes, null, null).block);
  }
  async reorg(ancestor: number, bs: StoredBlock[]) {
    const abandoned = this.blocks.slice(ancestor + 1).map((b) => b.bytes);
    this.blocks = this.blocks.slice(0, ancestor + 1);
    await this.appendMany(bs);
    return abandoned;
  }
  async hashAt(n: number) {
    return this.blocks[n]?.hashBytes;
  }
  async blockByNumber(n: number) {
    return this.blocks[n]?.bytes;
  }
  async blockRange(from: number, count: number) {
    return this.blocks.slice(from, from + count).map((b) => b.bytes);
  }
  async numberOf(hash: Uint8Array) {
    const i = this.blocks.findIndex((b) => same(b.hashBytes, hash));
    return i < 0 ? undefined : i;
  }
  async isCanonical(number: number, hash: Uint8Array) {
    const b = this.blocks[number];
    return b !== undefined && same(b.hashBytes, hash);
  }
  async newestSnapshotNumber() {
    return undefined;
  }
  asStore(): BlockStore {
    return this as unknown as BlockStore;
  }
}

export const STATUS = { headNumber: 0, headHash: ZERO32, accounts: 3, poolSize: 0, stateKeyEpoch: 1 };

/**
 * An enclave that imports every block except those whose hash is in `refuse` (code BLOCK_BAD_COMMITMENT).
 * Records the methods called.
 */
export function fakeEnclave(
  opts: { refuse?: Set<string>; onCall?: (method: string, params: unknown) => unknown } = {},
): Enclave & { calls: string[] } {
  const calls: string[] = [];
  const enclave = {
    calls,
    call: async (method: string, params: { blocks?: Uint8Array[]; block?: Uint8Array }) => {
      calls.push(method);
      const custom = opts.onCall?.(method, params);
      if (custom !== undefined) return custom;
      if (method === 'importBlocks') {
        const imported = [];
        for (const [index, bytes] of params.blocks!.entries()) {
          const b = describeBlock(bytes, null, null).block;
          if (opts.refuse?.has(b.hash)) {
            return { imported, failure: { index, code: 'BLOCK_BAD_COMMITMENT', message: 'refused' }, status: STATUS };
          }
          imported.push({ hash: b.hashBytes, number: b.number, calls: [] });
        }
        return { imported, status: STATUS };
      }
      if (method === 'importBlock') {
        const b = describeBlock(params.block!, null, null).block;
        if (opts.refuse?.has(b.hash)) throw Object.assign(new Error('refused'), { code: 'BLOCK_BAD_COMMITMENT' });
        return { hash: b.hashBytes, number: b.number, calls: [] };
      }
      if (method === 'commit' || method === 'status') return STATUS;
      if (method === 'rewind') return {};
      throw new Error(`unexpected enclave call ${method}`);
    },
  };
  return enclave as unknown as Enclave & { calls: string[] };
}

/** What a fake peer does with a blocks-by-range request: serve (a slice of its chain), or fail. */
export type Serve = (from: number, count: number) => Promise<Uint8Array[]>;

/** A peer that serves its chain `blocks` (by number), up to `head`. */
export function serveChain(blocks: TreeBlock[], head = blocks.length - 1): Serve {
  return async (from, count) =>
    blocks.filter((b) => b.number >= from && b.number < from + count && b.number <= head).map((b) => b.bytes);
}

export const failing =
  (code: string): Serve =>
  async () => {
    throw Object.assign(new Error(`fake failure ${code}`), { code });
  };

/** A network of fake peers: peer id -> how it serves; records requests and penalties. */
export function fakeNetwork(peers: Record<string, Serve>, statuses: Record<string, ChainStatus> = {}) {
  const requests: { peer: string; from: number; count: number }[] = [];
  const penalties: { peer: string; reason: string }[] = [];
  const published: Uint8Array[] = [];
  const network = {
    requests,
    penalties,
    published,
    connectedPeers: () => Object.keys(peers),
    requestStatus: async (peer: string) => {
      const s = statuses[peer];
      if (!s) throw new Error('no status');
      return s;
    },
    requestBlocksByRange: (peer: string, from: number, count: number) => {
      requests.push({ peer, from, count });
      const serve = peers[peer];
      return serve ? serve(from, count) : Promise.reject(new Error('not connected'));
    },
    penalize: (peer: string, reason: string) => {
      penalties.push({ peer, reason });
    },
    publishBlock: async (bytes: Uint8Array) => {
      published.push(bytes);
    },
  };
  return network as unknown as Network & typeof network;
}

export function statusOf(blocks: TreeBlock[]): ChainStatus {
  const top = blocks.at(-1)!;
  return { headNumber: top.number, headHash: top.hashBytes, finalizedNumber: 0, finalizedHash: ZERO32 };
}

/** A logger whose lines (parsed) are kept in `lines`. */
export function capturingLogger(): { logger: Logger; lines: Record<string, unknown>[]; messages: () => string[] } {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _e, cb) {
      for (const l of String(chunk).split('\n')) if (l.trim()) lines.push(JSON.parse(l));
      cb();
    },
  });
  return {
    logger: createLogger({ level: 'debug', destination }),
    lines,
    messages: () => lines.map((l) => String(l.msg)),
  };
}

export { hexKey };
