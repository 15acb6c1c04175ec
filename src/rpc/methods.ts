// The node's JSON-RPC methods. Params are zod-validated (bad params -> -32602); call and getter
// failures map to stable application error codes with the enclave's reason code in `data`.
import { z } from 'zod';
import { RpcError, TOO_MANY_SUBSCRIPTIONS, type RpcHandler } from './server.ts';
import type { Enclave } from '../enclave/boundary/host.ts';
import type { BlockStore } from '../sidechain/store.ts';
import type { CallRelay, CallUpdate } from '../calls/relay.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { SignedBlock, headerHash } from '../protocol/block.ts';
import { decodeExact } from '../protocol/wire.ts';
import { bytesView, fromHex, parseHex, toHex } from '../protocol/bytes.ts';
import { codeOf } from '../protocol/errors.ts';

/** Application error codes (JSON-RPC reserves -32768..-32000 for itself; these are server errors). */
export const RpcCodes = {
  INVALID_CALL: -32010,
  GETTER_FAILED: -32011,
  UNKNOWN_SHARD: -32012,
  NOT_READY: -32013,
  NOT_FOUND: -32014,
  /** over rpc.maxSubscriptionsPerConnection; data.code TOO_MANY_SUBSCRIPTIONS */
  TOO_MANY_SUBSCRIPTIONS,
} as const;

export const CALL_UPDATE_METHOD = 'author_callUpdate';
const MAX_REQUEST_BYTES = 64 * 1024;

/** 0x-prefixed hex, decoded while validated (requests are the hot path: one pass, no regex). */
const hexBytes = z
  .string()
  .max(2 + MAX_REQUEST_BYTES * 2, 'request too large')
  .transform((s, ctx) => {
    const b = s.startsWith('0x') ? parseHex(s.slice(2)) : null;
    if (!b) {
      ctx.addIssue({ code: 'custom', message: 'expected 0x-prefixed hex bytes' });
      return z.NEVER;
    }
    return b;
  });
const oneHex = z.tuple([hexBytes]);
const blockRef = z.union([
  z.tuple([]),
  z.tuple([z.null()]),
  z.tuple([z.number().int().nonnegative()]),
  z.tuple([z.string().regex(/^0x[0-9a-fA-F]{64}$/)]),
]);
const optNumber = z.union([z.tuple([]), z.tuple([z.null()]), z.tuple([z.number().int().nonnegative()])]);
const params = <T>(schema: z.ZodType<T>, p: unknown): T => schema.parse(p ?? []);

export interface MethodDeps {
  enclave: Enclave;
  store: BlockStore;
  relay: CallRelay;
  metrics: Metrics;
  shard: Uint8Array;
  version: string;
  isReady: () => boolean;
  /** The p2p network (peer id, addresses, peers); `setBlocked` only when dev control is enabled. */
  network?: {
    peerId: string;
    addresses(): string[];
    connectedPeers(): string[];
    setBlocked?: (peerIds: string[]) => void;
  };
  /** Sidechain finality and the shard's parentchain view; absent when running without a parentchain. */
  parentchain?: { finalized(): { number: number; hash: Uint8Array } | null; endpoint: string };
}

export function headerJson(bytes: Uint8Array) {
  const b = decodeExact(SignedBlock, bytes, 'stored block');
  const h = b.header;
  return {
    hash: toHex(headerHash(h)),
    parentHash: toHex(h.parentHash),
    number: Number(h.number),
    shard: toHex(h.shard),
    slot: Number(h.slot),
    author: toHex(h.author),
    stateCommitment: toHex(h.stateCommitment),
    transitionsRoot: toHex(h.transitionsRoot),
    parentchain: { number: h.parentchainNumber, hash: toHex(h.parentchainHash) },
    effectsRoot: toHex(h.effectsRoot),
    timestampMs: Number(h.timestampMs),
    calls: b.body.calls.length,
    stateKeyId: b.body.transitions.keyId,
    signature: toHex(b.signature),
  };
}

