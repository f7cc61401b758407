import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import { type InProcessWorker, startInProcessWorker } from '../support/in-process-worker.js';
import { eventually, solidPng } from '../support/inference-stack.js';
import {
  FAILING_MODEL,
  injectPredict,
  observabilityRegistry,
} from '../support/observability-stack.js';
import { parsePrometheusText, sampleValue } from '../support/prometheus-text.js';
import { multipartBody } from '../support/raw-http.js';

const KEYS = {
  acme: 'acme-key-0123456789abcdef',
  globex: 'globex-key-0123456789abcdef',
  initech: 'initech-key-0123456789abcdef',
} as const;
type Tenant = keyof typeof KEYS;
const ADMIN_KEY = 'admin-key-0123456789abcdef';

let stack: InProcessWorker;
/** Two API instances on one Redis, as behind a load balancer. */
let first: TestApi;
let second: TestApi;

beforeAll(async () => {
  stack = await startInProcessWorker({
    registry: observabilityRegistry,
    env: {
      SYNC_WAIT_SECONDS: '10',
      API_KEYS: Object.entries(KEYS)
        .map(([id, key]) => `${id}:${key}`)
        .join(','),
      ADMIN_API_KEY: ADMIN_KEY,
    },
  });
  first = await buildTestApi(stack.config, { registry: stack.registry });
  second = await buildTestApi(stack.config, { registry: stack.registry });
});

afterAll(async () => {
  await Promise.allSettled([first?.close(), second?.close()]);
  await stack?.stop();
});

const as = (who: Tenant | 'admin') => ({
  authorization: `Bearer ${who === 'admin' ? ADMIN_KEY : KEYS[who]}`,
});

interface Stats {
  uptime_seconds: number;
  tenant: string | null;
  since: string;
  totals: Record<string, unknown> & {
    requests: number;
    backends: Record<string, { models: Record<string, unknown> }>;
  };
  window: {
    requests: number;
    error_rate: number;
    server_error_rate: number;
    latency_ms: { count: number; p50: number; p95: number; p99: number };
  };
  queues?: Record<string, Record<string, number>>;
}

async function stats(api: TestApi, who: Tenant | 'admin', query = ''): Promise<Stats> {
  const res = await api.app.inject({ method: 'GET', url: `/stats${query}`, headers: as(who) });
  expect(res.statusCode).toBe(200);
  return res.json<Stats>();
}

/** Everything but the clock-dependent numbers (uptime, the window's length and rate). */
function timeless({ uptime_seconds, ...rest }: Stats) {
  expect(uptime_seconds).toBeGreaterThanOrEqual(0);
  const { seconds, requests_per_second, ...window } = rest.window as Stats['window'] & {
    seconds: number;
    requests_per_second: number;
  };
  expect(requests_per_second).toBeCloseTo(window.requests / seconds, 2);
  return { ...rest, window };
}

