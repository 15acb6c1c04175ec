// The validateer's network layer as one facade: gossip of blocks and calls, request/response for
// status, blocks and provisioning, dialling of the registered set, peer penalties and (for tests) partitions.
// Everything below it is wired here and nowhere else; the node only sees this interface.
import type { Libp2pEvents, PeerId } from '@libp2p/interface';
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id';
import { ValidateerError } from '../protocol/errors.ts';
import type { Logger } from 'pino';
import type { ChainStatus } from './codec.ts';
import { Dialer } from './dialer.ts';
import { type P2pNode, createP2pNode } from './factory.ts';
import {
  Gossip,
  type GossipKind,
  MessageIds,
  type PublishResult,
  type Validation,
  gossipsubOptions,
  topicName,
} from './gossip.ts';
import { loadOrCreatePeerKey } from './peer-key.ts';
import { ReqResp } from './reqresp.ts';
import { AppScores } from './scores.ts';

export type { ChainStatus, GossipKind, PublishResult, Validation };

export interface NetworkHandlers {
  /**
   * A gossiped block (raw bytes). Result decides propagation: accept = forward, ignore = drop silently, reject = drop
   * and penalise sender.
   */
  onBlock(bytes: Uint8Array, from: string): Promise<Validation>;
  /** A gossiped encrypted call (raw bytes). Same semantics. */
  onCall(bytes: Uint8Array, from: string): Promise<Validation>;
  /** A gossiped finality vote (raw bytes). Same semantics; absent: ignored. */
  onVote?(bytes: Uint8Array, from: string): Promise<Validation>;
  /** Our status, served on /validateer/status/1. */
  status(): ChainStatus;
  /** Called with a peer's status after it was fetched on connect (and whenever requestStatus succeeds). */
  onPeerStatus(peer: string, status: ChainStatus): void;
  /** Canonical blocks numbered from..from+count-1 that we have (may return fewer; stop at the first gap). */
  blocksByRange(from: number, count: number): Promise<Uint8Array[]>;
  /** Blocks we have (canonical or not) with these header hashes, in request order, skipping unknown ones. */
  blocksByHash(hashes: Uint8Array[]): Promise<Uint8Array[]>;
  /**
   * Serves /validateer/provision/1: opaque request (at most 16 KiB) from peer `from`, opaque response (at
   * most 64 KiB). Throw an error whose `code` starts with PROVISION_ to refuse; the requester gets
   * P2P_REFUSED with `${code}: ${message}`. Absent: requests are answered with a server error.
   */
  provision?(request: Uint8Array, from: string): Promise<Uint8Array>;
}

export interface NetworkLimits {
  maxConnections: number;
  maxGossipBytes: number;
  maxRequestBytes: number;
  maxResponseBytes: number;
  maxBlocksPerRequest: number;
  requestTimeoutMs: number;
  requestsPerSecond: number;
}

export interface NetworkHooks {
  onGossip?(topic: GossipKind, result: Validation | 'duplicate' | 'too_large'): void;
  onPeers?(count: number): void;
  onPenalty?(peer: string, reason: string): void;
}

export interface NetworkOptions {
  dataDir: string;
  shard: Uint8Array;
  listen: string[];
  bootstrap: string[];
  limits: NetworkLimits;
  logger: Logger;
  hooks?: NetworkHooks;
}

export interface Network {
  readonly peerId: string;
  /** Our listening multiaddrs (with /p2p/<id>), after start. */
  addresses(): string[];
  start(handlers: NetworkHandlers): Promise<void>;
  stop(): Promise<void>;
  publishBlock(bytes: Uint8Array): Promise<PublishResult>;
  publishCall(bytes: Uint8Array): Promise<PublishResult>;
  publishVote(bytes: Uint8Array): Promise<PublishResult>;
  setPeers(addrs: string[]): void;
  connectedPeers(): string[];
  requestStatus(peer: string): Promise<ChainStatus>;
  requestBlocksByRange(peer: string, from: number, count: number): Promise<Uint8Array[]>;
  requestBlocksByHash(peer: string, hashes: Uint8Array[]): Promise<Uint8Array[]>;
  /** Never dials (P2P_NO_PEER when not connected); a refusal throws P2P_REFUSED carrying the server's reason. */
  requestProvision(peer: string, request: Uint8Array): Promise<Uint8Array>;
  penalize(peer: string, reason: string): void;
  setBlocked(peerIds: string[]): void;
}

