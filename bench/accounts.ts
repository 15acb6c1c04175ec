// Deterministic bench accounts: seed i = sha256("validateer/bench/" + i), so config and load agree.
import { accountFromSeed, type Account } from '../src/client/accounts.ts';
import { sha256 } from '../src/crypto/primitives.ts';
import { toHex } from '../src/protocol/bytes.ts';

export function benchAccount(i: number): Account {
  return accountFromSeed(sha256(new TextEncoder().encode(`validateer/bench/${i}`)));
}

// Deriving a key costs ~0.35 ms: the first n public keys are derived once per process and shared by
// the genesis file and the transfers of every part of the bench.
const publicKeys: Uint8Array[] = [];
export function benchPublicKeys(n: number): Uint8Array[] {
  for (let i = publicKeys.length; i < n; i++) publicKeys.push(benchAccount(i).publicKey);
  return publicKeys.slice(0, n);
}

/** Genesis entries for n accounts; only public keys are needed, so derive them cheaply. */
export function genesisBalances(n: number, amount: bigint): { account: string; amount: string }[] {
  return benchPublicKeys(n).map((pk) => ({ account: toHex(pk), amount: amount.toString() }));
}
