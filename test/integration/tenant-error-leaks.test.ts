/**
 * Regression (issue 11): what a tenant reads named the service's insides. A backend's error body
 * (up to 300 characters, here naming an internal URL) was quoted in the job's error; GET /health,
 * which anyone may read, listed the backend servers' URLs and their errors and the model files'
 * paths. Tenants now get catalogue codes and safe words; the admin key gets the details.
 */
import { rm } from 'node:fs/promises';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../shared/config/config.js';
import { ModelRegistry } from '../../shared/models/registry.js';
import { createBackend } from '../../workers/backends/create-backend.js';
import { OnnxRuntimeBackend } from '../../workers/backends/onnx-runtime.backend.js';
import { InferenceWorker } from '../../workers/inference-worker.js';
import { TfServingStandIn } from '../fixtures/tf-serving-stand-in.js';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import { TF_MODELS } from '../support/backend-models.js';
import {
  createModelRepository,
  eventually,
  registryDocument,
  solidPng,
  testConfig,
} from '../support/inference-stack.js';
import { cleanRedisPrefix, uniquePrefix } from '../support/services.js';
import { sharedServices } from '../support/shared-services.js';

const ADMIN = 'admin-key-0123456789abcdef';
const INTERNAL = 'http://10.20.30.40:8500/v1/internal';
const silent = pino({ level: 'silent' });

const services = sharedServices();
let repository: string;
let standIn: TfServingStandIn;
let config: Config;
let api: TestApi;
const workers: InferenceWorker[] = [];
const prefix = uniquePrefix();

beforeAll(async () => {
  repository = await createModelRepository();
  standIn = await TfServingStandIn.start(TF_MODELS);
  const document = registryDocument() as { models: Record<string, unknown> };
  const registry = ModelRegistry.fromDocument({
    models: {
      ...document.models,
      colour_tf: {
        task: 'classification',
        backends: { tensorflow: { name: 'colour' } },
        input: { width: 8, height: 8, layout: 'NHWC', scale: 1 / 255, resize: 'stretch' },
        labels: ['red', 'green', 'blue'],
        postprocess: { activation: 'none' },
      },
    },
  });
  config = testConfig(
    services,
    { prefix, bucket: uniquePrefix(), modelRepository: repository },
    {
      ADMIN_API_KEY: ADMIN,
      TENSORFLOW_SERVING_URL: standIn.url,
      SYNC_WAIT_SECONDS: '20',
      JOB_ATTEMPTS: '2',
    },
  );
  for (const backend of [
    new OnnxRuntimeBackend({ repository }),
    createBackend('tensorflow', config),
  ]) {
    workers.push(await InferenceWorker.start({ config, registry, backend, logger: silent }));
  }
  api = await buildTestApi(config, { registry });
});

afterAll(async () => {
  await api?.close();
  await Promise.allSettled(workers.map((w) => w.close()));
  await standIn?.close();
  await cleanRedisPrefix(services.redisUrl, prefix);
  if (repository) await rm(repository, { recursive: true, force: true });
});

async function predictTf(): Promise<{ status: number; job: Record<string, unknown> }> {
  const res = await api.app.inject({
    method: 'POST',
    url: '/predict/colour_tf',
    headers: { 'content-type': 'image/png' },
    payload: await solidPng([240, 20, 20]),
  });
  const body = res.json<{ job_id?: string; id?: string }>();
  const id = body.job_id ?? body.id;
  const job = await api.app.inject({ url: `/jobs/${id}` });
  return { status: res.statusCode, job: job.json() };
}

/** What a tenant must never read: the backend's body, its address, the model files' folder. */
function expectNothingInternal(text: string) {
  expect(text).not.toContain('10.20.30.40');
  expect(text).not.toContain(new URL(standIn.url).host);
  expect(text).not.toContain(repository);
}

describe("a backend's error body, naming an internal URL", () => {
  it('on a 400, is not in the job: INFERENCE_FAILED with the status only', async () => {
    standIn.server.failInference(400, 1, `bad tensor; ${INTERNAL} said no`);
    const { job } = await predictTf();
    expect(job).toMatchObject({
      status: 'failed',
      error: { code: 'INFERENCE_FAILED', message: 'TF Serving rejected the input (HTTP 400)' },
    });
    expectNothingInternal(JSON.stringify(job));
    // The operator's words: in the job's logs, which the queue dashboard shows the admin key.
    // The worker writes them as it sees the attempt fail, which may be after the answer.
    const logs = await eventually(async () => {
      const res = await api.app.inject({
        url: `/admin/queues/api/queues/inference-tensorflow/${job.id}/logs`,
        headers: { authorization: `Bearer ${ADMIN}` },
      });
      const lines = res.json<string[]>();
      return lines.length > 0 ? lines : undefined;
    });
    expect(logs.join('\n')).toContain(INTERNAL);
  });

  it('on a 500, is not in the job, nor in its route', async () => {
    standIn.server.failInference(500, 2, `upstream ${INTERNAL} is down`);
    try {
      const { job } = await predictTf();
      expect(job).toMatchObject({
        status: 'failed',
        error: {
          code: 'BACKEND_UNAVAILABLE',
          message: 'TF Serving: server 1 of 1 answered HTTP 500',
        },
      });
      expectNothingInternal(JSON.stringify(job));
    } finally {
      standIn.server.heal();
    }
  });
});

describe('GET /health', () => {
  it('without the admin key: what is up, no server URL, error or model path', async () => {
    const res = await api.app.inject({ url: '/health' });
    const body = res.json();
    expect(body.backends.tensorflow.replicas).toEqual([{ healthy: true, circuit: 'closed' }]);
    expect(body.backends.onnx.models.missing).toEqual({ state: 'unavailable', versions: [] });
    expectNothingInternal(res.body);
  });

  it('with the admin key: the servers by URL and the models with their details', async () => {
    const res = await api.app.inject({
      url: '/health',
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    const body = res.json();
    expect(body.backends.tensorflow.replicas).toEqual([
      expect.objectContaining({ url: standIn.url, healthy: true }),
    ]);
    expect(body.backends.onnx.models.missing).toMatchObject({
      state: 'unavailable',
      reason: 'no model file for any version in the model repository',
      detail: expect.stringContaining(repository),
    });
  });

  it('a wrong key gets the public view', async () => {
    const res = await api.app.inject({
      url: '/health',
      headers: { authorization: 'Bearer not-the-admin-key-0123456789' },
    });
    expect(res.statusCode).toBe(200);
    expectNothingInternal(res.body);
  });
});
