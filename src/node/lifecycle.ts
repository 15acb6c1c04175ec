// The one stop of a validateer: every part registers under a stage as it starts, and stop() runs the
// stages in a fixed order whatever order they started in. Inputs stop first (RPC, the network, the slot
// timer), then what they feed (the parentchain driver, the chain), then the enclave, and the store
// last, so nothing is imported or written after its owner stopped. stop() is idempotent: a second call
// gets the first call's promise.
import type { Logger } from 'pino';

export const STOP_ORDER = [
  'rpc',
  'metrics',
  'network',
  'slots',
  'provisioning',
  'finality',
  'parentchain-driver',
  'chain',
  'parentchain',
  'enclave',
  'store',
] as const;
export type Stage = (typeof STOP_ORDER)[number];

export class Lifecycle {
  private readonly parts = new Map<Stage, (() => Promise<void> | void)[]>();
  private stopping: Promise<void> | null = null;
  private readonly logger: Pick<Logger, 'error' | 'debug'>;

  constructor(logger: Pick<Logger, 'error' | 'debug'>) {
    this.logger = logger;
  }

  /** Registers what stops `stage`. After stop() began, the part is stopped at once (it started too late to be kept). */
  add(stage: Stage, stop: () => Promise<void> | void): void {
    if (this.stopping) {
      void this.stopPart(stage, stop);
      return;
    }
    const list = this.parts.get(stage) ?? [];
    list.push(stop);
    this.parts.set(stage, list);
  }

  get stopped(): boolean {
    return this.stopping !== null;
  }

  stop(): Promise<void> {
    return (this.stopping ??= this.stopAll());
  }

  private async stopAll(): Promise<void> {
    for (const stage of STOP_ORDER) {
      const list = this.parts.get(stage);
      if (!list) continue;
      for (const stop of list) await this.stopPart(stage, stop);
      this.logger.debug({ stage }, 'stopped');
    }
  }

  private async stopPart(stage: Stage, stop: () => Promise<void> | void): Promise<void> {
    try {
      await stop();
    } catch (err) {
      this.logger.error({ stage, err: err instanceof Error ? err.message : String(err) }, 'error during shutdown');
    }
  }
}
