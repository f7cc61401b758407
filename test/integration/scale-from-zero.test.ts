import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../shared/config/config.js';
import type { JobResource } from '../../shared/jobs/job-resource.js';
import { OnnxRuntimeBackend } from '../../workers/backends/onnx-runtime.backend.js';
import { InferenceWorker } from '../../workers/inference-worker.js';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import { type InProcessWorker, startInProcessWorker } from '../support/in-process-worker.js';
import { eventually, solidPng } from '../support/inference-stack.js';

let stack: InProcessWorker;
let image: Buffer;
const apis: TestApi[] = [];
let woken: InferenceWorker | undefined;

beforeAll(async () => {
  stack = await startInProcessWorker();
  // The pool is at zero: its only worker has gone (KEDA scaled it down).
  await stack.worker.close();
  image = await solidPng([255, 0, 0]);
});

afterAll(async () => {
  await Promise.allSettled(apis.map((api) => api.close()));
  await woken?.close();
  await stack?.stop();
});

async function api(scaledFromZero: Config['backends']['scaledFromZero']): Promise<TestApi> {
  const config: Config = {
    ...stack.config,
    backends: { ...stack.config.backends, scaledFromZero },
  };
  const built = await buildTestApi(config, { registry: stack.registry });
  apis.push(built);
  return built;
}

const submit = (target: TestApi) =>
  target.app.inject({
    method: 'POST',
    url: '/jobs?model=colour',
    payload: image,
    headers: { 'content-type': 'image/png' },
  });

describe('a worker pool scaled to zero (AUTOSCALED_BACKENDS)', () => {
  it('is refused 503 MODEL_UNAVAILABLE when the pool does not scale from zero', async () => {
    const res = await submit(await api([]));
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({ code: 'MODEL_UNAVAILABLE' });
  });

  it('is queued when it does, and runs once a worker starts (as KEDA starts one on the queued job)', async () => {
    const target = await api(['onnx']);
    const res = await submit(target);
    expect(res.statusCode).toBe(202);
    const job = res.json<JobResource>();
    expect(job).toMatchObject({ status: 'queued', backend: 'onnx' });
    expect(await target.queues.queue('onnx').getJobState(job.id)).toBe('prioritized');

    woken = await InferenceWorker.start({
      config: stack.config,
      registry: stack.registry,
      backend: new OnnxRuntimeBackend({ repository: stack.repository }),
      logger: pino({ level: 'silent' }),
    });
    const done = await eventually(
      async () => {
        const read = await target.app.inject({ url: `/jobs/${job.id}` });
        const body = read.json<JobResource>();
        return body.status === 'succeeded' ? body : undefined;
      },
      30_000,
      'the queued job run by the woken pool',
    );
    const { predictions } = done.result as { predictions?: { label: string }[] };
    expect(predictions?.[0]?.label).toBe('red');
  });
});
