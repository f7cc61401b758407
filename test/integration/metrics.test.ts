import { rm } from 'node:fs/promises';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../shared/config/config.js';
import {
  createMetricsRegistry,
  createWorkerMetrics,
  type WorkerMetrics,
} from '../../shared/metrics/index.js';
import type { ModelRegistry } from '../../shared/models/registry.js';
import { OnnxRuntimeBackend } from '../../workers/backends/onnx-runtime.backend.js';
import { InferenceWorker } from '../../workers/inference-worker.js';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import {
  createModelRepository,
  eventually,
  solidPng,
  testConfig,
} from '../support/inference-stack.js';
import {
  FAILING_MODEL,
  injectPredict,
  observabilityRegistry,
} from '../support/observability-stack.js';
import { parsePrometheusText, type Sample, sampleValue } from '../support/prometheus-text.js';
import { cleanRedisPrefix, uniquePrefix } from '../support/services.js';
import { sharedServices } from '../support/shared-services.js';

/** Requests allowed per window: the sequence below uses them all, and one more is refused. */
const BUDGET = 5;

const services = sharedServices();
let repository: string;
let prefix: string;
let worker: InferenceWorker;
let workerMetrics: WorkerMetrics;
let api: TestApi;
let config: Config;
let registry: ModelRegistry;

beforeAll(async () => {
  repository = await createModelRepository();
  registry = observabilityRegistry(repository);
  prefix = uniquePrefix();
  config = testConfig(
    services,
    { prefix, bucket: uniquePrefix(), modelRepository: repository },
    { RATE_LIMIT_REQUESTS: String(BUDGET), RATE_LIMIT_WINDOW: '600', SYNC_WAIT_SECONDS: '10' },
  );
  workerMetrics = createWorkerMetrics(createMetricsRegistry(), {
    backend: 'onnx',
    models: registry.list().map((m) => m.name),
  });
  worker = await InferenceWorker.start({
    config,
    registry,
    backend: new OnnxRuntimeBackend({ repository }),
    logger: pino({ level: 'silent' }),
    metrics: workerMetrics,
  });
  api = await buildTestApi(config, { registry });
});

afterAll(async () => {
  await api?.close();
  await worker?.close();
  if (prefix) await cleanRedisPrefix(services.redisUrl, prefix);
  if (repository) await rm(repository, { recursive: true, force: true });
});

async function scrapeApi(): Promise<Sample[]> {
  const res = await api.app.inject({ method: 'GET', url: '/metrics' });
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheusText(res.body);
}

async function scrapeWorker(): Promise<Sample[]> {
  return parsePrometheusText(await workerMetrics.register.metrics());
}

