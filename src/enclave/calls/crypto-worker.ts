// Crypto worker thread (inside the enclave boundary): verifies batches of shielded calls, and of
// block signatures (onboarding sync), in parallel.
// It receives the shielding key once from the enclave thread over a private MessagePort.
import { parentPort, workerData } from 'node:worker_threads';
import { setPriority } from 'node:os';
import { CallVerifier, type Verified, type VerifyFailure } from './call-verifier.ts';
import { RejectCode } from '../../protocol/errors.ts';
import { ed25519Verify } from '../../crypto/primitives.ts';

const { keyId, secret, publicKey, nice } = workerData as {
  keyId: number;
  secret: Uint8Array;
  publicKey: Uint8Array;
  nice: number;
};
// Pid 0 is the calling thread on Linux, where niceness is per thread: only this worker yields.
// (Elsewhere it would be the whole process.)
if (nice > 0 && process.platform === 'linux') setPriority(0, nice);
const verifier = new CallVerifier({ keyId, secret, publicKey });

type Signed = { publicKey: Uint8Array; message: Uint8Array; signature: Uint8Array };

parentPort!.on('message', (msg: { id: number; requests: Uint8Array[] } | { id: number; signatures: Signed[] }) => {
  if ('signatures' in msg) {
    parentPort!.postMessage({
      id: msg.id,
      results: msg.signatures.map((s) => ed25519Verify(s.publicKey, s.message, s.signature)),
    });
    return;
  }
  const results = msg.requests.map((r): Verified | VerifyFailure => {
    try {
      return verifier.verify(r);
    } catch {
      // The error's text may quote decrypted bytes: it does not leave the enclave.
      return { ok: false, code: RejectCode.DECODE_FAILED, message: 'verification failed' };
    }
  });
  const packed = packBytes(results);
  parentPort!.postMessage({ id: msg.id, results }, packed ? [packed] : []);
});

/**
 * Moves every byte field of the verified calls (hash, shard, accounts: each its own ArrayBuffer as the
 * decoder made them) into one buffer that is handed over, not copied. A batch then crosses threads as
 * one allocation instead of four per call, each malloc'd, cloned and swept on both sides.
 */
function packBytes(results: (Verified | VerifyFailure)[]): ArrayBuffer | undefined {
  const fields: [Record<string, unknown>, string][] = [];
  let size = 0;
  const take = (o: Record<string, unknown>) => {
    for (const k in o) {
      const v = o[k];
      if (v instanceof Uint8Array) {
        fields.push([o, k]);
        size += v.length;
      }
    }
  };
  for (const r of results) {
    if (!r.ok) continue;
    take(r as unknown as Record<string, unknown>);
    take(r.call.value as unknown as Record<string, unknown>);
  }
  if (size === 0) return undefined;
  const all = new Uint8Array(size);
  let at = 0;
  for (const [o, k] of fields) {
    const v = o[k] as Uint8Array;
    all.set(v, at);
    o[k] = all.subarray(at, at + v.length);
    at += v.length;
  }
  return all.buffer;
}
