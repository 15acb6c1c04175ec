// Request/response protocols (status, blocks-by-range, blocks-by-hash, provision): one request frame,
// then a header frame (response code) and, for blocks, a counted sequence of block frames, for
// provision, one opaque response frame. The server answers malformed, over-limit and rate-limited
// requests with an error code instead of dropping the stream, and never lets one request's failure
// affect the others.
import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface';
import { ValidateerError, hasCode, type P2pCode } from '../protocol/errors.ts';
import type { Logger } from 'pino';
import {
  type ChainStatus,
  type Protocol,
  HASH_BYTES,
  MAX_HEADER_BYTES,
  PROTOCOL_BLOCKS_BY_HASH,
  PROTOCOL_BLOCKS_BY_RANGE,
  PROTOCOL_PROVISION,
  PROTOCOL_STATUS,
  PROVISION_MAX_REQUEST_BYTES,
  PROVISION_MAX_RESPONSE_BYTES,
  ResponseCode,
  decodeBlockCount,
  decodeHashRequest,
  decodeHeader,
  decodeRangeRequest,
  decodeStatus,
  encodeBlockCountHeader,
  encodeErrorHeader,
  encodeHashRequest,
  encodeOkHeader,
  encodeRangeRequest,
  encodeStatus,
} from './codec.ts';
import { type FrameStream, frameStream } from './frames.ts';
import { RateLimiter } from './rate-limiter.ts';

export interface ReqRespLimits {
  maxRequestBytes: number;
  maxResponseBytes: number;
  maxBlocksPerRequest: number;
  requestTimeoutMs: number;
  requestsPerSecond: number;
}

/** What the server side serves; the network facade forwards these to the node's handlers. */
export interface ReqRespHandlers {
  status(): ChainStatus;
  blocksByRange(from: number, count: number): Promise<Uint8Array[]>;
  blocksByHash(hashes: Uint8Array[]): Promise<Uint8Array[]>;
  /**
   * Opaque provisioning request from peer `from`; returns the opaque response. Throw a P2P_REFUSED
   * error to refuse (the requester sees its message as the reason); any other error is a server
   * error. Without the handler, provisioning is answered with a server error.
   */
  provision?(request: Uint8Array, from: string): Promise<Uint8Array>;
}

/**
 * Concurrent streams per protocol and connection. Status is tiny; block responses can be up to
 * maxResponseBytes each, so few may be in flight per peer (and per peer we are fetching from).
 */
export const STREAM_LIMITS: Record<Protocol, { maxInboundStreams: number; maxOutboundStreams: number }> = {
  [PROTOCOL_STATUS]: { maxInboundStreams: 4, maxOutboundStreams: 4 },
  [PROTOCOL_BLOCKS_BY_RANGE]: { maxInboundStreams: 4, maxOutboundStreams: 4 },
  [PROTOCOL_BLOCKS_BY_HASH]: { maxInboundStreams: 4, maxOutboundStreams: 4 },
  // Provisioning is rare and one exchange per peer at a time is the normal case.
  [PROTOCOL_PROVISION]: { maxInboundStreams: 2, maxOutboundStreams: 2 },
};

const PROTOCOLS = [PROTOCOL_STATUS, PROTOCOL_BLOCKS_BY_RANGE, PROTOCOL_BLOCKS_BY_HASH, PROTOCOL_PROVISION] as const;

/** Slack over a frame bound for what the byte reader may buffer (one yamux window of early data). */
const BUFFER_SLACK = 256 * 1024;

type Node = Pick<Libp2p, 'handle' | 'unhandle' | 'getConnections'>;

export class ReqResp {
  private readonly node: Node;
  private readonly limits: ReqRespLimits;
  private readonly log: Logger;
  private readonly limiter: RateLimiter;
  private handlers: ReqRespHandlers | undefined;

  constructor(deps: { node: Node; limits: ReqRespLimits; logger: Logger; limiter?: RateLimiter }) {
    this.node = deps.node;
    this.limits = deps.limits;
    this.log = deps.logger;
    this.limiter =
      deps.limiter ??
      new RateLimiter({ rate: deps.limits.requestsPerSecond, burst: 2 * deps.limits.requestsPerSecond });
  }

  /** Largest number of hashes one blocks-by-hash request may carry (request size and block count bounds). */
  get maxHashesPerRequest(): number {
    return Math.min(this.limits.maxBlocksPerRequest, Math.floor(this.limits.maxRequestBytes / HASH_BYTES));
  }

