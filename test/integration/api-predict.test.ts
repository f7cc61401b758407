import { randomBytes, randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import type { LightMyRequestResponse } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../shared/config/config.js';
import { ModelRegistry } from '../../shared/models/registry.js';
import { OnnxRuntimeBackend } from '../../workers/backends/onnx-runtime.backend.js';
import { InferenceWorker } from '../../workers/inference-worker.js';
import { noisyJpeg } from '../fixtures/images.js';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import {
  closedPort,
  createModelRepository,
  damagedTiff,
  eventually,
  registryDocument,
  solidPng,
  testConfig,
  truncatedJpeg,
} from '../support/inference-stack.js';
import { multipartBody, type Part } from '../support/raw-http.js';
import { cleanRedisPrefix, uniquePrefix } from '../support/services.js';
import { sharedServices } from '../support/shared-services.js';

const MAX_UPLOAD_BYTES = 16 * 1024;
const MAX_IMAGE_PIXELS = 100_000;
const SYNC_WAIT_SECONDS = 10;

const services = sharedServices();
let repository: string;
let registry: ModelRegistry;
let config: Config;
let worker: InferenceWorker;
let api: TestApi;
/** Every prefix a test used, cleaned at the end, and every app built, closed at the end. */
const prefixes: string[] = [];
const apps: TestApi[] = [];

const silent = pino({ level: 'silent' });

beforeAll(async () => {
  repository = await createModelRepository();
  registry = ModelRegistry.fromDocument(registryDocument());
  const prefix = uniquePrefix();
  prefixes.push(prefix);
  config = testConfig(
    services,
    { prefix, bucket: uniquePrefix(), modelRepository: repository },
    {
      MAX_UPLOAD_BYTES: String(MAX_UPLOAD_BYTES),
      MAX_IMAGE_PIXELS: String(MAX_IMAGE_PIXELS),
      RATE_LIMIT_REQUESTS: '100000',
      SYNC_WAIT_SECONDS: String(SYNC_WAIT_SECONDS),
    },
  );
  worker = await InferenceWorker.start({
    config,
    registry,
    backend: new OnnxRuntimeBackend({ repository }),
    logger: silent,
  });
  api = await app(config);
  // The worker reported before the app's first status read, so routing already sees it.
  expect(api.statusCache.snapshot('onnx').workers).toHaveLength(1);
});

afterAll(async () => {
  await Promise.allSettled(apps.map((a) => a.close()));
  await worker?.close();
  for (const prefix of prefixes) await cleanRedisPrefix(services.redisUrl, prefix);
  if (repository) await rm(repository, { recursive: true, force: true });
});

async function app(appConfig: Config, options: { skipStoreInit?: boolean } = {}): Promise<TestApi> {
  const built = await buildTestApi(appConfig, { registry, ...options });
  apps.push(built);
  return built;
}

/** A multipart/form-data body, built by hand, as `app.inject` takes it. */
function multipart(parts: Part[]): { payload: Buffer; headers: Record<string, string> } {
  const { body, contentType } = multipartBody(parts);
  return { payload: body, headers: { 'content-type': contentType } };
}

function predict(
  target: TestApi,
  model: string,
  body: { payload: Buffer; headers: Record<string, string> },
  headers: Record<string, string> = {},
  query = '',
): Promise<LightMyRequestResponse> {
  return target.app.inject({
    method: 'POST',
    url: `/predict/${model}${query}`,
    payload: body.payload,
    headers: { ...body.headers, ...headers },
  });
}

const raw = (data: Buffer, contentType = 'image/png') => ({
  payload: data,
  headers: { 'content-type': contentType },
});
const file = (data: Buffer, contentType = 'image/png') =>
  multipart([{ name: 'file', data, contentType }]);

interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  request_id: string;
}

