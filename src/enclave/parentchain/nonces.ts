// This enclave's parentchain account nonce, followed from verified blocks only, and the nonce each
// payout is bound to. Every extrinsic the enclave signs names a nonce the enclave chose; a payout is
// only ever signed at its bound nonce, so all its signatures exclude each other on the chain. Once a
// verified block shows that nonce consumed, either this withdrawal's payout was included there
// (recognised from the extrinsic's own bytes, never from what the host decoded) and it is never
// signed again, or something else took the nonce and no signature of the payout can ever be
// included: only then is the binding dropped, and the payout may be bound to a new nonce.
import { Struct, Vector, bool, u32, u64 } from 'scale-ts';
import { same } from '../../protocol/bytes.ts';
import { signedPrefix } from './extrinsic-prefix.ts';

/** The nonce of in-flight records sealed by builds before nonces were bound: such a record only expires at death. */
export const UNKNOWN_NONCE = 0xffff_ffff;

export const PayoutNonce = Struct({ withdrawal: u64, nonce: u32, included: bool });
export const NonceState = Struct({
  /** The account's next nonce as the verified blocks show it: every nonce below it is consumed. */
  next: u32,
  /** Payouts signed at a nonce: bound to it until it is consumed, and marked once seen included. */
  payouts: Vector(PayoutNonce),
});
export type NonceState = ReturnType<typeof NonceState.dec>;
export const EMPTY_NONCES: NonceState = { next: 0, payouts: [] };

/** How long a nonce handed to an immortal non-duty signature is kept from others (blocks of the light client). */
const LOOSE_KEPT_BLOCKS = 256;

export class AccountNonces {
  next: number;
  private readonly payouts: Map<bigint, { nonce: number; included: boolean }>;
  /** Nonces of signed anchors and unregistrations (not sealed: a clash only costs one of them), until released. */
  private readonly loose = new Map<number, number>();
  /** Nonces offered with the last duties (not signed yet): anchors take others. */
  offered = new Set<number>();
  /** The host's reading of the next nonce at start: fresh nonces start there at least (see ParentchainInitParams). */
  floor = 0;
  private readonly account: Uint8Array;
  /** The call bytes a payout of withdrawal `w` ends with (its remark). */
  private readonly payoutTail: (w: bigint) => Uint8Array;

  constructor(state: NonceState, account: Uint8Array, payoutTail: (w: bigint) => Uint8Array) {
    this.next = state.next;
    this.payouts = new Map(state.payouts.map((p) => [p.withdrawal, { nonce: p.nonce, included: p.included }]));
    this.account = account;
    this.payoutTail = payoutTail;
  }

  get data(): NonceState {
    return {
      next: this.next,
      payouts: [...this.payouts].map(([withdrawal, p]) => ({ withdrawal, ...p })),
    };
  }

  /**
   * Reads a verified block body: each extrinsic this account signed consumes its nonce, and one that ends with the
   * payout remark of a withdrawal in `payoutsToWatch` (or bound here) is that payout's inclusion. Then bindings whose
   * nonce is consumed without their payout are dropped.
   */
  observe(extrinsics: Uint8Array[], payoutsToWatch: Iterable<bigint>, number: number): void {
    let ours = false;
    let tails: [bigint, Uint8Array][] | undefined; // built at the first extrinsic of ours, once per block
    for (const x of extrinsics) {
      const p = signedPrefix(x);
      // (u32::MAX is never signed here: it stays the unknown marker and the next nonce fits a u32)
      if (!p || !same(p.signer, this.account) || p.nonce >= UNKNOWN_NONCE) continue;
      ours = true;
      this.next = Math.max(this.next, p.nonce + 1);
      tails ??= [...new Set([...this.payouts.keys(), ...payoutsToWatch])].map((w) => [w, this.payoutTail(w)]);
      for (const [w, tail] of tails) {
        if (this.payouts.get(w)?.included || x.length < tail.length || !same(x.subarray(x.length - tail.length), tail))
          continue;
        this.payouts.set(w, { nonce: p.nonce, included: true });
      }
    }
    if (ours) for (const [w, p] of this.payouts) if (!p.included && p.nonce < this.next) this.payouts.delete(w);
    for (const [n, until] of this.loose) if (n < this.next || number >= until) this.loose.delete(n);
  }

  /** The nonce withdrawal `w`'s payout is bound to, if it was signed and that nonce is not consumed yet. */
  bound(w: bigint): number | undefined {
    const p = this.payouts.get(w);
    return p && !p.included ? p.nonce : undefined;
  }

  included(w: bigint): boolean {
    return this.payouts.get(w)?.included === true;
  }

  bind(w: bigint, nonce: number): void {
    this.payouts.set(w, { nonce, included: false });
  }

  /** A final sidechain block executed the payout's effect: the withdrawal is settled for good. */
  forget(w: bigint): void {
    this.payouts.delete(w);
  }

  /** Whether sealed records hold `nonce` for something else than `owner` (a duty key or null). */
  holder(nonce: number, inFlight: Iterable<{ duty: string; nonce: number }>, owner: string | null): string | undefined {
    for (const [w, p] of this.payouts)
      if (!p.included && p.nonce === nonce && owner !== `payout:${w}`) return `payout:${w}`;
    for (const f of inFlight) if (f.nonce === nonce && f.duty !== owner) return f.duty;
    return undefined;
  }

  /** Nonces that sealed records or recent signatures hold. */
  taken(inFlight: Iterable<{ nonce: number }>): Set<number> {
    const t = new Set<number>(this.loose.keys());
    for (const p of this.payouts.values()) if (!p.included) t.add(p.nonce);
    for (const f of inFlight) t.add(f.nonce);
    return t;
  }

  /** The lowest nonce not consumed and not in `taken`; added to `taken`. */
  fresh(taken: Set<number>): number {
    let n = Math.max(this.next, this.floor);
    while (taken.has(n)) n++;
    taken.add(n);
    return n;
  }

  /** A non-duty signature at `nonce`, includable until light client block `death` (unknown: a while). */
  signedLoose(nonce: number, death: number | undefined, number: number): void {
    this.loose.set(nonce, death ?? number + LOOSE_KEPT_BLOCKS);
  }
}
