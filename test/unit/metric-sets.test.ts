import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createApiMetrics } from '../../api/metrics/api-metrics.js';
import {
  createMetricsRegistry,
  createUsageMetrics,
  createWebhookMetrics,
  createWorkerMetrics,
} from '../../shared/metrics/index.js';
import { parsePrometheusText, sampleValue } from '../support/prometheus-text.js';

const MODELS = ['colour', 'detector'];

async function samples(register: Registry) {
  return parsePrometheusText(await register.metrics());
}

describe('metric sets', () => {
  it('can be built more than once in a process, each on its own registry', async () => {
    const a = createApiMetrics(createMetricsRegistry(), { models: MODELS });
    const b = createApiMetrics(createMetricsRegistry(), { models: MODELS });
    a.recordRateLimited('/predict/:model');
    expect(sampleValue(await samples(a.register), 'ai_gateway_rate_limited_total')).toBe(1);
    expect(sampleValue(await samples(b.register), 'ai_gateway_rate_limited_total')).toBe(0);
  });

  it('bounds label values: unregistered models, unknown backends and odd statuses', async () => {
    const metrics = createApiMetrics(new Registry(), { models: MODELS });
    for (const model of ['colour', 'x1', 'x2', '../../etc/passwd', undefined]) {
      metrics.recordInferenceRequest({
        backend: 'made-up',
        model,
        mode: 'sync',
        status: 200,
        durationSeconds: 0.01,
      });
    }
    metrics.recordHttpRequest({ method: 'GET', route: undefined, status: 99_999 });
    const found = await samples(metrics.register);
    const requests = found.filter((s) => s.name === 'ai_gateway_requests_total');
    expect(requests.map((s) => s.labels)).toEqual([
      { backend: 'none', model: 'colour', status: '200' },
      { backend: 'none', model: 'unknown', status: '200' },
    ]);
    expect(sampleValue(found, 'ai_gateway_requests_total', { model: 'unknown' })).toBe(4);
    expect(sampleValue(found, 'ai_gateway_total', { route: 'unmatched', status: 'unknown' })).toBe(
      1,
    );
  });

  it('sets circuit state per configured replica, and nothing else', async () => {
    const metrics = createApiMetrics(new Registry(), {
      models: MODELS,
      replicas: { tensorflow: ['http://tf-1:8501', 'http://tf-2:8501'] },
    });
    metrics.setCircuitState('tensorflow', 'http://tf-1:8501', 'open');
    metrics.setCircuitState('tensorflow', 'http://tf-2:8501', 'half_open');
    metrics.setCircuitState('tensorflow', 'http://elsewhere', 'closed');
    const found = (await samples(metrics.register)).filter(
      (s) => s.name === 'ai_gateway_circuit_state',
    );
    expect(found.map((s) => [s.labels.replica, s.value])).toEqual([
      ['http://tf-1:8501', 2],
      ['http://tf-2:8501', 1],
      ['unknown', 0],
    ]);
    metrics.clearCircuitStates();
    expect(
      (await samples(metrics.register)).filter((s) => s.name === 'ai_gateway_circuit_state'),
    ).toEqual([]);
  });

  it('replaces queue gauges on each read', async () => {
    const metrics = createApiMetrics(new Registry(), { models: MODELS });
    metrics.setQueueCounts(new Map([['gone', { waiting: 4 }]]));
    metrics.setQueueCounts(new Map([['inference-onnx', { waiting: 2, failed: 1 }]]));
    const found = await samples(metrics.register);
    expect(found.some((s) => s.labels.queue === 'gone')).toBe(false);
    expect(
      sampleValue(found, 'ai_gateway_queue_jobs', { queue: 'inference-onnx', state: 'waiting' }),
    ).toBe(2);
    expect(
      sampleValue(found, 'ai_gateway_queue_jobs', { queue: 'inference-onnx', state: 'active' }),
    ).toBe(0);
  });

  it('counts worker failures as retries or final, by catalogue code', async () => {
    const metrics = createWorkerMetrics(new Registry(), { backend: 'onnx', models: MODELS });
    metrics.jobFailed('colour', 'BACKEND_TIMEOUT', false);
    metrics.jobFailed('colour', 'BACKEND_TIMEOUT', true);
    metrics.jobFailed('colour', 'SEGFAULT', true);
    metrics.observeInference('colour', 0.004, 8);
    const found = await samples(metrics.register);
    const labels = { backend: 'onnx', model: 'colour' };
    expect(
      sampleValue(found, 'ai_gateway_job_retries_total', { ...labels, code: 'BACKEND_TIMEOUT' }),
    ).toBe(1);
    expect(
      sampleValue(found, 'ai_gateway_jobs_failed_total', { ...labels, code: 'BACKEND_TIMEOUT' }),
    ).toBe(1);
    expect(sampleValue(found, 'ai_gateway_jobs_failed_total', { ...labels, code: 'UNKNOWN' })).toBe(
      1,
    );
    expect(sampleValue(found, 'ai_gateway_batch_size_bucket', { ...labels, le: '4' })).toBe(0);
    expect(sampleValue(found, 'ai_gateway_batch_size_bucket', { ...labels, le: '8' })).toBe(1);
  });

  it('counts webhook deliveries by outcome and the class of the answer', async () => {
    const metrics = createWebhookMetrics(new Registry());
    metrics.recordDelivery({ outcome: 'delivered', status: 204, durationSeconds: 0.05 });
    metrics.recordDelivery({ outcome: 'retrying', status: 503, durationSeconds: 0.02 });
    metrics.recordDelivery({ outcome: 'retrying', error: 'timeout', durationSeconds: 10 });
    metrics.recordDelivery({ outcome: 'failed', status: 410, durationSeconds: 0.01 });
    metrics.recordDeferral();
    const found = await samples(metrics.register);
    const deliveries = (outcome: string, response: string) =>
      sampleValue(found, 'ai_gateway_webhook_deliveries_total', { outcome, response });
    expect(deliveries('delivered', '2xx')).toBe(1);
    expect(deliveries('retrying', '5xx')).toBe(1);
    expect(deliveries('retrying', 'timeout')).toBe(1);
    expect(deliveries('failed', '4xx')).toBe(1);
    expect(sampleValue(found, 'ai_gateway_webhook_delivery_duration_seconds_count')).toBe(4);
    expect(sampleValue(found, 'ai_gateway_webhook_deferrals_total')).toBe(1);
  });

  it('labels usage by configured key id, anonymous, or one "token" series for every token tenant', async () => {
    const usage = createUsageMetrics(new Registry(), { models: MODELS, tenants: ['acme'] });
    for (const tenant of ['acme', 'anonymous', 'org-1', 'org-2', 'org-3']) {
      usage.recordJob({
        tenant,
        model: 'colour',
        outcome: 'succeeded',
        images: 1,
        inferenceMs: 250,
        uploadedBytes: 100,
      });
    }
    usage.recordJob({
      tenant: 'acme',
      model: 'made-up',
      outcome: 'failed',
      images: 0,
      inferenceMs: 0,
      uploadedBytes: 10,
    });
    const found = await samples(usage.register);
    const jobs = found.filter((s) => s.name === 'ai_gateway_usage_jobs_total');
    expect(jobs.map((s) => [s.labels.tenant, s.labels.model, s.labels.status, s.value])).toEqual([
      ['acme', 'colour', 'succeeded', 1],
      ['anonymous', 'colour', 'succeeded', 1],
      ['token', 'colour', 'succeeded', 3],
      ['acme', 'unknown', 'failed', 1],
    ]);
    const tokens = { tenant: 'token', model: 'colour' };
    expect(sampleValue(found, 'ai_gateway_usage_inference_seconds_total', tokens)).toBe(0.75);
    expect(sampleValue(found, 'ai_gateway_usage_uploaded_bytes_total', tokens)).toBe(300);
    expect(
      sampleValue(found, 'ai_gateway_usage_images_total', { tenant: 'acme', model: 'unknown' }),
    ).toBe(0);
  });
});
