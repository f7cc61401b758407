import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { StatsStore } from '../../shared/stats/stats-store.js';
import { closedPort, eventually } from '../support/inference-stack.js';
import { cleanRedisPrefix, uniquePrefix } from '../support/services.js';
import { sharedServices } from '../support/shared-services.js';

const services = sharedServices();
let redis: Redis;
const prefixes: string[] = [];

beforeAll(async () => {
  redis = new Redis(services.redisUrl);
});

afterAll(async () => {
  redis?.disconnect();
  for (const prefix of prefixes) await cleanRedisPrefix(services.redisUrl, prefix);
});

/** A store on a fresh prefix whose clock the test moves. */
function store(windowSeconds = 120) {
  const prefix = uniquePrefix();
  prefixes.push(prefix);
  const clock = { now: Date.UTC(2026, 0, 1, 12, 0, 30) };
  const stats = new StatsStore(redis, prefix, {
    models: ['colour', 'detector'],
    windowSeconds,
    now: () => clock.now,
  });
  return { stats, clock, prefix };
}

describe('stats in Redis', () => {
  it('adds up requests and jobs per backend and model, with unregistered names as unknown', async () => {
    const { stats } = store();
    await stats.init();
    stats.recordRequest({
      tenant: 'acme',
      backend: 'onnx',
      model: 'colour',
      status: 200,
      latencyMs: 10,
    });
    stats.recordRequest({
      tenant: 'acme',
      backend: 'onnx',
      model: 'colour',
      status: 200,
      latencyMs: 20,
    });
    stats.recordRequest({ tenant: 'acme', backend: undefined, model: 'made-up', status: 404 });
    stats.recordRequest({ tenant: 'acme', backend: 'onnx', model: 'detector', status: 503 });
    stats.recordJob({ tenant: 'acme', backend: 'onnx', model: 'colour', outcome: 'completed' });
    stats.recordJob({ tenant: 'acme', backend: 'onnx', model: 'colour', outcome: 'completed' });
    stats.recordJob({ tenant: 'acme', backend: 'onnx', model: 'detector', outcome: 'retried' });
    stats.recordJob({ tenant: 'acme', backend: 'onnx', model: 'detector', outcome: 'failed' });

    const snapshot = await stats.read();
    expect(snapshot.since).toBe('2026-01-01T12:00:30.000Z');
    expect(snapshot.totals).toMatchObject({
      requests: 4,
      errors: 2,
      by_status: { '200': 2, '404': 1, '503': 1 },
      jobs: { completed: 2, failed: 1, retried: 1 },
    });
    expect(snapshot.totals.backends.onnx?.models.colour).toEqual({
      requests: 2,
      errors: 0,
      by_status: { '200': 2 },
      jobs: { completed: 2, failed: 0, retried: 0 },
    });
    expect(snapshot.totals.backends.none?.models).toEqual({
      unknown: {
        requests: 1,
        errors: 1,
        by_status: { '404': 1 },
        jobs: { completed: 0, failed: 0, retried: 0 },
      },
    });
    expect(snapshot.window).toMatchObject({
      requests: 4,
      error_rate: 0.5,
      server_error_rate: 0.25,
      jobs: { completed: 2, failed: 1, retried: 1 },
    });
    expect(snapshot.window.models.colour?.latency_ms.count).toBe(2);
  });

  it("keeps each tenant's figures apart, and everyone's together (regression: GET /stats showed every tenant's traffic to any tenant)", async () => {
    const { stats, clock } = store();
    stats.recordRequest({
      tenant: 'acme',
      backend: 'onnx',
      model: 'colour',
      status: 200,
      latencyMs: 10,
    });
    stats.recordRequest({ tenant: 'globex', backend: 'onnx', model: 'colour', status: 500 });
    stats.recordRequest({ tenant: 'globex', backend: undefined, model: 'made-up', status: 404 });
    stats.recordJob({ tenant: 'acme', backend: 'onnx', model: 'colour', outcome: 'completed' });
    stats.recordJob({ tenant: 'globex', backend: 'onnx', model: 'colour', outcome: 'failed' });
    // A job queued before jobs carried their owner: everyone's figures only.
    stats.recordJob({ tenant: undefined, backend: 'onnx', model: 'colour', outcome: 'retried' });
    stats.recordCacheLookup({ tenant: 'acme', backend: 'onnx', model: 'colour', outcome: 'hit' });

    const acme = await stats.read({ tenant: 'acme' });
    expect(acme.totals).toMatchObject({
      requests: 1,
      errors: 0,
      by_status: { '200': 1 },
      jobs: { completed: 1, failed: 0, retried: 0 },
      backends: { onnx: { models: { colour: expect.anything() } } },
      result_cache: { hits: 1, misses: 0 },
    });
    expect(Object.keys(acme.totals.backends)).toEqual(['onnx']);
    expect(acme.window).toMatchObject({ requests: 1, latency_ms: { count: 1 } });

    const globex = await stats.read({ tenant: 'globex' });
    expect(globex.totals).toMatchObject({
      requests: 2,
      errors: 2,
      by_status: { '404': 1, '500': 1 },
      jobs: { completed: 0, failed: 1, retried: 0 },
      result_cache: { hits: 0 },
    });
    expect(globex.window).toMatchObject({ requests: 2, server_error_rate: 0.5 });

    const everyone = await stats.read();
    expect(everyone.totals).toMatchObject({
      requests: 3,
      errors: 2,
      by_status: { '200': 1, '404': 1, '500': 1 },
      jobs: { completed: 1, failed: 1, retried: 1 },
      result_cache: { hits: 1 },
    });
    expect(everyone.window).toMatchObject({ requests: 3, latency_ms: { count: 1 } });

    // A tenant's window passes like everyone's; its totals stay.
    clock.now += 3 * 60_000;
    const later = await stats.read({ tenant: 'globex' });
    expect(later.window.requests).toBe(0);
    expect(later.totals.requests).toBe(2);
    expect((await stats.read({ tenant: 'initech' })).totals.requests).toBe(0);
  });

  it('forgets the window after it passes and keeps the totals', async () => {
    const { stats, clock } = store(120);
    stats.recordRequest({
      tenant: 'acme',
      backend: 'onnx',
      model: 'colour',
      status: 200,
      latencyMs: 5,
    });
    clock.now += 60_000;
    stats.recordRequest({ tenant: 'acme', backend: 'onnx', model: 'colour', status: 500 });

    // Both minutes are inside a two-minute window.
    let snapshot = await stats.read();
    expect(snapshot.window.requests).toBe(2);
    expect(snapshot.window.seconds).toBe(90);
    expect(snapshot.window.requests_per_second).toBeCloseTo(2 / 90, 3);

    clock.now += 60_000;
    snapshot = await stats.read();
    expect(snapshot.window.requests).toBe(1);
    expect(snapshot.window.server_error_rate).toBe(1);
    expect(snapshot.window.latency_ms).toEqual({ count: 0, p50: null, p95: null, p99: null });

    clock.now += 60_000;
    snapshot = await stats.read();
    expect(snapshot.window.requests).toBe(0);
    expect(snapshot.window.error_rate).toBe(0);
    expect(snapshot.totals.requests).toBe(2);
  });

  it('reads latency percentiles within 10% of the exact ones', async () => {
    const { stats } = store();
    // 1..200 ms, one request each: p50 = 100, p95 = 190, p99 = 198.
    await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        stats.recordRequest({
          tenant: 'acme',
          backend: 'onnx',
          model: 'colour',
          status: 200,
          latencyMs: i + 1,
        }),
      ),
    );
    const { latency_ms } = (await stats.read()).window;
    expect(latency_ms.count).toBe(200);
    for (const [q, exact] of [
      ['p50', 100],
      ['p95', 190],
      ['p99', 198],
    ] as const) {
      const value = latency_ms[q]!;
      expect(Math.abs(value - exact) / exact, `${q}=${value}`).toBeLessThanOrEqual(0.1);
    }
  });

  it('expires the minute hashes shortly after the window', async () => {
    const { stats, prefix } = store(120);
    stats.recordRequest({ tenant: 'acme', backend: 'onnx', model: 'colour', status: 200 });
    await stats.flush();
    const minuteKeys = [
      ...(await redis.keys(`${prefix}:stats:minute:*`)),
      ...(await redis.keys(`${prefix}:stats:tenant:acme:minute:*`)),
    ];
    expect(minuteKeys).toHaveLength(2);
    for (const key of minuteKeys) {
      const ttl = await redis.ttl(key);
      expect(ttl).toBeGreaterThan(120);
      expect(ttl).toBeLessThanOrEqual(240);
    }
    expect(await redis.ttl(`${prefix}:stats:total`)).toBe(-1);
    expect(await redis.ttl(`${prefix}:stats:tenant:acme:total`)).toBe(-1);
  });
});

