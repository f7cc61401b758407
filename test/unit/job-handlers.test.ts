import { type Job, UnrecoverableError } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { JobName, QueueName } from '../../shared/queues/index.js';
import { dispatchJobs } from '../../workers/job-handlers.js';

const job = (name: string) => ({ name, data: { n: 1 } }) as unknown as Job<{ n: number }, string>;

describe('dispatchJobs', () => {
  it('refuses to start when a job type routed to the queue has no handler', () => {
    expect(() => dispatchJobs(QueueName.InferenceOnnx, {})).toThrow(
      /No handler for job type "infer", which runs on queue inference-onnx/,
    );
    expect(() => dispatchJobs(QueueName.Webhooks, {})).toThrow(/"deliver-webhook"/);
  });

  it('hands each job to the handler of its type', async () => {
    const handle = dispatchJobs<{ n: number }, string>(QueueName.InferenceOnnx, {
      [JobName.Infer]: async (j) => `infer ${j.data.n}`,
    });
    await expect(handle(job(JobName.Infer))).resolves.toBe('infer 1');
  });

  it('fails a job of a type the queue does not take, without retries', () => {
    const handle = dispatchJobs<{ n: number }, string>(QueueName.InferenceOnnx, {
      [JobName.Infer]: async () => 'ok',
    });
    expect(() => handle(job('something-else'))).toThrow(UnrecoverableError);
  });
});
