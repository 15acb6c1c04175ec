import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  DEV_AUTHORITY_PUBLIC,
  Quote,
  simulatedProvider,
  verifySimulatedQuote,
  type VerifyPolicy,
} from '../../../src/enclave/keys/attestation.ts';
import { computeMeasurement, enclaveSources } from '../../../src/enclave/keys/measurement.ts';
import { ed25519PublicFromSeed } from '../../../src/crypto/primitives.ts';
import { SIM_SIGNER_ID } from '../../../src/enclave/keys/sealing.ts';
import { codeOf } from '../../helpers/errors.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const measurement = new Uint8Array(randomBytes(32));
const reportData = new Uint8Array(randomBytes(64));
const trusted: VerifyPolicy = { trustedAuthorities: [DEV_AUTHORITY_PUBLIC] };

test('simulated quote verifies with DEV_AUTHORITY_PUBLIC trusted and returns its fields', () => {
  const before = Date.now();
  const q = simulatedProvider(measurement, SIM_SIGNER_ID).quote(reportData);
  const v = verifySimulatedQuote(q, trusted);
  assert.deepEqual(v.measurement, measurement);
  assert.deepEqual(v.signer, SIM_SIGNER_ID);
  assert.deepEqual(v.reportData, reportData);
  assert.ok(Number(v.timestampMs) >= before && Number(v.timestampMs) <= Date.now());
  assert.equal(simulatedProvider(measurement, SIM_SIGNER_ID).kind, 'simulated');
  // allowed measurement list containing it passes
  assert.doesNotThrow(() =>
    verifySimulatedQuote(q, { ...trusted, allowedMeasurements: [new Uint8Array(32), measurement] }),
  );
});

test('quote fails with QUOTE_UNTRUSTED_AUTHORITY when the authority is not trusted', () => {
  const q = simulatedProvider(measurement, SIM_SIGNER_ID).quote(reportData);
  assert.equal(
    codeOf(() => verifySimulatedQuote(q, { trustedAuthorities: [] })),
    'QUOTE_UNTRUSTED_AUTHORITY',
  );
  assert.equal(
    codeOf(() => verifySimulatedQuote(q, { trustedAuthorities: [new Uint8Array(randomBytes(32))] })),
    'QUOTE_UNTRUSTED_AUTHORITY',
  );
  // a quote from another authority is not accepted by a verifier trusting only the dev authority
  const otherSeed = new Uint8Array(randomBytes(32));
  const q2 = simulatedProvider(measurement, SIM_SIGNER_ID, otherSeed).quote(reportData);
  assert.equal(
    codeOf(() => verifySimulatedQuote(q2, trusted)),
    'QUOTE_UNTRUSTED_AUTHORITY',
  );
  assert.doesNotThrow(() => verifySimulatedQuote(q2, { trustedAuthorities: [ed25519PublicFromSeed(otherSeed)] }));
});

test('a quote re-labelled with a trusted authority but signed by another key fails QUOTE_BAD_SIGNATURE', () => {
  const otherSeed = new Uint8Array(randomBytes(32));
  const q = Quote.dec(simulatedProvider(measurement, SIM_SIGNER_ID, otherSeed).quote(reportData));
  const forged = Quote.enc({ ...q, authority: DEV_AUTHORITY_PUBLIC });
  assert.equal(
    codeOf(() => verifySimulatedQuote(forged, trusted)),
    'QUOTE_BAD_SIGNATURE',
  );
});

test('any flipped byte in the quote makes verification fail', () => {
  const q = simulatedProvider(measurement, SIM_SIGNER_ID).quote(reportData);
  const decoded = Quote.dec(q);
  assert.equal(q.length, 1 + 32 + 32 + 64 + 8 + 32 + 64);
  // field offsets in the SCALE encoding
  const ranges: [string, number, number][] = [
    ['version', 0, 1],
    ['measurement', 1, 33],
    ['signer', 33, 65],
    ['reportData', 65, 129],
    ['timestampMs', 129, 137],
    ['authority', 137, 169],
    ['signature', 169, 233],
  ];
  assert.deepEqual(q.subarray(1, 33), decoded.measurement);
  assert.deepEqual(q.subarray(65, 129), decoded.reportData);
  assert.deepEqual(q.subarray(169, 233), decoded.signature);
  for (const [field, start, end] of ranges) {
    for (let i = start; i < end; i++) {
      for (const bit of [0x01, 0x80]) {
        const bad = new Uint8Array(q);
        bad[i] ^= bit;
        const code = codeOf(() => verifySimulatedQuote(bad, trusted));
        const expected =
          field === 'authority' ? ['QUOTE_UNTRUSTED_AUTHORITY'] : ['QUOTE_BAD_SIGNATURE', 'QUOTE_MALFORMED'];
        assert.ok(code !== undefined && expected.includes(code), `${field} byte ${i} bit ${bit}: got ${code}`);
      }
    }
  }
  // measurement / reportData / signature flips specifically fail the signature check
  for (const i of [1, 32, 65, 128, 169, 232]) {
    const bad = new Uint8Array(q);
    bad[i] ^= 0xff;
    assert.equal(
      codeOf(() => verifySimulatedQuote(bad, trusted)),
      'QUOTE_BAD_SIGNATURE',
      `byte ${i}`,
    );
  }
});

