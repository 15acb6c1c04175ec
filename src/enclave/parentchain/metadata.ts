// Reads the parentchain runtime's metadata (the bytes of `state_getMetadata`, V14 or V15) inside the
// enclave, so the host no longer names the call indices the enclave signs with: the enclave finds its
// calls by pallet and call name, checks that their arguments have the shapes calls.ts encodes, and
// takes the runtime's spec and transaction versions and signed-extension layout from the same bytes.
// The host can still hand forged metadata (the enclave cannot run the runtime to check it); see
// runtime.ts for what binds the signed payload to it.
import { Bytes, Enum, Option, Struct, Tuple, Vector, compact, str, u8, u32 } from 'scale-ts';
import { EnclaveError } from '../boundary/errors.ts';
import type { CallIndices, CallName } from './calls.ts';

const Docs = Vector(str);
const Field = Struct({ name: Option(str), type: compact, typeName: Option(str), docs: Docs });
const Variant = Struct({ name: str, fields: Vector(Field), index: u8, docs: Docs });
export const TypeDef = Enum({
  composite: Vector(Field),
  variant: Vector(Variant),
  sequence: compact,
  array: Struct({ len: u32, type: compact }),
  tuple: Vector(compact),
  primitive: u8,
  compact: compact,
  bitSequence: Struct({ store: compact, order: compact }),
});
export const PortableType = Struct({
  id: compact,
  path: Vector(str),
  params: Vector(Struct({ name: str, type: Option(compact) })),
  def: TypeDef,
  docs: Docs,
});
const StorageEntry = Struct({
  name: str,
  modifier: u8,
  type: Enum({ plain: compact, map: Struct({ hashers: Vector(u8), key: compact, value: compact }) }),
  default: Bytes(),
  docs: Docs,
});
const palletFields = {
  name: str,
  storage: Option(Struct({ prefix: str, entries: Vector(StorageEntry) })),
  calls: Option(compact),
  event: Option(compact),
  constants: Vector(Struct({ name: str, type: compact, value: Bytes(), docs: Docs })),
  error: Option(compact),
  index: u8,
};
const Extension = Struct({ identifier: str, type: compact, additionalSigned: compact });
/** RuntimeMetadataV14 (whole). */
export const MetadataV14 = Struct({
  types: Vector(PortableType),
  pallets: Vector(Struct(palletFields)),
  extrinsic: Struct({ type: compact, version: u8, signedExtensions: Vector(Extension) }),
  runtimeType: compact,
});
/** The leading part of RuntimeMetadataV15 (runtime APIs, outer enums and custom data follow, unread). */
const MetadataV15Head = Struct({
  types: Vector(PortableType),
  pallets: Vector(Struct({ ...palletFields, docs: Docs })),
  extrinsic: Struct({
    version: u8,
    address: compact,
    call: compact,
    signature: compact,
    extra: compact,
    signedExtensions: Vector(Extension),
  }),
});
/** The leading fields of sp_version::RuntimeVersion (System's `Version` constant). */
const RuntimeVersion = Struct({
  specName: str,
  implName: str,
  authoringVersion: u32,
  specVersion: u32,
  implVersion: u32,
  apis: Vector(Tuple(Bytes(8), u32)),
  transactionVersion: u32,
});

export const METADATA_MAGIC = Uint8Array.of(0x6d, 0x65, 0x74, 0x61); // "meta"
/** 16 MiB: real runtimes' metadata is a few hundred KiB. */
export const MAX_METADATA_BYTES = 16 * 1024 * 1024;

/** An additional-signed field of the signing payload, in extension order, and its size in bytes. */
export interface AdditionalField {
  identifier: string;
  size: number;
}

/** What the enclave takes from the runtime's metadata. */
export interface RuntimeFacts {
  specVersion: number;
  transactionVersion: number;
  callIndices: CallIndices;
  additional: AdditionalField[];
}

type PType = ReturnType<typeof PortableType.dec>;
type Def = PType['def'];
type FieldT = ReturnType<typeof Field.dec>;
type Ext = ReturnType<typeof Extension.dec>;

// sp_runtime's scale_info primitives, in TypeDefPrimitive's declaration order
const PRIM = { u8: 3, u16: 4, u32: 5, u128: 7 } as const;
const PRIM_SIZE = [1, 4, -1, 1, 2, 4, 8, 16, 32, 1, 2, 4, 8, 16, 32];

const unsupported = (why: string) => new EnclaveError('PARENTCHAIN_METADATA_UNSUPPORTED', why);

