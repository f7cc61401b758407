import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { SpanKind } from '@opentelemetry/api';
import {
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelRegistry } from '../../shared/models/registry.js';
import { createTracing } from '../../shared/tracing/otel-sdk.js';
import type { Tracing } from '../../shared/tracing/tracing.js';
import { OnnxRuntimeBackend } from '../../workers/backends/onnx-runtime.backend.js';
import { InferenceWorker } from '../../workers/inference-worker.js';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import {
  createModelRepository,
  eventually,
  registryDocument,
  solidPng,
  testConfig,
} from '../support/inference-stack.js';
import { injectPredict } from '../support/observability-stack.js';
import { cleanRedisPrefix, uniquePrefix } from '../support/services.js';
import { sharedServices } from '../support/shared-services.js';

const services = sharedServices();
let repository: string;
let prefix: string;
let worker: InferenceWorker;
let api: TestApi;
let tracing: Tracing;
const exporter = new InMemorySpanExporter();

beforeAll(async () => {
  // API and worker share this process, so they share one provider; across processes the job
  // carries the context the same way.
  tracing = createTracing('ai-gateway-api', new SimpleSpanProcessor(exporter));
  repository = await createModelRepository();
  const registry = ModelRegistry.fromDocument(registryDocument());
  prefix = uniquePrefix();
  const config = testConfig(
    services,
    { prefix, bucket: uniquePrefix(), modelRepository: repository },
    { SYNC_WAIT_SECONDS: '10' },
  );
  worker = await InferenceWorker.start({
    config,
    registry,
    backend: new OnnxRuntimeBackend({ repository }),
    logger: pino({ level: 'silent' }),
    telemetry: tracing.telemetry,
  });
  api = await buildTestApi(config, {
    registry,
    telemetry: tracing.telemetry,
    tracer: tracing.tracer,
  });
});

afterAll(async () => {
  await api?.close();
  await worker?.close();
  await tracing?.shutdown();
  if (prefix) await cleanRedisPrefix(services.redisUrl, prefix);
  if (repository) await rm(repository, { recursive: true, force: true });
});

const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;

describe('tracing across API and worker', () => {
  it("puts the worker's job span in the trace of the request that queued it", async () => {
    const traceId = randomBytes(16).toString('hex');
    const callerSpanId = randomBytes(8).toString('hex');
    const { res } = await injectPredict(api, 'colour', await solidPng([255, 0, 0]), {
      traceparent: `00-${traceId}-${callerSpanId}-01`,
    });
    expect(res.statusCode).toBe(200);

    const spans = await eventually(() => {
      const all = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
      return all.some((s) => s.kind === SpanKind.CONSUMER) &&
        all.some((s) => s.kind === SpanKind.SERVER)
        ? all
        : undefined;
    });
    const server = spans.find((s) => s.kind === SpanKind.SERVER)!;
    const producer = spans.find((s) => s.kind === SpanKind.PRODUCER)!;
    const consumer = spans.find((s) => s.kind === SpanKind.CONSUMER)!;

    // caller -> POST /predict/:model -> add to the queue -> the worker's processing of the job
    expect(server.name).toBe('POST /predict/:model');
    expect(parentOf(server)).toBe(callerSpanId);
    expect(server.attributes).toMatchObject({
      'http.route': '/predict/:model',
      'http.response.status_code': 200,
      'ai_gateway.request_id': res.headers['x-request-id'],
    });
    expect(producer.name).toMatch(/inference-onnx/);
    expect(parentOf(producer)).toBe(server.spanContext().spanId);
    expect(consumer.name).toMatch(/inference-onnx/);
    expect(parentOf(consumer)).toBe(producer.spanContext().spanId);
  });

  it('traces neither probes nor scrapes', async () => {
    exporter.reset();
    await api.app.inject({ method: 'GET', url: '/health/live' });
    await api.app.inject({ method: 'GET', url: '/metrics' });
    expect(exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.SERVER)).toEqual([]);
  });
});