describe('GET /stats', () => {
  it('agrees with what was sent, and two API instances report the same numbers', async () => {
    const red = await solidPng([255, 0, 0]);
    const blue = await solidPng([0, 0, 255]);
    // Spread over both instances and two tenants: each counts into the same Redis.
    const durations: number[] = [];
    for (const [api, image, tenant] of [
      [first, red, 'acme'],
      [second, blue, 'acme'],
      [first, blue, 'globex'],
    ] as const) {
      const { res, ms } = await injectPredict(api, 'colour', image, as(tenant));
      expect(res.statusCode).toBe(200);
      durations.push(ms);
    }
    expect((await injectPredict(second, 'nope', red, as('globex'))).res.statusCode).toBe(404);
    expect((await injectPredict(first, FAILING_MODEL, red, as('globex'))).res.statusCode).toBe(500);

    // Each process writes its counts once a second (the worker its job outcomes, each API
    // instance its requests): wait until every one has.
    const seen = await eventually(async () => {
      const s = await stats(first, 'admin');
      return s.totals.requests === 5 &&
        (s.totals.jobs as { completed: number }).completed === 3 &&
        s.queues?.['inference-onnx']?.failed === 1 &&
        (s.totals.backends.onnx?.models[FAILING_MODEL] as { jobs: { failed: number } } | undefined)
          ?.jobs.failed === 1
        ? s
        : undefined;
    });

    expect(seen.tenant).toBeNull();
    expect(seen.totals).toMatchObject({
      requests: 5,
      errors: 2,
      by_status: { '200': 3, '404': 1, '500': 1 },
      jobs: { completed: 3, failed: 1, retried: 0 },
    });
    expect(seen.totals.backends.onnx?.models.colour).toEqual({
      requests: 3,
      errors: 0,
      by_status: { '200': 3 },
      jobs: { completed: 3, failed: 0, retried: 0 },
    });
    expect(seen.totals.backends.none?.models).toEqual({
      unknown: expect.objectContaining({ requests: 1, by_status: { '404': 1 } }),
    });
    expect(seen.window).toMatchObject({ requests: 5, error_rate: 0.4, server_error_rate: 0.2 });
    expect(seen.queues?.['inference-onnx']).toMatchObject({
      completed: 3,
      failed: 1,
      waiting: 0,
      active: 0,
    });
    expect(seen.queues?.['inference-tensorflow']).toMatchObject({ completed: 0, failed: 0 });

    // Percentiles of the three sync successes: within what the client saw (the server's time is
    // part of it), up to the histogram's 10% resolution.
    const { latency_ms } = seen.window;
    expect(latency_ms.count).toBe(3);
    expect(latency_ms.p50).toBeGreaterThan(0);
    expect(latency_ms.p50).toBeLessThanOrEqual(latency_ms.p99);
    expect(latency_ms.p99).toBeLessThanOrEqual(Math.max(...durations) * 1.1 + 1);

    expect(timeless(await stats(second, 'admin'))).toEqual(timeless(seen));
  });

  it("shows a tenant its own figures only, and the admin any tenant's (regression: every tenant's traffic was shown to any tenant)", async () => {
    // The first case's requests have all been counted by now.
    const acme = await stats(second, 'acme');
    expect(acme.tenant).toBe('acme');
    expect(acme.totals).toMatchObject({
      requests: 2,
      errors: 0,
      by_status: { '200': 2 },
      jobs: { completed: 2, failed: 0, retried: 0 },
    });
    expect(Object.keys(acme.totals.backends)).toEqual(['onnx']);
    expect(Object.keys(acme.totals.backends.onnx!.models)).toEqual(['colour']);
    expect(acme.window).toMatchObject({ requests: 2, error_rate: 0, latency_ms: { count: 2 } });
    // Queue counts hold every tenant's jobs.
    expect(acme.queues).toBeUndefined();

    const globex = await stats(first, 'globex');
    expect(globex.totals).toMatchObject({
      requests: 3,
      errors: 2,
      by_status: { '200': 1, '404': 1, '500': 1 },
      jobs: { completed: 1, failed: 1, retried: 0 },
    });
    expect(globex.window).toMatchObject({ requests: 3, latency_ms: { count: 1 } });

    // The admin reads one tenant as the tenant does; asking for it by name changes nothing.
    expect(timeless(await stats(second, 'admin', '?tenant=globex'))).toMatchObject({
      ...timeless(globex),
      queues: expect.any(Object),
    });
    expect(timeless(await stats(second, 'acme', '?tenant=acme'))).toEqual(timeless(acme));
  });

  it("refuses another tenant's figures to a tenant, an unknown tenant to the admin, and no key", async () => {
    const forbidden = await first.app.inject({ url: '/stats?tenant=globex', headers: as('acme') });
    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.json()).toMatchObject({
      code: 'TENANT_FORBIDDEN',
      detail: 'Only the admin key may read the figures of tenant "globex"',
    });
    const unknown = await first.app.inject({ url: '/stats?tenant=umbrella', headers: as('admin') });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toMatchObject({ code: 'TENANT_NOT_FOUND' });
    expect((await first.app.inject({ url: '/stats' })).statusCode).toBe(401);
    const wrong = await first.app.inject({
      url: '/stats',
      headers: { authorization: 'Bearer not-a-key-0123456789abcdef' },
    });
    expect(wrong.json()).toMatchObject({ status: 401, code: 'API_KEY_INVALID' });
  });

  it('counts a refused request under the model it named, in /stats and /metrics (regression: POST /jobs refusals were counted as model "unknown")', async () => {
    const red = await solidPng([255, 0, 0]);
    // tf_only is registered, but no TensorFlow worker runs: 503 MODEL_UNAVAILABLE.
    const { body, contentType } = multipartBody([
      { name: 'model', value: 'tf_only' },
      { name: 'file', data: red },
    ]);
    const asField = await first.app.inject({
      method: 'POST',
      url: '/jobs',
      payload: body,
      headers: { 'content-type': contentType, ...as('initech') },
    });
    expect(asField.json()).toMatchObject({ status: 503, code: 'MODEL_UNAVAILABLE' });
    const inQuery = await first.app.inject({
      method: 'POST',
      url: '/jobs?model=tf_only',
      payload: red,
      headers: { 'content-type': 'image/png', ...as('initech') },
    });
    expect(inQuery.json()).toMatchObject({ status: 503, code: 'MODEL_UNAVAILABLE' });

    // Polled with the admin key, which is not rate limited.
    await eventually(async () => {
      const s = await stats(first, 'admin', '?tenant=initech');
      return s.totals.requests === 2 ? s : undefined;
    });
    const seen = await stats(first, 'initech');
    expect(seen.totals.backends).toEqual({
      none: expect.objectContaining({
        models: { tf_only: expect.objectContaining({ requests: 2, by_status: { '503': 2 } }) },
      }),
    });

    const scrape = await first.app.inject({ url: '/metrics' });
    const samples = parsePrometheusText(scrape.body);
    const labels = { backend: 'none', status: '503' };
    expect(sampleValue(samples, 'ai_gateway_requests_total', { ...labels, model: 'tf_only' })).toBe(
      2,
    );
    expect(sampleValue(samples, 'ai_gateway_requests_total', { ...labels, model: 'unknown' })).toBe(
      0,
    );
    // An async submission's duration is labelled async, refused or not.
    expect(
      sampleValue(samples, 'ai_gateway_request_duration_seconds_count', {
        backend: 'none',
        model: 'tf_only',
        mode: 'async',
      }),
    ).toBe(2);
  });
});
