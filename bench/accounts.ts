// Deterministic bench accounts: seed i = sha256("validateer/bench/" + i), so config and load agree.
import { accountFromSeed, type Account } from '../src/client/accounts.ts';
import { sha256 } from '../src/crypto/primitives.ts';
import { toHex } from '../src/codec/wire.ts';

export function benchAccount(i: number): Account {
  return accountFromSeed(sha256(new TextEncoder().encode(`validateer/bench/${i}`)));
}

/** Genesis entries for n accounts; only public keys are needed, so derive them cheaply. */
export function genesisBalances(n: number, amount: bigint): { account: string; amount: string }[] {
  const out: { account: string; amount: string }[] = [];
  for (let i = 0; i < n; i++) out.push({ account: toHex(benchAccount(i).publicKey), amount: amount.toString() });
  return out;
}
