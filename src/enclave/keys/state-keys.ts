// The state keys in the forms the enclave uses them: as key objects (decrypting blocks) and as the
// keys forwarded calls are sealed under, both cached; new keys are sealed to disk before use.
import { createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { same } from '../../protocol/bytes.ts';
import type { KeyRotation } from '../../protocol/block.ts';
import { EnclaveError } from '../boundary/errors.ts';
import { forwardKey } from '../calls/forwarding.ts';
import { addStateKeys } from './keys.ts';
import { openRotation } from './rotation.ts';
import type { EnclaveContext } from '../context.ts';

export class StateKeyring {
  private readonly ctx: EnclaveContext;
  /** Preparing a raw key for every block costs more than the decryption of a small one. */
  private readonly keyObjects = new Map<number, KeyObject>();
  private readonly forwardKeys = new Map<number, Uint8Array>();

  constructor(ctx: EnclaveContext) {
    this.ctx = ctx;
  }

  keyObject(id: number): KeyObject | undefined {
    let k = this.keyObjects.get(id);
    const raw = this.ctx.keys.stateKeys.get(id);
    if (!k && raw) this.keyObjects.set(id, (k = createSecretKey(raw)));
    return k;
  }

  forwardKey(id: number): Uint8Array | undefined {
    let k = this.forwardKeys.get(id);
    const stateKey = this.ctx.keys.stateKeys.get(id);
    if (!k && stateKey) this.forwardKeys.set(id, (k = forwardKey(stateKey)));
    return k;
  }

  /** An id no state key of this enclave has (0 and 1 are never used). */
  freshId(): number {
    for (;;) {
      const id = randomBytes(4).readUInt32LE(0);
      if (id > 1 && !this.ctx.keys.stateKeys.has(id)) return id;
    }
  }

  /** Seals `keys` to disk with the others (and `current` as the current one, if given). */
  add(keys: { id: number; key: Uint8Array }[], current?: number): void {
    this.ctx.keys = addStateKeys(this.ctx.opts.dataDir, this.ctx.sealer, this.ctx.keys, keys, current);
  }

  /** A block's new key: known already (a provisioned epoch) or opened from this enclave's copy, then sealed to disk. */
  learn(r: KeyRotation, number: bigint): void {
    const keys = this.ctx.keys;
    const own = { signingKey: keys.signingPublic, secretKey: keys.encryptionSecret, publicKey: keys.encryptionPublic };
    const key = openRotation(r, this.ctx.opts.shard, number, own);
    const known = keys.stateKeys.get(r.keyId);
    if (known && key && !same(known, key)) {
      throw new EnclaveError(
        'BLOCK_BAD_ROTATION',
        `block ${number}: state key ${r.keyId} differs from the one this enclave holds`,
      );
    }
    if (known) return;
    if (!key)
      throw new EnclaveError(
        'STATE_KEY_UNKNOWN',
        `block ${number} begins state key epoch ${r.keyId}, which is not sealed to this enclave`,
      );
    this.add([{ id: r.keyId, key }], r.keyId);
  }

  /** Forgets the derived keys: the shard secrets were replaced. */
  clear(): void {
    this.forwardKeys.clear();
    this.keyObjects.clear();
  }
}