test('malformed quotes (truncated, extended, wrong version) fail with QUOTE_MALFORMED', () => {
  const q = simulatedProvider(measurement, SIM_SIGNER_ID).quote(reportData);
  assert.equal(
    codeOf(() => verifySimulatedQuote(q.subarray(0, q.length - 1), trusted)),
    'QUOTE_MALFORMED',
  );
  assert.equal(
    codeOf(() => verifySimulatedQuote(new Uint8Array([...q, 0]), trusted)),
    'QUOTE_MALFORMED',
  );
  assert.equal(
    codeOf(() => verifySimulatedQuote(new Uint8Array(0), trusted)),
    'QUOTE_MALFORMED',
  );
  const v2 = new Uint8Array(q);
  v2[0] = 2;
  assert.equal(
    codeOf(() => verifySimulatedQuote(v2, trusted)),
    'QUOTE_MALFORMED',
  );
});

test('allowedMeasurements mismatch -> QUOTE_MEASUREMENT_NOT_ALLOWED; empty list allows any', () => {
  const q = simulatedProvider(measurement, SIM_SIGNER_ID).quote(reportData);
  assert.equal(
    codeOf(() => verifySimulatedQuote(q, { ...trusted, allowedMeasurements: [new Uint8Array(randomBytes(32))] })),
    'QUOTE_MEASUREMENT_NOT_ALLOWED',
  );
  assert.doesNotThrow(() => verifySimulatedQuote(q, { ...trusted, allowedMeasurements: [] }));
});

test('maxAgeMs -> QUOTE_STALE when older than the limit', () => {
  const q = simulatedProvider(measurement, SIM_SIGNER_ID).quote(reportData);
  const ts = Number(Quote.dec(q).timestampMs);
  assert.doesNotThrow(() => verifySimulatedQuote(q, { ...trusted, maxAgeMs: 1000, nowMs: ts + 1000 }));
  assert.equal(
    codeOf(() => verifySimulatedQuote(q, { ...trusted, maxAgeMs: 1000, nowMs: ts + 1001 })),
    'QUOTE_STALE',
  );
  assert.equal(
    codeOf(() => verifySimulatedQuote(q, { ...trusted, maxAgeMs: 0, nowMs: ts + 60_000 })),
    'QUOTE_STALE',
  );
  // without maxAgeMs age is not checked
  assert.doesNotThrow(() => verifySimulatedQuote(q, { ...trusted, nowMs: ts + 10 ** 12 }));
});

test('quote requires 64 bytes of report data', () => {
  const p = simulatedProvider(measurement, SIM_SIGNER_ID);
  assert.equal(
    codeOf(() => p.quote(new Uint8Array(32))),
    'QUOTE_REPORT_DATA',
  );
});

// ---------------- measurement ----------------

test('computeMeasurement() is stable across calls and 32 bytes', () => {
  const a = computeMeasurement();
  const b = computeMeasurement();
  assert.equal(a.length, 32);
  assert.deepEqual(a, b);
});

test('measurement changes when a module reachable from the entry changes, or the import set changes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'validateer-measure-'));
  dirs.push(dir);
  const entry = join(dir, 'entry.ts');
  const mod = join(dir, 'mod.ts');
  const extra = join(dir, 'extra.ts');
  writeFileSync(mod, 'export const x = 1;\n');
  writeFileSync(extra, 'export const y = 2;\n');
  writeFileSync(entry, "import { x } from './mod.ts';\nexport const z = x;\n");
  assert.deepEqual(enclaveSources(entry), [entry, mod].sort());
  const m1 = computeMeasurement(entry);
  assert.deepEqual(computeMeasurement(entry), m1, 'stable');

  writeFileSync(mod, 'export const x = 2;\n');
  const m2 = computeMeasurement(entry);
  assert.notDeepEqual(m2, m1, 'changing an imported module changes the measurement');

  writeFileSync(mod, 'export const x = 1;\n');
  assert.deepEqual(computeMeasurement(entry), m1, 'restoring it restores the measurement');

  // adding a module to the import graph changes it, even without other edits to the imported code
  writeFileSync(mod, "import './extra.ts';\nexport const x = 1;\n");
  assert.deepEqual(enclaveSources(entry), [entry, extra, mod].sort());
  const m3 = computeMeasurement(entry);
  assert.notDeepEqual(m3, m1);
  writeFileSync(extra, 'export const y = 3;\n');
  assert.notDeepEqual(computeMeasurement(entry), m3, 'a transitively imported module is measured');
});

test('the enclave measurement covers the enclave modules, including the crypto worker threads', () => {
  const files = enclaveSources().map((f) => f.replace(/\\/g, '/'));
  for (const m of [
    'enclave/boundary/worker.ts',
    'enclave/core.ts',
    'enclave/calls/call-verifier.ts',
    'enclave/keys/keys.ts',
    'enclave/keys/sealing.ts',
    'crypto/hpke.ts',
    'protocol/wire.ts',
  ]) {
    assert.ok(
      files.some((f) => f.endsWith('/src/' + m)),
      `${m} is measured`,
    );
  }
  // crypto-worker.ts runs inside the enclave boundary with the shielding secret (started by
  // crypto-threads.ts via new URL('./crypto-worker.ts', import.meta.url)); it must be measured too.
  assert.ok(
    files.some((f) => f.endsWith('/src/enclave/calls/crypto-worker.ts')),
    'enclave/calls/crypto-worker.ts is measured',
  );
});
