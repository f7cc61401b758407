/**
 * Usage per key (issue 14) through the real pipeline: an API, an ONNX worker and a TF Serving worker
 * (its server a stand-in that can be told to fail) on one Redis. Each job is counted once, when it
 * ends, whether it retried, moved to another backend, failed, or was answered from the result cache;
 * GET /usage reads it back per tenant, day and model, and the workers' counters agree.
 */
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../shared/config/config.js';
import { JobLifecycle } from '../../shared/jobs/job-lifecycle.js';
import { JobRecords } from '../../shared/jobs/job-records.js';
import { createUsageMetrics, type UsageMetrics } from '../../shared/metrics/index.js';
import { ModelRegistry } from '../../shared/models/registry.js';
import { UsageLedger } from '../../shared/usage/usage-ledger.js';
import { utcDay } from '../../shared/usage/usage-periods.js';
import { createBackend } from '../../workers/backends/create-backend.js';
import { OnnxRuntimeBackend } from '../../workers/backends/onnx-runtime.backend.js';
import { InferenceWorker } from '../../workers/inference-worker.js';
import { TfServingStandIn } from '../fixtures/tf-serving-stand-in.js';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import { type BackendModels, TF_MODELS, writeBackendModels } from '../support/backend-models.js';
import { solidPng, testConfig } from '../support/inference-stack.js';
import { testSpec } from '../support/job-spec.js';
import { parsePrometheusText, sampleValue } from '../support/prometheus-text.js';
import { cleanRedisPrefix, uniquePrefix } from '../support/services.js';
import { sharedServices } from '../support/shared-services.js';

const KEYS = {
  acme: 'acme-usage-key-0123456789',
  globex: 'globex-usage-key-0123456789',
  initech: 'initech-usage-key-0123456789',
  hooli: 'hooli-usage-key-0123456789',
};
type Tenant = keyof typeof KEYS;
const ADMIN = 'admin-usage-key-0123456789';
const silent = pino({ level: 'silent' });

const services = sharedServices();
let models: BackendModels;
let standIn: TfServingStandIn;
let config: Config;
let api: TestApi;
const workers: InferenceWorker[] = [];
/** Each worker's usage counters, on a registry of its own, as each worker process has. */
const counters: Record<'onnx' | 'tensorflow', UsageMetrics> = {
  onnx: createUsageMetrics(new Registry(), { models: [], tenants: [] }),
  tensorflow: createUsageMetrics(new Registry(), { models: [], tenants: [] }),
};
const prefix = uniquePrefix();

beforeAll(async () => {
  models = await writeBackendModels();
  standIn = await TfServingStandIn.start(TF_MODELS);
  config = testConfig(
    services,
    { prefix, bucket: uniquePrefix(), modelRepository: models.env.MODEL_REPOSITORY },
    {
      API_KEYS: Object.entries(KEYS)
        .map(([id, key]) => `${id}:${key}`)
        .join(','),
      ADMIN_API_KEY: ADMIN,
      TENSORFLOW_SERVING_URL: standIn.url,
      SYNC_WAIT_SECONDS: '20',
      JOB_ATTEMPTS: '2',
      RESULT_CACHE_TTL_SECONDS: '60',
      // No breaker: each failure the stand-in is told to give reaches the job.
      BREAKER_VOLUME_THRESHOLD: '1000',
    },
  );
  const registry = ModelRegistry.load(models.env.MODELS_CONFIG);
  const modelNames = registry.list().map((m) => m.name);
  const tenants = Object.keys(KEYS);
  counters.onnx = createUsageMetrics(new Registry(), { models: modelNames, tenants });
  counters.tensorflow = createUsageMetrics(new Registry(), { models: modelNames, tenants });
  workers.push(
    await InferenceWorker.start({
      config,
      registry,
      backend: new OnnxRuntimeBackend({ repository: models.env.MODEL_REPOSITORY }),
      logger: silent,
      usageMetrics: counters.onnx,
    }),
    await InferenceWorker.start({
      config,
      registry,
      backend: createBackend('tensorflow', config),
      logger: silent,
      usageMetrics: counters.tensorflow,
    }),
  );
  api = await buildTestApi(config, { registry });
});

afterAll(async () => {
  await api?.close();
  await Promise.allSettled(workers.map((w) => w.close()));
  await standIn?.close();
  await cleanRedisPrefix(services.redisUrl, prefix);
  await models?.remove();
});

const as = (who: Tenant | 'admin') => ({
  authorization: `Bearer ${who === 'admin' ? ADMIN : KEYS[who]}`,
});

