// The one place a libp2p node is assembled: TCP + noise + yamux, identify, ping and gossipsub, with
// every limit written out instead of inherited from library defaults that change between releases.
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { type GossipSub, type GossipsubOpts, gossipsub } from '@libp2p/gossipsub';
import { type Identify, identify } from '@libp2p/identify';
import type { ConnectionGater, Libp2p, PeerId, PrivateKey } from '@libp2p/interface';
import { type Ping, ping } from '@libp2p/ping';
import { tcp } from '@libp2p/tcp';
import { createLibp2p } from 'libp2p';

export type P2pServices = { identify: Identify; ping: Ping; pubsub: GossipSub };
export type P2pNode = Libp2p<P2pServices>;

export interface NodeLimits {
  maxConnections: number;
  maxGossipBytes: number;
  maxResponseBytes: number;
  requestTimeoutMs: number;
}

export interface NodeFactoryOptions {
  privateKey: PrivateKey;
  listen: string[];
  limits: NodeLimits;
  gossipsub: Partial<GossipsubOpts>;
  /** Blocked or banned peers: refused on dial and on both directions of the handshake. */
  isDenied(peerId: string): boolean;
}

const MiB = 1024 * 1024;

export function connectionGater(isDenied: (peerId: string) => boolean): ConnectionGater {
  const deny = (peer: PeerId): boolean => isDenied(peer.toString());
  return {
    denyDialPeer: deny,
    denyInboundEncryptedConnection: deny,
    denyOutboundEncryptedConnection: deny,
    denyInboundUpgradedConnection: deny,
    denyOutboundUpgradedConnection: deny,
  };
}

/** Creates the node stopped: protocol handlers are registered before it starts accepting streams. */
export async function createP2pNode(o: NodeFactoryOptions): Promise<P2pNode> {
  const { limits } = o;
  // The most a stream may hold unread or unsent: one gossip RPC or one whole response, plus slack.
  const streamBuffer = Math.max(limits.maxGossipBytes, limits.maxResponseBytes) + MiB;
  return createLibp2p<P2pServices>({
    start: false,
    privateKey: o.privateKey,
    addresses: { listen: o.listen },
    transports: [
      tcp({
        // Socket cap, above the connection manager's limit so it prunes first.
        maxConnections: limits.maxConnections + 16,
        backlog: 64,
        inboundSocketInactivityTimeout: 5 * 60_000,
        outboundSocketInactivityTimeout: 5 * 60_000,
        // Nagle would add up to 40 ms to small gossip frames.
        dialOpts: { noDelay: true, keepAlive: true },
        listenOpts: { noDelay: true, keepAlive: true },
      }),
    ],
    connectionEncrypters: [noise()],
    streamMuxers: [
      yamux({
        maxInboundStreams: 256,
        maxOutboundStreams: 256,
        maxEarlyStreams: 10,
        maxMessageSize: 64 * 1024,
        enableKeepAlive: true,
        keepAliveInterval: 15_000,
        streamOptions: {
          initialStreamWindowSize: 256 * 1024,
          maxStreamWindowSize: 16 * MiB,
          inactivityTimeout: 120_000,
          maxReadBufferLength: streamBuffer,
          maxWriteBufferLength: streamBuffer,
        },
      }),
    ],
    connectionManager: {
      maxConnections: limits.maxConnections,
      maxParallelDials: 32,
      maxDialQueueLength: 128,
      maxPeerAddrsToDial: 8,
      dialTimeout: 10_000,
      addressDialTimeout: 5_000,
      connectionCloseTimeout: 1_000,
      inboundUpgradeTimeout: 5_000,
      outboundStreamProtocolNegotiationTimeout: limits.requestTimeoutMs,
      inboundStreamProtocolNegotiationTimeout: limits.requestTimeoutMs,
      maxIncomingPendingConnections: 16,
      // Per remote host and second; several validateers on one host (devnet) redial each other.
      inboundConnectionThreshold: 16,
      // Our Dialer owns reconnection (with backoff and the blocked/banned checks).
      reconnectRetries: 0,
      reconnectRetryInterval: 1_000,
      reconnectBackoffFactor: 2,
      maxParallelReconnects: 5,
    },
    connectionMonitor: { enabled: true, pingInterval: 10_000, abortConnectionOnPingFailure: true },
    connectionGater: connectionGater(o.isDenied),
    peerDiscovery: [],
    services: {
      identify: identify({
        timeout: 5_000,
        maxMessageSize: 8_192,
        maxInboundStreams: 1,
        maxOutboundStreams: 1,
        runOnConnectionOpen: true,
        runOnLimitedConnection: false,
      }),
      ping: ping({ maxInboundStreams: 2, maxOutboundStreams: 2, timeout: 10_000, runOnLimitedConnection: false }),
      pubsub: gossipsub(o.gossipsub),
    },
  });
}
