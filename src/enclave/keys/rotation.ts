// State key epochs. A block begins a new epoch when the member set as of the parentchain block it
// builds on differs from the set the current key was sealed to (a join or a departure), or when the
// epoch is `intervalBlocks` old. Its author makes a fresh AES-256-GCM key, seals it to every member's
// registered X25519 encryption key (HPKE, bound to shard, block number and key id) and encrypts the
// block's own transitions under it. A departed member is not a recipient: nothing in its data
// directory opens transitions after its departure. Members keep every epoch's key for replay.
import { u32, u64 } from 'scale-ts';
import { HpkeSuite } from '../../crypto/hpke.ts';
import { sha256 } from '../../crypto/primitives.ts';
import type { KeyRotation } from '../../protocol/block.ts';
import { EnclaveError } from '../boundary/errors.ts';
import type { EpochRecord } from '../state/state.ts';
import { concatBytes, same } from '../../protocol/bytes.ts';

const te = new TextEncoder();
const suite = new HpkeSuite(te.encode('validateer/state-key/v1'));
const MEMBERS_DOMAIN = te.encode('validateer/epoch-members/v1');

export interface Recipient {
  signingKey: Uint8Array;
  encryptionKey: Uint8Array;
}
export type RotationReason = 'set-changed' | 'schedule';

/** Commits to the members (and their encryption keys) an epoch's key was sealed to. */
export function membersHash(members: Recipient[]): Uint8Array {
  return sha256(concatBytes(MEMBERS_DOMAIN, ...members.flatMap((m) => [m.signingKey, m.encryptionKey])));
}

/** Why block `number` must begin a new epoch, or null. Nobody to seal to: no rotation. */
export function rotationDue(
  epoch: EpochRecord,
  members: Recipient[],
  number: bigint,
  intervalBlocks: number,
): RotationReason | null {
  if (members.length === 0) return null;
  if (!same(membersHash(members), epoch.membersHash)) return 'set-changed';
  if (intervalBlocks > 0 && number - epoch.startNumber >= BigInt(intervalBlocks)) return 'schedule';
  return null;
}

const wrapAad = (shard: Uint8Array, number: bigint, keyId: number, member: Uint8Array): Uint8Array =>
  concatBytes(shard, u64.enc(number), u32.enc(keyId), member);

/** The new key sealed to each member, for block `number`. */
export function sealRotation(
  shard: Uint8Array,
  number: bigint,
  keyId: number,
  key: Uint8Array,
  members: Recipient[],
): KeyRotation {
  return {
    keyId,
    wraps: members.map((m) => ({
      member: m.signingKey,
      ...suite.seal(m.encryptionKey, key, wrapAad(shard, number, keyId, m.signingKey)),
    })),
  };
}

/**
 * Checks a block's rotation against the members it must be sealed to (exactly them, in order) and
 * opens this enclave's copy of the key: undefined when this enclave is not a recipient.
 */
export function openRotation(
  r: KeyRotation,
  shard: Uint8Array,
  number: bigint,
  me: { signingKey: Uint8Array; secretKey: Uint8Array; publicKey: Uint8Array },
): Uint8Array | undefined {
  const mine = r.wraps.find((w) => same(w.member, me.signingKey));
  if (!mine) return undefined;
  const key = suite.open(
    { secretKey: me.secretKey, publicKey: me.publicKey },
    mine.enc,
    mine.ciphertext,
    wrapAad(shard, number, r.keyId, me.signingKey),
  );
  if (!key || key.length !== 32)
    throw new EnclaveError(
      'BLOCK_BAD_ROTATION',
      `block ${number}: the new state key sealed to this enclave does not open`,
    );
  return key;
}

/** The recipients must be exactly the members, in registration order. */
export function checkRecipients(r: KeyRotation, members: Recipient[], number: bigint): void {
  if (r.wraps.length !== members.length || r.wraps.some((w, i) => !same(w.member, members[i].signingKey))) {
    throw new EnclaveError(
      'BLOCK_BAD_ROTATION',
      `block ${number}: the new state key is not sealed to exactly the shard's members`,
    );
  }
}
