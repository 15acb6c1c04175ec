// Structured logging: pino JSON lines, to stderr by default so stdout stays free for command output.
import pino from 'pino';
import type { Logger } from 'pino';

export type { Logger };

export interface LoggerOptions {
  level: string;
  name?: string;
  destination?: NodeJS.WritableStream;
}

export function createLogger(opts: LoggerOptions): Logger {
  // Synchronous stderr writes: a crash or process.exit must not drop the last lines.
  const destination = opts.destination ?? pino.destination({ dest: 2, sync: true });
  return pino({ level: opts.level, name: opts.name }, destination);
}
