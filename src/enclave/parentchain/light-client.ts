// Parentchain light client: accepts a header only if it extends the last accepted one (parent hash
// and number) and hashes, with blake2_256 over its own bytes, to the hash its child names. Starts
// from a trusted genesis hash or checkpoint. Block bodies are accepted only when their extrinsics
// hash to the header's extrinsicsRoot, so the host can neither invent nor hide an extrinsic.
// Not verified (yet): GRANDPA finality proofs (chopsticks has none) and events, which the host reads
// from storage; a read proof against stateRoot would bind them (chopsticks has no state_getReadProof).
import { Bytes, Struct, compact } from 'scale-ts';
import { EnclaveError } from '../boundary/errors.ts';
import { blake2_256, verifyExtrinsicsRoot } from './trie.ts';
import { same } from '../../protocol/bytes.ts';

const HeaderPrefix = Struct({
  parentHash: Bytes(32),
  number: compact,
  stateRoot: Bytes(32),
  extrinsicsRoot: Bytes(32),
});

export interface VerifiedHeader {
  number: number;
  hash: Uint8Array;
  parentHash: Uint8Array;
  extrinsicsRoot: Uint8Array;
}
export interface Checkpoint {
  number: number;
  hash: Uint8Array;
}

/** Decodes the fixed part of a Substrate header from its own bytes (the digest is not needed). */
export function decodeHeader(encoded: Uint8Array): VerifiedHeader {
  if (encoded.length < 32 + 1 + 64) throw new EnclaveError('PARENTCHAIN_BAD_HEADER', 'header is too short');
  const copy = new Uint8Array(encoded); // scale-ts decodes from offset 0 of the underlying buffer
  const h = HeaderPrefix.dec(copy);
  return {
    number: Number(h.number),
    hash: blake2_256(encoded),
    parentHash: h.parentHash,
    extrinsicsRoot: h.extrinsicsRoot,
  };
}

/**
 * chopsticks (the embedded dev chain) reports the placeholder genesis hash 0x4545…45 and writes
 * blake2_256(concatenated extrinsics) into headers instead of the trie root. No real chain has that
 * genesis, so the enclave itself, not the host, decides which rule a trusted genesis gets.
 */
export const CHOPSTICKS_GENESIS = new Uint8Array(32).fill(0x45);

export class LightClient {
  readonly genesisHash: Uint8Array;
  private head: Checkpoint;
  private readonly checkBody: (root: Uint8Array, extrinsics: Uint8Array[]) => boolean;

  constructor(genesisHash: Uint8Array, head: Checkpoint) {
    this.genesisHash = genesisHash;
    this.head = head;
    this.checkBody = same(genesisHash, CHOPSTICKS_GENESIS)
      ? (root, extrinsics) => same(root, blake2_256(Buffer.concat(extrinsics)))
      : verifyExtrinsicsRoot;
  }

  get number(): number {
    return this.head.number;
  }

  get hash(): Uint8Array {
    return this.head.hash;
  }

  /** Verifies one block (header bytes and all extrinsic bytes) against the accepted chain and moves the head. */
  import(encodedHeader: Uint8Array, extrinsics: Uint8Array[]): VerifiedHeader {
    const h = decodeHeader(encodedHeader);
    if (h.number !== this.head.number + 1 || !same(h.parentHash, this.head.hash)) {
      throw new EnclaveError(
        'PARENTCHAIN_BROKEN_CHAIN',
        `parentchain block ${h.number} does not extend the verified head #${this.head.number}`,
      );
    }
    if (!this.checkBody(h.extrinsicsRoot, extrinsics)) {
      throw new EnclaveError(
        'PARENTCHAIN_BAD_BODY',
        `extrinsics of parentchain block ${h.number} do not match its extrinsics root`,
      );
    }
    this.head = { number: h.number, hash: h.hash };
    return h;
  }
}