describe('metrics follow a known sequence of requests', () => {
  it('counts successes, a 404, a failed job and a 429 on the API and the worker', async () => {
    const red = await solidPng([255, 0, 0]);
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++)
      statuses.push((await injectPredict(api, 'colour', red)).res.statusCode);
    statuses.push((await injectPredict(api, 'nope', red)).res.statusCode);
    const failed = await injectPredict(api, FAILING_MODEL, red);
    statuses.push(failed.res.statusCode);
    expect(failed.res.json()).toMatchObject({ code: 'INFERENCE_FAILED' });
    statuses.push((await injectPredict(api, 'colour', red)).res.statusCode);
    expect(statuses).toEqual([200, 200, 200, 404, 500, 429]);

    const samples = await scrapeApi();
    const requests = (backend: string, model: string, status: string) =>
      sampleValue(samples, 'ai_gateway_requests_total', { backend, model, status });
    expect(requests('onnx', 'colour', '200')).toBe(3);
    // An unregistered name is never a label value; a request refused before routing has no backend.
    expect(requests('none', 'unknown', '404')).toBe(1);
    expect(requests('onnx', FAILING_MODEL, '500')).toBe(1);
    expect(requests('none', 'colour', '429')).toBe(1);
    expect(samples.some((s) => Object.values(s.labels).includes('nope'))).toBe(false);

    const route = '/predict/:model';
    expect(sampleValue(samples, 'ai_gateway_total', { method: 'POST', route, status: '200' })).toBe(
      3,
    );
    expect(sampleValue(samples, 'ai_gateway_total', { method: 'POST', route, status: '404' })).toBe(
      1,
    );
    for (const code of ['MODEL_NOT_FOUND', 'INFERENCE_FAILED', 'RATE_LIMITED']) {
      expect(sampleValue(samples, 'ai_gateway_errors_total', { code }), code).toBe(1);
    }
    expect(sampleValue(samples, 'ai_gateway_rate_limited_total', { route })).toBe(1);

    const durations = { backend: 'onnx', model: 'colour', mode: 'sync' };
    expect(sampleValue(samples, 'ai_gateway_request_duration_seconds_count', durations)).toBe(3);
    expect(
      sampleValue(samples, 'ai_gateway_request_duration_seconds_sum', durations),
    ).toBeGreaterThan(0);

    const queue = (state: string) =>
      sampleValue(samples, 'ai_gateway_queue_jobs', { queue: 'inference-onnx', state });
    expect(queue('completed')).toBe(3);
    expect(queue('failed')).toBe(1);
    expect(queue('waiting')).toBe(0);
    expect(
      sampleValue(samples, 'ai_gateway_queue_jobs', {
        queue: 'inference-tensorflow',
        state: 'completed',
      }),
    ).toBe(0);

    expect(sampleValue(samples, 'ai_gateway_backend_workers', { backend: 'onnx' })).toBe(1);
    expect(sampleValue(samples, 'ai_gateway_backend_workers', { backend: 'tensorflow' })).toBe(0);
    expect(
      sampleValue(samples, 'ai_gateway_model_ready', { backend: 'onnx', model: 'colour' }),
    ).toBe(1);
    expect(
      sampleValue(samples, 'ai_gateway_model_ready', { backend: 'onnx', model: 'missing' }),
    ).toBe(0);
    // Node's process metrics come along.
    expect(sampleValue(samples, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);

    // The worker counts outcomes as it finishes jobs; its listeners may run just after the answer.
    const worker = await eventually(async () => {
      const s = await scrapeWorker();
      return sampleValue(s, 'ai_gateway_jobs_failed_total', { model: FAILING_MODEL }) === 1
        ? s
        : undefined;
    });
    const colour = { backend: 'onnx', model: 'colour' };
    expect(sampleValue(worker, 'ai_gateway_jobs_processed_total', colour)).toBe(3);
    expect(
      sampleValue(worker, 'ai_gateway_jobs_failed_total', {
        backend: 'onnx',
        model: FAILING_MODEL,
        code: 'INFERENCE_FAILED',
      }),
    ).toBe(1);
    // INFERENCE_FAILED is not retryable: no retry was counted.
    expect(sampleValue(worker, 'ai_gateway_job_retries_total', { model: FAILING_MODEL })).toBe(0);
    // The failing model's backend call succeeded (its postprocessing failed): four calls in all.
    expect(sampleValue(worker, 'ai_gateway_inference_duration_seconds_count', colour)).toBe(3);
    expect(
      sampleValue(worker, 'ai_gateway_inference_duration_seconds_count', {
        backend: 'onnx',
        model: FAILING_MODEL,
      }),
    ).toBe(1);
    // Batches of one until a batcher exists.
    expect(sampleValue(worker, 'ai_gateway_batch_size_count', colour)).toBe(3);
    expect(sampleValue(worker, 'ai_gateway_batch_size_sum', colour)).toBe(3);
    expect(sampleValue(worker, 'ai_gateway_batch_size_bucket', { ...colour, le: '1' })).toBe(3);
    expect(sampleValue(worker, 'ai_gateway_preprocess_duration_seconds_count', colour)).toBe(3);
    expect(sampleValue(worker, 'ai_gateway_queue_wait_seconds_count', colour)).toBe(3);
    expect(sampleValue(worker, 'ai_gateway_worker_active_jobs', { backend: 'onnx' })).toBe(0);
  });

  it('leaves queue gauges out of a scrape whose queue read fails, and counts the failure', async () => {
    const broken = await buildTestApi(config, { registry });
    try {
      // Its command connection refuses commands once disconnected (no offline queue).
      broken.redis.disconnect();
      const res = await broken.app.inject({ method: 'GET', url: '/metrics' });
      expect(res.statusCode).toBe(200);
      const samples = parsePrometheusText(res.body);
      expect(samples.filter((s) => s.name === 'ai_gateway_queue_jobs')).toEqual([]);
      expect(
        sampleValue(samples, 'ai_gateway_metrics_collect_failures_total', { source: 'queues' }),
      ).toBe(1);
    } finally {
      await broken.close();
    }
  });
});
