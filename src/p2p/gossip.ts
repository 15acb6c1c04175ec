// Gossip of blocks and encrypted calls over @libp2p/gossipsub. Messages are content-addressed
// (sha256 of topic and data), so the same bytes are one message however often they are published or
// forwarded, and the seen cache drops copies before any validation. The node's handler runs inside the
// topic validator: gossipsub forwards a message only after the handler accepted it, and a reject is
// scored against the peer that sent it (gossipsub P4). It does not touch the application score: the
// node calls penalize for that when it wants to (it knows whether the fault is worth a ban).
import { createHash } from 'node:crypto';
import { StrictNoSign, TopicValidatorResult } from '@libp2p/gossipsub';
import type { GossipSub, GossipsubOpts, Message } from '@libp2p/gossipsub';
import type { PeerScoreParams, PeerScoreThresholds, TopicScoreParams } from '@libp2p/gossipsub/score';
import type { PeerId } from '@libp2p/interface';
import { ValidateerError } from '../protocol/errors.ts';
import type { Logger } from 'pino';
import { bytesView, toHex } from '../protocol/bytes.ts';

export type Validation = 'accept' | 'ignore' | 'reject';
export type GossipKind = 'blocks' | 'calls' | 'votes';
export type GossipResult = Validation | 'duplicate' | 'too_large';
export type PublishResult = 'sent' | 'no_peers' | 'duplicate';

/** Calls 2: forwarded batches are signed by their sender (an enclave of another version could not open them). */
const TOPIC_VERSION: Record<GossipKind, number> = { blocks: 1, calls: 2, votes: 1 };
const KINDS: GossipKind[] = ['blocks', 'calls', 'votes'];

export function topicName(shard: Uint8Array, kind: GossipKind): string {
  return `/validateer/${toHex(shard)}/${kind}/${TOPIC_VERSION[kind]}`;
}

/** RPC envelope allowance on top of the largest message: topic, control messages, framing. */
export const GOSSIP_RPC_OVERHEAD = 64 * 1024;
/** How long message ids are remembered: a copy arriving later than this is processed again. */
export const SEEN_TTL_MS = 120_000;

/**
 * Message ids. Each received copy passes through fastMsgIdFn first, which is where copies of an
 * already seen message are counted; the digest is kept (keyed by the data buffer) so msgIdFn does not
 * hash a 4 MiB block twice.
 */
export class MessageIds {
  private readonly digests = new WeakMap<Uint8Array, { topic: string; digest: Uint8Array }>();
  /** Insertion-ordered, so expiry only ever removes from the front. */
  private readonly seen = new Map<string, number>();
  private readonly onDuplicate: (topic: string) => void;

  constructor(onDuplicate: (topic: string) => void) {
    this.onDuplicate = onDuplicate;
  }

  readonly fastMsgIdFn = (msg: { topic: string; data?: Uint8Array }): string => {
    const id = this.idString(msg.topic, msg.data ?? new Uint8Array(0));
    if (!this.observe(id)) this.onDuplicate(msg.topic);
    return id;
  };

  readonly msgIdFn = (msg: Message): Uint8Array => this.digest(msg.topic, msg.data);

  readonly msgIdToStrFn = (id: Uint8Array): string => bytesView(id).toString('base64');

  /** Records a message we published, so copies peers send back count as duplicates. */
  markPublished(topic: string, data: Uint8Array): void {
    this.observe(this.idString(topic, data));
  }

  private idString(topic: string, data: Uint8Array): string {
    return this.msgIdToStrFn(this.digest(topic, data));
  }

  private digest(topic: string, data: Uint8Array): Uint8Array {
    const cached = this.digests.get(data);
    if (cached?.topic === topic) return cached.digest;
    const digest = new Uint8Array(createHash('sha256').update(topic).update(data).digest());
    this.digests.set(data, { topic, digest });
    return digest;
  }

  /** True the first time an id is seen within SEEN_TTL_MS. */
  private observe(id: string): boolean {
    const now = Date.now();
    for (const [old, at] of this.seen) {
      if (now - at < SEEN_TTL_MS) break;
      this.seen.delete(old);
    }
    if (this.seen.has(id)) return false;
    this.seen.set(id, now);
    return true;
  }
}

/**
 * Score parameters for our topics. Low-traffic topics must not punish honest peers for the messages
 * they did not deliver, so mesh-delivery penalties (P3, P3b) are off; what lowers a score is invalid
 * messages (P4: one reject -20, three within a minute or so graylist the peer) and our app score (P5).
 */
