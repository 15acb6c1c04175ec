// Reading the chain: headers and blocks by raw RPC (one chain_getBlock, plus System.Events when
// needed), decoded with the registry of the runtime that produced them.
import type { ApiPromise } from '@polkadot/api';
import type { Registry } from '@polkadot/types/types';
import type { EventRecord, Header } from '@polkadot/types/interfaces';
import { u8aToHex, hexToU8a } from '@polkadot/util';
import { ValidateerError } from '../../protocol/errors.ts';
import { bytesView } from '../../protocol/bytes.ts';
import type { BlockOptions, ParentchainBlock, ParentchainHeader } from '../api.ts';
import type { RpcConnection } from './connection.ts';
import { toEvent, toExtrinsic, toHeader, undecodableExtrinsic } from './decode.ts';

type RawBlock = { block: { header: Record<string, unknown>; extrinsics: string[] } };
type Decoded = { registry: Registry; upgraded: boolean };

export class BlockReader {
  readonly #api: ApiPromise;
  readonly #connection: RpcConnection;
  readonly #eventsKey: string;
  /** Registry and runtime-upgrade flag of recently decoded blocks, so sequential reads need no lookups. */
  readonly #decoded = new Map<string, Decoded>();
  /**
   * Registry lookups in flight: a block fetched in parallel with its parent waits for the parent's instead of asking
   * too.
   */
  readonly #decoding = new Map<string, Promise<Decoded>>();

  constructor(api: ApiPromise, connection: RpcConnection) {
    this.#api = api;
    this.#connection = connection;
    this.#eventsKey = api.query.system.events.key();
  }

  async finalizedHead(): Promise<ParentchainHeader> {
    const hash = await this.#connection.rpc<string>('chain_getFinalizedHead', []);
    const header = await this.header(hexToU8a(hash));
    if (!header) throw new ValidateerError('PARENTCHAIN_MISSING_BLOCK', `finalized head ${hash} not found`);
    return header;
  }

  async subscribeFinalizedHeads(cb: (header: ParentchainHeader) => void): Promise<() => void> {
    // polkadot-js re-subscribes by itself after a reconnection.
    const unsub = await this.#connection.retry('subscribeFinalizedHeads', () =>
      this.#api.rpc.chain.subscribeFinalizedHeads((h) => cb(toHeader(h))),
    );
    return () => unsub();
  }

  async blockHash(number: number): Promise<Uint8Array | undefined> {
    const hash = await this.#connection.rpc<string | null>('chain_getBlockHash', [number]);
    return hash ? hexToU8a(hash) : undefined;
  }

  async header(at: number | Uint8Array): Promise<ParentchainHeader | undefined> {
    const hash = typeof at === 'number' ? await this.blockHash(at) : at;
    if (!hash) return undefined;
    const raw = await this.#connection.rpc<Record<string, unknown> | null>('chain_getHeader', [u8aToHex(hash)]);
    return raw ? toHeader(this.#api.registry.createType('Header', raw), hash) : undefined;
  }

  /** The number of the best (not necessarily finalized) block. */
  async bestNumber(): Promise<number> {
    const header = await this.#connection.rpc<{ number: string }>('chain_getHeader', []);
    return Number(header.number);
  }

  async block(hash: Uint8Array, options: BlockOptions = {}): Promise<ParentchainBlock> {
    const hex = u8aToHex(hash);
    const raw = await this.#connection.rpc<RawBlock | null>('chain_getBlock', [hex]);
    if (!raw) throw new ValidateerError('PARENTCHAIN_MISSING_BLOCK', `block ${hex} not found`);
    const header = this.#api.registry.createType('Header', raw.block.header);
    const { registry } = await this.#registryFor(hex, header);
    const encoded = raw.block.extrinsics.map((x) => hexToU8a(x));
    const needle = options.decodeOnly ? Buffer.from(options.decodeOnly) : undefined;
    const wanted = encoded.flatMap((x, i) => (!needle || bytesView(x).indexOf(needle) >= 0 ? [i] : []));
    // One extrinsic the runtime's types cannot decode is kept undecoded, never a failed block (a scan error).
    const extrinsics = wanted.map((i) => {
      try {
        return registry.createType('Extrinsic', encoded[i]);
      } catch {
        return null;
      }
    });
    const wantEvents = (options.events ?? 'all') === 'all' || extrinsics.some((x) => x?.isSigned !== false);
    const records = wantEvents ? await this.#events(registry, hex) : undefined;
    const events = records?.map(toEvent); // converted once: an extrinsic's events are these same objects
    return {
      header: toHeader(header, hash),
      raw: encoded,
      extrinsics: extrinsics.map((x, k) => {
        const i = wanted[k];
        if (x) {
          try {
            return toExtrinsic(registry, x, i, encoded[i], records, events);
          } catch {
            // fall through: decoded lazily by polkadot-js, so a bad nested call may only throw here
          }
        }
        return undecodableExtrinsic(registry, i, encoded[i], records, events);
      }),
      events: events ?? [],
    };
  }

  /** The block at `number`; PARENTCHAIN_MISSING_BLOCK when the node has none (yet). */
  async blockAt(number: number, options: BlockOptions): Promise<ParentchainBlock> {
    const hash = await this.blockHash(number);
    if (!hash) throw new ValidateerError('PARENTCHAIN_MISSING_BLOCK', `no block ${number} yet`);
    return this.block(hash, options);
  }

  async #events(registry: Registry, blockHashHex: string): Promise<EventRecord[]> {
    const raw = await this.#connection.rpc<string | null>('state_getStorage', [this.#eventsKey, blockHashHex]);
    return raw ? ([...registry.createType('Vec<EventRecord>', raw)] as EventRecord[]) : [];
  }

  /**
   * A block runs the runtime of its parent's state; the runtime only changes after a block whose
   * digest carries RuntimeEnvironmentUpdated. Sequential reads reuse the parent's registry; anything
   * else asks polkadot-js (runtime version at the parent, cached per spec version).
   */
  #registryFor(hashHex: string, header: Header): Promise<Decoded> {
    const known = this.#decoded.get(hashHex);
    if (known) return Promise.resolve(known);
    let pending = this.#decoding.get(hashHex);
    if (!pending) {
      pending = this.#lookupRegistry(hashHex, header).finally(() => this.#decoding.delete(hashHex));
      this.#decoding.set(hashHex, pending);
    }
    return pending;
  }

  async #lookupRegistry(hashHex: string, header: Header): Promise<Decoded> {
    const parentHex = header.parentHash.toHex();
    // No await when the parent is known: sequential reads stay synchronous here.
    const parent = this.#decoded.get(parentHex) ?? (await this.#decoding.get(parentHex)?.catch(() => undefined));
    const registry =
      parent && !parent.upgraded
        ? parent.registry
        : (await this.#connection.retry('registry', () => this.#api.getBlockRegistry(hexToU8a(hashHex)))).registry;
    const decoded = { registry, upgraded: header.digest.logs.some((l) => l.isRuntimeEnvironmentUpdated) };
    this.#decoded.set(hashHex, decoded);
    if (this.#decoded.size > 256) this.#decoded.delete(this.#decoded.keys().next().value!);
    return decoded;
  }
}
