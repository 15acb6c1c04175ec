// Account identifiers: ed25519 keys shown as SS58 (prefix 42). Dev URIs (//Alice …) derive exactly as
// Substrate's dev accounts do (polkadot-js util-crypto). Shared by the client, the CLI and the node's
// genesis config; keystores live in client/accounts.ts.
import {
  cryptoWaitReady,
  decodeAddress,
  ed25519PairFromSeed,
  encodeAddress,
  keyExtractSuri,
  keyFromPath,
  mnemonicToMiniSecret,
} from '@polkadot/util-crypto';
import { ed25519PrivateKey, ed25519PublicFromSeed, ed25519Sign } from './primitives.ts';
import { ValidateerError } from '../protocol/errors.ts';

/** Signs with one ed25519 key: what a call or getter needs of an account. */
export interface Signer {
  publicKey: Uint8Array;
  sign(message: Uint8Array): Uint8Array;
}

export const SS58_PREFIX = 42;
const DEV_PHRASE = 'bottom drive obey lake curtain smoke basket hold race lonely fit walk';

export interface Account extends Signer {
  address: string;
  seed: Uint8Array;
}

export function accountFromSeed(seed: Uint8Array): Account {
  const key = ed25519PrivateKey(seed);
  const publicKey = ed25519PublicFromSeed(seed);
  return { seed, publicKey, address: encodeAddress(publicKey, SS58_PREFIX), sign: (m) => ed25519Sign(key, m) };
}

let ready: Promise<boolean> | undefined;
/** Derives a dev account such as //Alice (ed25519, hard derivation from the dev phrase). */
export async function devAccount(uri: string): Promise<Account> {
  await (ready ??= cryptoWaitReady());
  const { path, phrase, password } = keyExtractSuri(uri.startsWith('//') ? DEV_PHRASE + uri : uri);
  const seed = mnemonicToMiniSecret(phrase, password ?? '');
  const pair = keyFromPath(ed25519PairFromSeed(seed), path, 'ed25519');
  return accountFromSeed(pair.secretKey.subarray(0, 32));
}

export function isDevUri(s: string): boolean {
  return s.startsWith('//');
}

/** Public key of an SS58 address, 0x-hex key, or dev URI. */
export async function resolvePublicKey(ref: string): Promise<Uint8Array> {
  if (isDevUri(ref)) return (await devAccount(ref)).publicKey;
  if (/^0x[0-9a-fA-F]{64}$/.test(ref)) return new Uint8Array(Buffer.from(ref.slice(2), 'hex'));
  try {
    return decodeAddress(ref);
  } catch {
    throw new ValidateerError(
      'BAD_ACCOUNT',
      `not an account: ${ref} (expected an SS58 address, 0x-hex public key or //Name)`,
    );
  }
}

export function toAddress(publicKey: Uint8Array): string {
  return encodeAddress(publicKey, SS58_PREFIX);
}
