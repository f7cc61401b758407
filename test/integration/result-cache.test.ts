import { cp } from 'node:fs/promises';
import path from 'node:path';
import type { LightMyRequestResponse } from 'fastify';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ResultLookup, resultCacheTerms } from '../../api/cache/result-lookup.js';
import type { Route } from '../../api/routing/router.js';
import { verifyWebhook } from '../../client/index.js';
import { type CachedResult, ResultCache } from '../../shared/cache/result-cache.js';
import type { Config } from '../../shared/config/config.js';
import type { JobResource } from '../../shared/jobs/job-resource.js';
import { modelFingerprint } from '../../shared/models/model-fingerprint.js';
import { ModelRegistry } from '../../shared/models/registry.js';
import type { StatsSnapshot } from '../../shared/stats/stats-store.js';
import { OnnxRuntimeBackend } from '../../workers/backends/onnx-runtime.backend.js';
import { InferenceWorker } from '../../workers/inference-worker.js';
import { WebhookWorker } from '../../workers/webhooks/webhook-worker.js';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import { type InProcessWorker, startInProcessWorker } from '../support/in-process-worker.js';
import { closedPort, eventually, registryDocument, solidPng } from '../support/inference-stack.js';
import { testSpec } from '../support/job-spec.js';
import { parsePrometheusText, sampleValue } from '../support/prometheus-text.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

const KEYS = {
  acme: 'acme-key-0123456789abcdef',
  globex: 'globex-key-0123456789abcdef',
} as const;
type Tenant = keyof typeof KEYS;

const silent = pino({ level: 'silent' });

let stack: InProcessWorker;
let api: TestApi;
let webhooks: WebhookWorker;
let receiver: WebhookReceiver;
let redis: Redis;
const apps: TestApi[] = [];
const workers: InferenceWorker[] = [];

beforeAll(async () => {
  stack = await startInProcessWorker({
    env: {
      API_KEYS: Object.entries(KEYS)
        .map(([id, key]) => `${id}:${key}`)
        .join(','),
      SYNC_WAIT_SECONDS: '10',
      RESULT_CACHE_TTL_SECONDS: '600',
      WEBHOOK_ALLOW_PRIVATE: 'true',
    },
  });
  api = await app();
  webhooks = await WebhookWorker.start({ config: stack.config, logger: silent });
  receiver = await WebhookReceiver.start();
  redis = new Redis(stack.services.redisUrl);
});

afterAll(async () => {
  await Promise.allSettled(apps.map((a) => a.close()));
  await Promise.allSettled(workers.map((w) => w.close()));
  await webhooks?.close();
  await receiver?.close();
  redis?.disconnect();
  await stack?.stop();
});

async function app(
  settings: Partial<Config['resultCache']> = {},
  registry = stack.registry,
): Promise<TestApi> {
  const config: Config = {
    ...stack.config,
    resultCache: { ...stack.config.resultCache, ...settings },
  };
  const built = await buildTestApi(config, { registry });
  apps.push(built);
  return built;
}

let images = 0;
/** An image no other test sends: each test starts with an empty cache for its own image. */
function freshImage(): Promise<Buffer> {
  images += 1;
  return solidPng([0, 0, 255], 16 + images, 16);
}

const as = (tenant: Tenant) => ({ authorization: `Bearer ${KEYS[tenant]}` });

function predict(
  target: TestApi,
  image: Buffer,
  options: { tenant?: Tenant; query?: string; headers?: Record<string, string> } = {},
): Promise<LightMyRequestResponse> {
  return target.app.inject({
    method: 'POST',
    url: `/predict/colour${options.query ?? ''}`,
    payload: image,
    headers: {
      'content-type': 'image/png',
      ...as(options.tenant ?? 'acme'),
      ...options.headers,
    },
  });
}

async function succeeded(res: LightMyRequestResponse): Promise<JobResource> {
  expect(res.statusCode, res.body).toBe(200);
  const job = res.json<JobResource>();
  expect(job.status).toBe('succeeded');
  return job;
}