async function predict(who: Tenant, model: string, image: Buffer) {
  const res = await api.app.inject({
    method: 'POST',
    url: `/predict/${model}`,
    payload: image,
    headers: { 'content-type': 'image/png', ...as(who) },
  });
  return { status: res.statusCode, body: res.json<Record<string, unknown>>() };
}

interface Usage {
  from: string;
  to: string;
  tenants: {
    tenant: string;
    totals: Record<string, unknown>;
    models: Record<string, Record<string, unknown>>;
    days: { date: string; totals: Record<string, unknown>; models: Record<string, unknown> }[];
  }[];
}

async function usage(who: Tenant | 'admin', query = ''): Promise<Usage> {
  const res = await api.app.inject({ url: `/usage${query}`, headers: as(who) });
  expect(res.statusCode).toBe(200);
  return res.json<Usage>();
}

/** A counter summed over both workers' registries, as Prometheus would over their targets. */
async function counted(name: string, labels: Record<string, string>): Promise<number> {
  let sum = 0;
  for (const metrics of Object.values(counters)) {
    sum += sampleValue(parsePrometheusText(await metrics.register.metrics()), name, labels) ?? 0;
  }
  return sum;
}

describe('usage per key', () => {
  it('counts a job that retried once: one request, one image, one success', async () => {
    const image = await solidPng([240, 20, 20], 16, 16);
    standIn.server.failInference(503, 1);
    const { status, body } = await predict('acme', 'colour_tf', image);
    expect(status).toBe(200);
    expect(body).toMatchObject({ status: 'succeeded', backend: 'tensorflow', attempts: 2 });
    const inferenceMs = (body.timings as { inference_ms: number }).inference_ms;

    const { tenants } = await usage('acme');
    expect(tenants).toEqual([
      {
        tenant: 'acme',
        totals: expect.any(Object),
        models: { colour_tf: expect.any(Object) },
        days: [
          { date: utcDay(Date.now()), totals: expect.any(Object), models: expect.any(Object) },
        ],
      },
    ]);
    expect(tenants[0]!.models.colour_tf).toEqual({
      requests: 1,
      images: 1,
      jobs: { succeeded: 1, failed: 0, canceled: 0 },
      inference_ms: expect.closeTo(inferenceMs, 2),
      uploaded_bytes: image.length,
    });
    expect(
      await counted('ai_gateway_usage_jobs_total', {
        tenant: 'acme',
        model: 'colour_tf',
        status: 'succeeded',
      }),
    ).toBe(1);
  });

  it('counts a job that fell back to another backend once, where it ended', async () => {
    const image = await solidPng([20, 240, 20], 17, 16);
    standIn.server.failInference(503);
    try {
      const { status, body } = await predict('globex', 'colour_both', image);
      expect(status).toBe(200);
      expect(body).toMatchObject({ status: 'succeeded', backend: 'onnx' });
      expect((body.route as unknown[]).length).toBe(2);
    } finally {
      standIn.server.heal();
    }
    const [globex] = (await usage('globex')).tenants;
    expect(globex!.totals).toEqual({
      requests: 1,
      images: 1,
      jobs: { succeeded: 1, failed: 0, canceled: 0 },
      inference_ms: expect.any(Number),
      uploaded_bytes: image.length,
    });
    const labels = { tenant: 'globex', model: 'colour_both' };
    expect(await counted('ai_gateway_usage_requests_total', labels)).toBe(1);
    expect(await counted('ai_gateway_usage_images_total', labels)).toBe(1);
    expect(await counted('ai_gateway_usage_uploaded_bytes_total', labels)).toBe(image.length);
    // The TF worker, which gave it up, counted nothing of it.
    const tf = parsePrometheusText(await counters.tensorflow.register.metrics());
    expect(sampleValue(tf, 'ai_gateway_usage_requests_total', labels) ?? 0).toBe(0);
  });

  it('counts a job that failed for good as failed, with no image and no model time', async () => {
    const image = await solidPng([20, 20, 240], 18, 16);
    standIn.server.failInference(503);
    try {
      const { status, body } = await predict('initech', 'colour_tf', image);
      expect(status).toBe(503);
      expect(body).toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
    } finally {
      standIn.server.heal();
    }
    const [initech] = (await usage('initech')).tenants;
    expect(initech!.models.colour_tf).toEqual({
      requests: 1,
      images: 0,
      jobs: { succeeded: 0, failed: 1, canceled: 0 },
      inference_ms: 0,
      uploaded_bytes: image.length,
    });
  });

  it('counts an answer from the result cache as a request, not as an image', async () => {
    const image = await solidPng([200, 200, 20], 19, 16);
    expect((await predict('hooli', 'colour_onnx', image)).status).toBe(200);
    const again = await predict('hooli', 'colour_onnx', image);
    expect(again.status).toBe(200);
    const [hooli] = (await usage('hooli')).tenants;
    expect(hooli!.models.colour_onnx).toMatchObject({
      requests: 2,
      images: 1,
      jobs: { succeeded: 2, failed: 0, canceled: 0 },
      uploaded_bytes: 2 * image.length,
    });
  });

  it("shows the admin every tenant's usage, or one; a key only its own", async () => {
    const today = utcDay(Date.now());
    const all = await usage('admin', `?from=${today}&to=${today}`);
    expect(all).toMatchObject({ from: today, to: today });
    expect(all.tenants.map((t) => t.tenant)).toEqual(['acme', 'globex', 'hooli', 'initech']);
    const one = await usage('admin', '?tenant=globex');
    expect(one.tenants).toEqual([(await usage('globex')).tenants[0]]);
    // A day with nothing: the tenant, with zeros and no days.
    const empty = await usage('acme', '?from=2020-01-01&to=2020-01-31');
    expect(empty.tenants).toEqual([
      expect.objectContaining({ tenant: 'acme', models: {}, days: [] }),
    ]);

    const refusals: [Tenant | 'admin', string, number, string][] = [
      ['acme', '?tenant=globex', 403, 'TENANT_FORBIDDEN'],
      ['admin', '?tenant=umbrella', 404, 'TENANT_NOT_FOUND'],
      ['acme', '?from=2026-02-30', 400, 'VALIDATION_FAILED'],
      ['acme', '?from=2026-03-02&to=2026-03-01', 400, 'VALIDATION_FAILED'],
      ['acme', '?from=2020-01-01&to=2026-01-01', 400, 'VALIDATION_FAILED'],
    ];
    for (const [who, query, status, code] of refusals) {
      const res = await api.app.inject({ url: `/usage${query}`, headers: as(who) });
      expect(res.json()).toMatchObject({ status, code });
    }
    expect((await api.app.inject({ url: '/usage' })).statusCode).toBe(401);
  });
});

