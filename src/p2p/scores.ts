// Application-level peer scores: penalties for bad blocks/calls decay back towards zero; at or below
// the threshold the peer is banned for a cool-down (the connection gater refuses it meanwhile). This is
// separate from gossipsub's own score, which also sees it (as the app-specific component P5).

export interface AppScoreOptions {
  /** Score at or below which a peer is banned. */
  banThreshold: number;
  banMs: number;
  /** Penalties halve every halfLifeMs, so occasional mistakes are forgiven. */
  halfLifeMs: number;
  /** Above this many tracked peers, entries that decayed to ~0 are dropped. */
  maxTracked?: number;
  now?: () => number;
}

interface Entry {
  score: number;
  at: number;
  bannedUntil: number;
}

export class AppScores {
  private readonly entries = new Map<string, Entry>();
  private readonly opts: Required<AppScoreOptions>;

  constructor(opts: AppScoreOptions) {
    this.opts = { maxTracked: 4096, now: () => Date.now(), ...opts };
  }

  /** Lowers the peer's score by `points`; returns true when this penalty banned it. */
  penalize(peer: string, points: number): boolean {
    const now = this.opts.now();
    const e = this.entry(peer, now);
    if (e.bannedUntil > now) return false;
    e.score -= points;
    if (e.score > this.opts.banThreshold) return false;
    // A served ban wipes the slate: after the cool-down the peer starts from zero.
    e.score = 0;
    e.bannedUntil = now + this.opts.banMs;
    return true;
  }

  score(peer: string): number {
    const e = this.entries.get(peer);
    return e === undefined ? 0 : this.decayed(e, this.opts.now());
  }

  isBanned(peer: string): boolean {
    const e = this.entries.get(peer);
    return e !== undefined && e.bannedUntil > this.opts.now();
  }

  private entry(peer: string, now: number): Entry {
    let e = this.entries.get(peer);
    if (e === undefined) {
      if (this.entries.size >= this.opts.maxTracked) this.sweep(now);
      e = { score: 0, at: now, bannedUntil: 0 };
      this.entries.set(peer, e);
    } else {
      e.score = this.decayed(e, now);
      e.at = now;
    }
    return e;
  }

  private decayed(e: Entry, now: number): number {
    return e.score * 0.5 ** ((now - e.at) / this.opts.halfLifeMs);
  }

  private sweep(now: number): void {
    for (const [peer, e] of this.entries) {
      if (e.bannedUntil <= now && Math.abs(this.decayed(e, now)) < 0.5) this.entries.delete(peer);
    }
  }
}
