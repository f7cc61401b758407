import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelRegistry } from '../../shared/models/registry.js';
import { OnnxRuntimeBackend } from '../../workers/backends/onnx-runtime.backend.js';
import { InferenceWorker } from '../../workers/inference-worker.js';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import {
  createModelRepository,
  registryDocument,
  solidPng,
  testConfig,
} from '../support/inference-stack.js';
import {
  cleanRedisPrefix,
  startServices,
  type TestServices,
  uniquePrefix,
} from '../support/services.js';

let services: TestServices;
let repository: string;
let prefix: string;
let worker: InferenceWorker;
let api: TestApi;
let red: Buffer;

beforeAll(async () => {
  services = await startServices();
  repository = await createModelRepository();
  prefix = uniquePrefix();
  const config = testConfig(services, {
    prefix,
    bucket: uniquePrefix(),
    modelRepository: repository,
  });
  const registry = ModelRegistry.fromDocument(registryDocument());
  const silent = pino({ level: 'silent' });
  worker = await InferenceWorker.start({
    config,
    registry,
    backend: new OnnxRuntimeBackend({ repository }),
    logger: silent,
  });
  api = await buildTestApi(config, { registry });
  red = await solidPng([255, 0, 0]);
});

afterAll(async () => {
  await api?.close();
  await worker?.close();
  if (prefix) await cleanRedisPrefix(services.redisUrl, prefix);
  if (repository) await rm(repository, { recursive: true, force: true });
  await services?.stop();
});

function form(fields: Record<string, string>) {
  const boundary = `----choice-${randomUUID()}`;
  const parts = Object.entries(fields).map(
    ([name, value]) =>
      `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`,
  );
  const payload = Buffer.concat([
    Buffer.from(parts.join('')),
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="red.png"\r\nContent-Type: image/png\r\n\r\n`,
    ),
    red,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  return { payload, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

describe('choosing the backend per request', () => {
  it('backend=onnx in the query runs there, and the job stays pinned to it', async () => {
    const res = await api.app.inject({
      method: 'POST',
      url: '/predict/colour?backend=onnx',
      payload: red,
      headers: { 'content-type': 'image/png' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      backend: 'onnx',
      route: [{ backend: 'onnx', error: null }],
    });
    const job = await api.queues.queue('onnx').getJob(res.json<{ id: string }>().id);
    expect(job?.data.pinned).toBe(true);
  });

  it('a backend the model does not have is 404 MODEL_BACKEND_NOT_FOUND, before any upload is read', async () => {
    const res = await api.app.inject({
      method: 'POST',
      url: '/predict/colour?backend=tensorflow',
      payload: red,
      headers: { 'content-type': 'image/png' },
    });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({
      code: 'MODEL_BACKEND_NOT_FOUND',
      detail: 'Model "colour" is not served by backend "tensorflow"; its backends: onnx',
    });
  });

  it('an unknown backend is 400, in the query or as a multipart field', async () => {
    const query = await api.app.inject({
      method: 'POST',
      url: '/predict/colour?backend=gpu',
      payload: red,
      headers: { 'content-type': 'image/png' },
    });
    expect(query.statusCode).toBe(400);
    expect(query.json()).toMatchObject({ code: 'VALIDATION_FAILED' });
    expect(query.json<{ detail: string }>().detail).toContain('backend');

    const field = await api.app.inject({
      method: 'POST',
      url: '/predict/colour',
      ...form({ backend: 'gpu' }),
    });
    expect(field.statusCode).toBe(400);
    expect(field.json()).toMatchObject({ code: 'VALIDATION_FAILED' });
  });

  it('the multipart field works like the query parameter', async () => {
    const ok = await api.app.inject({
      method: 'POST',
      url: '/predict/colour',
      ...form({ backend: 'onnx' }),
    });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toMatchObject({ backend: 'onnx' });
    const wrong = await api.app.inject({
      method: 'POST',
      url: '/predict/colour',
      ...form({ backend: 'tensorflow' }),
    });
    expect(wrong.statusCode).toBe(404);
    expect(wrong.json()).toMatchObject({ code: 'MODEL_BACKEND_NOT_FOUND' });
  });
});
