// Stable rejection codes the enclave reports; clients and tests match on these, not on messages.
import { ValidateerError } from '../../protocol/errors.ts';

export const RejectCode = {
  DECRYPT_FAILED: 'DECRYPT_FAILED',
  DECODE_FAILED: 'DECODE_FAILED',
  BAD_SIGNATURE: 'BAD_SIGNATURE',
  WRONG_SHARD: 'WRONG_SHARD',
  UNKNOWN_SHIELDING_KEY: 'UNKNOWN_SHIELDING_KEY',
  STALE_NONCE: 'STALE_NONCE',
  NONCE_TOO_FAR: 'NONCE_TOO_FAR',
  INSUFFICIENT_BALANCE: 'INSUFFICIENT_BALANCE',
  MEMO_TOO_LONG: 'MEMO_TOO_LONG',
  DUPLICATE: 'DUPLICATE',
  POOL_FULL: 'POOL_FULL',
  NONCE_GAP_EXPIRED: 'NONCE_GAP_EXPIRED',
  GETTER_EXPIRED: 'GETTER_EXPIRED',
  NO_VAULT: 'NO_VAULT',
  AMOUNT_TOO_SMALL: 'AMOUNT_TOO_SMALL',
  EXCEEDS_SHIELDED_SUPPLY: 'EXCEEDS_SHIELDED_SUPPLY',
  UNKNOWN_WITHDRAWAL: 'UNKNOWN_WITHDRAWAL',
} as const;
export type RejectCode = (typeof RejectCode)[keyof typeof RejectCode];

export class EnclaveError extends ValidateerError {
  constructor(code: string, message: string) {
    super(code, message);
    this.name = 'EnclaveError';
  }
}
