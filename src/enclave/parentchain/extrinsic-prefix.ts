// The signer and account nonce of a signed extrinsic, read by the enclave itself from verified bytes,
// and the nonce a signing payload names. Both follow the standard signed extensions' order, which
// puts CheckMortality (the era) right before CheckNonce (Compact<u32>): Rococo Asset Hub's runtime
// (the dev chain) signs CheckNonZeroSender, CheckSpecVersion, CheckTxVersion, CheckGenesis,
// CheckMortality, CheckNonce, CheckWeight, ChargeAssetTxPayment; of these only CheckMortality, CheckNonce
// and ChargeAssetTxPayment put bytes in the extrinsic (era, nonce, then tip and asset id).

/** v4 extrinsic version byte with the signed bit. */
const SIGNED_V4 = 0x84;
/** MultiAddress::Id */
const ADDRESS_ID = 0;
/** MultiSignature variants: Ed25519 and Sr25519 take 64 bytes, Ecdsa 65. */
const SIGNATURE_LENGTH = [64, 64, 65];
const U32_MAX = 0xffff_ffff;

/** A SCALE Compact<u32> at `at`: its value and the offset after it, or null when malformed or out of range. */
export function readCompactU32(bytes: Uint8Array, at: number): { value: number; next: number } | null {
  const b = bytes[at];
  if (b === undefined) return null;
  const mode = b & 3;
  if (mode === 0) return { value: b >> 2, next: at + 1 };
  if (mode === 1) {
    if (at + 2 > bytes.length) return null;
    return { value: (b | (bytes[at + 1] << 8)) >> 2, next: at + 2 };
  }
  if (mode === 2) {
    if (at + 4 > bytes.length) return null;
    const v = (b | (bytes[at + 1] << 8) | (bytes[at + 2] << 16)) + bytes[at + 3] * 2 ** 24;
    return { value: Math.floor(v / 4), next: at + 4 };
  }
  // big-integer mode: (b >> 2) + 4 little-endian bytes; a u32 has at most 4
  const n = (b >> 2) + 4;
  if (n !== 4 || at + 1 + n > bytes.length) return null;
  let v = 0;
  for (let i = n - 1; i >= 0; i--) v = v * 256 + bytes[at + 1 + i];
  return v <= U32_MAX ? { value: v, next: at + 1 + n } : null;
}

/** Where the nonce starts after an era at `at` (0x00 immortal, else two bytes). */
function afterEra(bytes: Uint8Array, at: number): number | null {
  const first = bytes[at];
  if (first === undefined) return null;
  return first === 0 ? at + 1 : at + 2;
}

/**
 * The signer (MultiAddress::Id) and nonce of a signed v4 extrinsic as stored in a block body (its compact length
 * first); null for unsigned extrinsics, other versions or address kinds, and malformed bytes.
 */
export function signedPrefix(encoded: Uint8Array): { signer: Uint8Array; nonce: number } | null {
  const length = readCompactU32(encoded, 0);
  if (!length || length.next + length.value !== encoded.length) return null;
  let at = length.next;
  if (encoded[at] !== SIGNED_V4 || encoded[at + 1] !== ADDRESS_ID) return null;
  const signer = encoded.subarray(at + 2, at + 34);
  at += 34;
  const signatureLength = SIGNATURE_LENGTH[encoded[at]];
  if (signer.length !== 32 || signatureLength === undefined) return null;
  const era = afterEra(encoded, at + 1 + signatureLength);
  const nonce = era === null ? null : readCompactU32(encoded, era);
  return nonce ? { signer, nonce: nonce.value } : null;
}

/** The nonce of a signing payload (call bytes of `callLength`, then the era, then the nonce); null when malformed. */
export function payloadNonce(payload: Uint8Array, callLength: number): number | null {
  const era = afterEra(payload, callLength);
  return era === null ? null : (readCompactU32(payload, era)?.value ?? null);
}
