// Accounts of the client: new accounts live in a local keystore directory, one seed file per address.
// Account identifiers (SS58, dev URIs) are crypto/accounts.ts; the client library re-exports them.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ValidateerError } from '../protocol/errors.ts';
import { accountFromSeed, devAccount, isDevUri, type Account } from '../crypto/accounts.ts';
import { hexKey } from '../protocol/bytes.ts';

export {
  SS58_PREFIX,
  accountFromSeed,
  devAccount,
  isDevUri,
  resolvePublicKey,
  toAddress,
  type Account,
} from '../crypto/accounts.ts';

/** A directory of account seeds, one file per SS58 address (mode 0600). */
export class Keystore {
  private readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }

  create(): Account {
    const account = accountFromSeed(new Uint8Array(randomBytes(32)));
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    writeFileSync(
      join(this.dir, account.address),
      JSON.stringify({ address: account.address, seed: hexKey(account.seed) }) + '\n',
      { mode: 0o600 },
    );
    return account;
  }

  get(address: string): Account | undefined {
    const path = join(this.dir, address);
    if (!existsSync(path)) return undefined;
    const { seed } = JSON.parse(readFileSync(path, 'utf8')) as { seed: string };
    return accountFromSeed(new Uint8Array(Buffer.from(seed, 'hex')));
  }

  list(): string[] {
    return existsSync(this.dir) ? readdirSync(this.dir).filter((f) => !f.startsWith('.')) : [];
  }
}

/** A signing account: a dev URI or an address whose key is in the keystore. */
export async function signerFor(ref: string, keystore: Keystore): Promise<Account> {
  if (isDevUri(ref)) return devAccount(ref);
  const a = keystore.get(ref);
  if (!a)
    throw new ValidateerError(
      'NO_KEY',
      `no key for ${ref} in keystore ${keystore['dir']} (create one with: validateer client new-account)`,
    );
  return a;
}