export function scoreParams(topics: string[], appScore: (peer: string) => number): Partial<PeerScoreParams> {
  const topic: TopicScoreParams = {
    topicWeight: 1,
    timeInMeshWeight: 0,
    timeInMeshQuantum: 1000,
    timeInMeshCap: 3600,
    firstMessageDeliveriesWeight: 0.5,
    firstMessageDeliveriesDecay: 0.9,
    firstMessageDeliveriesCap: 20,
    meshMessageDeliveriesWeight: 0,
    meshMessageDeliveriesDecay: 0.5,
    meshMessageDeliveriesCap: 100,
    meshMessageDeliveriesThreshold: 1,
    meshMessageDeliveriesWindow: 10,
    meshMessageDeliveriesActivation: 5000,
    meshFailurePenaltyWeight: 0,
    meshFailurePenaltyDecay: 0.5,
    invalidMessageDeliveriesWeight: -20,
    invalidMessageDeliveriesDecay: 0.99,
  };
  return {
    topics: Object.fromEntries(topics.map((t) => [t, topic])),
    topicScoreCap: 10,
    appSpecificScore: appScore,
    appSpecificWeight: 1,
    // Devnets run several validateers on one host; elsewhere more than 10 peers on one IP is suspicious.
    IPColocationFactorWeight: -5,
    IPColocationFactorThreshold: 10,
    IPColocationFactorWhitelist: new Set(['127.0.0.1', '::1']),
    behaviourPenaltyWeight: -10,
    behaviourPenaltyThreshold: 0,
    behaviourPenaltyDecay: 0.2,
    decayInterval: 1000,
    decayToZero: 0.1,
    retainScore: 3_600_000,
  };
}

export const SCORE_THRESHOLDS: PeerScoreThresholds = {
  gossipThreshold: -10,
  publishThreshold: -50,
  graylistThreshold: -80,
  acceptPXThreshold: 10,
  opportunisticGraftThreshold: 20,
};

/** Every gossipsub knob we rely on, explicit. */
export function gossipsubOptions(o: {
  topics: string[];
  maxGossipBytes: number;
  ids: MessageIds;
  appScore(peer: string): number;
}): Partial<GossipsubOpts> {
  return {
    // Small sets (3..20 validateers): every peer fits in the mesh, and we flood our own messages.
    D: 8,
    Dlo: 6,
    Dhi: 12,
    Dscore: 4,
    Dout: 2,
    Dlazy: 6,
    heartbeatInterval: 700,
    fanoutTTL: 60_000,
    mcacheLength: 6,
    mcacheGossip: 3,
    seenTTL: SEEN_TTL_MS,
    gossipFactor: 0.25,
    gossipsubIWantFollowupMs: 3_000,
    // Large messages: tell mesh peers we have it so they do not send another copy.
    idontwantMinDataSize: 512,
    idontwantMaxMessages: 512,
    floodPublish: true,
    batchPublish: false,
    doPX: false,
    fallbackToFloodsub: false,
    emitSelf: false,
    tagMeshPeers: true,
    // The node's handler is the topic validator: forwarding waits for it, no separate report step.
    asyncValidation: false,
    allowPublishToZeroTopicPeers: true,
    ignoreDuplicatePublishError: false,
    // Blocks and calls carry their own signatures; unsigned envelopes skip a verification per copy and
    // do not tie a message to the peer that first published it.
    globalSignaturePolicy: StrictNoSign,
    msgIdFn: o.ids.msgIdFn,
    fastMsgIdFn: o.ids.fastMsgIdFn,
    msgIdToStrFn: o.ids.msgIdToStrFn,
    allowedTopics: o.topics,
    maxInboundDataLength: o.maxGossipBytes + GOSSIP_RPC_OVERHEAD,
    maxOutboundBufferSize: 4 * (o.maxGossipBytes + GOSSIP_RPC_OVERHEAD),
    maxInboundStreams: 2,
    maxOutboundStreams: 2,
    maxTopicBytesPerPeer: 64 * 1024,
    decodeRpcLimits: {
      maxSubscriptions: 64,
      maxMessages: 256,
      maxIhaveMessageIDs: 5000,
      maxIwantMessageIDs: 5000,
      maxIdontwantMessageIDs: 512,
      maxControlMessages: 256,
      maxPeerInfos: 16,
    },
    scoreParams: scoreParams(o.topics, o.appScore),
    scoreThresholds: SCORE_THRESHOLDS,
  };
}