describe('stats batched in memory', () => {
  it('writes nothing until the batch is due, then one pipeline with the summed counts', async () => {
    const prefix = uniquePrefix();
    prefixes.push(prefix);
    // The writer has a connection of its own, whose pipelines are counted.
    const connection = new Redis(services.redisUrl);
    await connection.ping();
    const pipelines = vi.spyOn(connection, 'pipeline');
    const writer = new StatsStore(connection, prefix, {
      models: ['colour'],
      windowSeconds: 120,
      flushIntervalMs: 200,
    });
    const reader = new StatsStore(redis, prefix, { models: ['colour'], windowSeconds: 120 });
    // The batch falls due on the writer's timer, which the test moves.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      for (let i = 0; i < 50; i++) {
        writer.recordRequest({
          tenant: 'acme',
          backend: 'onnx',
          model: 'colour',
          status: 200,
          latencyMs: 5,
        });
      }
      writer.recordJob({ tenant: 'acme', backend: 'onnx', model: 'colour', outcome: 'completed' });
      await vi.advanceTimersByTimeAsync(199);
      // Another instance sees none of it yet: the counts are still in the writer's memory.
      expect(pipelines).not.toHaveBeenCalled();
      expect((await reader.read()).totals.requests).toBe(0);

      await vi.advanceTimersByTimeAsync(1);
      expect(pipelines).toHaveBeenCalledTimes(1);
    } finally {
      vi.useRealTimers();
    }
    // Redis answers a connection's commands in order: once this is answered, so is the batch.
    await connection.ping();
    const snapshot = await reader.read();
    expect(snapshot.totals.requests).toBe(50);
    expect(snapshot.totals.jobs.completed).toBe(1);
    expect(snapshot.window.latency_ms.count).toBe(50);
    expect(pipelines).toHaveBeenCalledTimes(1);
    connection.disconnect();
  });

  it('reads its own pending counts, and close() writes what is left', async () => {
    const prefix = uniquePrefix();
    prefixes.push(prefix);
    const options = { models: ['colour'], windowSeconds: 120, flushIntervalMs: 60_000 };
    const writer = new StatsStore(redis, prefix, options);
    writer.recordRequest({ tenant: 'acme', backend: 'onnx', model: 'colour', status: 500 });
    expect((await writer.read()).totals.requests).toBe(1);

    writer.recordRequest({ tenant: 'acme', backend: 'onnx', model: 'colour', status: 200 });
    await writer.close();
    const reader = new StatsStore(redis, prefix, { models: ['colour'], windowSeconds: 120 });
    expect((await reader.read()).totals.by_status).toEqual({ '200': 1, '500': 1 });
  });
});

