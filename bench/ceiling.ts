// The machine's ceiling for opening calls: one thread verifying and decrypting pre-built requests
// with the enclave's own verifier, times the cores.
import { availableParallelism } from 'node:os';
import { x25519Generate } from '../src/crypto/primitives.ts';
import { CallVerifier } from '../src/enclave/calls/call-verifier.ts';
import { buildTransfer } from '../src/client/calls.ts';
import { benchAccount } from './accounts.ts';

export function measureCeiling(n = 6000): { perCore: number; cores: number } {
  const key = x25519Generate();
  const shard = new Uint8Array(32).fill(7);
  const shielding = { keyId: 1, publicKey: key.publicKey };
  const reqs: Uint8Array[] = [];
  // Distinct senders, as in the load.
  for (let i = 0; i < n; i++)
    reqs.push(
      buildTransfer(benchAccount(i), { to: benchAccount(i + 1).publicKey, amount: 1n, nonce: 0 }, shielding, shard)
        .request,
    );
  const verifier = new CallVerifier({ keyId: 1, secret: key.secretKey, publicKey: key.publicKey });
  for (let i = 0; i < 200; i++) verifier.verify(reqs[i]); // warm up
  const t0 = performance.now();
  for (const r of reqs) if (!verifier.verify(r).ok) throw new Error('ceiling: verification failed');
  const perCore = n / ((performance.now() - t0) / 1000);
  return { perCore, cores: availableParallelism() };
}