/** Recommended limits (the node's config may override any of them). */
export const DEFAULT_LIMITS: NetworkLimits = {
  maxConnections: 64,
  maxGossipBytes: 4 * 1024 * 1024,
  maxRequestBytes: 4 * 1024,
  maxResponseBytes: 32 * 1024 * 1024,
  maxBlocksPerRequest: 1024,
  requestTimeoutMs: 10_000,
  requestsPerSecond: 50,
};

/** App score: each penalty (penalize, or a gossip message above maxGossipBytes) costs this much. */
export const PENALTY_POINTS = 20;
/**
 * At or below this the peer is disconnected and refused for BAN_MS: five penalties in quick succession
 * (not a multiple of PENALTY_POINTS, so the decay between them cannot save the fifth).
 */
export const BAN_THRESHOLD = -90;
export const BAN_MS = 60_000;
export const PENALTY_HALF_LIFE_MS = 5 * 60_000;
/** Peer store tag on the registered set (value 100, the maximum). */
const SET_TAG = 'validateer-set';

export async function createNetwork(opts: NetworkOptions): Promise<Network> {
  validateOptions(opts);
  const privateKey = await loadOrCreatePeerKey(opts.dataDir);
  const peerId = peerIdFromPrivateKey(privateKey).toString();
  const log = opts.logger.child({ module: 'p2p' });
  const scores = new AppScores({ banThreshold: BAN_THRESHOLD, banMs: BAN_MS, halfLifeMs: PENALTY_HALF_LIFE_MS });
  const blocked = new Set<string>();
  const isDenied = (peer: string): boolean => blocked.has(peer) || scores.isBanned(peer);
  const kinds: GossipKind[] = ['blocks', 'calls', 'votes'];
  const kindOf = new Map(kinds.map((k) => [topicName(opts.shard, k), k]));
  const ids = new MessageIds((topic) => opts.hooks?.onGossip?.(kindOf.get(topic) ?? 'calls', 'duplicate'));
  const topics = [...kindOf.keys()];
  const node = await createP2pNode({
    privateKey,
    listen: opts.listen,
    limits: opts.limits,
    isDenied,
    gossipsub: gossipsubOptions({
      topics,
      maxGossipBytes: opts.limits.maxGossipBytes,
      ids,
      appScore: (peer) => scores.score(peer),
    }),
  });
  return new P2pNetwork({ opts, log, node, peerId, scores, blocked, ids });
}

function validateOptions(opts: NetworkOptions): void {
  if (opts.shard.length !== 32) throw new ValidateerError('P2P_INVALID_OPTIONS', 'shard must be 32 bytes');
  for (const [name, value] of Object.entries(opts.limits)) {
    if (!(typeof value === 'number' && value > 0 && Number.isFinite(value)))
      throw new ValidateerError('P2P_INVALID_OPTIONS', `limits.${name} must be a positive number`);
  }
}

interface Parts {
  opts: NetworkOptions;
  log: Logger;
  node: P2pNode;
  peerId: string;
  scores: AppScores;
  blocked: Set<string>;
  ids: MessageIds;
}

class P2pNetwork implements Network {
  readonly peerId: string;
  private readonly opts: NetworkOptions;
  private readonly log: Logger;
  private readonly node: P2pNode;
  private readonly scores: AppScores;
  private readonly blocked: Set<string>;
  private readonly reqresp: ReqResp;
  private readonly gossip: Gossip;
  private readonly dialer: Dialer;
  private handlers: NetworkHandlers | undefined;
  private readonly listeners: Array<() => void> = [];
  private tagged = new Set<string>();
  private stopped = false;