describe('stats writes that fail', () => {
  it('never throw at the caller, and are reported at most once per errorEveryMs, with the writes lost since', async () => {
    // Nothing listens there, and a command is refused at once instead of queued for a reconnect.
    const broken = new Redis({
      host: '127.0.0.1',
      port: await closedPort(),
      lazyConnect: true,
      enableOfflineQueue: false,
      retryStrategy: () => null,
    });
    // The refused connection is the point: it is not an error of the test.
    broken.on('error', () => undefined);
    const clock = { now: Date.now() };
    const reports: number[] = [];
    const stats = new StatsStore(broken, uniquePrefix(), {
      models: ['colour'],
      windowSeconds: 120,
      now: () => clock.now,
      onFlushError: (_err, failedWrites) => reports.push(failedWrites),
      errorEveryMs: 60_000,
    });
    const record = () =>
      expect(() =>
        stats.recordRequest({ tenant: 'acme', backend: 'onnx', model: 'colour', status: 200 }),
      ).not.toThrow();

    // Each record is a write of its own (no batching): five writes fail, the first is reported.
    for (let i = 0; i < 5; i++) record();
    await eventually(() => (reports.length > 0 ? true : undefined));
    // A minute on, the next failure is reported with the four kept quiet before it.
    clock.now += 60_000;
    record();
    await eventually(() => (reports.length > 1 ? true : undefined));
    expect(reports).toEqual([1, 5]);
    broken.disconnect();
  });
});