describe('the step that ends a job counts it', () => {
  it('once, whichever of settle and cancel ends it, however often either runs', async () => {
    const redis = new Redis(services.redisUrl);
    const own = uniquePrefix();
    try {
      const seen: string[] = [];
      const ledger = new UsageLedger(redis, own, {
        retentionDays: 1,
        onCounted: (job) => seen.push(`${job.tenant}:${job.outcome}`),
      });
      const records = new JobRecords(redis, {
        prefix: own,
        retentionSeconds: 60,
        maxPerOwner: 1000,
      });
      const lifecycle = new JobLifecycle(redis, records, ledger);
      const create = (id: string) =>
        records.create({
          id,
          spec: testSpec({ model: 'm', requestId: id, owner: 'acme' }),
          backend: 'onnx',
          createdAt: Date.now(),
          imageBytes: 10,
        });
      await create('ok');
      await lifecycle.begin('ok');
      await lifecycle.settle('ok', { outcome: 'succeeded', inferenceMs: 1.5 });
      await lifecycle.settle('ok', { outcome: 'succeeded', inferenceMs: 1.5 });
      expect(await lifecycle.requestCancel('ok')).toMatchObject({ kind: 'finished' });

      await create('queued');
      await lifecycle.requestCancel('queued');
      await lifecycle.confirmCanceled('queued');
      await lifecycle.confirmCanceled('queued');
      await lifecycle.settle('queued', { outcome: 'failed', code: 'JOB_CANCELED' });

      await create('running');
      await lifecycle.begin('running');
      await lifecycle.requestCancel('running');
      await lifecycle.settle('running', { outcome: 'succeeded', inferenceMs: 3 });
      await lifecycle.confirmCanceled('running');

      expect(seen).toEqual(['acme:succeeded', 'acme:canceled', 'acme:canceled']);
      const [acme] = await ledger.read([utcDay(Date.now())], 'acme');
      expect(acme!.models.m).toEqual({
        requests: 3,
        images: 1,
        jobs: { succeeded: 1, failed: 0, canceled: 2 },
        inference_ms: 1.5,
        uploaded_bytes: 30,
      });
    } finally {
      await cleanRedisPrefix(services.redisUrl, own);
      redis.disconnect();
    }
  });
});