export interface GossipHandlers {
  onBlock(bytes: Uint8Array, from: string): Promise<Validation>;
  onCall(bytes: Uint8Array, from: string): Promise<Validation>;
  /** Finality votes; absent: ignored (a node without a parentchain has no finality to vote on). */
  onVote?(bytes: Uint8Array, from: string): Promise<Validation>;
}

export interface GossipOptions {
  pubsub: GossipSub;
  shard: Uint8Array;
  maxGossipBytes: number;
  ids: MessageIds;
  logger: Logger;
  onResult?(kind: GossipKind, result: GossipResult): void;
  /** A peer sent a message above maxGossipBytes: a protocol violation the node never sees. */
  onOversized(peer: string, kind: GossipKind): void;
}

const TO_GOSSIPSUB: Record<Validation, TopicValidatorResult> = {
  accept: TopicValidatorResult.Accept,
  ignore: TopicValidatorResult.Ignore,
  reject: TopicValidatorResult.Reject,
};

export class Gossip {
  private readonly options: GossipOptions;
  readonly topics: Record<GossipKind, string>;

  constructor(o: GossipOptions) {
    this.options = o;
    this.topics = {
      blocks: topicName(o.shard, 'blocks'),
      calls: topicName(o.shard, 'calls'),
      votes: topicName(o.shard, 'votes'),
    };
  }

  /** After libp2p started (gossipsub refuses subscriptions before). */
  start(handlers: GossipHandlers): void {
    const { pubsub } = this.options;
    const handler: Record<GossipKind, (bytes: Uint8Array, from: string) => Promise<Validation>> = {
      blocks: handlers.onBlock,
      calls: handlers.onCall,
      votes: handlers.onVote ?? (() => Promise.resolve('ignore')),
    };
    for (const kind of KINDS) {
      pubsub.topicValidators.set(this.topics[kind], (peer, msg) => this.validate(kind, peer, msg, handler[kind]));
      pubsub.subscribe(this.topics[kind]);
    }
  }

  stop(): void {
    for (const kind of KINDS) this.options.pubsub.topicValidators.delete(this.topics[kind]);
  }

  async publish(kind: GossipKind, bytes: Uint8Array): Promise<PublishResult> {
    if (bytes.length > this.options.maxGossipBytes) {
      throw new ValidateerError(
        'P2P_TOO_LARGE',
        `${kind} message of ${bytes.length} bytes exceeds maxGossipBytes ${this.options.maxGossipBytes}`,
      );
    }
    const topic = this.topics[kind];
    let result: PublishResult;
    try {
      const { recipients } = await this.options.pubsub.publish(topic, bytes);
      result = recipients.length > 0 ? 'sent' : 'no_peers';
    } catch (err) {
      // Seen before (published already, or received from a peer first): it is on the network.
      if ((err as Error).message !== 'PublishError.Duplicate')
        throw new ValidateerError('P2P_PUBLISH_FAILED', `publishing ${kind}: ${(err as Error).message}`);
      result = 'duplicate';
    }
    this.options.ids.markPublished(topic, bytes);
    if (result !== 'sent')
      this.options.logger.debug({ kind, bytes: bytes.length, result }, 'gossip publish reached no peer');
    return result;
  }

  private async validate(
    kind: GossipKind,
    peer: PeerId,
    msg: Message,
    handler: (bytes: Uint8Array, from: string) => Promise<Validation>,
  ): Promise<TopicValidatorResult> {
    const from = peer.toString();
    if (msg.data.length > this.options.maxGossipBytes) {
      this.options.onResult?.(kind, 'too_large');
      this.options.onOversized(from, kind);
      return TopicValidatorResult.Reject;
    }
    let result: Validation;
    try {
      result = await handler(msg.data, from);
      if (TO_GOSSIPSUB[result] === undefined) throw new TypeError(`handler returned ${String(result)}`);
    } catch (err) {
      // A handler bug must not punish the sender nor forward an unvalidated message.
      this.options.logger.warn(
        { kind, peer: from, err: (err as Error).message },
        'gossip handler failed; ignoring message',
      );
      result = 'ignore';
    }
    this.options.onResult?.(kind, result);
    return TO_GOSSIPSUB[result];
  }
}
