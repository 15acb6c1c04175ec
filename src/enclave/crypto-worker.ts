// Crypto worker thread (inside the enclave boundary): verifies batches of shielded calls in parallel.
// It receives the shielding key once from the enclave thread over a private MessagePort.
import { parentPort, workerData } from 'node:worker_threads';
import { CallVerifier } from './verifier.ts';

const { keyId, secret, publicKey } = workerData as { keyId: number; secret: Uint8Array; publicKey: Uint8Array };
const verifier = new CallVerifier({ keyId, secret, publicKey });

parentPort!.on('message', (msg: { id: number; requests: Uint8Array[] }) => {
  const results = msg.requests.map((r) => {
    try {
      return verifier.verify(r);
    } catch (err) {
      return { ok: false as const, code: 'DECODE_FAILED' as const, message: `verification failed: ${(err as Error).message}` };
    }
  });
  parentPort!.postMessage({ id: msg.id, results });
});
