import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelRegistry } from '../../shared/models/registry.js';
import { OnnxRuntimeBackend } from '../../workers/backends/onnx-runtime.backend.js';
import { InferenceWorker } from '../../workers/inference-worker.js';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import {
  captureLogger,
  createModelRepository,
  eventually,
  type LogLine,
  solidPng,
  testConfig,
} from '../support/inference-stack.js';
import {
  FAILING_MODEL,
  injectPredict,
  observabilityRegistry,
} from '../support/observability-stack.js';
import {
  cleanRedisPrefix,
  startServices,
  type TestServices,
  uniquePrefix,
} from '../support/services.js';

let services: TestServices;
let repository: string;
let prefix: string;
let registry: ModelRegistry;
let worker: InferenceWorker;
let api: TestApi;
const apiLog = captureLogger('info');
const workerLog = captureLogger('info');

beforeAll(async () => {
  services = await startServices();
  repository = await createModelRepository();
  registry = observabilityRegistry(repository);
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
    logger: workerLog.logger,
  });
  api = await buildTestApi(config, { registry, logger: apiLog.logger });
});

afterAll(async () => {
  await api?.close();
  await worker?.close();
  if (prefix) await cleanRedisPrefix(services.redisUrl, prefix);
  if (repository) await rm(repository, { recursive: true, force: true });
  await services?.stop();
});

const withId = (lines: LogLine[], id: string) => lines.filter((l) => l.requestId === id);

describe('one request followed end to end by its id', () => {
  it("keeps the caller's X-Request-Id from the API's log lines to the worker's", async () => {
    const id = `trace-${uniquePrefix()}`;
    const { res } = await injectPredict(api, 'colour', await solidPng([0, 255, 0]), {
      'x-request-id': id,
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-request-id']).toBe(id);
    const job = res.json<{ id: string; request_id: string }>();
    expect(job.request_id).toBe(id);

    const apiMessages = withId(apiLog.lines, id).map((l) => l.msg);
    expect(apiMessages).toEqual(expect.arrayContaining(['incoming request', 'request completed']));
    const done = await eventually(() =>
      withId(workerLog.lines, id).find((l) => l.msg === 'job done'),
    );
    expect(done).toMatchObject({ jobId: job.id, model: 'colour', backend: 'onnx' });
    // Nothing else was logged under this id.
    expect(withId(workerLog.lines, id).every((l) => l.jobId === job.id)).toBe(true);
  });

  it('generates an id when none is given (or the given one is not sane) and carries that one', async () => {
    const { res } = await injectPredict(api, FAILING_MODEL, await solidPng([0, 255, 0]), {
      'x-request-id': 'not sane: has spaces',
    });
    expect(res.statusCode).toBe(500);
    const id = res.headers['x-request-id'] as string;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.json()).toMatchObject({ request_id: id, code: 'INFERENCE_FAILED' });

    expect(withId(apiLog.lines, id).map((l) => l.msg)).toContain('request completed');
    // The failure is logged by the worker under the same id.
    const failed = await eventually(() =>
      withId(workerLog.lines, id).find((l) => l.msg === 'job attempt failed'),
    );
    expect(failed.err).toMatch(/^INFERENCE_FAILED: /);
  });
});