/** Every job the ONNX queue holds, whatever its state: a cache hit adds none. */
async function jobsInQueue(): Promise<number> {
  const counts = await api.queues
    .queue('onnx')
    .getJobCounts('waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed');
  return Object.values(counts).reduce((sum, n) => sum + n, 0);
}

/** The entry the worker filed for acme's request for the image with no parameters, version 1. */
function entryFor(imageKey: string, scope = 'owner:acme') {
  return new ResultCache(redis, stack.config.redis.prefix).get({
    scope,
    model: 'colour',
    definition: modelFingerprint(stack.registry.get('colour')!),
    backend: 'onnx',
    version: '1',
    image: imageKey,
    params: {},
  });
}

describe('result cache', () => {
  it('answers a repeated /predict from the cache: a real job, marked cached, no second queue job', async () => {
    const image = await freshImage();
    const first = await succeeded(await predict(api, image));
    expect(first.cached).toBeUndefined();
    expect(first.timings.inference_ms).not.toBeNull();
    const queued = await jobsInQueue();

    const res = await predict(api, image);
    const hit = await succeeded(res);
    expect(hit).toMatchObject({
      model: 'colour',
      version: first.version,
      backend: 'onnx',
      result: first.result,
      cached: true,
      attempts: 0,
      timings: { queue_ms: null, inference_ms: null, total_ms: 0 },
    });
    expect(hit.id).not.toBe(first.id);
    expect(res.headers['content-location']).toBe(`/jobs/${hit.id}`);
    // Nothing was queued for it, in any state.
    expect(await jobsInQueue()).toBe(queued);
    expect(await api.queues.queue('onnx').getJob(hit.id)).toBeUndefined();

    // It is a job like any finished one: readable, listed, not cancelable.
    const read = await api.app.inject({ url: `/jobs/${hit.id}`, headers: as('acme') });
    expect(read.statusCode).toBe(200);
    expect(read.json()).toEqual(hit);
    const list = await api.app.inject({ url: '/jobs?limit=5', headers: as('acme') });
    expect(list.json<{ jobs: JobResource[] }>().jobs.map((j) => j.id)).toContain(hit.id);
    const cancel = await api.app.inject({
      method: 'DELETE',
      url: `/jobs/${hit.id}`,
      headers: as('acme'),
    });
    expect(cancel.statusCode).toBe(409);
    expect(cancel.json()).toMatchObject({ code: 'JOB_FINISHED' });
    // Another key does not see it.
    const other = await api.app.inject({ url: `/jobs/${hit.id}`, headers: as('globex') });
    expect(other.statusCode).toBe(404);
  });

  it('misses when top_k or threshold differ, and hits again for the same ones', async () => {
    const image = await freshImage();
    await succeeded(await predict(api, image));
    const topK = await succeeded(await predict(api, image, { query: '?top_k=1' }));
    expect(topK.cached).toBeUndefined();
    expect(topK.result).toMatchObject({ predictions: [expect.anything()] });
    const threshold = await succeeded(await predict(api, image, { query: '?threshold=0.5' }));
    expect(threshold.cached).toBeUndefined();
    const again = await succeeded(await predict(api, image, { query: '?top_k=1' }));
    expect(again).toMatchObject({ cached: true, result: topK.result });
  });

  it('creates a job already succeeded for POST /jobs, and still sends its completed webhook', async () => {
    const image = await freshImage();
    await succeeded(await predict(api, image));
    const queued = await jobsInQueue();

    const res = await api.app.inject({
      method: 'POST',
      url: `/jobs?model=colour&webhook=${encodeURIComponent(receiver.url('/cached'))}`,
      payload: image,
      headers: { 'content-type': 'image/png', ...as('acme') },
    });
    expect(res.statusCode).toBe(202);
    const job = res.json<JobResource>();
    expect(job).toMatchObject({ status: 'succeeded', cached: true });
    expect(res.headers.location).toBe(`/jobs/${job.id}`);
    expect(await jobsInQueue()).toBe(queued);

    const [message] = await eventually(
      () => (receiver.on('/cached').length > 0 ? receiver.on('/cached') : undefined),
      10_000,
      'the completed webhook',
    );
    expect(message!.headers['webhook-id']).toBe(`msg_${job.id}_completed`);
    expect(JSON.parse(message!.body)).toMatchObject({
      id: job.id,
      status: 'succeeded',
      cached: true,
      result: job.result,
    });
    // Queued by the API for the job's owner: signed with acme's secret, not globex's.
    const secretOf = async (tenant: Tenant) =>
      (await api.app.inject({ url: '/webhooks/secret', headers: as(tenant) })).json<{
        secret: string;
      }>().secret;
    const headers = message!.headers as Record<string, string>;
    expect(verifyWebhook(await secretOf('acme'), message!.body, headers).id).toBe(job.id);
    const globexSecret = await secretOf('globex');
    expect(() => verifyWebhook(globexSecret, message!.body, headers)).toThrow();
  });

  it('is scoped per API key by default; RESULT_CACHE_SCOPE=global shares it', async () => {
    const image = await freshImage();
    await succeeded(await predict(api, image, { tenant: 'acme' }));
    const globex = await succeeded(await predict(api, image, { tenant: 'globex' }));
    expect(globex.cached).toBeUndefined();

    const shared = await app({ scope: 'global' });
    const shareable = await freshImage();
    const fromAcme = await succeeded(await predict(shared, shareable, { tenant: 'acme' }));
    expect(fromAcme.cached).toBeUndefined();
    const forGlobex = await succeeded(await predict(shared, shareable, { tenant: 'globex' }));
    expect(forGlobex).toMatchObject({ cached: true, result: fromAcme.result });
    // An owner-scoped API does not read what was shared globally.
    const owned = await succeeded(await predict(api, shareable, { tenant: 'globex' }));
    expect(owned.cached).toBeUndefined();
  });

  it('runs the model for Cache-Control: no-cache or no-store, and files the new answer', async () => {
    const image = await freshImage();
    const first = await succeeded(await predict(api, image));
    const key = (await api.queues.queue('onnx').getJob(first.id))!.data.imageKey;
    expect((await entryFor(key))?.jobId).toBe(first.id);

    const queued = await jobsInQueue();
    const fresh = await succeeded(
      await predict(api, image, { headers: { 'cache-control': 'no-cache' } }),
    );
    expect(fresh.cached).toBeUndefined();
    expect(fresh.timings.inference_ms).not.toBeNull();
    expect(await jobsInQueue()).toBe(queued + 1);
    expect((await entryFor(key))?.jobId).toBe(fresh.id);

    const stored = await succeeded(
      await predict(api, image, { headers: { 'cache-control': 'max-age=0, No-Store' } }),
    );
    expect(stored.cached).toBeUndefined();
    expect((await entryFor(key))?.jobId).toBe(stored.id);

    expect(await succeeded(await predict(api, image))).toMatchObject({ cached: true });
  });

  it('is off with RESULT_CACHE_TTL_SECONDS=0: every request runs, nothing is filed', async () => {
    const off = await app({ ttlSeconds: 0 });
    const image = await freshImage();
    const first = await succeeded(await predict(off, image));
    const queued = await jobsInQueue();
    const second = await succeeded(await predict(off, image));
    expect(second.cached).toBeUndefined();
    expect(await jobsInQueue()).toBe(queued + 1);
    const job = await api.queues.queue('onnx').getJob(first.id);
    expect(job!.data.resultCache).toBeUndefined();
    expect(await entryFor(job!.data.imageKey)).toBeUndefined();
  });

  it('never answers with an entry made under another registry definition of the model', async () => {
    const image = await freshImage();
    await succeeded(await predict(api, image));
    const document = registryDocument() as { models: Record<string, Record<string, unknown>> };
    document.models.colour!.labels = ['rot', 'grün', 'blau'];
    const changed = await app({}, ModelRegistry.fromDocument(document));
    const res = await succeeded(await predict(changed, image));
    expect(res.cached).toBeUndefined();
    // The worker still has the old definition: it does not file its answer as the new one's.
    const again = await succeeded(await predict(changed, image));
    expect(again.cached).toBeUndefined();
    // Listing a definition's fields in another order changes nothing.
    const original = registryDocument() as { models: Record<string, Record<string, unknown>> };
    const colour = original.models.colour!;
    original.models.colour = Object.fromEntries(Object.entries(colour).reverse());
    const reordered = ModelRegistry.fromDocument(original);
    expect(modelFingerprint(reordered.get('colour')!)).toBe(
      modelFingerprint(stack.registry.get('colour')!),
    );
  });

  it('counts hits, misses and bypasses in /metrics and /stats', async () => {
    const counted = await app();
    // Every app of this file counts into the same totals: write what the others still hold first.
    await Promise.all(apps.map((a) => a.stats.flush()));
    const stats = async () =>
      (await counted.app.inject({ url: '/stats', headers: as('acme') })).json<StatsSnapshot>();
    const before = (await stats()).totals.result_cache.models.colour ?? {
      hits: 0,
      misses: 0,
      bypasses: 0,
    };

    const image = await freshImage();
    await succeeded(await predict(counted, image));
    await succeeded(await predict(counted, image));
    await succeeded(await predict(counted, image));
    await succeeded(await predict(counted, image, { headers: { 'cache-control': 'no-cache' } }));

    const metrics = parsePrometheusText(
      (await counted.app.inject({ url: '/metrics', headers: as('acme') })).body,
    );
    const lookups = (outcome: string) =>
      sampleValue(metrics, 'ai_gateway_result_cache_lookups_total', { model: 'colour', outcome });
    expect([lookups('hit'), lookups('miss'), lookups('bypass')]).toEqual([2, 1, 1]);

    const after = await stats();
    expect(after.totals.result_cache.models.colour).toMatchObject({
      hits: before.hits + 2,
      misses: before.misses + 1,
      bypasses: before.bypasses + 1,
    });
    expect(after.totals.result_cache.hit_rate).toBeGreaterThan(0);
    expect(after.window.result_cache.hits).toBeGreaterThanOrEqual(2);
  });

  it('treats a failed lookup as a miss', async () => {
    const broken = new Redis({
      port: await closedPort(),
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      commandTimeout: 200,
    });
    broken.on('error', () => undefined);
    const outcomes: string[] = [];
    const lookup = new ResultLookup({
      cache: new ResultCache(broken, 'nowhere'),
      logger: silent,
      onLookup: (_request, outcome) => outcomes.push(outcome),
    });
    const route: Route = {
      model: stack.registry.get('colour')!,
      backend: 'onnx',
      pinned: false,
      version: '1',
    };
    const terms = resultCacheTerms({ ttlSeconds: 60, scope: 'owner' }, route, 'acme');
    expect(terms).toMatchObject({ scope: 'owner:acme', ttlSeconds: 60 });
    const spec = testSpec({ model: 'colour', owner: 'acme', resultCache: terms });
    expect(await lookup.lookup({ spec, route, bypass: false })).toBeUndefined();
    expect(outcomes).toEqual(['miss']);
    broken.disconnect();
  });

  // Last: it adds a worker with a version 2, which every later request would be routed to.
  it('never answers with an older version once a newer one is served', async () => {
    const image = await freshImage();
    const first = await succeeded(await predict(api, image));
    expect(first.version).toBe('1');
    const key = (await api.queues.queue('onnx').getJob(first.id))!.data.imageKey;
    const entry: CachedResult | undefined = await entryFor(key);
    expect(entry?.version).toBe('1');

    // Version 2 appears: a worker that has it starts, and the API's picture shows it.
    await cp(
      path.join(stack.repository, 'colour', '1'),
      path.join(stack.repository, 'colour', '2'),
      {
        recursive: true,
      },
    );
    workers.push(
      await InferenceWorker.start({
        config: stack.config,
        registry: stack.registry,
        backend: new OnnxRuntimeBackend({ repository: stack.repository }),
        logger: silent,
      }),
    );
    await eventually(
      () =>
        api.statusCache.snapshot('onnx').models.colour?.versions[0] === '2' ? true : undefined,
      10_000,
      'version 2 in the status picture',
    );

    const after = await succeeded(await predict(api, image));
    expect(after.cached).toBeUndefined();
    // Version 1 asked for by name is still that version's answer.
    const pinned = await succeeded(await predict(api, image, { query: '?version=1' }));
    expect(pinned).toMatchObject({ cached: true, version: '1' });
  });
});
