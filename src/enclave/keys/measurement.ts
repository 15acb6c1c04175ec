// Measurement (MRENCLAVE analogue): sha256 over the enclave's source as shipped — every local module
// reachable by imports from the enclave entry point, in a fixed order. Changing any of them changes it.
import { readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';

// Static imports, and worker entry points (a module path handed to new URL with import.meta.url).
const IMPORT = /(?:(?:from|import)\s+'(\.{1,2}\/[^']+\.ts)')|(?:new URL\('(\.{1,2}\/[^']+\.ts)', import\.meta\.url\))/g;
const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export function enclaveSources(entry = resolve(SRC, 'enclave/boundary/worker.ts')): string[] {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const m of readFileSync(file, 'utf8').matchAll(IMPORT)) visit(resolve(dirname(file), m[1] ?? m[2]));
  };
  visit(entry);
  return [...seen].sort();
}

export function computeMeasurement(entry?: string): Uint8Array {
  const h = createHash('sha256').update('validateer/measurement/v1');
  for (const file of enclaveSources(entry)) {
    const body = readFileSync(file);
    h.update(relative(SRC, file)).update('\0').update(String(body.length)).update('\0').update(body);
  }
  return new Uint8Array(h.digest());
}
