import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../shared/config/config.js';
import type { JobResource } from '../../shared/jobs/job-resource.js';
import { OnnxRuntimeBackend } from '../../workers/backends/onnx-runtime.backend.js';
import { InferenceWorker } from '../../workers/inference-worker.js';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import { type InProcessWorker, startInProcessWorker } from '../support/in-process-worker.js';
import { eventually, solidPng } from '../support/inference-stack.js';
import { parsePrometheusText, sampleValue } from '../support/prometheus-text.js';

const WINDOW = 4;
const KEYS = { a: 'key-a-0123456789abcdef', b: 'key-b-0123456789abcdef' };

let stack: InProcessWorker;
let api: TestApi;
let image: Buffer;
let woken: InferenceWorker | undefined;

beforeAll(async () => {
  stack = await startInProcessWorker();
  // No worker at first (a pool scaled to zero): the jobs stay where the API put them.
  await stack.worker.close();
  const config: Config = {
    ...stack.config,
    auth: { apiKeys: `a:${KEYS.a},b:${KEYS.b}` },
    backends: { ...stack.config.backends, scaledFromZero: ['onnx'] },
    jobs: { ...stack.config.jobs, fairWindow: WINDOW },
  };
  api = await buildTestApi(config, { registry: stack.registry });
  image = await solidPng([255, 0, 0]);
});

afterAll(async () => {
  await api?.close();
  await woken?.close();
  await stack?.stop();
});

const as = (key: keyof typeof KEYS, headers: Record<string, string> = {}) => ({
  authorization: `Bearer ${KEYS[key]}`,
  ...headers,
});
const submit = async (key: keyof typeof KEYS, headers: Record<string, string> = {}) => {
  const res = await api.app.inject({
    method: 'POST',
    url: '/jobs?model=colour',
    payload: image,
    headers: as(key, { 'content-type': 'image/png', ...headers }),
  });
  expect(res.statusCode).toBe(202);
  return res;
};
const read = async (key: keyof typeof KEYS, id: string) =>
  (await api.app.inject({ url: `/jobs/${id}`, headers: as(key) })).json<JobResource>();

describe('fair scheduling through the API: a job waiting for its turn is a job like any other', () => {
  it('is queued, replayed, counted, canceled and run like a job in the queue', async () => {
    const a: string[] = [];
    for (let i = 0; i < 9; i++) a.push((await submit('a')).json<JobResource>().id);
    const replayable = await submit('a', { 'idempotency-key': 'tenth' });
    a.push(replayable.json<JobResource>().id);
    const b = (await submit('b')).json<JobResource>().id;

    // The window holds a's first four; a's other six and b's wait parked, durable from the start.
    const queue = api.queues.queue('onnx');
    expect(await queue.getJobCounts('prioritized', 'delayed')).toEqual({
      prioritized: WINDOW,
      delayed: 7,
    });
    expect(replayable.json<JobResource>().status).toBe('queued');
    expect(await read('a', a[9]!)).toMatchObject({ status: 'queued', priority: 5 });
    expect(await read('b', b)).toMatchObject({ status: 'queued' });
    const again = await submit('a', { 'idempotency-key': 'tenth' });
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json<JobResource>().id).toBe(a[9]);

    // Queue depth (what KEDA scales on) counts the parked jobs.
    const samples = parsePrometheusText((await api.app.inject({ url: '/metrics' })).body);
    const depth = (state: string) =>
      sampleValue(samples, 'ai_gateway_queue_jobs', { queue: 'inference-onnx', state });
    expect(depth('prioritized') + depth('delayed')).toBe(11);

    // A parked job is canceled at once, and leaves its key's pending set.
    const canceled = await api.app.inject({
      method: 'DELETE',
      url: `/jobs/${a[8]}`,
      headers: as('a'),
    });
    expect(canceled.json<JobResource>()).toMatchObject({ status: 'canceled' });
    expect((await queue.getJobCounts('delayed')).delayed).toBe(6);

    // The pool wakes up: everything left runs, b's job as soon as the window lets it in.
    woken = await InferenceWorker.start({
      config: stack.config,
      registry: stack.registry,
      backend: new OnnxRuntimeBackend({ repository: stack.repository }),
      logger: pino({ level: 'silent' }),
    });
    const finished = async (key: keyof typeof KEYS, id: string) =>
      eventually(
        async () => {
          const job = await read(key, id);
          return ['succeeded', 'canceled'].includes(job.status) ? job : undefined;
        },
        30_000,
        `job ${id} finished`,
      );
    const doneA = await Promise.all(a.map((id) => finished('a', id)));
    const doneB = await finished('b', b);
    expect(doneA.map((job) => job.status)).toEqual([
      ...Array(8).fill('succeeded'),
      'canceled',
      'succeeded',
    ]);
    expect(doneB.status).toBe('succeeded');
    // b was next after the window: none of a's parked jobs started before it.
    const startedAt = (job: JobResource) => Date.parse(job.started_at!);
    const parkedA = [...doneA.slice(WINDOW, 8), doneA[9]!];
    expect(parkedA.every((job) => startedAt(job) >= startedAt(doneB))).toBe(true);
  });
});
