import { codeOf as codeOfError } from '../../src/protocol/errors.ts';

/** The stable `code` of the error a function throws, or undefined if it does not throw. */
export function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return codeOfError(err);
  }
  return undefined;
}
