// Length-prefixed (unsigned varint) frames over a libp2p v3 stream, with a size bound checked on the
// length prefix (before the body is buffered) and a timeout on every read, write and close. Failures
// become ValidateerErrors so callers can tell a slow peer from an oversized or truncated frame.
// Frames are cut from whatever bytes have arrived (lpStream awaits each prefix byte on its own, which
// costs more than the block in a 512-block answer), and a whole answer goes out in one write.
import { UnexpectedEOFError, byteStream } from '@libp2p/utils';
import type { Stream } from '@libp2p/interface';
import { Uint8ArrayList } from 'uint8arraylist';
import { encode as varint } from 'uint8-varint';
import { ValidateerError } from '../protocol/errors.ts';

/** The most bytes a varint length prefix may take: 5 bytes encode up to 2^35 - 1. */
const MAX_LENGTH_BYTES = 5;

export interface FrameStream {
  /** Next frame; throws P2P_FRAME_TOO_LARGE when its announced length exceeds maxBytes. */
  read(maxBytes: number): Promise<Uint8Array>;
  write(frame: Uint8Array): Promise<void>;
  /** Several frames in one write. */
  writeAll(frames: Uint8Array[]): Promise<void>;
  /** Half-closes our writable end once queued bytes are handed to the muxer. */
  closeWrite(): Promise<void>;
  /** Drops everything the remote still sends (after a refusal, so its excess cannot abort us). */
  discardInput(): Promise<void>;
}

export interface FrameStreamOptions {
  timeoutMs: number;
  /** Bytes received but not yet read that may be buffered before the stream is reset. */
  maxBufferBytes: number;
}

/**
 * The next frame's length if its prefix is complete (undefined if not yet), checked against the
 * bound as soon as the prefix ends; a prefix that never terminates fails after MAX_LENGTH_BYTES.
 */
function frameLength(buf: Uint8ArrayList, limit: number): { length: number; prefix: number } | undefined {
  let value = 0;
  let scale = 1;
  const n = Math.min(buf.byteLength, MAX_LENGTH_BYTES);
  for (let i = 0; i < n; i++) {
    const b = buf.get(i);
    value += (b & 0x7f) * scale;
    if (b < 0x80) {
      if (value > limit)
        throw new ValidateerError('P2P_FRAME_TOO_LARGE', `frame of ${value} bytes exceeds the limit of ${limit}`);
      return { length: value, prefix: i + 1 };
    }
    scale *= 128;
  }
  if (n === MAX_LENGTH_BYTES) throw new ValidateerError('P2P_FRAME_TOO_LARGE', 'frame length prefix too long');
  return undefined;
}

export function frameStream(stream: Stream, opts: FrameStreamOptions): FrameStream {
  const bytes = byteStream(stream, { maxBufferSize: opts.maxBufferBytes });
  // Received bytes not yet cut into frames: at most one frame (bounded) plus one buffer's worth.
  const pending = new Uint8ArrayList();

  const take = (limit: number): Uint8Array | undefined => {
    const f = frameLength(pending, limit);
    if (!f || pending.byteLength < f.prefix + f.length) return undefined;
    const frame = pending.subarray(f.prefix, f.prefix + f.length);
    pending.consume(f.prefix + f.length);
    return frame;
  };

  const guarded = async <T>(what: string, op: (signal: AbortSignal) => Promise<T>): Promise<T> => {
    const signal = AbortSignal.timeout(opts.timeoutMs);
    try {
      return await op(signal);
    } catch (err) {
      if (signal.aborted) throw new ValidateerError('P2P_TIMEOUT', `${what} timed out after ${opts.timeoutMs} ms`);
      if (err instanceof ValidateerError) throw err;
      if (err instanceof UnexpectedEOFError)
        throw new ValidateerError('P2P_STREAM_CLOSED', `stream closed during ${what}`);
      throw new ValidateerError('P2P_STREAM_ERROR', `${what} failed: ${(err as Error).message}`);
    }
  };

  const encodeFrames = (frames: Uint8Array[]): Uint8ArrayList =>
    new Uint8ArrayList(...frames.flatMap((f) => [varint(f.byteLength), f]));

  return {
    read(maxBytes) {
      // A frame that has arrived already is cut without a timer or an await.
      try {
        const ready = take(maxBytes);
        if (ready) return Promise.resolve(ready);
      } catch (err) {
        return Promise.reject(err);
      }
      return guarded('read', async (signal) => {
        for (;;) {
          const chunk = await bytes.read({ signal });
          if (chunk == null)
            throw new ValidateerError(
              'P2P_STREAM_CLOSED',
              `stream closed during read (${pending.byteLength} bytes of a frame)`,
            );
          pending.append(chunk);
          const frame = take(maxBytes);
          if (frame) return frame;
        }
      });
    },
    write(frame) {
      return guarded('write', (signal) => bytes.write(encodeFrames([frame]), { signal }));
    },
    writeAll(frames) {
      return guarded('write', (signal) => bytes.write(encodeFrames(frames), { signal }));
    },
    closeWrite() {
      return guarded('close', (signal) => stream.close({ signal }));
    },
    discardInput() {
      return guarded('close read', (signal) => stream.closeRead({ signal }));
    },
  };
}
