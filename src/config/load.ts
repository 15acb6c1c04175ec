// Config loading: defaults (from the schema) < JSON file < VALIDATEER_* env vars < overrides (CLI flags).
// Every problem is collected and reported at once, each naming the field and where its value came from.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { configSchema, type Config } from './schema.ts';

export type { Config } from './schema.ts';

export const ENV_PREFIX = 'VALIDATEER_';

export interface LoadConfigOptions {
  /** JSON config file; full-line `//` comments are allowed. */
  file?: string;
  /** Environment to read VALIDATEER_* variables from; defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** Values keyed by dotted path (`rpc.port`), e.g. from CLI flags. Undefined values are ignored. */
  overrides?: Record<string, unknown>;
}

export interface ConfigIssue {
  /** Dotted path of the field (`rpc.port`, `genesis.balances[0].amount`); empty when no field applies. */
  path: string;
  message: string;
  /** Where the value came from: `file <path>`, `env <NAME>` or `override <path>`. */
  source?: string;
}

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    super('invalid config: ' + issues.map(formatIssue).join('; '));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

function formatIssue(issue: ConfigIssue): string {
  if (issue.path === '') return `${issue.source ?? 'config'}: ${issue.message}`;
  return `${issue.path}: ${issue.message}` + (issue.source ? ` (${issue.source})` : '');
}

/** A settable field: an object-free leaf of the schema (scalars and arrays). */
interface Leaf {
  segments: string[];
  dotted: string;
  envName: string;
  schema: z.ZodType;
}

type PlainObject = Record<string, unknown>;

const isPlainObject = (v: unknown): v is PlainObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Strips default/prefault/optional wrappers to reach the structural type. */
function unwrap(schema: z.ZodType): z.ZodType {
  let s = schema;
  while (
    s instanceof z.ZodDefault ||
    s instanceof z.ZodPrefault ||
    s instanceof z.ZodOptional ||
    s instanceof z.ZodNullable
  ) {
    s = s.unwrap() as z.ZodType;
  }
  return s;
}

const upperSnake = (camel: string): string => camel.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();

function collectLeaves(schema: z.ZodType, segments: string[], out: Leaf[]): Leaf[] {
  const inner = unwrap(schema);
  if (inner instanceof z.ZodObject) {
    for (const [key, field] of Object.entries(inner.shape as Record<string, z.ZodType>)) {
      collectLeaves(field, [...segments, key], out);
    }
  } else {
    out.push({
      segments,
      dotted: segments.join('.'),
      envName: ENV_PREFIX + segments.map(upperSnake).join('__'),
      schema,
    });
  }
  return out;
}

const leaves = collectLeaves(configSchema, [], []);
const leafByDotted = new Map(leaves.map((l) => [l.dotted, l]));
const leafByEnv = new Map(leaves.map((l) => [l.envName, l]));

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += (out === '' ? '' : '.') + String(seg);
  }
  return out;
}

/** Zod objects strip unknown keys silently; a typo in a config file must not, so report them. */
function findUnknownKeys(schema: z.ZodType, value: unknown, path: PropertyKey[], out: PropertyKey[][]): void {
  const inner = unwrap(schema);
  if (inner instanceof z.ZodObject && isPlainObject(value)) {
    const shape = inner.shape as Record<string, z.ZodType>;
    for (const key of Object.keys(value)) {
      if (Object.hasOwn(shape, key)) findUnknownKeys(shape[key], value[key], [...path, key], out);
      else out.push([...path, key]);
    }
  } else if (inner instanceof z.ZodArray && Array.isArray(value)) {
    value.forEach((item, i) => findUnknownKeys(inner.element as z.ZodType, item, [...path, i], out));
  }
}

/**
 * Env vars and flags arrive as text: use the JSON reading (numbers, booleans, arrays) when it parses,
 * but keep the raw text when only that satisfies the field (e.g. a numeric-looking dataDir).
 */