/** Decodes metadata bytes and derives what the enclave signs with; throws on anything it cannot use. */
export function readRuntimeFacts(bytes: Uint8Array): RuntimeFacts {
  if (bytes.length > MAX_METADATA_BYTES) throw unsupported('metadata larger than 16 MiB');
  if (bytes.length < 5 || !METADATA_MAGIC.every((b, i) => bytes[i] === b))
    throw unsupported('metadata does not start with the "meta" magic');
  const version = bytes[4];
  const body = bytes.slice(5); // scale-ts decodes from offset 0 of the underlying buffer
  let m: { types: PType[]; pallets: ReturnType<typeof MetadataV14.dec>['pallets']; extensions: Ext[] };
  try {
    if (version === 14) {
      const v = MetadataV14.dec(body);
      m = { types: v.types, pallets: v.pallets, extensions: v.extrinsic.signedExtensions };
    } else if (version === 15) {
      const v = MetadataV15Head.dec(body);
      m = { types: v.types, pallets: v.pallets, extensions: v.extrinsic.signedExtensions };
    } else throw unsupported(`metadata version ${version} (14 or 15 is supported)`);
  } catch (err) {
    if (err instanceof EnclaveError) throw err;
    throw unsupported(`metadata does not decode: ${(err as Error).message}`);
  }
  return new Reader(m.types).facts(m.pallets, m.extensions);
}

class Reader {
  private readonly types = new Map<number, PType>();
  private readonly sizes = new Map<number, number>();

  constructor(types: PType[]) {
    for (const t of types) this.types.set(Number(t.id), t);
  }

  private def(id: number | bigint): Def {
    const t = this.types.get(Number(id));
    if (!t) throw unsupported(`metadata names type ${id}, which it does not define`);
    return t.def;
  }

  private path(id: number | bigint): string {
    return this.types.get(Number(id))?.path.join('::') ?? '';
  }

  facts(pallets: ReturnType<typeof MetadataV14.dec>['pallets'], extensions: Ext[]): RuntimeFacts {
    const system = pallets.find((p) => p.name === 'System');
    const versionConst = system?.constants.find((c) => c.name === 'Version');
    if (!versionConst) throw unsupported('metadata has no System.Version constant');
    let rv: ReturnType<typeof RuntimeVersion.dec>;
    try {
      rv = RuntimeVersion.dec(new Uint8Array(versionConst.value));
    } catch {
      throw unsupported('System.Version does not decode as a RuntimeVersion');
    }
    const call = (pallet: string, names: string[], check: (fields: FieldT[]) => void) => {
      const p = pallets.find((x) => x.name === pallet);
      if (!p || p.calls === undefined) throw unsupported(`the runtime has no ${pallet} calls`);
      const def = this.def(p.calls);
      if (def.tag !== 'variant') throw unsupported(`${pallet}'s call type is not an enum`);
      const v = def.value.find((x) => names.includes(x.name));
      if (!v) throw unsupported(`the runtime has no ${pallet}.${names[0]}`);
      check(v.fields);
      return { index: { pallet: p.index, call: v.index }, fields: v.fields };
    };
    const ix: Partial<Record<CallName, { pallet: number; call: number }>> = {};
    ix.remarkWithEvent = call('System', ['remark_with_event'], (f) => this.args(f, [['remark', this.isBytes]])).index;
    ix.transferKeepAlive = call('Balances', ['transfer_keep_alive'], (f) =>
      this.args(f, [
        ['dest', this.isAccount],
        ['value', this.isCompactU128],
      ]),
    ).index;
    ix.batchAll = call('Utility', ['batch_all'], (f) => this.args(f, [['calls', this.isCallVector]])).index;
    const proxy = call('Proxy', ['proxy'], (f) =>
      this.args(f, [
        ['real', this.isAccount],
        ['force_proxy_type', this.isOptionProxyType],
        ['call', this.isCall],
      ]),
    );
    ix.proxy = proxy.index;
    // Renamed from anonymous (same arguments) in 2022; the dev chain's genesis runtime has the old name.
    ix.createPure = call('Proxy', ['create_pure', 'anonymous'], (f) =>
      this.args(f, [
        ['proxy_type', this.isProxyType],
        ['delay', this.isPrim(PRIM.u32)],
        ['index', this.isPrim(PRIM.u16)],
      ]),
    ).index;
    const delegateArgs = (f: FieldT[]) =>
      this.args(f, [
        ['delegate', this.isAccount],
        ['proxy_type', this.isProxyType],
        ['delay', this.isPrim(PRIM.u32)],
      ]);
    const add = call('Proxy', ['add_proxy'], delegateArgs);
    ix.addProxy = add.index;
    ix.removeProxy = call('Proxy', ['remove_proxy'], delegateArgs).index;
    const removeFields = call('Proxy', ['remove_proxy'], () => undefined).fields;
    if (this.path(removeFields[0].type) !== this.path(add.fields[0].type))
      throw unsupported('proxy.add_proxy and proxy.remove_proxy take their delegate in different formats');
    return {
      specVersion: rv.specVersion,
      transactionVersion: rv.transactionVersion,
      callIndices: {
        ...(ix as Required<typeof ix>),
        proxyRealAccountId: this.isAccountId(proxy.fields[0].type),
        addProxyDelegateAccountId: this.isAccountId(add.fields[0].type),
      },
      additional: extensions.map((e) => ({
        identifier: e.identifier,
        size: this.additionalSize(e.identifier, e.additionalSigned),
      })),
    };
  }