/** An RFC 9457 answer with the given status and code, whose request id is the response's. */
function expectProblem(res: LightMyRequestResponse, status: number, code: string): Problem {
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = res.json<Problem>();
  expect({ statusCode: res.statusCode, code: body.code }).toEqual({ statusCode: status, code });
  expect(body).toEqual({
    type: `urn:ai-gateway:problem:${code.toLowerCase().replaceAll('_', '-')}`,
    title: expect.any(String),
    status,
    detail: expect.any(String),
    code,
    request_id: res.headers['x-request-id'],
    ...('job_id' in body ? { job_id: expect.any(String) } : {}),
  });
  expect(body.title).not.toBe('');
  expect(JSON.stringify(body)).not.toMatch(/\bat .+\.[jt]s:\d+/);
  return body;
}

interface JobBody {
  id: string;
  model: string;
  version: string | null;
  backend: string;
  status: string;
  result: { task: string; predictions?: { label: string; index: number; score: number }[] };
  timings: Record<string, number | null>;
  request_id: string;
  attempts: number;
  urls: { get: string; cancel: string };
}

async function jobCount(target: TestApi): Promise<number> {
  const counts = await target.queues.queue('onnx').getJobCounts();
  return Object.values(counts).reduce((sum, n) => sum + n, 0);
}

