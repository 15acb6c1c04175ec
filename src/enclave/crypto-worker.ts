// Crypto worker thread (inside the enclave boundary): verifies batches of shielded calls, and of
// block signatures (onboarding sync), in parallel.
// It receives the shielding key once from the enclave thread over a private MessagePort.
import { parentPort, workerData } from 'node:worker_threads';
import { CallVerifier } from './verifier.ts';
import type { KeyObject } from 'node:crypto';
import { ed25519PublicKey, ed25519Verify } from '../crypto/primitives.ts';

/** Block authors are few: their public keys are imported once (importing costs a quarter of a verification). */
const authorKeys = new Map<string, KeyObject>();
const AUTHOR_KEYS_MAX = 1024;
function authorKey(pub: Uint8Array): KeyObject {
  const k = Buffer.from(pub).toString('hex');
  let key = authorKeys.get(k);
  if (!key) {
    if (authorKeys.size >= AUTHOR_KEYS_MAX) authorKeys.clear();
    authorKeys.set(k, (key = ed25519PublicKey(pub)));
  }
  return key;
}

const { keyId, secret, publicKey } = workerData as { keyId: number; secret: Uint8Array; publicKey: Uint8Array };
const verifier = new CallVerifier({ keyId, secret, publicKey });

type Signed = { publicKey: Uint8Array; message: Uint8Array; signature: Uint8Array };

parentPort!.on('message', (msg: { id: number; requests: Uint8Array[] } | { id: number; signatures: Signed[] }) => {
  if ('signatures' in msg) {
    parentPort!.postMessage({ id: msg.id, results: msg.signatures.map((s) => {
      try {
        return ed25519Verify(authorKey(s.publicKey), s.message, s.signature);
      } catch {
        return false;
      }
    }) });
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