function coerce(leaf: Leaf, raw: string): unknown {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return raw;
  }
  if (!leaf.schema.safeParse(parsed).success && leaf.schema.safeParse(raw).success) return raw;
  return parsed;
}

/** Sets a leaf, creating missing parents; a non-object parent is left alone so validation reports it. */
function setLeaf(root: PlainObject, segments: readonly string[], value: unknown): void {
  let node = root;
  for (const seg of segments.slice(0, -1)) {
    if (node[seg] === undefined) node[seg] = {};
    const next = node[seg];
    if (!isPlainObject(next)) return;
    node = next;
  }
  node[segments[segments.length - 1]] = value;
}

function stripLineComments(text: string): string {
  // Comment lines become empty lines so JSON.parse positions still match the file.
  return text
    .split('\n')
    .map((line) => (line.trimStart().startsWith('//') ? '' : line))
    .join('\n');
}

function readConfigFile(file: string): PlainObject {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ path: '', source: `file ${file}`, message: `cannot read: ${(err as Error).message}` }]);
  }
  let data: unknown;
  try {
    data = JSON.parse(stripLineComments(text));
  } catch (err) {
    throw new ConfigError([{ path: '', source: `file ${file}`, message: `not valid JSON: ${(err as Error).message}` }]);
  }
  if (!isPlainObject(data)) {
    throw new ConfigError([{ path: '', source: `file ${file}`, message: 'expected a JSON object at the top level' }]);
  }
  return data;
}

export function loadConfig(opts: LoadConfigOptions = {}): Config {
  const issues: ConfigIssue[] = [];
  const fileSource = opts.file === undefined ? undefined : `file ${opts.file}`;
  const input: PlainObject = opts.file === undefined ? {} : readConfigFile(opts.file);

  const unknown: PropertyKey[][] = [];
  findUnknownKeys(configSchema, input, [], unknown);
  for (const path of unknown) issues.push({ path: formatPath(path), message: 'unknown key', source: fileSource });
  // Unknown keys (possibly `__proto__`) are never touched below: only schema paths are written.

  /** Leaf dotted path -> the env var or flag that set it last. */
  const origins = new Map<string, string>();

  const env = opts.env ?? process.env;
  for (const name of Object.keys(env).sort()) {
    const raw = env[name];
    if (!name.startsWith(ENV_PREFIX) || raw === undefined) continue;
    const leaf = leafByEnv.get(name);
    if (!leaf) {
      issues.push({ path: '', source: `env ${name}`, message: 'does not match any config field' });
      continue;
    }
    setLeaf(input, leaf.segments, coerce(leaf, raw));
    origins.set(leaf.dotted, `env ${name}`);
  }

  for (const [key, value] of Object.entries(opts.overrides ?? {})) {
    if (value === undefined) continue;
    const leaf = leafByDotted.get(key);
    if (!leaf) {
      issues.push({ path: '', source: `override ${key}`, message: 'does not match any config field' });
      continue;
    }
    setLeaf(input, leaf.segments, typeof value === 'string' ? coerce(leaf, value) : value);
    origins.set(leaf.dotted, `override ${key}`);
  }

  const result = configSchema.safeParse(input);
  if (!result.success) {
    for (const issue of result.error.issues) {
      const path = formatPath(issue.path);
      issues.push({ path, message: issue.message, source: originOf(issue.path, origins) ?? fileSource });
    }
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return result.data as Config;
}

/** The env var or flag that set this path or one of its parents (e.g. an array leaf). */
function originOf(path: readonly PropertyKey[], origins: ReadonlyMap<string, string>): string | undefined {
  for (let n = path.length; n > 0; n--) {
    const origin = origins.get(path.slice(0, n).map(String).join('.'));
    if (origin !== undefined) return origin;
  }
  return undefined;
}

/** Every settable field as `{ path, env }`, e.g. for `--help` text or docs. */
export function configFields(): { path: string; env: string }[] {
  return leaves.map((l) => ({ path: l.dotted, env: l.envName }));
}
