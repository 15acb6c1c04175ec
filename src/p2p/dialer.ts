// Keeps the bootstrap peers and the registered validateer set connected: dials every target that is
// not connected, retries with exponential backoff and jitter, and skips peers the gater refuses
// (blocked or banned) until they are allowed again. A periodic sweep catches anything an event missed,
// such as a ban running out.
import { peerIdFromString } from '@libp2p/peer-id';
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr';
import type { Logger } from 'pino';

export interface DialerOptions {
  selfId: string;
  dial(addrs: Multiaddr[]): Promise<void>;
  isConnected(peer: string): boolean;
  isDenied(peer: string): boolean;
  logger: Logger;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** A connection that lasted this long resets the backoff when it drops. */
  stableMs?: number;
  sweepMs?: number;
}

interface DialState {
  attempt: number;
  timer?: NodeJS.Timeout;
  dialing: boolean;
  connectedAt?: number;
}

export class Dialer {
  private readonly opts: Required<DialerOptions>;
  private bootstrap = new Map<string, Multiaddr[]>();
  private registered = new Map<string, Multiaddr[]>();
  private readonly state = new Map<string, DialState>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(opts: DialerOptions) {
    this.opts = { minBackoffMs: 500, maxBackoffMs: 30_000, stableMs: 10_000, sweepMs: 5_000, ...opts };
  }

  setBootstrap(addrs: string[]): void {
    this.bootstrap = this.parse(addrs, 'bootstrap');
    this.reconcile();
  }

  /**
   * Replaces the registered set; peers no longer in it are no longer redialled (but not disconnected).
   * Returns the peer ids of the new set.
   */
  setPeers(addrs: string[]): string[] {
    this.registered = this.parse(addrs, 'registered');
    this.reconcile();
    return [...this.registered.keys()];
  }

  targets(): string[] {
    return [...new Set([...this.bootstrap.keys(), ...this.registered.keys()])];
  }

  start(): void {
    this.running = true;
    this.sweepTimer = setInterval(() => this.reconcile(), this.opts.sweepMs);
    this.sweepTimer.unref();
    this.reconcile();
  }

  stop(): void {
    this.running = false;
    clearInterval(this.sweepTimer);
    for (const s of this.state.values()) clearTimeout(s.timer);
    this.state.clear();
  }

  /** Forget backoff and dial now: after a partition heals (setBlocked([])) nobody should wait 30 s. */
  wake(): void {
    for (const s of this.state.values()) {
      clearTimeout(s.timer);
      s.timer = undefined;
      s.attempt = 0;
    }
    this.reconcile();
  }

  onConnect(peer: string): void {
    const s = this.state.get(peer);
    if (s === undefined) return;
    clearTimeout(s.timer);
    s.timer = undefined;
    s.connectedAt = Date.now();
  }

  onDisconnect(peer: string): void {
    const s = this.state.get(peer);
    if (s === undefined || !this.running) return;
    // A connection that dropped right away (flapping) keeps backing off; a long-lived one starts over.
    if (s.connectedAt !== undefined && Date.now() - s.connectedAt >= this.opts.stableMs) s.attempt = 0;
    s.connectedAt = undefined;
    this.schedule(peer, s);
  }

  private parse(addrs: string[], what: string): Map<string, Multiaddr[]> {
    const byPeer = new Map<string, Multiaddr[]>();
    for (const addr of addrs) {
      let ma: Multiaddr;
      let peer: string | undefined;
      try {
        ma = multiaddr(addr);
        peer = ma.getComponents().find((c) => c.name === 'p2p')?.value;
        if (peer !== undefined) peerIdFromString(peer);
      } catch (err) {
        this.opts.logger.warn({ addr, err: (err as Error).message }, `ignoring unparsable ${what} address`);
        continue;
      }
      if (peer === undefined) {
        this.opts.logger.warn({ addr }, `ignoring ${what} address without /p2p/<peer id>`);
        continue;
      }
      if (peer === this.opts.selfId) continue;
      byPeer.set(peer, [...(byPeer.get(peer) ?? []), ma]);
    }
    return byPeer;
  }

  private reconcile(): void {
    const targets = new Set(this.targets());
    for (const [peer, s] of this.state) {
      if (!targets.has(peer)) {
        clearTimeout(s.timer);
        this.state.delete(peer);
      }
    }
    if (!this.running) return;
    for (const peer of targets) {
      let s = this.state.get(peer);
      if (s === undefined) {
        s = { attempt: 0, dialing: false };
        this.state.set(peer, s);
      }
      if (s.timer === undefined && !s.dialing) void this.dialNow(peer, s);
    }
  }

  private async dialNow(peer: string, s: DialState): Promise<void> {
    if (!this.running || this.opts.isConnected(peer) || this.opts.isDenied(peer)) return;
    const addrs = this.registered.get(peer) ?? this.bootstrap.get(peer);
    if (addrs === undefined) return;
    s.dialing = true;
    try {
      await this.opts.dial(addrs);
    } catch (err) {
      this.opts.logger.debug({ peer, attempt: s.attempt, err: (err as Error).message }, 'dial failed');
      if (this.state.get(peer) === s) this.schedule(peer, s);
    } finally {
      s.dialing = false;
    }
  }

  private schedule(peer: string, s: DialState): void {
    if (!this.running || s.timer !== undefined) return;
    const base = Math.min(this.opts.maxBackoffMs, this.opts.minBackoffMs * 2 ** s.attempt);
    s.attempt = Math.min(s.attempt + 1, 30);
    const delay = Math.round(base * (0.8 + 0.4 * Math.random()));
    s.timer = setTimeout(() => {
      s.timer = undefined;
      void this.dialNow(peer, s);
    }, delay);
    s.timer.unref();
  }
}