  constructor(p: Parts) {
    this.opts = p.opts;
    this.log = p.log;
    this.node = p.node;
    this.peerId = p.peerId;
    this.scores = p.scores;
    this.blocked = p.blocked;
    const { limits, hooks } = p.opts;
    this.reqresp = new ReqResp({ node: p.node, limits, logger: p.log });
    this.gossip = new Gossip({
      pubsub: p.node.services.pubsub,
      shard: p.opts.shard,
      maxGossipBytes: limits.maxGossipBytes,
      ids: p.ids,
      logger: p.log,
      onResult: (kind, result) => hooks?.onGossip?.(kind, result),
      onOversized: (peer, kind) => this.penalize(peer, `oversized ${kind} gossip`),
    });
    this.dialer = new Dialer({
      selfId: p.peerId,
      logger: p.log,
      dial: async (addrs) => {
        await p.node.dial(addrs);
      },
      isConnected: (peer) => p.node.getConnections(peerIdFromString(peer)).length > 0,
      isDenied: (peer) => this.isDenied(peer),
    });
    this.dialer.setBootstrap(p.opts.bootstrap);
  }

  addresses(): string[] {
    return this.node.getMultiaddrs().map((ma) => ma.toString());
  }

  async start(handlers: NetworkHandlers): Promise<void> {
    if (this.handlers !== undefined || this.stopped)
      throw new ValidateerError('P2P_ALREADY_STARTED', 'network already started (or stopped: create a new one)');
    this.handlers = handlers;
    this.listen('peer:connect', (evt) => this.onConnect(evt.detail));
    this.listen('peer:disconnect', (evt) => this.onDisconnect(evt.detail));
    // A connection whose handshake raced setBlocked/ban past the gater.
    this.listen('connection:open', (evt) => {
      if (this.isDenied(evt.detail.remotePeer.toString())) evt.detail.abort(new Error('peer is blocked'));
    });
    await this.reqresp.start(handlers);
    await this.node.start();
    this.gossip.start(handlers);
    this.dialer.start();
    this.log.info({ peerId: this.peerId, addresses: this.addresses() }, 'p2p network started');
  }

  /** Closes every connection, stream, listener and timer. Safe before start and twice; not restartable. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.dialer.stop();
    for (const off of this.listeners.splice(0)) off();
    // The node first: removing the topic validators while gossipsub runs would let messages through unvalidated.
    await this.node.stop();
    if (this.handlers === undefined) return;
    this.gossip.stop();
    await this.reqresp
      .stop()
      .catch((err: Error) => this.log.debug({ err: err.message }, 'unregistering protocols failed'));
    this.handlers = undefined;
    this.log.info('p2p network stopped');
  }

  /**
   * 'no_peers' when nobody was subscribed, 'duplicate' when the bytes were already seen. Async, so that a
   * publish after stop() is a rejected promise (its callers catch those), never a synchronous throw.
   */
  async publishBlock(bytes: Uint8Array): Promise<PublishResult> {
    this.requireStarted();
    return this.gossip.publish('blocks', bytes);
  }

  async publishCall(bytes: Uint8Array): Promise<PublishResult> {
    this.requireStarted();
    return this.gossip.publish('calls', bytes);
  }

  async publishVote(bytes: Uint8Array): Promise<PublishResult> {
    this.requireStarted();
    return this.gossip.publish('votes', bytes);
  }

