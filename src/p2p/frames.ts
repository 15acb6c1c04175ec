// Length-prefixed (unsigned varint) frames over a libp2p v3 stream, with a size bound checked on the
// length prefix (before the body is buffered) and a timeout on every read, write and close. Failures
// become ValidateerErrors so callers can tell a slow peer from an oversized or truncated frame.
import { UnexpectedEOFError, lpStream } from '@libp2p/utils';
import type { Stream } from '@libp2p/interface';
import { ValidateerError } from '../codec/errors.ts';

/** The most bytes a varint length prefix may take: 5 bytes encode up to 2^35 - 1. */
const MAX_LENGTH_BYTES = 5;

export interface FrameStream {
  /** Next frame; throws P2P_FRAME_TOO_LARGE when its announced length exceeds maxBytes. */
  read(maxBytes: number): Promise<Uint8Array>;
  write(frame: Uint8Array): Promise<void>;
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

interface ByteList { readonly byteLength: number; get(index: number): number }

export function frameStream(stream: Stream, opts: FrameStreamOptions): FrameStream {
  let limit = 0;
  // Our own decoder so the bound applies as soon as the prefix is complete, and so a prefix that never
  // terminates fails after MAX_LENGTH_BYTES (lpStream keeps reading while the decoder throws RangeError).
  const lengthDecoder = (buf: ByteList): number => {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < buf.byteLength; i++) {
      const b = buf.get(i);
      value += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (value > limit) throw new ValidateerError('P2P_FRAME_TOO_LARGE', `frame of ${value} bytes exceeds the limit of ${limit}`);
        return value;
      }
      if (i + 1 >= MAX_LENGTH_BYTES) throw new ValidateerError('P2P_FRAME_TOO_LARGE', 'frame length prefix too long');
      scale *= 128;
    }
    throw new RangeError('incomplete length prefix');
  };
  const lp = lpStream(stream, { maxBufferSize: opts.maxBufferBytes, maxLengthLength: MAX_LENGTH_BYTES, lengthDecoder });

  const guarded = async <T>(what: string, op: (signal: AbortSignal) => Promise<T>): Promise<T> => {
    const signal = AbortSignal.timeout(opts.timeoutMs);
    try {
      return await op(signal);
    } catch (err) {
      if (signal.aborted) throw new ValidateerError('P2P_TIMEOUT', `${what} timed out after ${opts.timeoutMs} ms`);
      if (err instanceof ValidateerError) throw err;
      if (err instanceof UnexpectedEOFError) throw new ValidateerError('P2P_STREAM_CLOSED', `stream closed during ${what}`);
      throw new ValidateerError('P2P_STREAM_ERROR', `${what} failed: ${(err as Error).message}`);
    }
  };

  return {
    read(maxBytes) {
      limit = maxBytes;
      return guarded('read', async (signal) => (await lp.read({ signal })).subarray());
    },
    write(frame) {
      return guarded('write', (signal) => lp.write(frame, { signal }));
    },
    closeWrite() {
      return guarded('close', (signal) => stream.close({ signal }));
    },
    discardInput() {
      return guarded('close read', (signal) => stream.closeRead({ signal }));
    },
  };
}
