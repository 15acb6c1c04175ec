// Typed errors with stable codes, shared by every module; `code` is what tests and clients match on.
export class ValidateerError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
    this.name = 'ValidateerError';
  }
}
