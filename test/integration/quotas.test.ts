/**
 * Quotas per key (issue 14): the charge script on real Redis under concurrency, the refund rules as
 * the step that ends a job applies them, and the API's answers (429 QUOTA_EXCEEDED with
 * Retry-After and the RateLimit-Policy/RateLimit fields, GET /usage/quotas, the admin reset).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QuotaCounters } from '../../api/quotas/quota-counters.js';
import { JobLifecycle } from '../../shared/jobs/job-lifecycle.js';
import { JobRecords } from '../../shared/jobs/job-records.js';
import { UsageLedger } from '../../shared/usage/usage-ledger.js';
import { nextUtcDay, nextUtcMonth, utcMonth } from '../../shared/usage/usage-periods.js';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import { type InProcessWorker, startInProcessWorker } from '../support/in-process-worker.js';
import { closedPort, solidPng, testConfig, truncatedJpeg } from '../support/inference-stack.js';
import { testSpec } from '../support/job-spec.js';
import { cleanRedisPrefix, uniquePrefix } from '../support/services.js';
import { sharedServices } from '../support/shared-services.js';

describe('the quota counters on Redis', () => {
  const services = sharedServices();
  let redis: Redis;
  let other: Redis;
  const prefix = uniquePrefix();
  let counters: QuotaCounters;

  beforeAll(async () => {
    redis = new Redis(services.redisUrl);
    other = new Redis(services.redisUrl);
    counters = new QuotaCounters(redis, prefix);
  });
  afterAll(async () => {
    redis?.disconnect();
    other?.disconnect();
    await cleanRedisPrefix(services.redisUrl, prefix);
  });

  it('takes exactly the limit from 40 concurrent charges on two connections, and nothing more', async () => {
    // Two connections: two API instances' worth of interleaving on the server.
    const second = new QuotaCounters(other, prefix);
    const charges = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        (i % 2 ? second : counters).charge('acme', { images_per_day: 25 }),
      ),
    );
    expect(charges.filter((c) => c.accepted)).toHaveLength(25);
    const used = charges.flatMap((c) => (c.accepted ? [c.standing[0]!.used] : []));
    expect(used.sort((a, b) => a - b)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    const refused = charges.find((c) => !c.accepted);
    expect(refused).toMatchObject({
      accepted: false,
      refused: [{ policy: 'images_per_day', limit: 25, used: 25, remaining: 0 }],
    });
    expect(await counters.standing('acme', { images_per_day: 25 })).toEqual([
      expect.objectContaining({ used: 25, remaining: 0 }),
    ]);
  });

  it('checks every policy before taking from any: a refusal by one leaves the other untouched', async () => {
    const quota = { images_per_day: 100, jobs_per_month: 3 };
    // Counters expire with their period: the clock must be now, not a fixed date.
    const now = Date.now();
    const at = new Date(now);
    const monthStart = Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), 1);
    for (let i = 0; i < 3; i++)
      expect((await counters.charge('globex', quota, now)).accepted).toBe(true);
    const refused = await counters.charge('globex', quota, now);
    expect(refused.accepted).toBe(false);
    expect(refused.standing).toEqual([
      {
        policy: 'images_per_day',
        limit: 100,
        used: 3,
        remaining: 97,
        resetsAt: nextUtcDay(now),
        windowSeconds: 86_400,
      },
      {
        policy: 'jobs_per_month',
        limit: 3,
        used: 3,
        remaining: 0,
        resetsAt: nextUtcMonth(now),
        windowSeconds: (nextUtcMonth(now) - monthStart) / 1000,
      },
    ]);
    expect(refused.accepted === false && refused.refused.map((s) => s.policy)).toEqual([
      'jobs_per_month',
    ]);
    // The counters expire an hour after their period.
    const ttl = await redis.ttl(`${prefix}:quota:globex:jobs_per_month:${utcMonth(now)}`);
    expect(ttl).toBeGreaterThan((nextUtcMonth(now) - now) / 1000);
    expect(ttl).toBeLessThanOrEqual((nextUtcMonth(now) - now) / 1000 + 3601);
    expect(await counters.reset('globex', now)).toEqual({ images_per_day: 3, jobs_per_month: 3 });
    expect((await counters.charge('globex', quota, now)).accepted).toBe(true);
  });

  it('gives a charge back when the job ends through no fault of its tenant, once, and never below zero', async () => {
    const records = new JobRecords(redis, {
      prefix,
      retentionSeconds: 60,
      maxPerOwner: 1000,
    });
    const lifecycle = new JobLifecycle(
      redis,
      records,
      new UsageLedger(redis, prefix, { retentionDays: 1 }),
    );
    const quota = { images_per_day: 10 };
    const job = async (id: string) => {
      const charge = await counters.charge('initech', quota);
      if (!charge.accepted) throw new Error('refused');
      await records.create({
        id,
        spec: testSpec({ model: 'colour', requestId: id, owner: 'initech' }),
        backend: 'onnx',
        createdAt: Date.now(),
        imageBytes: 100,
        quotaCharge: charge.counters,
      });
    };
    const used = async () => (await counters.standing('initech', quota))[0]!.used;

    await job('down');
    await lifecycle.begin('down');
    await lifecycle.settle('down', { outcome: 'failed', code: 'BACKEND_UNAVAILABLE' });
    expect(await used()).toBe(0);
    // Settled again (a worker that died after settling runs the job again): nothing more.
    await lifecycle.settle('down', { outcome: 'failed', code: 'BACKEND_UNAVAILABLE' });
    expect(await used()).toBe(0);

    await job('bad-input');
    await lifecycle.begin('bad-input');
    await lifecycle.settle('bad-input', { outcome: 'failed', code: 'INVALID_IMAGE' });
    expect(await used()).toBe(1);

    await job('done');
    await lifecycle.begin('done');
    await lifecycle.settle('done', { outcome: 'succeeded', inferenceMs: 2 });
    expect(await used()).toBe(2);

    // Canceled while queued: given back; canceled while running: kept.
    await job('queued');
    await lifecycle.requestCancel('queued');
    expect(await lifecycle.confirmCanceled('queued')).toBe(true);
    expect(await used()).toBe(2);
    await job('running');
    await lifecycle.begin('running');
    await lifecycle.requestCancel('running');
    await lifecycle.settle('running', { outcome: 'succeeded' });
    expect(await used()).toBe(3);

    // A reset between the charge and the refund: the refund finds nothing to give back.
    await job('after-reset');
    await counters.reset('initech');
    await lifecycle.begin('after-reset');
    await lifecycle.settle('after-reset', { outcome: 'failed', code: 'BACKEND_TIMEOUT' });
    expect(await used()).toBe(0);
  });
});

const KEYS = {
  acme: 'acme-quota-key-0123456789',
  globex: 'globex-quota-key-0123456789',
  initech: 'initech-quota-key-0123456789',
};
const ADMIN = 'admin-quota-key-0123456789';

describe('quotas through the API', () => {
  let stack: InProcessWorker;
  let api: TestApi;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ai-gateway-quota-keys-'));
    const keysFile = path.join(dir, 'keys.json');
    await writeFile(
      keysFile,
      JSON.stringify({
        keys: [
          { id: 'acme', key: KEYS.acme, quota: { images_per_day: 2 } },
          { id: 'globex', key: KEYS.globex, quota: { jobs_per_month: 4, images_per_day: 50 } },
          { id: 'initech', key: KEYS.initech },
        ],
      }),
    );
    stack = await startInProcessWorker({
      env: { API_KEYS_FILE: keysFile, ADMIN_API_KEY: ADMIN, SYNC_WAIT_SECONDS: '10' },
    });
    api = await buildTestApi(stack.config, { registry: stack.registry });
  });
  afterAll(async () => {
    await api?.close();
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const as = (who: keyof typeof KEYS | 'admin') => ({
    authorization: `Bearer ${who === 'admin' ? ADMIN : KEYS[who]}`,
  });
  const predict = async (who: keyof typeof KEYS, image: Buffer) =>
    api.app.inject({
      method: 'POST',
      url: '/predict/colour',
      payload: image,
      headers: { 'content-type': 'image/png', ...as(who) },
    });

  it('answers 429 QUOTA_EXCEEDED past the limit, with Retry-After at the end of the UTC day and what is left', async () => {
    const red = await solidPng([255, 0, 0]);
    // Refused at the edge: uses nothing.
    const bad = await api.app.inject({
      method: 'POST',
      url: '/predict/colour',
      payload: await truncatedJpeg(),
      headers: { 'content-type': 'image/jpeg', ...as('acme') },
    });
    expect(bad.statusCode).toBe(422);
    expect(bad.headers.ratelimit).toBeUndefined();

    const first = await predict('acme', red);
    expect(first.statusCode).toBe(200);
    expect(first.headers['ratelimit-policy']).toBe('"images_per_day";q=2;w=86400');
    expect(first.headers.ratelimit).toMatch(/^"images_per_day";r=1;t=\d+$/);
    expect((await predict('acme', red)).statusCode).toBe(200);

    const before = Date.now();
    const refused = await predict('acme', red);
    expect(refused.statusCode).toBe(429);
    const renews = new Date(nextUtcDay(before)).toISOString();
    expect(refused.json()).toEqual({
      type: 'urn:ai-gateway:problem:quota-exceeded',
      title: 'Quota exceeded',
      status: 429,
      detail: `The quota images_per_day (2) is used up; it renews at ${renews}`,
      code: 'QUOTA_EXCEEDED',
      request_id: refused.headers['x-request-id'],
    });
    const retryAfter = Number(refused.headers['retry-after']);
    expect(Math.abs(retryAfter - (nextUtcDay(before) - before) / 1000)).toBeLessThan(5);
    expect(refused.headers['ratelimit-policy']).toBe('"images_per_day";q=2;w=86400');
    expect(refused.headers.ratelimit).toBe(`"images_per_day";r=0;t=${retryAfter}`);
    // The per-window rate limit answers with its own fields beside them: two budgets, two names.
    expect(Number(refused.headers['ratelimit-limit'])).toBe(stack.config.rateLimit.max);
    expect(Number(refused.headers['ratelimit-remaining'])).toBeGreaterThan(0);

    const quotas = await api.app.inject({ url: '/usage/quotas', headers: as('acme') });
    expect(quotas.json()).toEqual({
      tenant: 'acme',
      quotas: [{ policy: 'images_per_day', limit: 2, used: 2, remaining: 0, resets_at: renews }],
    });
    expect(quotas.headers.ratelimit).toMatch(/^"images_per_day";r=0;t=\d+$/);
    // A key without a quota is never refused for one.
    expect((await predict('initech', red)).statusCode).toBe(200);
    expect((await api.app.inject({ url: '/usage/quotas', headers: as('initech') })).json()).toEqual(
      { tenant: 'initech', quotas: [] },
    );
  });

  it('lets the admin reset a key, and read any key; a key reads only its own', async () => {
    const forbidden = await api.app.inject({
      url: '/usage/quotas?tenant=acme',
      headers: as('globex'),
    });
    expect(forbidden.json()).toMatchObject({ status: 403, code: 'TENANT_FORBIDDEN' });
    const seen = await api.app.inject({ url: '/usage/quotas?tenant=acme', headers: as('admin') });
    expect(seen.json()).toMatchObject({ tenant: 'acme', quotas: [{ used: 2, remaining: 0 }] });
    expect(
      (await api.app.inject({ method: 'DELETE', url: '/admin/quotas/acme', headers: as('acme') }))
        .statusCode,
    ).toBe(401);
    const unknown = await api.app.inject({
      method: 'DELETE',
      url: '/admin/quotas/umbrella',
      headers: as('admin'),
    });
    expect(unknown.json()).toMatchObject({ status: 404, code: 'API_KEY_NOT_FOUND' });

    const reset = await api.app.inject({
      method: 'DELETE',
      url: '/admin/quotas/acme',
      headers: as('admin'),
    });
    expect(reset.statusCode).toBe(200);
    expect(reset.json()).toEqual({
      tenant: 'acme',
      used: { images_per_day: 2, jobs_per_month: 0 },
    });
    const again = await predict('acme', await solidPng([0, 0, 255]));
    expect(again.statusCode).toBe(200);
    expect(again.headers.ratelimit).toMatch(/^"images_per_day";r=1;t=\d+$/);
  });

  it('charges nothing for an Idempotency-Key replay: it makes no new job', async () => {
    const red = await solidPng([250, 10, 10]);
    const submit = () =>
      api.app.inject({
        method: 'POST',
        url: '/jobs?model=colour',
        payload: red,
        headers: { 'content-type': 'image/png', 'idempotency-key': 'once-only', ...as('globex') },
      });
    const first = await submit();
    expect(first.statusCode).toBe(202);
    expect(first.headers.ratelimit).toMatch(/"jobs_per_month";r=3;/);
    const replay = await submit();
    expect(replay.statusCode).toBe(202);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.json<{ id: string }>().id).toBe(first.json<{ id: string }>().id);
    const quotas = await api.app.inject({ url: '/usage/quotas', headers: as('globex') });
    expect(quotas.json()).toMatchObject({
      quotas: [
        { policy: 'images_per_day', used: 1 },
        { policy: 'jobs_per_month', used: 1 },
      ],
    });
    // The next case starts from a full quota.
    await api.app.inject({ method: 'DELETE', url: '/admin/quotas/globex', headers: as('admin') });
  });

  it('gives the charge back when the job cannot be made (storage down: 503, nothing used)', async () => {
    const s3Down = testConfig(
      stack.services,
      {
        prefix: stack.config.redis.prefix,
        bucket: uniquePrefix(),
        modelRepository: stack.repository,
      },
      {
        API_KEYS_FILE: stack.config.auth.keysFile!,
        S3_ENDPOINT: `http://127.0.0.1:${await closedPort()}`,
        S3_TIMEOUT_MS: '500',
        // Every image goes to storage (none inline).
        INLINE_IMAGE_MAX_BYTES: '0',
      },
    );
    const down = await buildTestApi(s3Down, { registry: stack.registry, skipStoreInit: true });
    try {
      const res = await down.app.inject({
        method: 'POST',
        url: '/predict/colour',
        payload: await solidPng([9, 9, 9]),
        headers: { 'content-type': 'image/png', ...as('globex') },
      });
      expect(res.json()).toMatchObject({ status: 503, code: 'STORAGE_UNAVAILABLE' });
      expect(res.headers.ratelimit).toBeUndefined();
    } finally {
      await down.close();
    }
    const quotas = await api.app.inject({ url: '/usage/quotas', headers: as('globex') });
    expect(quotas.json()).toMatchObject({
      quotas: [
        { policy: 'images_per_day', used: 0 },
        { policy: 'jobs_per_month', used: 0 },
      ],
    });
  });

  it('of 12 concurrent async submissions against a monthly quota of 4, accepts exactly 4', async () => {
    const green = await solidPng([0, 255, 0]);
    const answers = await Promise.all(
      Array.from({ length: 12 }, () =>
        api.app.inject({
          method: 'POST',
          url: '/jobs?model=colour',
          payload: green,
          headers: { 'content-type': 'image/png', ...as('globex') },
        }),
      ),
    );
    const statuses = answers.map((a) => a.statusCode).sort();
    expect(statuses).toEqual([...Array(4).fill(202), ...Array(8).fill(429)]);
    const refused = answers.find((a) => a.statusCode === 429)!;
    expect(refused.json()).toMatchObject({ code: 'QUOTA_EXCEEDED' });
    expect(refused.headers['ratelimit-policy']).toMatch(
      /^"images_per_day";q=50;w=86400, "jobs_per_month";q=4;w=\d+$/,
    );
    expect(refused.headers.ratelimit).toMatch(
      /^"images_per_day";r=46;t=\d+, "jobs_per_month";r=0;t=\d+$/,
    );
  });
});