  async start(handlers: ReqRespHandlers): Promise<void> {
    this.handlers = handlers;
    for (const protocol of PROTOCOLS) {
      await this.node.handle(
        protocol,
        (stream, connection) => this.serve(protocol, stream, connection),
        STREAM_LIMITS[protocol],
      );
    }
  }

  async stop(): Promise<void> {
    await this.node.unhandle([...PROTOCOLS]);
    this.handlers = undefined;
  }

  // ---- client ----

  async requestStatus(peer: PeerId): Promise<ChainStatus> {
    return this.request(peer, PROTOCOL_STATUS, new Uint8Array(0), async (_frames, payload) => decodeStatus(payload));
  }

  /** Counts above maxBlocksPerRequest are clamped (the server clamps too); the answer may be shorter. */
  async requestBlocksByRange(peer: PeerId, from: number, count: number): Promise<Uint8Array[]> {
    if (!Number.isSafeInteger(from) || from < 0 || !Number.isSafeInteger(count) || count < 0) {
      throw new ValidateerError('P2P_INVALID_ARGUMENT', 'from and count must be non-negative integers');
    }
    const clamped = Math.min(count, this.limits.maxBlocksPerRequest);
    if (clamped === 0) return [];
    return this.request(
      peer,
      PROTOCOL_BLOCKS_BY_RANGE,
      encodeRangeRequest({ from, count: clamped }),
      (frames, payload) => this.readBlocks(frames, payload, clamped),
    );
  }

  /** At most maxHashesPerRequest hashes (P2P_INVALID_ARGUMENT otherwise): split larger lookups. */
  async requestBlocksByHash(peer: PeerId, hashes: Uint8Array[]): Promise<Uint8Array[]> {
    if (hashes.length === 0) return [];
    if (hashes.length > this.maxHashesPerRequest) {
      throw new ValidateerError(
        'P2P_INVALID_ARGUMENT',
        `at most ${this.maxHashesPerRequest} hashes per request, got ${hashes.length}`,
      );
    }
    const body = encodeHashRequest(hashes);
    return this.request(peer, PROTOCOL_BLOCKS_BY_HASH, body, (frames, payload) =>
      this.readBlocks(frames, payload, hashes.length),
    );
  }

  /**
   * At most PROVISION_MAX_REQUEST_BYTES (P2P_INVALID_ARGUMENT otherwise). A refusal by the server throws
   * P2P_REFUSED whose message carries the server's reason (for the enclave's refusals `PROVISION_...: ...`).
   */
  async requestProvision(peer: PeerId, request: Uint8Array): Promise<Uint8Array> {
    if (request.length > PROVISION_MAX_REQUEST_BYTES) {
      throw new ValidateerError(
        'P2P_INVALID_ARGUMENT',
        `provision request of ${request.length} bytes exceeds ${PROVISION_MAX_REQUEST_BYTES}`,
      );
    }
    return this.request(peer, PROTOCOL_PROVISION, request, async (frames, payload) => {
      if (payload.length !== 0) throw new ValidateerError('P2P_BAD_RESPONSE', 'provision ok header must be bare');
      return frames.read(PROVISION_MAX_RESPONSE_BYTES);
    });
  }

