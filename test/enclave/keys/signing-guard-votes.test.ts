// The signing guard's finality-vote record as a malicious host would attack it: a sealed write it makes fail, and the
// guard file put back alone after a vote. Each test drives SigningGuard as the enclave does (signVote, then the view
// written again with the guard's copy, as Finality.vote does through ParentchainView.sealGuardCopy).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SigningGuard } from '../../../src/enclave/keys/signing-guard.ts';
import { Sealer } from '../../../src/enclave/keys/sealing.ts';
import { computeMeasurement } from '../../../src/enclave/keys/measurement.ts';
import { codeOf } from '../../helpers/errors.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function dataDir(): { dir: string; sealer: Sealer; guardPath: string; viewPath: string } {
  const dir = mkdtempSync(join(tmpdir(), 'validateer-guard-votes-'));
  dirs.push(dir);
  const sealer = Sealer.simulated(dir, computeMeasurement());
  return {
    dir,
    sealer,
    guardPath: join(dir, 'enclave', 'signing-guard.sealed'),
    viewPath: join(dir, 'enclave', 'parentchain.sealed'),
  };
}
const hash = (b: number) => new Uint8Array(32).fill(b);
const VIEW = Uint8Array.of(1, 2, 3);

test('a sealed write that fails leaves the vote unrecorded: asked again, the guard seals it before allowing it', () => {
  const { dir, sealer, guardPath } = dataDir();
  const guard = SigningGuard.open(dir, sealer);
  guard.signVote(10n, hash(1));
  // The host makes the next write fail: a directory where the sealed file is renamed to.
  rmSync(guardPath);
  mkdirSync(guardPath);
  assert.throws(() => guard.signVote(20n, hash(2)));
  assert.equal(guard.lastVote()?.number, 10, 'the failed vote is not taken as recorded');
  rmSync(guardPath, { recursive: true });
  guard.signVote(20n, hash(2)); // now written: the signature may leave
  const reopened = SigningGuard.open(dir, sealer);
  assert.equal(reopened.lastVote()?.number, 20, 'on disk before the signature could be made');
  assert.equal(
    codeOf(() => reopened.checkVote(20n, hash(3))),
    'VOTE_ALREADY_SIGNED',
  );
});

test("a guard put back alone to before a vote is detected by the view's copy; the vote's number stays refused", () => {
  const { dir, sealer, guardPath, viewPath } = dataDir();
  const guard = SigningGuard.open(dir, sealer);
  guard.writeView(viewPath, VIEW, 1);
  const before = join(dir, 'guard-before-vote');
  copyFileSync(guardPath, before);
  guard.signVote(10n, hash(1));
  guard.writeView(viewPath, VIEW, 1); // what the enclave does after each vote (sealGuardCopy)
  copyFileSync(before, guardPath); // the host puts the guard back alone
  const reopened = SigningGuard.open(dir, sealer);
  assert.equal(reopened.lastVote(), null, 'the put-back file has no vote');
  reopened.readView(viewPath);
  assert.equal(reopened.status().rollbacks, 1, 'detected');
  assert.equal(reopened.lastVote()?.number, 10, "restored from the view's copy");
  assert.equal(
    codeOf(() => reopened.checkVote(10n, hash(2))),
    'VOTE_ALREADY_SIGNED',
  );
  assert.equal(
    codeOf(() => reopened.checkVote(9n, hash(1))),
    'VOTE_ALREADY_SIGNED',
  );
});

test("the view's copy and the guard naming two hashes at one number is a rollback", () => {
  const { dir, sealer, guardPath, viewPath } = dataDir();
  const guard = SigningGuard.open(dir, sealer);
  const empty = join(dir, 'guard-empty');
  guard.writeView(viewPath, VIEW, 1);
  copyFileSync(guardPath, empty);
  guard.signVote(10n, hash(1));
  guard.writeView(viewPath, VIEW, 1);
  const viewWithVote = join(dir, 'view-with-vote');
  copyFileSync(viewPath, viewWithVote);
  // The host puts back the empty guard, gets a vote for another hash at 10 sealed into it (no view read between),
  // then shows the enclave the view that carries the first vote.
  copyFileSync(empty, guardPath);
  const second = SigningGuard.open(dir, sealer);
  second.signVote(10n, hash(2));
  copyFileSync(viewWithVote, viewPath);
  const third = SigningGuard.open(dir, sealer);
  third.readView(viewPath);
  assert.ok(third.status().rollbacks >= 1, 'two hashes at one number: a rollback is counted');
});

test('a record sealed by the previous release (version 1, no votes) opens: its slots stay refused, no vote is recorded', () => {
  const { dir, sealer, guardPath } = dataDir();
  // version 1 | blockSlot u64 | viewSeq u64 | viewHead, dutiesLiveUntil, rollbacks, dutiesRefusedUntil: u32 each
  const v1 = new Uint8Array(1 + 8 + 8 + 4 * 4);
  const view = new DataView(v1.buffer);
  v1[0] = 1;
  view.setBigUint64(1, 42n, true);
  mkdirSync(join(dir, 'enclave'), { recursive: true });
  writeFileSync(guardPath, sealer.seal('signer', 'signing-guard', v1));
  const guard = SigningGuard.open(dir, sealer);
  assert.equal(guard.lastVote(), null);
  assert.equal(
    codeOf(() => guard.checkBlock(41n)),
    'SLOT_ALREADY_SIGNED',
  );
  guard.checkBlock(42n);
  guard.signVote(10n, hash(1));
  assert.equal(SigningGuard.open(dir, sealer).lastVote()?.number, 10, 'written back as version 2');
});
