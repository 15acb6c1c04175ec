// Token buckets keyed by (peer, protocol): `rate` tokens per second, up to `burst`. One token per
// request. A bucket that has refilled completely carries no information, so it is dropped when the map
// grows, which bounds memory by the number of peers actually sending faster than the rate. Buckets are
// kept across disconnects on purpose: reconnecting must not refill them.

export interface RateLimiterOptions {
  /** Tokens added per second. */
  rate: number;
  /** Bucket capacity; a new or idle peer may send this many requests at once. */
  burst: number;
  /** Above this many tracked buckets, full buckets are swept. */
  maxTracked?: number;
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly rate: number;
  private readonly burst: number;
  private readonly maxTracked: number;
  private readonly now: () => number;

  constructor(opts: RateLimiterOptions) {
    if (!(opts.rate > 0) || !(opts.burst >= 1)) throw new RangeError('rate must be > 0 and burst >= 1');
    this.rate = opts.rate;
    this.burst = opts.burst;
    this.maxTracked = opts.maxTracked ?? 4096;
    this.now = opts.now ?? (() => performance.now());
  }

  /** Takes one token for `peer` on `protocol`; false if the bucket is empty. */
  tryTake(peer: string, protocol: string): boolean {
    const key = `${peer} ${protocol}`;
    const now = this.now();
    let b = this.buckets.get(key);
    if (b === undefined) {
      if (this.buckets.size >= this.maxTracked) this.sweep(now);
      b = { tokens: this.burst, at: now };
      this.buckets.set(key, b);
    } else {
      b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.rate);
      b.at = now;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  get tracked(): number {
    return this.buckets.size;
  }

  private sweep(now: number): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.rate >= this.burst) this.buckets.delete(key);
    }
  }
}
