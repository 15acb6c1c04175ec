// Onboarding progress on a terminal: a cli-progress bar with rate and ETA. Not a terminal (a service,
// a log file): no bar, the log lines and metrics carry the same figures.
import cliProgress from 'cli-progress';

export interface ProgressSink {
  start(total: number, done: number): void;
  update(done: number, rate: number): void;
  stop(): void;
}

export function terminalProgress(stream: NodeJS.WriteStream = process.stderr): ProgressSink | undefined {
  if (!stream.isTTY) return undefined;
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: 'sync [{bar}] {percentage}% | block {value}/{total} | {rate} blocks/s | ETA {eta_formatted}',
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  );
  return {
    start: (total, done) => bar.start(total, done, { rate: 0 }),
    update: (done, rate) => bar.update(done, { rate: Math.round(rate) }),
    stop: () => bar.stop(),
  };
}
