// The envelope of a batch of forwarded calls (enclave/calls/forwarding.ts seals and opens it): shared with the host,
// which reads its sender and bounds its size before the enclave spends any work on it (calls/gossip.ts).
import { Bytes, Struct, u32 } from 'scale-ts';

export const FORWARD_SIGNATURE_BYTES = 64;
/** What is signed: the envelope up to its signature (the signature is last and of fixed size). */
export const ForwardBody = Struct({ keyId: u32, sender: Bytes(32), nonce: Bytes(12), ciphertext: Bytes() });
export const ForwardEnvelope = Struct({
  keyId: u32,
  sender: Bytes(32),
  nonce: Bytes(12),
  ciphertext: Bytes(),
  signature: Bytes(FORWARD_SIGNATURE_BYTES),
});