  private async request<T>(
    peer: PeerId,
    protocol: Protocol,
    body: Uint8Array,
    readOk: (frames: FrameStream, payload: Uint8Array) => Promise<T>,
  ): Promise<T> {
    // Only over an existing connection: requests never dial (dialling and gating belong to the peer manager).
    const connection = this.node.getConnections(peer).find((c) => c.status === 'open');
    if (connection === undefined) throw new ValidateerError('P2P_NO_PEER', `not connected to ${peer.toString()}`);
    let stream: Stream | undefined;
    try {
      const signal = AbortSignal.timeout(this.limits.requestTimeoutMs);
      try {
        stream = await connection.newStream(protocol, { signal, ...STREAM_LIMITS[protocol] });
      } catch (err) {
        if (signal.aborted) throw new ValidateerError('P2P_TIMEOUT', `opening ${protocol} timed out`);
        throw new ValidateerError(
          'P2P_REQUEST_FAILED',
          `cannot open ${protocol} to ${peer.toString()}: ${(err as Error).message}`,
        );
      }
      const maxResponseBytes =
        protocol === PROTOCOL_PROVISION ? PROVISION_MAX_RESPONSE_BYTES : this.limits.maxResponseBytes;
      const frames = frameStream(stream, {
        timeoutMs: this.limits.requestTimeoutMs,
        maxBufferBytes: maxResponseBytes + BUFFER_SLACK,
      });
      await frames.write(body);
      await frames.closeWrite();
      const header = decodeHeader(await frames.read(MAX_HEADER_BYTES));
      if (header.code !== ResponseCode.ok) {
        // Provision refusals are decisions the caller acts on (e.g. a replay), not malformed requests.
        const refused = protocol === PROTOCOL_PROVISION ? 'P2P_REFUSED' : 'P2P_INVALID_REQUEST';
        const [code, what]: [P2pCode, string] =
          header.code === ResponseCode.rateLimited
            ? ['P2P_RATE_LIMITED', 'rate-limited']
            : header.code === ResponseCode.invalidRequest
              ? [refused, 'refused']
              : ['P2P_SERVER_ERROR', 'failed'];
        throw new ValidateerError(code, `${peer.toString()} ${what} ${protocol}: ${header.reason}`);
      }
      // Our side is closed already; the stream ends when the server closes its side after the last frame.
      return await readOk(frames, header.payload);
    } catch (err) {
      stream?.abort(err as Error);
      throw clientError(err, protocol);
    }
  }

  private async readBlocks(frames: FrameStream, payload: Uint8Array, maxCount: number): Promise<Uint8Array[]> {
    const count = decodeBlockCount(payload);
    if (count > maxCount)
      throw new ValidateerError('P2P_BAD_RESPONSE', `peer announced ${count} blocks, asked for at most ${maxCount}`);
    const blocks: Uint8Array[] = [];
    let budget = this.limits.maxResponseBytes;
    for (let i = 0; i < count; i++) {
      const block = await frames.read(budget);
      budget -= block.length;
      blocks.push(block);
    }
    return blocks;
  }

  // ---- server ----

  private async serve(protocol: Protocol, stream: Stream, connection: Connection): Promise<void> {
    const peer = connection.remotePeer.toString();
    const maxRequestBytes = protocol === PROTOCOL_PROVISION ? PROVISION_MAX_REQUEST_BYTES : this.limits.maxRequestBytes;
    const frames = frameStream(stream, {
      timeoutMs: this.limits.requestTimeoutMs,
      maxBufferBytes: maxRequestBytes + BUFFER_SLACK,
    });
    try {
      if (!this.limiter.tryTake(peer, protocol)) {
        this.log.debug({ peer, protocol }, 'request rate-limited');
        await this.refuse(frames, ResponseCode.rateLimited, 'rate limited');
        return;
      }
      let request: Uint8Array;
      try {
        request = await frames.read(maxRequestBytes);
      } catch (err) {
        if (!hasCode(err, 'P2P_FRAME_TOO_LARGE')) throw err;
        await this.refuse(frames, ResponseCode.invalidRequest, 'request too large');
        return;
      }
      let response: Uint8Array[];
      try {
        response = await this.answer(protocol, request, peer);
      } catch (err) {
        const failure = this.failure(protocol, peer, err);
        await this.refuse(frames, failure.code, failure.reason);
        return;
      }
      await frames.writeAll(response);
      await frames.closeWrite();
    } catch (err) {
      // Timeouts and resets end only this stream.
      this.log.debug({ peer, protocol, err: (err as Error).message }, 'request stream failed');
      stream.abort(err as Error);
    }
  }

  /** The error header for a failed answer, logged by whose problem it is. */
  private failure(protocol: Protocol, peer: string, err: unknown): { code: 1 | 3; reason: string } {
    const message = err instanceof Error ? err.message : String(err);
    // An invalid request or a provisioning refusal is the peer's problem; a failing handler is ours.
    if (hasCode(err, 'DECODE_FAILED', 'P2P_INVALID_REQUEST')) {
      this.log.debug({ peer, protocol, err: message }, 'invalid request');
      return { code: ResponseCode.invalidRequest, reason: message };
    }
    if (protocol === PROTOCOL_PROVISION && hasCode(err, 'P2P_REFUSED')) {
      this.log.info({ peer, err: message }, 'provision refused');
      return { code: ResponseCode.invalidRequest, reason: message };
    }
    if (hasCode(err, 'P2P_NOT_SERVED')) {
      this.log.debug({ peer, protocol }, message);
      return { code: ResponseCode.serverError, reason: message };
    }
    this.log.warn({ peer, protocol, err: message }, 'request handler failed');
    return { code: ResponseCode.serverError, reason: 'internal error' };
  }

