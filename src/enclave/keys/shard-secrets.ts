// The shard secrets changing hands: whether this enclave holds them, and both sides of provisioning
// (provisioning.ts) with the enclave's state around it: who counts as a member, and what must start
// over with the new shielding key once a requester installs the shard's secrets.
import { same } from '../../protocol/bytes.ts';
import { codeOf } from '../../protocol/errors.ts';
import { EnclaveError } from '../boundary/errors.ts';
import { CallVerifier } from '../calls/call-verifier.ts';
import { CryptoThreads } from '../calls/crypto-threads.ts';
import { currentEpoch, type EnclaveContext } from '../context.ts';
import type { ChainHead } from '../chain/head.ts';
import { installShardSecrets, shardSecretsOf } from './keys.ts';
import { ProvisionRefusal, Provisioning, type AttestationPolicy } from './provisioning.ts';
import type { StateKeyring } from './state-keys.ts';

/** verification: the other side's quote check ('ok', a refusal code, or null when not reached). */
export type ProvisionOutcome<T> =
  | ({ ok: true } & T & { verification: string | null })
  | { ok: false; code: string; message: string; verification: string | null };

export interface ShardSecretsDeps {
  ctx: EnclaveContext;
  head: ChainHead;
  keyring: StateKeyring;
  policy: AttestationPolicy;
  /** The shielding key as the registry reads it: swapped in place when the shard's is installed. */
  shielding: { secretKey: Uint8Array; publicKey: Uint8Array };
  quote: (userData: Uint8Array) => Uint8Array;
}

export class ShardSecretsExchange {
  private readonly ctx: EnclaveContext;
  private readonly head: ChainHead;
  private readonly keyring: StateKeyring;
  private readonly shielding: { secretKey: Uint8Array; publicKey: Uint8Array };
  private readonly provisioning: Provisioning;
  private lastVerification: string | null = null;

  constructor(deps: ShardSecretsDeps) {
    this.ctx = deps.ctx;
    this.head = deps.head;
    this.keyring = deps.keyring;
    this.shielding = deps.shielding;
    const ctx = deps.ctx;
    this.provisioning = new Provisioning({
      shard: ctx.opts.shard,
      signingKey: ctx.keys.signingPublic,
      policy: deps.policy,
      quote: deps.quote,
      memberMeasurement: (k) => {
        const pc = ctx.parentchain;
        return pc?.registry.activeAt(pc.lightClient.number).find((m) => same(m.signingKey, k))?.measurement;
      },
      onVerification: (result) => {
        this.lastVerification = result;
      },
    });
  }

  /** Whether this enclave holds the shard's secrets: provisioned, dev-derived, or made by the shard's first member. */
  holds(): boolean {
    if (this.ctx.keys.secretsOrigin !== 'generated') return true;
    const first = this.head.genesisAuthor();
    return first !== undefined && same(first, this.ctx.keys.signingPublic);
  }

  request(nowMs: number): Uint8Array {
    return this.provisioning.request(nowMs);
  }

  /**
   * Provider side; a refusal is a result (with the quote check's outcome), not an error, so the host can count both.
   */
  serve(request: Uint8Array, nowMs: number): ProvisionOutcome<{ response: Uint8Array }> {
    return this.step(() => {
      if (!this.holds())
        throw new EnclaveError(ProvisionRefusal.NOT_READY, 'this enclave does not hold the shard secrets yet');
      return { response: this.provisioning.serve(request, shardSecretsOf(this.ctx.keys), nowMs) };
    });
  }

  /**
   * Requester side: checks the answer, then seals and installs the shard secrets (before any block was
   * imported). An enclave that holds them already asks again for an epoch's key it missed (a rotation
   * sealed before its registration counted): only state keys it lacks are added.
   */
  async accept(
    request: Uint8Array,
    response: Uint8Array,
    nowMs: number,
  ): Promise<ProvisionOutcome<{ stateKeyId: number }>> {
    const r = this.step(() => this.provisioning.accept(request, response, nowMs));
    if (!r.ok) return r;
    const ctx = this.ctx;
    const { shieldingKeyId, shieldingSecret, stateKeys, currentStateKeyId } = r;
    if (this.head.current || this.holds()) {
      if (!same(shieldingSecret, ctx.keys.shieldingSecret)) {
        return {
          ok: false,
          code: 'PROVISION_HAS_CHAIN',
          message: "other shard secrets than the ones this enclave's chain uses",
          verification: r.verification,
        };
      }
      const missing = stateKeys.filter((k) => !ctx.keys.stateKeys.has(k.id));
      if (missing.length > 0) this.keyring.add(missing);
      return { ok: true, stateKeyId: currentEpoch(ctx).keyId, verification: r.verification };
    }
    const secrets = { shieldingKeyId, shieldingSecret, stateKeys, currentStateKeyId };
    ctx.keys = installShardSecrets(
      ctx.opts.dataDir,
      ctx.sealer,
      ctx.keys,
      secrets,
      ctx.parentchain?.lightClient.number ?? 0,
    );
    await this.restartWithShieldingKey();
    return { ok: true, stateKeyId: ctx.keys.currentStateKeyId, verification: r.verification };
  }

  /** Everything that holds a shard key starts over with the new ones. */
  private async restartWithShieldingKey(): Promise<void> {
    const ctx = this.ctx;
    const key = {
      keyId: ctx.keys.shieldingKeyId,
      secret: ctx.keys.shieldingSecret,
      publicKey: ctx.keys.shieldingPublic,
    };
    await ctx.crypto.close();
    ctx.crypto = new CryptoThreads(key, ctx.opts.workers, ctx.opts.workerNice);
    ctx.localVerifier = new CallVerifier(key);
    this.shielding.secretKey = ctx.keys.shieldingSecret;
    this.shielding.publicKey = ctx.keys.shieldingPublic;
    this.keyring.clear();
  }

  private step<T extends object>(fn: () => T): ProvisionOutcome<T> {
    this.lastVerification = null;
    try {
      return { ok: true, ...fn(), verification: this.lastVerification };
    } catch (err) {
      const code = codeOf(err);
      if (code === undefined || !code.startsWith('PROVISION_')) throw err;
      return { ok: false, code, message: (err as Error).message, verification: this.lastVerification };
    }
  }
}
