// Crypto worker thread (inside the enclave boundary): verifies batches of shielded calls, and of
// block signatures (onboarding sync), in parallel.
// It receives the shielding key once from the enclave thread over a private MessagePort.
import { parentPort, workerData } from 'node:worker_threads';
import { CallVerifier } from './verifier.ts';
import { ed25519Verify } from '../crypto/primitives.ts';

const { keyId, secret, publicKey } = workerData as { keyId: number; secret: Uint8Array; publicKey: Uint8Array };
const verifier = new CallVerifier({ keyId, secret, publicKey });

type Signed = { publicKey: Uint8Array; message: Uint8Array; signature: Uint8Array };

parentPort!.on('message', (msg: { id: number; requests: Uint8Array[] } | { id: number; signatures: Signed[] }) => {
  if ('signatures' in msg) {
    parentPort!.postMessage({ id: msg.id, results: msg.signatures.map((s) => ed25519Verify(s.publicKey, s.message, s.signature)) });
    return;
  }
  const results = msg.requests.map((r) => {
    try {
      return verifier.verify(r);
    } catch (err) {
      return { ok: false as const, code: 'DECODE_FAILED' as const, message: `verification failed: ${(err as Error).message}` };
    }
  });
  parentPort!.postMessage({ id: msg.id, results });
});
