// HTTP endpoint for Prometheus scrapes and orchestrator probes: /metrics, /health/live, /health/ready.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface MetricsServerOptions {
  host: string;
  /** 0 picks a free port; the chosen one is returned. */
  port: number;
  registry: Registry;
  /** Readiness: e.g. state replayed and RPC listening. */
  isReady: () => boolean;
}

export interface MetricsServer {
  port: number;
  url: string;
  close(): Promise<void>;
}

const ROUTES = new Set(['/metrics', '/health/live', '/health/ready']);

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

async function handle(req: IncomingMessage, res: ServerResponse, opts: MetricsServerOptions): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://localhost').pathname;
  if (!ROUTES.has(path)) return sendJson(res, 404, { error: 'not found' });
  if (req.method !== 'GET') {
    res.setHeader('allow', 'GET');
    return sendJson(res, 405, { error: 'method not allowed' });
  }
  if (path === '/health/live') return sendJson(res, 200, { status: 'live' });
  if (path === '/health/ready') {
    let ready = false;
    try {
      ready = opts.isReady();
    } catch {
      // A failing readiness check means not ready, not a crashed endpoint.
    }
    return ready ? sendJson(res, 200, { status: 'ready' }) : sendJson(res, 503, { status: 'not ready' });
  }
  const body = await opts.registry.metrics();
  res.writeHead(200, { 'content-type': opts.registry.contentType }).end(body);
}

export function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    handle(req, res, opts).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: String(err) });
      else res.destroy();
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      const { port } = server.address() as AddressInfo;
      const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
      resolve({
        port,
        url: `http://${host}:${port}`,
        close: () =>
          new Promise<void>((done, fail) => {
            server.close((err) => (err ? fail(err) : done()));
            // Keep-alive scrapers would otherwise hold close() open.
            server.closeAllConnections();
          }),
      });
    });
  });
}
