// Load generator: C WebSocket connections sending pre-signed, pre-encrypted transfers as JSON-RPC
// batches of author_submitAndWatchCall, with a bounded window of batches in flight per connection.
// Latency is submit -> inBlock notification for every call. Given several URLs (a validateer set),
// connection i goes to urls[i % urls.length]; every connection takes the next batch as its window frees.
import WebSocket from 'ws';

export interface LoadResult {
  submittedPerUrl: number[];
  invalidCodes: Map<string, number>;
  submitted: number;
  included: number;
  invalid: number;
  rpcErrors: number;
  seconds: number;
  callsPerSecond: number;
  latencyMs: { p50: number; p99: number };
  cpuSeconds: number;
}

export async function runLoad(
  url: string | string[],
  requests: string[],
  opts: { connections: number; batch: number; window: number; timeoutMs: number },
): Promise<LoadResult> {
  const sentAt = new Map<string, number>();
  const latencies: number[] = [];
  let included = 0,
    invalid = 0,
    rpcErrors = 0,
    next = 0,
    firstSend = 0,
    lastInclusion = 0;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  const settled = () => included + invalid + rpcErrors >= requests.length && resolveDone();

  const invalidCodes = new Map<string, number>();
  const urls = Array.isArray(url) ? url : [url];
  const submittedPerUrl = urls.map(() => 0);
  const sockets = await Promise.all(
    Array.from(
      { length: opts.connections },
      (_, c) =>
        new Promise<WebSocket>((resolve, reject) => {
          const ws = new WebSocket(urls[c % urls.length], { maxPayload: 64 << 20 });
          ws.once('open', () => resolve(ws));
          ws.once('error', reject);
        }),
    ),
  );

  let id = 0;
  const sendBatch = (ws: WebSocket, inflight: { n: number }, u: number) => {
    while (inflight.n < opts.window && next < requests.length) {
      const chunk = requests.slice(next, next + opts.batch);
      next += chunk.length;
      submittedPerUrl[u] += chunk.length;
      const now = performance.now();
      if (!firstSend) firstSend = now;
      const ids = chunk.map(() => ++id);
      ws.send(
        '[' +
          chunk
            .map(
              (hex, i) => `{"jsonrpc":"2.0","id":${ids[i]},"method":"author_submitAndWatchCall","params":["${hex}"]}`,
            )
            .join(',') +
          ']',
      );
      for (let i = 0; i < chunk.length; i++) sentAt.set(String(ids[i]), now);
      inflight.n++;
    }
  };

  for (const [c, ws] of sockets.entries()) {
    const u = c % urls.length;
    const inflight = { n: 0 };
    const subStart = new Map<string, number>();
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString()) as unknown;
      if (Array.isArray(msg)) {
        for (const r of msg as { id: number; result?: string; error?: { code?: number; data?: { code?: string } } }[]) {
          const t = sentAt.get(String(r.id))!;
          sentAt.delete(String(r.id));
          if (r.result) subStart.set(r.result, t);
          else {
            rpcErrors++;
            const code = `rpc ${r.error?.data?.code ?? r.error?.code ?? '?'}`;
            invalidCodes.set(code, (invalidCodes.get(code) ?? 0) + 1);
          }
        }
        inflight.n--;
        sendBatch(ws, inflight, u);
        settled();
        return;
      }
      const n = msg as { params?: { subscription: string; result: { status: string; code?: string } } };
      const p = n.params;
      if (!p) return;
      if (p.result.status === 'inBlock') {
        const t = subStart.get(p.subscription);
        if (t !== undefined) {
          const now = performance.now();
          latencies.push(now - t);
          lastInclusion = now;
          subStart.delete(p.subscription);
        }
        included++;
        settled();
      } else if (p.result.status === 'invalid') {
        invalid++;
        invalidCodes.set(p.result.code ?? '?', (invalidCodes.get(p.result.code ?? '?') ?? 0) + 1);
        settled();
      }
    });
    sendBatch(ws, inflight, u);
  }

  const cpuStart = process.cpuUsage();
  const timer = setTimeout(resolveDone, opts.timeoutMs);
  await done;
  clearTimeout(timer);
  const cpu = process.cpuUsage(cpuStart);
  for (const ws of sockets) ws.terminate();
  latencies.sort((a, b) => a - b);
  const pct = (q: number) =>
    latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] : NaN;
  const seconds = (lastInclusion - firstSend) / 1000;
  return {
    submittedPerUrl,
    invalidCodes,
    submitted: next,
    included,
    invalid,
    rpcErrors,
    seconds,
    callsPerSecond: included / seconds,
    latencyMs: { p50: pct(0.5), p99: pct(0.99) },
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}
