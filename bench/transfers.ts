// The bench's load: pre-signed, pre-encrypted transfers from `senders` of the genesis accounts, in
// nonce-major order (consecutive calls come from different senders, as from independent users).
import { buildTransfer, type ShieldingKey } from '../src/client/calls.ts';
import { benchAccount, benchPublicKeys } from './accounts.ts';
import { toHex } from '../src/protocol/bytes.ts';

/** The requests as 0x-hex; their call hashes (hex) are appended to `hashes` when given. */
export function benchTransfers(
  o: { calls: number; senders: number; accounts: number; key: ShieldingKey; shard: Uint8Array },
  hashes?: string[],
): string[] {
  const signers = Array.from({ length: o.senders }, (_, i) => benchAccount(i));
  const recipients = benchPublicKeys(o.accounts);
  const requests: string[] = [];
  for (let i = 0; i < o.calls; i++) {
    const s = i % o.senders,
      nonce = Math.floor(i / o.senders);
    const to = recipients[(s * 7919 + nonce * 104729) % o.accounts];
    const t = buildTransfer(signers[s], { to, amount: 1n, nonce }, o.key, o.shard);
    requests.push(toHex(t.request));
    hashes?.push(t.hash);
  }
  return requests;
}
