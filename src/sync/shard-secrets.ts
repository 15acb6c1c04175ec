// Getting the shard secrets into this validateer's enclave. The shard's first member made them; every
// other validateer registers, then asks a registered member over /validateer/provision/1 (attested
// and end to end between the enclaves), and serves them to later members once it holds them. Until
// then the node neither imports nor authors: it could not decrypt a block.
import { ValidateerError, codeOf, hasCode } from '../protocol/errors.ts';
import type { Enclave } from '../enclave/boundary/host.ts';
import type { Network } from '../p2p/network.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { Logger } from 'pino';
import { hexKey } from '../protocol/bytes.ts';
import { isActiveAt } from '../protocol/membership.ts';

export interface ShardSecretsDeps {
  enclave: Enclave;
  network: Network;
  metrics: Metrics;
  logger: Logger;
  signingKey: Uint8Array;
}

type Outcome =
  { ok: true; verification: string | null } | { ok: false; code: string; message: string; verification: string | null };

const RETRY_MS = 1000;
/** At most one new request for missed epoch keys per this interval. */
const REFRESH_MS = 2000;

export class ShardSecrets {
  private readonly deps: ShardSecretsDeps;
  private stopped = false;
  private wake: (() => void) | null = null;
  private refreshing: Promise<boolean> | null = null;
  private lastRefreshMs = -Infinity;

  constructor(deps: ShardSecretsDeps) {
    this.deps = deps;
  }

  /** Provider: the sealed secrets for a peer's request, or a refusal carrying its PROVISION_* code. */
  async serve(request: Uint8Array, from: string): Promise<Uint8Array> {
    const r = await this.deps.enclave.call('provisionServe', { request });
    this.count('provider', r);
    if (r.ok) {
      this.deps.logger.info({ peer: from }, 'shard secrets provisioned to a member');
      return r.response;
    }
    this.deps.logger.warn({ peer: from, code: r.code, reason: r.message }, 'provisioning refused');
    // The requester sees the enclave's code and reason; p2p/ only knows that this is a refusal.
    throw new ValidateerError('P2P_REFUSED', `${r.code}: ${r.message}`);
  }

  /**
   * Requester: resolves once the enclave holds the shard secrets, asking the registered members this
   * node is connected to in turn; false if stopped first.
   */
  async ensure(): Promise<boolean> {
    let waiting = false;
    while (!this.stopped) {
      const info = await this.deps.enclave.call('info', {});
      if (info.holdsShardSecrets) return true;
      if (!waiting) {
        waiting = true;
        this.deps.logger.info(
          {},
          'waiting for the shard secrets: registration on the parentchain, then provisioning from a member',
        );
      }
      if (await this.tryMembers()) return true;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, RETRY_MS);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
    return false;
  }

  /**
   * Asks a member again for the shard's keys (only missing epoch keys are installed): a rotation was
   * sealed before this enclave's registration counted. One request at a time, at most every 2 s.
   */
  refresh(): Promise<boolean> {
    if (this.refreshing) return this.refreshing;
    const wait = Math.max(0, this.lastRefreshMs + REFRESH_MS - performance.now());
    this.refreshing = new Promise<void>((r) => setTimeout(r, wait))
      .then(async () => {
        this.lastRefreshMs = performance.now();
        this.deps.logger.info(
          {},
          'a block uses a state key not sealed to this enclave: asking a member for the shard keys again',
        );
        return this.stopped ? false : this.tryMembers();
      })
      .finally(() => {
        this.refreshing = null;
      });
    return this.refreshing;
  }

  private async tryMembers(): Promise<boolean> {
    const pc = await this.deps.enclave.call('parentchainInfo', {});
    const active = pc.members.filter((m) => isActiveAt(m, pc.number));
    const me = hexKey(this.deps.signingKey);
    // our registration is not final yet: nobody would answer
    if (!active.some((m) => hexKey(m.signingKey) === me)) return false;
    const connected = new Set(this.deps.network.connectedPeers());
    for (const m of active) {
      if (hexKey(m.signingKey) === me || !connected.has(m.peerId) || this.stopped) continue;
      try {
        const { request } = await this.deps.enclave.call('provisionRequest', {});
        const response = await this.deps.network.requestProvision(m.peerId, request);
        const r = await this.deps.enclave.call('provisionAccept', { request, response });
        this.count('requester', r);
        if (r.ok) {
          this.deps.logger.info({ provider: m.peerId, stateKeyId: r.stateKeyId }, 'shard secrets received');
          return true;
        }
        this.deps.logger.warn({ provider: m.peerId, code: r.code, reason: r.message }, 'provisioning answer refused');
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        // The provider's refusal code travels in the reason text of P2P_REFUSED.
        const refused = hasCode(err, 'P2P_REFUSED') ? /PROVISION_[A-Z_]+/.exec(message)?.[0] : undefined;
        const code = refused ?? codeOf(err);
        this.deps.metrics.provisioning.inc({ role: 'requester', result: code ?? 'error' });
        this.deps.logger.warn({ provider: m.peerId, code, err: message }, 'provisioning request failed');
      }
    }
    return false;
  }

  private count(role: 'provider' | 'requester', r: Outcome): void {
    this.deps.metrics.provisioning.inc({ role, result: r.ok ? 'ok' : r.code });
    if (r.verification) this.deps.metrics.attestationVerifications.inc({ result: r.verification });
  }

  stop(): void {
    this.stopped = true;
    this.wake?.();
  }
}
