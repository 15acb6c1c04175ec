import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { createMetrics } from '../../src/metrics/metrics.ts';
import { startMetricsServer, type MetricsServer } from '../../src/metrics/server.ts';

const METRIC_NAMES = [
  'validateer_build_info',
  'validateer_sidechain_head_number',
  'validateer_sidechain_blocks_produced_total',
  'validateer_calls_total',
  'validateer_call_pool_size',
  'validateer_block_production_seconds',
  'validateer_state_accounts',
  'validateer_event_log_entries',
  'validateer_rpc_requests_total',
  'validateer_rpc_connections',
  'validateer_replay_blocks_total',
  'validateer_snapshots_total',
];

const metrics = createMetrics({ buildInfo: { version: '1.2.3', commit: 'abc123' }, rpcMethods: ['author_submitCall'] });
let ready = false;
let server: MetricsServer;

before(async () => {
  server = await startMetricsServer({ host: '127.0.0.1', port: 0, registry: metrics.registry, isReady: () => ready });
});
after(() => server.close());

interface Reply {
  status: number;
  contentType: string | undefined;
  body: string;
}

function fetchPath(path: string, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    // A fresh connection per request: fetch's keep-alive pool would outlive server.close() in the test.
    const req = request(server.url + path, { method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: res.headers['content-type'], body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Text exposition format 0.0.4: comments, HELP/TYPE, samples, blank lines; every sample belongs to a TYPEd family. */
function expositionProblems(text: string): string[] {
  const problems: string[] = [];
  const name = '[a-zA-Z_:][a-zA-Z0-9_:]*';
  const labelValue = '"(?:[^"\\\\\\n]|\\\\[\\\\"n])*"';
  const labels = `\\{(?:[a-zA-Z_][a-zA-Z0-9_]*=${labelValue}(?:,[a-zA-Z_][a-zA-Z0-9_]*=${labelValue})*,?)?\\}`;
  const value = '(?:[+-]?(?:\\d+\\.?\\d*(?:[eE][+-]?\\d+)?|\\.\\d+(?:[eE][+-]?\\d+)?)|[+-]?[iI][nN][fF]|[nN][aA][nN])'; // Go's ParseFloat: NaN/Inf in any case
  const sample = new RegExp(`^(${name})(?:${labels})? ${value}(?: -?\\d+)?$`);
  const help = new RegExp(`^# HELP (${name})(?: .*)?$`);
  const type = new RegExp(`^# TYPE (${name}) (counter|gauge|histogram|summary|untyped)$`);
  const types = new Map<string, string>();
  if (!text.endsWith('\n')) problems.push('output does not end with a newline');
  text
    .split('\n')
    .slice(0, -1)
    .forEach((line, i) => {
      const where = `line ${i + 1}: ${line}`;
      if (line.startsWith('# HELP ')) {
        if (!help.test(line)) problems.push(`bad HELP ${where}`);
      } else if (line.startsWith('# TYPE ')) {
        const m = type.exec(line);
        if (!m) problems.push(`bad TYPE ${where}`);
        else if (types.has(m[1])) problems.push(`duplicate TYPE ${where}`);
        else types.set(m[1], m[2]);
      } else if (line.startsWith('#') || line.trim() === '') {
        // other comments and empty lines are allowed
      } else {
        const m = sample.exec(line);
        if (!m) problems.push(`bad sample ${where}`);
        else {
          const family = [m[1], m[1].replace(/_(bucket|sum|count)$/, '')].find((n) => types.has(n));
          if (!family) problems.push(`sample without TYPE ${where}`);
        }
      }
    });
  return problems;
}

test('every validateer metric is exposed on /metrics with the registry content type', async () => {
  metrics.countCall('included');
  metrics.countRpcRequest('author_submitCall', 'ok');
  metrics.blockProductionSeconds.observe(0.004);
  const res = await fetchPath('/metrics');
  assert.equal(res.status, 200);
  assert.equal(res.contentType, metrics.registry.contentType);
  for (const name of METRIC_NAMES) assert.match(res.body, new RegExp(`^# TYPE ${name} `, 'm'), `${name} missing`);
  assert.match(res.body, /^validateer_build_info\{version="1.2.3",commit="abc123",node_version="v[\d.]+"\} 1$/m);
  assert.match(res.body, /^process_cpu_user_seconds_total /m, 'default metrics are collected, unprefixed');
  assert.match(res.body, /^validateer_block_production_seconds_bucket\{le="0.005"\} 1$/m);
});

test('label values stay bounded', async () => {
  metrics.countCall('something-new');
  metrics.countRpcRequest('not_allow_listed', 'weird');
  const { body } = await fetchPath('/metrics');
  assert.match(body, /^validateer_calls_total\{result="included"\} 1$/m);
  assert.match(body, /^validateer_calls_total\{result="duplicate"\} 0$/m, 'known results start at 0');
  assert.match(body, /^validateer_calls_total\{result="other"\} 1$/m);
  assert.match(body, /^validateer_rpc_requests_total\{method="author_submitCall",outcome="ok"\} 1$/m);
  assert.match(body, /^validateer_rpc_requests_total\{method="other",outcome="other"\} 1$/m);
  assert.doesNotMatch(body, /something-new|not_allow_listed|weird/);
});

test('/metrics output is valid exposition format', async () => {
  const { body } = await fetchPath('/metrics');
  assert.deepEqual(expositionProblems(body), []);
  assert.ok(expositionProblems('bad line\n').length > 0, 'the fallback checker rejects garbage');

  // The real parser is the authority; without it this test must not pass on the fallback alone.
  const res = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' });
  if ((res.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    assert.fail(
      'promtool is not installed: npm test needs it to check /metrics (apt-get install prometheus; .ci/run does)',
    );
  }
  assert.equal(res.error, undefined, `promtool could not run: ${res.error?.message}`);
  const output = `${res.stdout}${res.stderr}`;
  assert.equal(res.status, 0, `promtool check metrics failed (${res.status}): ${output}`);
});

test('health endpoints', async () => {
  assert.deepEqual(await fetchPath('/health/live'), {
    status: 200,
    contentType: 'application/json',
    body: '{"status":"live"}',
  });
  ready = false;
  assert.deepEqual(await fetchPath('/health/ready'), {
    status: 503,
    contentType: 'application/json',
    body: '{"status":"not ready"}',
  });
  ready = true;
  assert.deepEqual(await fetchPath('/health/ready'), {
    status: 200,
    contentType: 'application/json',
    body: '{"status":"ready"}',
  });
  assert.equal((await fetchPath('/health/live?probe=1')).status, 200, 'query strings are ignored');
});

test('unknown paths are 404, other methods 405', async () => {
  assert.equal((await fetchPath('/nope')).status, 404);
  assert.equal((await fetchPath('/')).status, 404);
  assert.equal((await fetchPath('/metrics', 'POST')).status, 405);
  assert.equal((await fetchPath('/health/ready', 'DELETE')).status, 405);
});

test('each instance has its own registry and port 0 picks a port', async () => {
  const other = createMetrics();
  assert.notEqual(other.registry, metrics.registry);
  const second = await startMetricsServer({
    host: '127.0.0.1',
    port: 0,
    registry: other.registry,
    isReady: () => true,
  });
  try {
    assert.ok(second.port > 0 && second.port !== server.port);
    assert.equal(second.url, `http://127.0.0.1:${second.port}`);
  } finally {
    await second.close();
  }
});
