import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobResource } from '../../shared/jobs/job-resource.js';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import { type InProcessWorker, startInProcessWorker } from '../support/in-process-worker.js';
import { eventually, sleep, solidPng, waitForIdleQueue } from '../support/inference-stack.js';

let stack: InProcessWorker;
let api: TestApi;

beforeAll(async () => {
  stack = await startInProcessWorker({
    env: { RATE_LIMIT_ENABLED: 'false', WORKER_CONCURRENCY: '2' },
  });
  api = await buildTestApi(stack.config, { registry: stack.registry });
});

afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

const submit = async (image: Buffer) => {
  const res = await api.app.inject({
    method: 'POST',
    url: '/jobs?model=colour',
    payload: image,
    headers: { 'content-type': 'image/png' },
  });
  expect(res.statusCode).toBe(202);
  return res.json<JobResource>();
};
const get = async (id: string) =>
  (await api.app.inject({ method: 'GET', url: `/jobs/${id}` })).json<JobResource>();

describe('cancel racing the worker: every job ends in exactly one terminal state', () => {
  it('a DELETE answered canceled never succeeds; a DELETE answered 409 is a finished job', async () => {
    const image = await solidPng([0, 0, 255]);
    const jobs = await Promise.all(Array.from({ length: 150 }, () => submit(image)));

    // Cancels land in a shuffled order over 3 s, while jobs are queued, running, finishing and
    // finished.
    const answers = await Promise.all(
      jobs.map(async (job, i) => {
        await sleep(((i * 7919) % jobs.length) * 20);
        const res = await api.app.inject({ method: 'DELETE', url: `/jobs/${job.id}` });
        return {
          id: job.id,
          status: res.statusCode,
          body: res.json() as JobResource & { code?: string },
        };
      }),
    );

    const finals = await Promise.all(
      jobs.map((job) =>
        eventually(async () => {
          const current = await get(job.id);
          return ['succeeded', 'failed', 'canceled'].includes(current.status) ? current : undefined;
        }, 20_000),
      ),
    );
    // BullMQ holds no job that can still run: no worker can touch a job's state after this.
    await waitForIdleQueue(api.queues.queue('onnx'));

    let canceled = 0;
    let finished = 0;
    for (const [i, answer] of answers.entries()) {
      const final = await get(answer.id);
      expect(final.status, `job ${i} changed after it was final`).toBe(finals[i]!.status);
      const entry = await api.queues.get('onnx', answer.id);
      if (answer.status === 200) {
        canceled++;
        expect(answer.body.status).toBe('canceled');
        expect(final).toMatchObject({ status: 'canceled', result: null });
        // BullMQ agrees: the job left the queue, or its worker failed it JOB_CANCELED.
        if (entry) {
          expect(entry.state).toBe('failed');
          expect(entry.job.failedReason).toMatch(/^JOB_CANCELED/);
        }
      } else {
        finished++;
        expect(answer.status).toBe(409);
        expect(answer.body.code).toBe('JOB_FINISHED');
        expect(final.status).toBe('succeeded');
        expect(final.result?.task).toBe('classification');
        expect(entry?.state).toBe('completed');
      }
    }
    console.log(`cancel race: ${canceled} canceled, ${finished} had finished`);
    expect(canceled + finished).toBe(jobs.length);
    expect(canceled).toBeGreaterThan(0);
    expect(finished).toBeGreaterThan(0);
  });
});