  private args(fields: FieldT[], want: [string, (id: number | bigint) => boolean][]): void {
    const ok =
      fields.length === want.length && want.every(([name, is], i) => fields[i].name === name && is(fields[i].type));
    if (!ok) {
      const got = fields.map((f) => `${f.name}: ${this.path(f.type) || this.def(f.type).tag}`).join(', ');
      throw unsupported(`a call's arguments are (${got}), not the (${want.map((w) => w[0]).join(', ')}) it encodes`);
    }
  }

  private readonly isPrim = (p: number) => (id: number | bigint) => {
    const d = this.def(id);
    return d.tag === 'primitive' && d.value === p;
  };

  private readonly isBytes = (id: number | bigint) => {
    const d = this.def(id);
    return d.tag === 'sequence' && this.isPrim(PRIM.u8)(d.value);
  };

  private readonly isCompactU128 = (id: number | bigint) => {
    const d = this.def(id);
    return d.tag === 'compact' && this.isPrim(PRIM.u128)(d.value);
  };

  private isAccountId(id: number | bigint): boolean {
    const d = this.def(id);
    return this.path(id).endsWith('AccountId32') && d.tag === 'composite' && this.fixedSize(id) === 32;
  }

  /** A bare AccountId32, or a MultiAddress whose `Id` variant is 0 and holds one (calls.ts encodes 0x00 ‖ id). */
  private readonly isAccount = (id: number | bigint) => {
    if (this.isAccountId(id)) return true;
    const d = this.def(id);
    if (!this.path(id).endsWith('MultiAddress') || d.tag !== 'variant') return false;
    const v = d.value.find((x) => x.name === 'Id');
    return v?.index === 0 && v.fields.length === 1 && this.isAccountId(v.fields[0].type);
  };

  /** The runtime's call enum: a variant type whose path ends in RuntimeCall (or Call, before 2022). */
  private readonly isCall = (id: number | bigint) =>
    this.def(id).tag === 'variant' && /(^|::)(Runtime)?Call$/.test(this.path(id));

  private readonly isCallVector = (id: number | bigint) => {
    const d = this.def(id);
    return d.tag === 'sequence' && this.isCall(d.value);
  };

  /** pallet_proxy's ProxyType with Any as variant 0 (calls.ts encodes Any as 0x00). */
  private readonly isProxyType = (id: number | bigint) => {
    const d = this.def(id);
    return d.tag === 'variant' && d.value.some((v) => v.name === 'Any' && v.index === 0 && v.fields.length === 0);
  };

  private readonly isOptionProxyType = (id: number | bigint) => {
    const d = this.def(id);
    if (this.types.get(Number(id))?.path.join('::') !== 'Option' || d.tag !== 'variant') return false;
    const none = d.value.find((v) => v.name === 'None');
    const some = d.value.find((v) => v.name === 'Some');
    return none?.index === 0 && some?.index === 1 && some.fields.length === 1 && this.isProxyType(some.fields[0].type);
  };

  /**
   * Bytes a value of the type always takes, or -1 when that varies. Memoized, and -1 while being computed, so
   * neither a cycle nor a deep lattice of types in forged metadata makes this walk long.
   */
  private fixedSize(id: number | bigint): number {
    const known = this.sizes.get(Number(id));
    if (known !== undefined) return known;
    this.sizes.set(Number(id), -1);
    const d = this.def(id);
    const sum = (ids: (number | bigint)[]) => {
      let total = 0;
      for (const x of ids) {
        const s = this.fixedSize(x);
        if (s < 0) return -1;
        total += s;
      }
      return total;
    };
    let size = -1;
    if (d.tag === 'composite') size = sum(d.value.map((f) => f.type));
    else if (d.tag === 'tuple') size = sum(d.value);
    else if (d.tag === 'array') {
      const s = this.fixedSize(d.value.type);
      size = s < 0 ? -1 : s * d.value.len;
    } else if (d.tag === 'primitive') size = PRIM_SIZE[d.value] ?? -1;
    this.sizes.set(Number(id), size);
    return size;
  }

  /**
   * The size of an extension's additional-signed data. CheckMetadataHash's is Option<[u8; 32]>; the enclave
   * signs only None (mode Disabled, 1 byte) as it cannot compute the RFC-0078 digest yet (runtime.ts).
   */
  private additionalSize(identifier: string, id: number | bigint): number {
    if (identifier === 'CheckMetadataHash') return 1;
    const size = this.fixedSize(id);
    if (size < 0) throw unsupported(`signed extension ${identifier} has additional data of varying size`);
    return size;
  }
}
