import type { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AiGatewayClient, ApiError, type Job, verifyWebhook } from '../../client/index.js';
import { QueueName } from '../../shared/queues/index.js';
import { renderTextLine } from '../fixtures/images.js';
import { eventually } from '../support/inference-stack.js';
import { sharedServices } from '../support/shared-services.js';
import { openQueue, type Stack, startStack } from '../support/stack.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

describe('DELETE /jobs/{id}', () => {
  const services = sharedServices();
  let stack: Stack;
  let receiver: WebhookReceiver;
  let client: AiGatewayClient;
  let image: Buffer;
  /** The open API's one tenant's webhook secret. */
  let secret: string;
  let inference: Queue;

  beforeAll(async () => {
    receiver = await WebhookReceiver.start();
    stack = await startStack(services, {
      webhooks: true,
      env: {
        // No WEBHOOK_SECRET: the API (which shows the tenant its secret) and the webhooks worker
        // (which signs with it) derive it from the development master they share in Redis.
        WEBHOOK_ALLOW_PRIVATE: 'true',
        // Tests here freeze a worker with SIGSTOP; the API counts it gone 3 heartbeats after its last
        // report. A 3 s heartbeat leaves at least 6 s for a frozen worker's requests on a busy host.
        WORKER_HEARTBEAT_MS: '3000',
      },
    });
    client = new AiGatewayClient({ baseUrl: stack.baseUrl });
    ({ secret } = await client.webhookSecret());
    image = await renderTextLine('Cancel me');
    inference = openQueue(stack, QueueName.InferenceOnnx);
  });
  afterAll(async () => {
    await inference?.close();
    for (const worker of stack?.workers ?? []) worker.signal('SIGCONT');
    await stack?.stop();
    await receiver?.close();
  });

  /** The `completed` webhook of a job, verified. */
  const completedWebhook = (jobId: string) =>
    eventually(() => {
      const message = receiver.received.find(
        (r) => r.headers['webhook-id'] === `msg_${jobId}_completed`,
      );
      return (
        message && verifyWebhook(secret, message.body, message.headers as Record<string, string>)
      );
    }, 10_000);

  it('removes a queued job from its queue: canceled at once, never run, webhook sent', async () => {
    const worker = stack.workers[0]!;
    // A stopped worker takes nothing, so the job stays queued (well within the worker's heartbeat
    // grace, after which the API would refuse the model as unavailable).
    worker.signal('SIGSTOP');
    let job: Job;
    try {
      job = await client.submit('text_orientation', image, { webhook: receiver.url('/queued') });
      expect(job.status).toBe('queued');
      const canceled = await client.cancel(job.id);
      expect(canceled).toMatchObject({
        id: job.id,
        status: 'canceled',
        result: null,
        error: { code: 'JOB_CANCELED' },
      });
      expect(canceled.completed_at).not.toBeNull();
    } finally {
      worker.signal('SIGCONT');
    }
    // It left its queue while the worker was stopped: the worker, back now, has nothing of it to
    // run, so it stays canceled.
    expect(await inference.getJob(job.id)).toBeUndefined();
    expect((await client.get(job.id)).status).toBe('canceled');
    expect((await completedWebhook(job.id)).status).toBe('canceled');

    // Canceling again says the same; a finished job cannot be canceled.
    expect((await client.cancel(job.id)).status).toBe('canceled');
  });

  it('stops a job being processed: it ends canceled without a result', async () => {
    const worker = stack.workers[0]!;
    let victim: Job | undefined;
    let jobs: Job[] = [];
    // Freeze the worker with jobs in hand (a backlog keeps its 4 slots busy), then cancel one of
    // them. A job whose worker froze just after committing its result is finished already (409):
    // try the next.
    for (let round = 0; round < 5 && !victim; round++) {
      jobs = await Promise.all(
        Array.from({ length: 60 }, () =>
          client.submit('text_orientation', image, { webhook: receiver.url('/running') }),
        ),
      );
      await eventually(async () =>
        (await client.get(jobs[0]!.id)).status !== 'queued' ? true : undefined,
      );
      worker.signal('SIGSTOP');
      try {
        const states = await Promise.all(jobs.map((j) => client.get(j.id)));
        for (const candidate of states.filter((j) => j.status === 'processing')) {
          const answer = await client.cancel(candidate.id).catch((err: unknown) => {
            if (err instanceof ApiError && err.code === 'JOB_FINISHED') return undefined;
            throw err;
          });
          if (!answer) continue;
          expect(answer).toMatchObject({ id: candidate.id, status: 'canceled', result: null });
          expect((await client.get(candidate.id)).status).toBe('canceled');
          victim = answer;
          break;
        }
      } finally {
        worker.signal('SIGCONT');
      }
    }
    expect(victim, 'a job caught mid-processing').toBeDefined();

    // The worker resumes, sees the mark before it runs the model or hands back a result, and
    // ends the job canceled: the record, the queue and the webhook all say so.
    const settled = await Promise.all(jobs.map((j) => client.wait(j.id)));
    const final = settled.find((j) => j.id === victim!.id)!;
    expect(final).toMatchObject({
      status: 'canceled',
      result: null,
      error: { code: 'JOB_CANCELED' },
    });
    expect(settled.filter((j) => j.id !== victim!.id).every((j) => j.status === 'succeeded')).toBe(
      true,
    );
    await eventually(() =>
      worker.logs().some((l) => l.msg === 'job canceled' && l.jobId === victim!.id)
        ? true
        : undefined,
    );
    const webhook = await completedWebhook(victim!.id);
    expect(webhook).toMatchObject({ id: victim!.id, status: 'canceled', result: null });
  });

  it('answers 409 JOB_FINISHED for a finished job and 404 for an unknown one', async () => {
    const job = await client.predict('text_orientation', image);
    expect(job.status).toBe('succeeded');
    await expect(client.cancel(job.id)).rejects.toMatchObject({
      status: 409,
      code: 'JOB_FINISHED',
    });
    expect((await client.get(job.id)).status).toBe('succeeded');
    await expect(client.cancel('no-such-job')).rejects.toMatchObject({
      status: 404,
      code: 'JOB_NOT_FOUND',
    });
  });
});