  private async refuse(frames: FrameStream, code: 1 | 2 | 3, reason: string): Promise<void> {
    await frames.discardInput();
    await frames.write(encodeErrorHeader(code, reason));
    await frames.closeWrite();
  }

  /**
   * The frames of an ok response. Throws DECODE_FAILED / P2P_INVALID_REQUEST for bad requests, P2P_REFUSED for
   * refusals.
   */
  private async answer(protocol: Protocol, request: Uint8Array, peer: string): Promise<Uint8Array[]> {
    const handlers = this.handlers;
    if (handlers === undefined) throw new ValidateerError('P2P_NOT_STARTED', 'not serving');
    if (protocol === PROTOCOL_STATUS) {
      if (request.length !== 0) throw new ValidateerError('P2P_INVALID_REQUEST', 'status request must be empty');
      return [encodeOkHeader(encodeStatus(handlers.status()))];
    }
    if (protocol === PROTOCOL_BLOCKS_BY_RANGE) {
      const { from, count } = decodeRangeRequest(request);
      if (count === 0) throw new ValidateerError('P2P_INVALID_REQUEST', 'count must be at least 1');
      // Clamped, not refused: "may return fewer" lets the requester continue from where this ends.
      const clamped = Math.min(count, this.limits.maxBlocksPerRequest);
      return this.blockFrames(await this.withTimeout(handlers.blocksByRange(from, clamped)), clamped);
    }
    if (protocol === PROTOCOL_PROVISION) {
      if (handlers.provision === undefined) throw new ValidateerError('P2P_NOT_SERVED', 'provisioning not served');
      const response = await this.withTimeout(handlers.provision(request, peer));
      if (!(response instanceof Uint8Array))
        throw new ValidateerError('P2P_BAD_HANDLER_RESULT', 'provision handler returned no bytes');
      if (response.length > PROVISION_MAX_RESPONSE_BYTES) {
        throw new ValidateerError(
          'P2P_RESPONSE_TOO_LARGE',
          `provision response of ${response.length} bytes exceeds ${PROVISION_MAX_RESPONSE_BYTES}`,
        );
      }
      return [encodeOkHeader(new Uint8Array(0)), response];
    }
    const hashes = decodeHashRequest(request);
    if (hashes.length > this.limits.maxBlocksPerRequest)
      throw new ValidateerError('P2P_INVALID_REQUEST', `at most ${this.limits.maxBlocksPerRequest} hashes per request`);
    return this.blockFrames(await this.withTimeout(handlers.blocksByHash(hashes)), hashes.length);
  }

  /** Header + blocks, cut at the block count and at maxResponseBytes (a block that does not fit ends the answer). */
  private blockFrames(blocks: Uint8Array[], maxCount: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    let bytes = 0;
    for (const block of blocks) {
      if (out.length >= maxCount || bytes + block.length > this.limits.maxResponseBytes) break;
      bytes += block.length;
      out.push(block);
    }
    return [encodeBlockCountHeader(out.length), ...out];
  }

  private async withTimeout<T>(p: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new ValidateerError('P2P_TIMEOUT', 'request handler timed out')),
        this.limits.requestTimeoutMs,
      );
    });
    try {
      return await Promise.race([p, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Client-side errors: stream/frame failures become the stable codes callers match on. */
function clientError(err: unknown, protocol: string): ValidateerError {
  if (!(err instanceof ValidateerError))
    return new ValidateerError('P2P_REQUEST_FAILED', `${protocol}: ${(err as Error).message}`);
  switch (err.code) {
    case 'P2P_FRAME_TOO_LARGE':
    case 'P2P_STREAM_CLOSED':
    case 'DECODE_FAILED':
      return new ValidateerError('P2P_BAD_RESPONSE', `${protocol}: ${err.message}`);
    case 'P2P_STREAM_ERROR':
      return new ValidateerError('P2P_REQUEST_FAILED', `${protocol}: ${err.message}`);
    default:
      return err;
  }
}
