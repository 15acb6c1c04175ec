// Environment a validateer node process is started with (by the `validateer` bin's shebang, the
// devnet, the benchmark and the tests), so that every way of running one measures the same thing.
//
// glibc's malloc raises its mmap and trim thresholds each time a big buffer (a block, an RPC batch)
// is freed, up to 32 and 64 MiB per arena, and then keeps that much freed memory instead of
// returning it. A fixed trim threshold turns that off (and fixes the mmap threshold at 128 KiB). In
// interleaved bench runs: RSS after replaying 100k accounts 234-244 instead of 273-274 MiB (259-264
// instead of 296-313 for a 4x longer log), peak RSS under load ~100 MiB lower, the same calls/s,
// replay ~10 % slower (big buffers are mmapped and faulted in anew). No effect with other C libraries.
const NODE_PROCESS_ENV: Readonly<Record<string, string>> = Object.freeze({ MALLOC_TRIM_THRESHOLD_: '131072' });

/** The environment for spawning a validateer node: `base` with NODE_PROCESS_ENV, then `extra`. */
export function nodeProcessEnv(
  base: NodeJS.ProcessEnv = process.env,
  extra: Record<string, string> = {},
): NodeJS.ProcessEnv {
  return { ...base, ...NODE_PROCESS_ENV, ...extra };
}
