// Three members' FinalityVoting wired together in memory: votes gossiped to whoever is online, anchors checked by a
// registry fake (only one extending the last anchor lands) and seen by each member once it processes the next
// parentchain block. Anchors keep landing with one member away, one fee each; with two away none lands, and finality
// resumes when they return.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VotePayload } from '../../src/protocol/finality.ts';
import { same } from '../../src/protocol/bytes.ts';
import { ZERO, harness, type Harness } from './finality-fakes.ts';

class SetOfThree {
  readonly nodes: Harness[];
  readonly online = [true, true, true];
  /** Anchors the registry accepted, in order; and every submission by number (one fee each). */
  readonly anchors: number[] = [];
  readonly fees: number[] = [];
  readonly submitters: number[] = [];
  private last: { number: number; hash: Uint8Array } | null = null;
  private processed = 10;

  constructor() {
    this.nodes = [0, 1, 2].map((i) => harness({ voteRetryMs: 50 }, undefined, i, (bytes) => this.deliver(i, bytes)));
    for (const [i, n] of this.nodes.entries())
      n.pc.submitAnchor = async (number, call) => {
        this.fees.push(number);
        this.submitters.push(i);
        this.registry(VotePayload.dec(call.callData));
        return true;
      };
  }

  private async deliver(from: number, bytes: Uint8Array): Promise<void> {
    if (!this.online[from]) return;
    await Promise.all(this.nodes.filter((_, i) => i !== from && this.online[i]).map((n) => n.fv.onGossip(bytes)));
  }

  /** Accepts only an anchor extending the last one (the enclave already checked its votes). */
  private registry(p: VotePayload): void {
    const ok = this.last
      ? p.number > BigInt(this.last.number) && same(p.previousAnchor, this.last.hash)
      : same(p.previousAnchor, ZERO);
    if (!ok) return;
    this.last = { number: Number(p.number), hash: p.hash };
    this.anchors.push(this.last.number);
  }

  /** Online members' chains grow to `head`; a returning member catches up at once. */
  grow(head: number): void {
    for (const [i, n] of this.nodes.entries()) if (this.online[i]) n.chain.extend(head);
  }

  /** One parentchain block later: online members see the registry's last anchor; then every online member steps. */
  async tick(): Promise<void> {
    this.processed++;
    for (const [i, n] of this.nodes.entries()) {
      if (!this.online[i]) continue;
      n.pc.processedNumber = this.processed;
      n.pc.lastAnchor = this.last;
      n.fv.kick();
    }
    for (let k = 0; k < 3; k++) for (const n of this.nodes) await n.fv.settled();
    await new Promise((r) => setTimeout(r, 20));
  }

  /** Ticks until `cond` holds; fails after `ms`. */
  async until(cond: () => boolean, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`not met in time; anchors ${this.anchors.join(',')}`);
      await this.tick();
    }
  }
}

const once = (fees: number[]) => new Set(fees).size === fees.length;

test('all three online: one anchor per round, submitted once, by the anchored block’s author', async () => {
  const set = new SetOfThree();
  for (const head of [25, 35, 45]) {
    set.grow(head);
    await set.until(() => set.anchors.at(-1) === head - 5);
  }
  assert.deepEqual(set.anchors, [20, 30, 40]);
  assert.deepEqual(set.fees, [20, 30, 40]);
  assert.deepEqual(set.submitters, [2, 0, 1], 'block n was authored by member n % 3');
});

test('finality advances with one member away, waits with two away, and resumes when they return', async () => {
  const set = new SetOfThree();
  set.online[2] = false; // member 2 authored block 20: the fallback (member 0) submits after its turn
  set.grow(25);
  await set.until(() => set.anchors.length === 1);
  set.grow(35);
  await set.until(() => set.anchors.length === 2);
  assert.deepEqual(set.anchors, [20, 30]);
  assert.equal(set.submitters[0], 0, 'the fallback submitted block 20 for its absent author');
  assert.ok(once(set.fees), `one fee per anchor: ${set.fees.join(',')}`);

  set.online[1] = false; // a majority away
  set.grow(45);
  for (let i = 0; i < 20; i++) await set.tick(); // every submitter's turn and several vote retries pass
  assert.deepEqual(set.anchors, [20, 30]);

  set.online[1] = set.online[2] = true;
  set.grow(55);
  await set.until(() => set.anchors.length === 3);
  assert.ok(set.anchors[2] >= 40, `resumed at ${set.anchors[2]}`);
  assert.ok(once(set.fees), `one fee per anchor: ${set.fees.join(',')}`);
});
