// Sealing: AES-256-GCM under a key derived from the platform secret and a policy. In simulation mode
// the platform secret is a file in the data directory (named as such); a real TEE derives it in
// hardware (SGX EGETKEY) and this module is the only thing that changes.
import * as nodeFs from 'node:fs';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { hkdfSync, randomBytes } from 'node:crypto';
import { Bytes, Struct, u8 } from 'scale-ts';
import {
  AES_GCM_TAG_BYTES,
  aesGcmOpen,
  aesGcmSeal,
  aesGcmSealParts,
  randomNonce,
  sha256,
} from '../../crypto/primitives.ts';
import { decodeExact, headBeforeLastBytes } from '../../protocol/wire.ts';
import { hexKey } from '../../protocol/bytes.ts';
import { EnclaveError } from '../boundary/errors.ts';

export const SealPolicy = { measurement: 0, signer: 1 } as const;
export type SealPolicy = keyof typeof SealPolicy;

const Sealed = Struct({ version: u8, policy: u8, nonce: Bytes(12), ciphertext: Bytes() });
const SIM_HEADER =
  'VALIDATEER SIMULATION-MODE PLATFORM SECRET (stands in for the CPU sealing key; not for production)\n';
/** Simulated MRSIGNER: the identity of whoever signs enclave builds. */
export const SIM_SIGNER_ID = sha256(new TextEncoder().encode('validateer/sim-signer/v1'));

export class Sealer {
  private readonly keys: Record<SealPolicy, Uint8Array>;

  private constructor(platformSecret: Uint8Array, measurement: Uint8Array, signer: Uint8Array) {
    const derive = (salt: Uint8Array) =>
      new Uint8Array(hkdfSync('sha256', platformSecret, salt, 'validateer/seal/v1', 32));
    this.keys = { measurement: derive(measurement), signer: derive(signer) };
  }

  /** Loads (or on first start creates) the simulated platform secret under dataDir. */
  static simulated(dataDir: string, measurement: Uint8Array): Sealer {
    const path = join(dataDir, 'enclave', 'sim-platform-secret');
    let secret: Uint8Array;
    if (existsSync(path)) {
      const text = readFileSync(path, 'utf8');
      const hex = text.startsWith(SIM_HEADER) ? text.slice(SIM_HEADER.length).trim() : '';
      if (!/^[0-9a-f]{64}$/.test(hex))
        throw new EnclaveError('PLATFORM_SECRET_CORRUPT', `simulated platform secret at ${path} is corrupt`);
      secret = new Uint8Array(Buffer.from(hex, 'hex'));
    } else {
      secret = new Uint8Array(randomBytes(32));
      writeFileAtomic(path, SIM_HEADER + hexKey(secret) + '\n');
    }
    return new Sealer(secret, measurement, SIM_SIGNER_ID);
  }

  seal(policy: SealPolicy, label: string, plaintext: Uint8Array): Uint8Array {
    const nonce = randomNonce();
    const ciphertext = aesGcmSeal(this.keys[policy], nonce, plaintext, new TextEncoder().encode(label));
    return Sealed.enc({ version: 1, policy: SealPolicy[policy], nonce, ciphertext });
  }

  /**
   * seal() of the parts joined, encrypted a part at a time with `pause()` in between and written into
   * one buffer: a snapshot of a large state is megabytes, and the thread has blocks to import.
   */
  async sealParts(
    policy: SealPolicy,
    label: string,
    parts: Uint8Array[],
    pause: () => Promise<void>,
  ): Promise<Uint8Array> {
    const nonce = randomNonce();
    const length = parts.reduce((n, p) => n + p.length, 0) + AES_GCM_TAG_BYTES;
    // The ciphertext is the envelope's last field.
    const prefix = headBeforeLastBytes(
      Sealed.enc({ version: 1, policy: SealPolicy[policy], nonce, ciphertext: new Uint8Array(0) }),
      length,
    );
    const out = new Uint8Array(prefix.length + length);
    out.set(prefix, 0);
    await aesGcmSealParts(this.keys[policy], nonce, parts, new TextEncoder().encode(label), out, prefix.length, pause);
    return out;
  }

  unseal(label: string, sealed: Uint8Array): Uint8Array {
    const s = decodeExact(Sealed, sealed, `sealed ${label}`);
    const policy = (Object.keys(SealPolicy) as SealPolicy[]).find((p) => SealPolicy[p] === s.policy);
    if (s.version !== 1 || !policy)
      throw new EnclaveError('UNSEAL_FAILED', `sealed ${label}: unknown version or policy`);
    const pt = aesGcmOpen(this.keys[policy], s.nonce, s.ciphertext, new TextEncoder().encode(label));
    if (!pt)
      throw new EnclaveError(
        'UNSEAL_FAILED',
        `sealed ${label} does not authenticate (corrupt, or sealed by another platform or enclave)`,
      );
    return pt;
  }
}

/** The file system calls writeFileAtomic makes (a parameter so a test can see the order they are made in). */
export type AtomicWriteFs = Pick<
  typeof nodeFs,
  'mkdirSync' | 'writeFileSync' | 'renameSync' | 'openSync' | 'fsyncSync' | 'closeSync'
>;

/**
 * Write-then-rename so a crash never leaves a half-written file, made durable before returning: the
 * file's data is fsynced before the rename, and the directory after it (the rename is an entry in the
 * directory; without its fsync a crash can bring back the old file, e.g. without a duty sealed in flight).
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, fs: AtomicWriteFs = nodeFs): void {
  const dir = dirname(path);
  fs.mkdirSync(dir, { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  fs.writeFileSync(tmp, data, { mode: 0o600, flush: true });
  fs.renameSync(tmp, path);
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