describe('POST /predict/{model}, in-process API and worker over real Redis, BullMQ and S3', () => {
  it('answers 200 with the finished job for a multipart upload', async () => {
    const res = await predict(api, 'colour', file(await solidPng([255, 0, 0])));

    expect(res.statusCode).toBe(200);
    const job = res.json<JobBody>();
    expect(job).toMatchObject({
      model: 'colour',
      version: '1',
      backend: 'onnx',
      status: 'succeeded',
      attempts: 1,
      result: { task: 'classification' },
    });
    expect(job.result.predictions?.[0]).toMatchObject({ label: 'red', index: 0 });
    expect(job.result.predictions?.[0]?.score).toBeGreaterThan(0.99);
    for (const timing of ['queue_ms', 'preprocess_ms', 'inference_ms', 'total_ms']) {
      expect(job.timings[timing]).toBeTypeOf('number');
    }
    // Alone in its worker, the job ran on its own without waiting out the batch delay (5 ms).
    expect(job.timings.batch_size).toBe(1);
    expect(job.timings.batch_wait_ms).toBeLessThan(5);
    // Server-Timing says where the time went, with the job's own figures.
    const stages = Object.fromEntries(
      [
        ...String(res.headers['server-timing']).matchAll(/(\w+)(?:;desc="[^"]*")?;dur=([\d.]+)/g),
      ].map(([, name, dur]) => [name, Number(dur)]),
    );
    expect(Object.keys(stages)).toEqual([
      'api',
      'queue',
      'fetch',
      'preprocess',
      'batch',
      'inference',
      'postprocess',
      'overhead',
      'total',
    ]);
    expect(stages.inference).toBeCloseTo(Number(job.timings.inference_ms), 3);
    expect(stages.batch).toBeCloseTo(Number(job.timings.batch_wait_ms), 3);
    // The finished job stays readable there; Location is for an answer that is not final (202).
    expect(res.headers['content-location']).toBe(`/jobs/${job.id}`);
    expect(res.headers.location).toBeUndefined();
    expect(job.urls.get).toBe(`/jobs/${job.id}`);
    // A generated request id, echoed in the header and carried by the job.
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(job.request_id).toBe(res.headers['x-request-id']);
  });

  it('keeps the caller’s X-Request-Id, and accepts a raw image body', async () => {
    const requestId = `client-${randomUUID()}`;
    const res = await predict(api, 'colour', raw(await solidPng([0, 255, 0])), {
      'x-request-id': requestId,
    });

    expect(res.statusCode).toBe(200);
    expect(res.headers['x-request-id']).toBe(requestId);
    const job = res.json<JobBody>();
    expect(job.request_id).toBe(requestId);
    expect(job.result.predictions?.[0]?.label).toBe('green');

    const fetched = await api.app.inject({ method: 'GET', url: `/jobs/${job.id}` });
    expect(fetched.statusCode).toBe(200);
    expect(fetched.json<JobBody>()).toMatchObject({
      id: job.id,
      status: 'succeeded',
      request_id: requestId,
    });
  });

  it('takes top_k from the query string or from a multipart field', async () => {
    const image = await solidPng([0, 0, 255]);
    const fromQuery = await predict(api, 'colour', raw(image), {}, '?top_k=1');
    expect(fromQuery.statusCode).toBe(200);
    expect(fromQuery.json<JobBody>().result.predictions).toHaveLength(1);

    const fromField = await predict(
      api,
      'colour',
      multipart([
        { name: 'top_k', value: '2' },
        { name: 'file', data: image },
      ]),
    );
    expect(fromField.statusCode).toBe(200);
    expect(fromField.json<JobBody>().result.predictions?.map((p) => p.label)).toEqual([
      'blue',
      expect.any(String),
    ]);
  });

  it('answers 202 at once for Prefer: respond-async, and the job finishes', async () => {
    const res = await predict(api, 'colour', file(await solidPng([255, 0, 0])), {
      prefer: 'respond-async',
    });

    expect(res.statusCode).toBe(202);
    expect(res.headers['preference-applied']).toBe('respond-async');
    const job = res.json<JobBody>();
    expect(['queued', 'processing']).toContain(job.status);
    expect(res.headers.location).toBe(`/jobs/${job.id}`);

    const done = await eventually(async () => {
      const polled = await api.app.inject({ method: 'GET', url: res.headers.location as string });
      const body = polled.json<JobBody>();
      return body.status === 'succeeded' ? body : undefined;
    });
    expect(done.result.predictions?.[0]?.label).toBe('red');
  });

  it('waits with respond-async and wait=N together, as RFC 7240 reads them; of a repeated preference the first counts', async () => {
    const res = await predict(api, 'colour', file(await solidPng([0, 0, 255])), {
      prefer: 'respond-async, wait=10, wait=0',
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['preference-applied']).toBe('respond-async, wait=10');
    expect(res.json<JobBody>().result.predictions?.[0]?.label).toBe('blue');
  });

  it('answers 202 when the wait runs out, and the job is not lost (Prefer: wait=0, wait=1)', async () => {
    const queue = api.queues.queue('onnx');
    // With the queue paused no worker takes the job, so the wait always runs out.
    await queue.pause();
    try {
      const image = await solidPng([0, 255, 0]);
      const now = await predict(api, 'colour', raw(image), { prefer: 'wait=0' });
      expect(now.statusCode).toBe(202);
      expect(now.headers['preference-applied']).toBe('wait=0');
      expect(now.json<JobBody>().status).toBe('queued');

      const started = performance.now();
      const later = await predict(api, 'colour', raw(image), { prefer: 'wait=1' });
      const elapsed = performance.now() - started;
      expect(later.statusCode).toBe(202);
      expect(later.headers['preference-applied']).toBe('wait=1');
      // wait=1 was honoured: not answered before the second was up, nor held for the default
      // SYNC_WAIT_SECONDS (10 s). The upper bound leaves a busy machine room for the upload and
      // the queue round trips around the wait.
      expect(elapsed).toBeGreaterThanOrEqual(950);
      expect(elapsed).toBeLessThan((SYNC_WAIT_SECONDS * 1000) / 2);
      expect(api.waiter.size).toBe(0);

      await queue.resume();
      for (const res of [now, later]) {
        const done = await eventually(async () => {
          const polled = await api.app.inject({
            method: 'GET',
            url: res.headers.location as string,
          });
          const body = polled.json<JobBody>();
          return body.status === 'succeeded' ? body : undefined;
        });
        expect(done.result.predictions?.[0]?.label).toBe('green');
      }
    } finally {
      await queue.resume();
    }
  });

  it('answers 404 JOB_NOT_FOUND for an unknown job and ROUTE_NOT_FOUND for an unknown path', async () => {
    const job = await api.app.inject({ method: 'GET', url: `/jobs/${randomUUID()}` });
    expectProblem(job, 404, 'JOB_NOT_FOUND');
    const route = await api.app.inject({ method: 'GET', url: '/no/such/path' });
    expectProblem(route, 404, 'ROUTE_NOT_FOUND');
  });

  it('answers 503 MODEL_UNAVAILABLE with Retry-After for a model no worker can serve', async () => {
    const image = file(await solidPng([255, 0, 0]));
    const noWorker = await predict(api, 'tf_only', image);
    const body = expectProblem(noWorker, 503, 'MODEL_UNAVAILABLE');
    expect(body.detail).toContain('no tensorflow worker is running');
    expect(noWorker.headers['retry-after']).toBe('5');

    // Regression: the detail named the model repository's path on the worker's disk.
    const noFile = await predict(api, 'missing', image);
    const noFileDetail = expectProblem(noFile, 503, 'MODEL_UNAVAILABLE').detail;
    expect(noFileDetail).toContain('no model file for any version in the model repository');
    expect(noFileDetail).not.toContain(repository);
    const corrupt = await predict(api, 'broken', image);
    const corruptDetail = expectProblem(corrupt, 503, 'MODEL_UNAVAILABLE').detail;
    expect(corruptDetail).toContain('ONNX Runtime cannot load its file');
    expect(corruptDetail).not.toContain(repository);
  });

  it('answers 404 MODEL_NOT_FOUND for an unknown model', async () => {
    const res = await predict(api, 'no_such_model', file(await solidPng([255, 0, 0])));
    expect(expectProblem(res, 404, 'MODEL_NOT_FOUND').detail).toContain('no_such_model');
  });

  describe('rejects bad input as problem details, before anything is queued', () => {
    let before: number;

    beforeAll(async () => {
      before = await jobCount(api);
    });

    afterAll(async () => {
      expect(await jobCount(api)).toBe(before);
    });

    it('400 FILE_MISSING without a file part or without a body', async () => {
      const fieldsOnly = await predict(api, 'colour', multipart([{ name: 'top_k', value: '1' }]));
      expectProblem(fieldsOnly, 400, 'FILE_MISSING');
      const empty = await api.app.inject({ method: 'POST', url: '/predict/colour' });
      expectProblem(empty, 400, 'FILE_MISSING');
    });

    it('413 PAYLOAD_TOO_LARGE above MAX_UPLOAD_BYTES, multipart or raw', async () => {
      const big = randomBytes(MAX_UPLOAD_BYTES * 2);
      const asFile = await predict(api, 'colour', file(big));
      expect(expectProblem(asFile, 413, 'PAYLOAD_TOO_LARGE').detail).toContain(
        String(MAX_UPLOAD_BYTES),
      );
      const asBody = await predict(api, 'colour', raw(big));
      expectProblem(asBody, 413, 'PAYLOAD_TOO_LARGE');
    });

    it('415 UNSUPPORTED_MEDIA_TYPE for bytes that are not an image or a body that is not one', async () => {
      const text = Buffer.from('this is not an image, just some text\n'.repeat(20));
      expectProblem(await predict(api, 'colour', file(text)), 415, 'UNSUPPORTED_MEDIA_TYPE');
      expectProblem(
        await predict(api, 'colour', raw(text, 'application/octet-stream')),
        415,
        'UNSUPPORTED_MEDIA_TYPE',
      );
      expectProblem(
        await predict(api, 'colour', raw(Buffer.from('{"a":1}'), 'application/json')),
        415,
        'UNSUPPORTED_MEDIA_TYPE',
      );
    });

    it('422 INVALID_IMAGE for a truncated JPEG', async () => {
      const res = await predict(api, 'colour', file(await truncatedJpeg(), 'image/jpeg'));
      expect(expectProblem(res, 422, 'INVALID_IMAGE').detail).toMatch(/truncated or corrupt/);
    });

    it('422 IMAGE_TOO_LARGE above MAX_IMAGE_PIXELS', async () => {
      const huge = await solidPng([10, 20, 30], 400, 400);
      expect(huge.length).toBeLessThan(MAX_UPLOAD_BYTES);
      const res = await predict(api, 'colour', file(huge));
      expect(expectProblem(res, 422, 'IMAGE_TOO_LARGE').detail).toContain('400x400');
    });

    it('400 VALIDATION_FAILED for top_k=0 (query or field) and for an unknown field', async () => {
      const image = await solidPng([255, 0, 0]);
      expectProblem(
        await predict(api, 'colour', raw(image), {}, '?top_k=0'),
        400,
        'VALIDATION_FAILED',
      );
      const field = await predict(
        api,
        'colour',
        multipart([
          { name: 'top_k', value: '0' },
          { name: 'file', data: image },
        ]),
      );
      expect(expectProblem(field, 400, 'VALIDATION_FAILED').detail).toContain('top_k');
      const unknown = await predict(
        api,
        'colour',
        multipart([
          { name: 'colour_space', value: 'srgb' },
          { name: 'file', data: image },
        ]),
      );
      expect(expectProblem(unknown, 400, 'VALIDATION_FAILED').detail).toContain(
        'Unknown field "colour_space"',
      );
    });
  });

  it("answers 422 INVALID_IMAGE for a damaged TIFF, with the job: the worker's decode finds the damage (the API reads only the header)", async () => {
    const res = await predict(api, 'colour', file(await damagedTiff(), 'image/tiff'));
    const problem = expectProblem(res, 422, 'INVALID_IMAGE');
    expect(problem).toMatchObject({ job_id: expect.any(String) });
    expect(problem.detail).toMatch(/Decoding error/);
  });

  it('GET /models has the seed shape, with each model’s status', async () => {
    const res = await api.app.inject({ method: 'GET', url: '/models' });
    expect(res.statusCode).toBe(200);
    const body = res.json<{
      tensorflow: { models: { name: string; status: string }[] };
      onnx: { models: Record<string, { name: string; status: string; versions: string[] }> };
    }>();
    expect(Object.keys(body).sort()).toEqual(['onnx', 'tensorflow']);
    expect(body.tensorflow.models.map((m) => [m.name, m.status])).toEqual([
      ['tf_only', 'unavailable'],
    ]);
    expect(Object.keys(body.onnx.models).sort()).toEqual([
      'broken',
      'colour',
      'detector',
      'missing',
    ]);
    expect(body.onnx.models.colour).toMatchObject({
      name: 'colour',
      task: 'classification',
      status: 'ready',
      versions: ['1'],
    });
    expect(body.onnx.models.detector?.status).toBe('ready');
    expect(body.onnx.models.missing).toMatchObject({
      status: 'unavailable',
      reason:
        'Model "missing" is unavailable: no model file for any version in the model repository',
    });
    expect(body.onnx.models.broken?.status).toBe('unavailable');
  });

  it('GET /health has the seed shape: degraded while no TensorFlow worker runs', async () => {
    const res = await api.app.inject({ method: 'GET', url: '/health' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      status: 'degraded',
      services: {
        backends: { onnx: true, tensorflow: false },
        rate_limiter: 'enabled',
        redis: 'up',
        storage: 'up',
      },
    });
    const ready = await api.app.inject({ method: 'GET', url: '/health/ready' });
    expect(ready.statusCode).toBe(200);
  });

  it('GET /health is 503 unhealthy and /predict 503 QUEUE_UNAVAILABLE when Redis is unreachable', async () => {
    const broken = await app(config);
    broken.redis.disconnect();

    const started = performance.now();
    const res = await broken.app.inject({ method: 'GET', url: '/health' });
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({
      status: 'unhealthy',
      services: { redis: 'down', storage: 'up' },
    });
    const ready = await broken.app.inject({ method: 'GET', url: '/health/ready' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json()).toMatchObject({ status: 'not_ready', redis: 'down' });

    // The upload is stored, but the job cannot be queued: 503, not a hang.
    const submitted = performance.now();
    const predicted = await predict(broken, 'colour', file(await solidPng([4, 5, 6])));
    expect(performance.now() - submitted).toBeLessThan(2_000);
    const problem = expectProblem(predicted, 503, 'QUEUE_UNAVAILABLE');
    expect(predicted.headers['retry-after']).toBe('5');
    // The client learns what is down, not the driver's words or the server's address.
    expect(problem.detail).toBe('The job queue (Redis) is unavailable; retry shortly');
  });

  it('POST /predict answers 503 STORAGE_UNAVAILABLE quickly when S3 is down', async () => {
    const port = await closedPort();
    const s3Down = testConfig(
      services,
      { prefix: config.redis.prefix, bucket: uniquePrefix(), modelRepository: repository },
      // Every image goes to storage (none inline).
      {
        S3_ENDPOINT: `http://127.0.0.1:${port}`,
        S3_TIMEOUT_MS: '500',
        INLINE_IMAGE_MAX_BYTES: '0',
      },
    );
    const down = await app(s3Down, { skipStoreInit: true });
    const before = await jobCount(down);

    const started = performance.now();
    const res = await predict(down, 'colour', file(await solidPng([1, 2, 3])));
    const elapsed = performance.now() - started;

    const body = expectProblem(res, 503, 'STORAGE_UNAVAILABLE');
    expect(body.detail).toBe('Image storage is unavailable: connection refused');
    // No endpoint, bucket or object key in an answer to a client.
    expect(body.detail).not.toContain(String(port));
    expect(res.headers['retry-after']).toBe('5');
    expect(elapsed).toBeLessThan(1_500);
    expect(await jobCount(down)).toBe(before);

    const health = await down.app.inject({ method: 'GET', url: '/health' });
    expect(health.statusCode).toBe(503);
    expect(health.json()).toMatchObject({ status: 'unhealthy', services: { storage: 'down' } });
  });

  it('an image small enough to travel inline needs no storage: answered while S3 is down', async () => {
    const port = await closedPort();
    const image = await solidPng([4, 5, 6]);
    const inlineOnly = testConfig(
      services,
      { prefix: config.redis.prefix, bucket: uniquePrefix(), modelRepository: repository },
      {
        S3_ENDPOINT: `http://127.0.0.1:${port}`,
        S3_TIMEOUT_MS: '500',
        INLINE_IMAGE_MAX_BYTES: String(image.length),
      },
    );
    const down = await app(inlineOnly, { skipStoreInit: true });
    const res = await predict(down, 'colour', file(image));
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      status: 'succeeded',
      timings: { fetch_ms: expect.any(Number) },
    });
    // A larger one needs storage.
    const larger = await noisyJpeg(32, 32);
    expect(larger.length).toBeGreaterThan(image.length);
    const refused = await predict(down, 'colour', raw(larger, 'image/jpeg'));
    expectProblem(refused, 503, 'STORAGE_UNAVAILABLE');
  });

  it('answers the 4th request in a window with 429 RATE_LIMITED, while /health stays exempt', async () => {
    const prefix = uniquePrefix();
    prefixes.push(prefix);
    const limited = await app(
      testConfig(
        services,
        { prefix, bucket: config.storage.bucket, modelRepository: repository },
        { RATE_LIMIT_REQUESTS: '3', RATE_LIMIT_WINDOW: '60' },
      ),
    );

    for (const remaining of [2, 1, 0]) {
      const ok = await limited.app.inject({ method: 'GET', url: '/models' });
      expect(ok.statusCode).toBe(200);
      expect(ok.headers['ratelimit-limit']).toBe('3');
      expect(ok.headers['ratelimit-remaining']).toBe(String(remaining));
    }
    const refused = await limited.app.inject({ method: 'GET', url: '/models' });
    const body = expectProblem(refused, 429, 'RATE_LIMITED');
    expect(body.detail).toMatch(/^Rate limit of 3 requests per 60 s exceeded; retry in \d+ s$/);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    expect(refused.headers['ratelimit-limit']).toBe('3');
    expect(refused.headers['ratelimit-remaining']).toBe('0');
    expect(Number(refused.headers['ratelimit-reset'])).toBeGreaterThan(0);

    // Uploads are limited like everything else.
    const upload = await predict(limited, 'colour', file(await solidPng([255, 0, 0])));
    expectProblem(upload, 429, 'RATE_LIMITED');

    // Health checks are never limited (this prefix has no worker, hence 503, but not 429).
    for (const url of ['/health', '/health/live', '/health/ready']) {
      const health = await limited.app.inject({ method: 'GET', url });
      expect(health.statusCode).not.toBe(429);
      expect(health.headers['ratelimit-limit']).toBeUndefined();
    }
  });
});
