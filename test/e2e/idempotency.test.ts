import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AiGatewayClient, type Job } from '../../client/index.js';
import { QueueName } from '../../shared/queues/index.js';
import { renderTextLine } from '../fixtures/images.js';
import { imageForm } from '../support/http.js';
import { sharedServices } from '../support/shared-services.js';
import { openQueue, type Stack, startStack } from '../support/stack.js';

describe('Idempotency-Key: the same request is the same job', () => {
  const services = sharedServices();
  let stack: Stack;
  let client: AiGatewayClient;
  let image: Buffer;
  let inference: Queue;

  beforeAll(async () => {
    stack = await startStack(services);
    client = new AiGatewayClient({ baseUrl: stack.baseUrl });
    image = await renderTextLine('Exactly once');
    inference = openQueue(stack, QueueName.InferenceOnnx);
  });
  afterAll(async () => {
    await inference?.close();
    await stack?.stop();
  });

  const submit = (key: string, fields: Record<string, string> = {}, picture = image) =>
    fetch(`${stack.baseUrl}/jobs`, {
      method: 'POST',
      headers: { 'idempotency-key': key },
      body: imageForm(picture, { model: 'text_orientation', ...fields }),
    });

  /** Jobs the inference queue holds, in any state: every request that made a job added one. */
  const jobsMade = () =>
    inference.getJobCountByTypes(
      'wait',
      'prioritized',
      'delayed',
      'active',
      'waiting-children',
      'completed',
      'failed',
    );

  /**
   * The requests since `before` made one job, `jobId`, and the worker took it once: the model ran
   * once. Both are BullMQ's own counts, final once the job has finished.
   */
  const expectOneRun = async (jobId: string, before: number) => {
    expect((await jobsMade()) - before).toBe(1);
    expect((await inference.getJob(jobId))?.attemptsStarted).toBe(1);
  };

  it('a resubmission returns the same job, marked replayed, and the model runs once', async () => {
    const before = await jobsMade();
    const key = randomUUID();
    const first = await submit(key);
    expect(first.status).toBe(202);
    const job = (await first.json()) as Job;
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    await client.wait(job.id);

    const again = await submit(key);
    expect(again.status).toBe(202);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    const replayed = (await again.json()) as Job;
    expect(replayed).toMatchObject({ id: job.id, status: 'succeeded' });

    // A sync request with the key gets the finished job at once.
    const sync = await fetch(`${stack.baseUrl}/predict/text_orientation`, {
      method: 'POST',
      headers: { 'idempotency-key': key },
      body: imageForm(image),
    });
    expect(sync.status).toBe(200);
    expect(((await sync.json()) as Job).id).toBe(job.id);
    await expectOneRun(job.id, before);
  });

  it('concurrent identical requests with one key make one job', async () => {
    const before = await jobsMade();
    const key = randomUUID();
    const answers = await Promise.all(Array.from({ length: 12 }, () => submit(key)));
    expect(answers.map((a) => a.status)).toEqual(Array(12).fill(202));
    const ids = new Set(await Promise.all(answers.map(async (a) => ((await a.json()) as Job).id)));
    expect(ids.size).toBe(1);
    const [id] = [...ids];
    await client.wait(id!);
    await expectOneRun(id!, before);
  });

  it('the same key with a different request answers 422 IDEMPOTENCY_KEY_REUSED', async () => {
    const key = randomUUID();
    const original = (await (await submit(key)).json()) as Job;
    const variants = [
      submit(key, { top_k: '1' }),
      submit(key, {}, await renderTextLine('Another image')),
      submit(key, { priority: '1' }),
    ];
    for (const response of await Promise.all(variants)) {
      expect(response.status).toBe(422);
      const problem = (await response.json()) as { code: string; detail: string };
      expect(problem.code).toBe('IDEMPOTENCY_KEY_REUSED');
      expect(problem.detail).toContain(original.id);
    }
  });

  it('different keys make different jobs; a malformed key is refused', async () => {
    const [a, b] = await Promise.all([submit(randomUUID()), submit(randomUUID())]);
    expect(((await a.json()) as Job).id).not.toBe(((await b.json()) as Job).id);
    const bad = await submit('x'.repeat(256));
    expect(bad.status).toBe(400);
  });
});
