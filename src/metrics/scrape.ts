// Reading a validateer's /metrics from outside (benches, tests, tools): `name{labels}` -> value, the
// labels as printed (e.g. `validateer_calls_total{result="included"}`).
export async function scrapeMetrics(metricsUrl: string): Promise<Map<string, number>> {
  const res = await fetch(`${metricsUrl}/metrics`);
  if (res.status !== 200) throw new Error(`GET ${metricsUrl}/metrics: ${res.status}`);
  const out = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\S+?(?:\{.*\})?) (\S+)$/.exec(line);
    if (m) out.set(m[1], Number(m[2]));
  }
  return out;
}
