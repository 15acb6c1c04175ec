// Decoding @polkadot/api values into the plain objects of api.ts (headers, calls, events,
// extrinsics with their dispatch outcome), so no polkadot-js type leaves the adapter.
import type { Registry } from '@polkadot/types/types';
import type { Call, DispatchError, EventRecord, Extrinsic, Header } from '@polkadot/types/interfaces';
import { blake2AsU8a } from '@polkadot/util-crypto';
import type { ParentchainCall, ParentchainEvent, ParentchainExtrinsic, ParentchainHeader } from '../api.ts';

export function toHeader(h: Header, hash?: Uint8Array): ParentchainHeader {
  const encoded = h.toU8a();
  return {
    number: h.number.toNumber(),
    hash: hash ?? blake2AsU8a(encoded, 256),
    parentHash: h.parentHash.toU8a(),
    stateRoot: h.stateRoot.toU8a(),
    extrinsicsRoot: h.extrinsicsRoot.toU8a(),
    encoded,
  };
}

function accountBytes(value: unknown): Uint8Array | undefined {
  const v = value as
    { type?: string; value?: { toU8a(): Uint8Array }; toU8a?(): Uint8Array; isEmpty?: boolean } | undefined;
  if (!v) return undefined;
  // MultiAddress: only the AccountId32 forms name an account directly.
  if (typeof v.type === 'string' && v.value)
    return v.type === 'Id' || v.type === 'Address32' ? v.value.toU8a() : undefined;
  const bytes = v.toU8a?.();
  return bytes?.length === 32 ? bytes : undefined;
}

function isCall(value: unknown): value is Call {
  return !!value && typeof (value as Call).callIndex !== 'undefined' && typeof (value as Call).section === 'string';
}

/**
 * Makes `key` of `obj` a value computed on its first read (an ordinary property from then on).
 * toJSON of polkadot-js values is a large part of decoding a block, and scanning rarely needs it.
 */
function lazily<T extends object>(obj: T, key: keyof T & string, compute: () => unknown): T {
  const set = (value: unknown) =>
    Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
  return Object.defineProperty(obj, key, {
    get: () => {
      const value = compute();
      set(value);
      return value;
    },
    set,
    enumerable: true,
    configurable: true,
  });
}

function toCall(registry: Registry, call: Call): ParentchainCall {
  const nested: ParentchainCall[] = [];
  for (const value of call.args) {
    if (isCall(value)) nested.push(toCall(registry, value));
    else if (Array.isArray(value) && value.every(isCall)) nested.push(...value.map((c) => toCall(registry, c as Call)));
  }
  const out: ParentchainCall = lazily({ pallet: call.section, method: call.method, args: {} }, 'args', () => {
    const args: Record<string, unknown> = {};
    call.meta.args.forEach((meta, i) => {
      args[camel(meta.name.toString())] = call.args[i].toJSON();
    });
    return args;
  });
  if (nested.length > 0) out.calls = nested;
  if (call.section === 'system' && (call.method === 'remark' || call.method === 'remarkWithEvent')) {
    out.remark = (call.args[0] as unknown as { toU8a(bare: boolean): Uint8Array }).toU8a(true);
  }
  if (call.section === 'balances' && call.method.startsWith('transfer') && call.args.length === 2) {
    const dest = accountBytes(call.args[0]);
    if (dest) out.transfer = { dest, amount: (call.args[1] as unknown as { toBigInt(): bigint }).toBigInt() };
  }
  if (call.section === 'proxy' && (call.method === 'proxy' || call.method === 'proxyAnnounced')) {
    const real = accountBytes(call.args[call.method === 'proxy' ? 0 : 1]);
    if (real) out.real = real;
  }
  return out;
}

export function toEvent(record: EventRecord): ParentchainEvent {
  const { event, phase } = record;
  const out = {
    pallet: event.section,
    name: event.method,
    data: {},
    extrinsicIndex: phase.isApplyExtrinsic ? phase.asApplyExtrinsic.toNumber() : null,
  };
  return lazily(out, 'data', () => {
    const names = event.data.names;
    const data: Record<string, unknown> = {};
    event.data.forEach((d, i) => {
      data[names?.[i] ? camel(names[i]) : String(i)] = d.toJSON();
    });
    return data;
  });
}

export function toExtrinsic(
  registry: Registry,
  x: Extrinsic,
  index: number,
  encoded: Uint8Array,
  records: EventRecord[] | undefined,
  events: ParentchainEvent[] | undefined,
): ParentchainExtrinsic {
  const out = withOutcome(registry, index, encoded, records, events, {
    call: toCall(registry, x.method as Call),
    callOffset: encoded.length - x.method.encodedLength,
  });
  if (x.isSigned) {
    out.signer = accountBytes(x.signer);
    out.nonce = x.nonce.toNumber();
  }
  return out;
}

/**
 * An extrinsic the runtime's types could not decode (an odd one must not stop a scan): its bytes and outcome only,
 * so the enclave, which decodes calls itself, still learns whether it dispatched.
 */
export function undecodableExtrinsic(
  registry: Registry,
  index: number,
  encoded: Uint8Array,
  records: EventRecord[] | undefined,
  events: ParentchainEvent[] | undefined,
): ParentchainExtrinsic {
  return withOutcome(registry, index, encoded, records, events, { call: { pallet: '', method: '', args: {} } });
}

function withOutcome(
  registry: Registry,
  index: number,
  encoded: Uint8Array,
  records: EventRecord[] | undefined,
  events: ParentchainEvent[] | undefined,
  decoded: { call: ParentchainCall; callOffset?: number },
): ParentchainExtrinsic {
  const mine = events?.flatMap((e, k) => (e.extrinsicIndex === index ? [k] : []));
  const own = mine?.map((k) => records![k]);
  const out: ParentchainExtrinsic = {
    index,
    hash: blake2AsU8a(encoded, 256),
    encoded,
    ...decoded,
    events: mine?.map((k) => events![k]) ?? [],
  };
  if (own) {
    const failure = dispatchFailure(registry, own);
    out.success = failure === undefined;
    if (failure !== undefined) out.error = failure;
  }
  return out;
}

/** The first failure among an extrinsic's events: its own dispatch, a proxied call, or a batch item. */
function dispatchFailure(registry: Registry, records: EventRecord[]): string | undefined {
  for (const { event } of records) {
    const key = `${event.section}.${event.method}`;
    if (key === 'system.ExtrinsicFailed') return dispatchErrorText(registry, event.data[0] as DispatchError);
    if (key === 'proxy.ProxyExecuted') {
      const result = event.data[0] as unknown as { isErr: boolean; asErr: DispatchError };
      if (result.isErr) return dispatchErrorText(registry, result.asErr);
    }
    if (key === 'utility.BatchInterrupted') return dispatchErrorText(registry, event.data[1] as DispatchError);
    if (key === 'utility.ItemFailed') return dispatchErrorText(registry, event.data[0] as DispatchError);
  }
  if (!records.some(({ event }) => event.section === 'system' && event.method === 'ExtrinsicSuccess'))
    return 'NoOutcome';
  return undefined;
}

function dispatchErrorText(registry: Registry, err: DispatchError): string {
  if (err.isModule) {
    try {
      const meta = registry.findMetaError(err.asModule);
      return `${meta.section}.${meta.name}`;
    } catch {
      return `Module(${err.asModule.index.toNumber()}, ${err.asModule.error.toHex()})`;
    }
  }
  const inner = (err as unknown as { value?: { type?: string; isEmpty?: boolean } }).value;
  return inner?.type && !inner.isEmpty ? `${err.type}.${inner.type}` : err.type;
}

function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}
