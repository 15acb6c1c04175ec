// The registry's data and its formats: members, effects, the sealed registry record, what the host
// hands in for an extrinsic, and the report data a registration's quote binds. Split from registry.ts,
// which applies verified extrinsics to them.
import { Bytes, Option, Struct, Vector, str, u8, u32, u64, u128 } from 'scale-ts';
import type { CallIndices } from './calls.ts';
import type { Call } from './extrinsic.ts';

/**
 * What the host says of one extrinsic that carries our magic: its dispatch outcome (from the block's events) and
 * where its call starts. The enclave decodes the call itself (extrinsic.ts).
 */
export interface ExtrinsicOutcome {
  index: number;
  success: boolean;
  callOffset: number;
}
/** A verified extrinsic of ours as the enclave read it from its bytes, with the outcome the host reported. */
export interface DecodedExtrinsic {
  index: number;
  signer: Uint8Array | undefined;
  success: boolean;
  call: Call;
}

export const Member = Struct({
  signingKey: Bytes(32),
  measurement: Bytes(32),
  peerId: str,
  p2pAddresses: Vector(str),
  /** X25519: rotated state keys are sealed to it (key-rotation.ts). */
  encryptionKey: Bytes(32),
  registeredAt: u32,
  registeredIndex: u32,
  unregisteredAt: Option(u32),
});
export type Member = ReturnType<typeof Member.dec>;

export const Effect = Struct({
  parentchainNumber: u32,
  kind: u8,
  /** shield: recipient; payout: beneficiary; invoke: empty */
  account: Bytes(),
  amount: u128,
  withdrawal: u64,
  /** invoke: the shielded request */
  request: Bytes(),
});
export type Effect = ReturnType<typeof Effect.dec>;
export const EFFECT = { shield: 1, invoke: 2, payout: 3, payoutFailed: 4 } as const;

const registryV1 = {
  members: Vector(Member),
  vault: Option(Struct({ account: Bytes(32), createdAt: u32 })),
  /** Enclave accounts that are proxies of the vault (its creator, then members it added). */
  vaultProxies: Vector(Bytes(32)),
  reserveFunded: Option(u32),
  lastAnchor: Option(Struct({ number: u64, hash: Bytes(32), parentchainNumber: u32 })),
};
/** The registry of earlier builds, without the proxy deposits (see view-format.ts for how it opens). */
export const RegistryDataV1 = Struct(registryV1);
export const RegistryData = Struct({
  ...registryV1,
  /**
   * What the verified batch that added each vault proxy paid into the vault (absent = 0): the most its removal may
   * refund out of the vault.
   */
  proxyDeposits: Vector(Struct({ delegate: Bytes(32), amount: u128 })),
});
export type RegistryData = ReturnType<typeof RegistryData.dec>;

/** What a registration's quote binds besides the signing key: shard, peer id, addresses and encryption key. */
export { registrationUserData } from '../../protocol/registration.ts';

export interface RegistryContext {
  shard: Uint8Array;
  callIndices: CallIndices;
  trustedAuthorities: Uint8Array[];
  allowedMeasurements: Uint8Array[];
  shielding: { secretKey: Uint8Array; publicKey: Uint8Array };
}

export interface Observation {
  kind:
    | 'registered'
    | 'unregistered'
    | 'ignored'
    | 'vault'
    | 'proxy'
    | 'unproxy'
    | 'reserve'
    | 'anchor'
    | 'anchorIgnored'
    | 'shield'
    | 'invoke'
    | 'payout';
  detail: string;
}