  setPeers(addrs: string[]): void {
    const next = new Set(this.dialer.setPeers(addrs));
    // Tagged peers are the last the connection manager prunes when maxConnections is reached.
    const changes = [
      ...[...next].filter((p) => !this.tagged.has(p)).map((p) => [p, { value: 100 }] as const),
      ...[...this.tagged].filter((p) => !next.has(p)).map((p) => [p, undefined] as const),
    ];
    this.tagged = next;
    for (const [peer, tag] of changes) {
      this.node.peerStore
        .merge(peerIdFromString(peer), { tags: { [SET_TAG]: tag } })
        .catch((err: Error) => this.log.debug({ peer, err: err.message }, 'tagging peer failed'));
    }
  }

  connectedPeers(): string[] {
    return this.node.getPeers().map((p) => p.toString());
  }

  async requestStatus(peer: string): Promise<ChainStatus> {
    const status = await this.reqresp.requestStatus(this.parsePeer(peer));
    this.handlers?.onPeerStatus(peer, status);
    return status;
  }

  requestBlocksByRange(peer: string, from: number, count: number): Promise<Uint8Array[]> {
    return this.reqresp.requestBlocksByRange(this.parsePeer(peer), from, count);
  }

  requestBlocksByHash(peer: string, hashes: Uint8Array[]): Promise<Uint8Array[]> {
    return this.reqresp.requestBlocksByHash(this.parsePeer(peer), hashes);
  }

  requestProvision(peer: string, request: Uint8Array): Promise<Uint8Array> {
    return this.reqresp.requestProvision(this.parsePeer(peer), request);
  }

  penalize(peer: string, reason: string): void {
    if (peer === this.peerId) return;
    const banned = this.scores.penalize(peer, PENALTY_POINTS);
    this.opts.hooks?.onPenalty?.(peer, reason);
    this.log.debug({ peer, reason, score: this.scores.score(peer) }, 'peer penalised');
    if (!banned) return;
    this.log.warn({ peer, reason, banMs: BAN_MS }, 'peer banned');
    this.hangUp(peer);
  }

  setBlocked(peerIds: string[]): void {
    const next = new Set(peerIds.filter((p) => p !== this.peerId));
    const healed = [...this.blocked].some((p) => !next.has(p));
    this.blocked.clear();
    for (const p of next) this.blocked.add(p);
    for (const p of next) this.hangUp(p);
    if (healed) this.dialer.wake();
  }

  private isDenied(peer: string): boolean {
    return this.blocked.has(peer) || this.scores.isBanned(peer);
  }

  private onConnect(peer: PeerId): void {
    const id = peer.toString();
    this.dialer.onConnect(id);
    this.opts.hooks?.onPeers?.(this.node.getPeers().length);
    // Status on connect: errors are the peer's problem (or a race with its shutdown), never ours.
    void this.reqresp.requestStatus(peer).then(
      (status) => this.handlers?.onPeerStatus(id, status),
      (err: Error) => this.log.debug({ peer: id, err: err.message }, 'status on connect failed'),
    );
  }

  private onDisconnect(peer: PeerId): void {
    this.dialer.onDisconnect(peer.toString());
    this.opts.hooks?.onPeers?.(this.node.getPeers().length);
  }

  private hangUp(peer: string): void {
    let id: PeerId;
    try {
      id = peerIdFromString(peer);
    } catch {
      return;
    }
    if (this.node.getConnections(id).length === 0) return;
    this.node.hangUp(id).catch((err: Error) => this.log.debug({ peer, err: err.message }, 'hang up failed'));
  }

  private parsePeer(peer: string): PeerId {
    try {
      return peerIdFromString(peer);
    } catch {
      throw new ValidateerError('P2P_BAD_PEER_ID', `not a peer id: ${peer}`);
    }
  }

  private requireStarted(): void {
    if (this.handlers === undefined) throw new ValidateerError('P2P_NOT_STARTED', 'network not started');
  }

  private listen<K extends keyof Libp2pEvents>(name: K, fn: (evt: Libp2pEvents[K]) => void): void {
    this.node.addEventListener(name, fn);
    this.listeners.push(() => this.node.removeEventListener(name, fn));
  }
}
