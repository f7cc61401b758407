import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import { type InProcessWorker, startInProcessWorker } from '../support/in-process-worker.js';
import { eventually, solidPng } from '../support/inference-stack.js';
import {
  FAILING_MODEL,
  injectPredict,
  observabilityRegistry,
} from '../support/observability-stack.js';

let stack: InProcessWorker;
/** Two API instances on one Redis, as behind a load balancer. */
let first: TestApi;
let second: TestApi;

beforeAll(async () => {
  stack = await startInProcessWorker({
    registry: observabilityRegistry,
    env: { SYNC_WAIT_SECONDS: '10' },
  });
  first = await buildTestApi(stack.config, { registry: stack.registry });
  second = await buildTestApi(stack.config, { registry: stack.registry });
});

afterAll(async () => {
  await Promise.allSettled([first?.close(), second?.close()]);
  await stack?.stop();
});

interface Stats {
  uptime_seconds: number;
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
  queues: Record<string, Record<string, number>>;
}

async function stats(api: TestApi): Promise<Stats> {
  const res = await api.app.inject({ method: 'GET', url: '/stats' });
  expect(res.statusCode).toBe(200);
  return res.json<Stats>();
}

describe('GET /stats', () => {
  it('agrees with what was sent, and two API instances report the same numbers', async () => {
    const red = await solidPng([255, 0, 0]);
    const blue = await solidPng([0, 0, 255]);
    // Spread over both instances: each counts into the same Redis.
    const durations: number[] = [];
    for (const [api, image] of [
      [first, red],
      [second, blue],
      [first, blue],
    ] as const) {
      const { res, ms } = await injectPredict(api, 'colour', image);
      expect(res.statusCode).toBe(200);
      durations.push(ms);
    }
    expect((await injectPredict(second, 'nope', red)).res.statusCode).toBe(404);
    expect((await injectPredict(first, FAILING_MODEL, red)).res.statusCode).toBe(500);

    // Each process writes its counts once a second (the worker its job outcomes, each API
    // instance its requests): wait until every one has.
    const seen = await eventually(async () => {
      const s = await stats(first);
      return s.totals.requests === 5 &&
        (s.totals.jobs as { completed: number }).completed === 3 &&
        s.queues['inference-onnx']?.failed === 1 &&
        (s.totals.backends.onnx?.models[FAILING_MODEL] as { jobs: { failed: number } } | undefined)
          ?.jobs.failed === 1
        ? s
        : undefined;
    });

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
    expect(seen.queues['inference-onnx']).toMatchObject({
      completed: 3,
      failed: 1,
      waiting: 0,
      active: 0,
    });
    expect(seen.queues['inference-tensorflow']).toMatchObject({ completed: 0, failed: 0 });

    // Percentiles of the three sync successes: within what the client saw (the server's time is
    // part of it), up to the histogram's 10% resolution.
    const { latency_ms } = seen.window;
    expect(latency_ms.count).toBe(3);
    expect(latency_ms.p50).toBeGreaterThan(0);
    expect(latency_ms.p50).toBeLessThanOrEqual(latency_ms.p99);
    expect(latency_ms.p99).toBeLessThanOrEqual(Math.max(...durations) * 1.1 + 1);

    // Everything but the clock-dependent numbers (uptime, the window's length and rate) is equal.
    const timeless = ({ uptime_seconds, ...rest }: Stats) => {
      expect(uptime_seconds).toBeGreaterThanOrEqual(0);
      const { seconds, requests_per_second, ...window } = rest.window as Stats['window'] & {
        seconds: number;
        requests_per_second: number;
      };
      expect(requests_per_second).toBeCloseTo(window.requests / seconds, 2);
      return { ...rest, window };
    };
    expect(timeless(await stats(second))).toEqual(timeless(seen));
  });
});