/** Every method the node serves: the table below is checked against it, and metrics label by it. */
export const RPC_METHODS = [
  'author_getShieldingKey',
  'author_submitCall',
  'author_submitAndWatchCall',
  'author_callBlock',
  'state_executeGetter',
  'chain_getHeader',
  'chain_getBlockHash',
  'chain_getFinalizedHead',
  'shard_getInfo',
  'system_health',
  'system_version',
  'system_network',
  'dev_setBlockedPeers',
] as const;
export type RpcMethod = (typeof RPC_METHODS)[number];
/** Served only with p2p.devControl. */
type DevMethod = 'dev_setBlockedPeers';

export type RpcMethods = Record<Exclude<RpcMethod, DevMethod>, RpcHandler> & { [M in DevMethod]?: RpcHandler };

export function createMethods(d: MethodDeps): RpcMethods {
  const shardHex = toHex(d.shard);
  const shardBytes = Buffer.from(d.shard);

  async function submit(p: unknown) {
    const [request] = params(oneHex, p);
    if (!d.isReady()) throw new RpcError(RpcCodes.NOT_READY, 'node is not ready yet');
    // The envelope starts with the shard id: route check before any enclave work.
    if (request.length < 32 || !bytesView(request.subarray(0, 32)).equals(shardBytes)) {
      d.metrics.countCall('rejected_rpc');
      throw new RpcError(RpcCodes.UNKNOWN_SHARD, 'request is not for this shard', { code: 'WRONG_SHARD' });
    }
    const outcome = await d.relay.submit(request);
    if (outcome.status === 'invalid') {
      d.metrics.countCall(outcome.code === 'DUPLICATE' ? 'duplicate' : 'invalid');
      throw new RpcError(RpcCodes.INVALID_CALL, `invalid call: ${outcome.message}`, {
        code: outcome.code,
        hash: outcome.hash && '0x' + outcome.hash,
      });
    }
    return outcome as { hash: string; status: 'ready' | 'future' };
  }

  const methods: RpcMethods = {
    author_getShieldingKey: async () => {
      const info = await d.enclave.call('info', {});
      // A joining validateer's own key is not the shard's until provisioning replaced it.
      if (!info.holdsShardSecrets || !info.shieldingKeySignature)
        throw new RpcError(RpcCodes.NOT_READY, 'this validateer has not received the shard secrets yet');
      return {
        shard: shardHex,
        keyId: info.shieldingKeyId,
        publicKey: toHex(info.shieldingKey),
        // The enclave vouches for the key; clients check the signer against the shard's registry.
        signer: toHex(info.signingKey),
        signature: toHex(info.shieldingKeySignature),
        kem: 'DHKEM(X25519, HKDF-SHA256)',
        kdf: 'HKDF-SHA256',
        aead: 'AES-256-GCM',
      };
    },
    author_submitCall: async (p) => '0x' + (await submit(p)).hash,
    author_submitAndWatchCall: async (p, ctx) => {
      // Reserved before the call goes in: a refused watch must not leave a submitted call behind.
      const release = ctx.reserveSubscription();
      let r: Awaited<ReturnType<typeof submit>>;
      try {
        r = await submit(p);
      } catch (err) {
        release();
        throw err;
      }
      const subscription = '0x' + r.hash;
      // 'ready' goes out after the reply (next turn), so the client already knows the subscription id;
      // a final update that comes sooner (or was already there) waits for it.
      // The relay only delivers final updates: the subscription ends with the first, and so does its
      // cleanup on the connection (a long-lived connection would otherwise keep every call it watched).
      let readySent = false;
      let final: CallUpdate | undefined;
      let unregister = () => {};
      const send = (u: CallUpdate) => ctx.notify(CALL_UPDATE_METHOD, subscription, u);
      const stop = d.relay.watch(r.hash, (u) => {
        final = u;
        release();
        unregister();
        if (readySent) send(u);
      });
      if (!final) unregister = ctx.onClose(stop);
      setImmediate(() => {
        send({ status: r.status });
        readySent = true;
        if (final) send(final);
      });
      return subscription;
    },
    author_callBlock: async (p) => {
      const [hex] = params(z.tuple([z.string().regex(/^0x[0-9a-fA-F]{64}$/)]), p);
      const n = await d.store.callBlock(fromHex(hex));
      return n === undefined ? null : n;
    },
    state_executeGetter: async (p) => {
      const [request] = params(oneHex, p);
      try {
        const { reply } = await d.enclave.call('getter', { request });
        return toHex(reply);
      } catch (err) {
        const code = codeOf(err) ?? 'INTERNAL';
        throw new RpcError(RpcCodes.GETTER_FAILED, `getter failed: ${(err as Error).message}`, { code });
      }
    },
    chain_getHeader: async (p) => {
      const [ref] = params(blockRef, p);
      const head = d.store.head();
      if (!head) return null;
      const n =
        ref === undefined || ref === null
          ? head.number
          : typeof ref === 'number'
            ? ref
            : await d.store.numberOf(fromHex(ref));
      if (n === undefined) return null;
      const bytes = await d.store.blockByNumber(n);
      return bytes ? headerJson(bytes) : null;
    },
    chain_getBlockHash: async (p) => {
      const [n] = params(optNumber, p);
      const head = d.store.head();
      if (!head) return null;
      if (n === undefined || n === null) return toHex(head.hash);
      const bytes = await d.store.blockByNumber(n);
      return bytes ? headerJson(bytes).hash : null;
    },
    chain_getFinalizedHead: async () => {
      // Final = anchored in a finalized parentchain block; without a parentchain only genesis is final.
      const f = d.parentchain?.finalized();
      if (f) return toHex(f.hash);
      const bytes = await d.store.blockByNumber(0);
      return bytes ? headerJson(bytes).hash : null;
    },
    shard_getInfo: async () => {
      if (!d.parentchain) return { shard: shardHex, parentchain: null };
      const i = await d.enclave.call('parentchainInfo', {});
      const f = d.parentchain.finalized();
      return {
        shard: shardHex,
        parentchain: {
          endpoint: d.parentchain.endpoint,
          genesisHash: toHex(i.genesisHash),
          processed: { number: i.number, hash: toHex(i.hash) },
        },
        vault: i.vault ? toHex(i.vault) : null,
        vaultReserveFunded: i.reserveFunded,
        vaultProxies: i.vaultProxies.map(toHex),
        shieldedSupply: String(i.shieldedSupply),
        unpaidWithdrawals: i.unpaidWithdrawals,
        lastAnchor: i.lastAnchor
          ? {
              number: i.lastAnchor.number,
              hash: toHex(i.lastAnchor.hash),
              parentchainNumber: i.lastAnchor.parentchainNumber,
            }
          : null,
        finalized: f ? { number: f.number, hash: toHex(f.hash) } : null,
        validateers: i.members.map((m) => ({
          signingKey: toHex(m.signingKey),
          measurement: toHex(m.measurement),
          peerId: m.peerId,
          p2pAddresses: m.p2pAddresses,
          registeredAt: m.registeredAt,
          unregisteredAt: m.unregisteredAt,
        })),
      };
    },
    system_health: async () => {
      const s = await d.enclave.call('status', {});
      return {
        ready: d.isReady(),
        headNumber: d.store.head()?.number ?? null,
        poolSize: s.poolSize,
        accounts: s.accounts,
        peers: d.network?.connectedPeers().length ?? 0,
      };
    },
    system_network: () => {
      const n = d.network;
      return n
        ? { peerId: n.peerId, addresses: n.addresses(), peers: n.connectedPeers() }
        : { peerId: null, addresses: [], peers: [] };
    },
    system_version: () => d.version,
  };
  const setBlocked = d.network?.setBlocked;
  if (setBlocked) {
    // Dev control (p2p.devControl): tests cut the set in two and heal it with real disconnects.
    methods.dev_setBlockedPeers = (p: unknown) => {
      const [peers] = params(z.tuple([z.array(z.string().min(1).max(128)).max(256)]), p);
      setBlocked(peers);
      return null;
    };
  }
  return methods;
}
