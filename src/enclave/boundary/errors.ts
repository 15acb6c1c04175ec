// The error the enclave throws and the host re-creates from a reply: a ValidateerError named as the
// enclave's, so logs show which side of the boundary refused. Codes are listed in protocol/errors.ts.
import { ValidateerError, type ErrorCode } from '../../protocol/errors.ts';

export class EnclaveError extends ValidateerError {
  constructor(code: ErrorCode, message: string) {
    super(code, message);
    this.name = 'EnclaveError';
  }
}
