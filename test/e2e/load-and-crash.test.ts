import { Redis } from 'ioredis';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { renderTextLine } from '../fixtures/images.js';
import { type JobBody, pollJob, predict } from '../support/http.js';
import { eventually } from '../support/inference-stack.js';
import { sharedServices } from '../support/shared-services.js';
import { type Stack, startStack } from '../support/stack.js';

describe('under load', () => {
  const services = sharedServices();
  let stack: Stack | undefined;
  let image: Buffer;

  beforeAll(async () => {
    image = await renderTextLine();
  });
  afterEach(async () => {
    await stack?.stop();
    stack = undefined;
  });

  it('completes 200 concurrent sync requests, every one 200 and succeeded', async () => {
    stack = await startStack(services);
    const responses = await Promise.all(
      Array.from({ length: 200 }, () => predict(stack!.baseUrl, 'text_orientation', image)),
    );
    expect(responses.map((r) => r.status)).toEqual(Array(200).fill(200));
    expect(responses.every((r) => r.body.result?.predictions?.[0]?.label === '0')).toBe(true);
    expect(new Set(responses.map((r) => r.body.id)).size).toBe(200);
    // Under load the worker runs jobs that are ready together as one model call.
    const sizes = responses.map((r) => r.body.timings?.batch_size ?? 0);
    expect(Math.min(...sizes)).toBeGreaterThanOrEqual(1);
    expect(Math.max(...sizes)).toBeGreaterThan(1);
  });

  it('loses no accepted job when a worker is killed with SIGKILL mid-load', async () => {
    // Two workers, each holding at most two batches (2 x 8 jobs): a backlog exists and the victim is
    // busy when it dies.
    stack = await startStack(services, { workers: 2, env: { WORKER_CONCURRENCY: '2' } });
    const victim = stack.workers[0]!;
    const total = 300;
    let answered = 0;
    const victimDone = () => victim.logs().filter((l) => l.msg === 'job done').length;

    const requests = Array.from({ length: total }, async () => {
      const response = await predict(stack!.baseUrl, 'text_orientation', image, {
        headers: { prefer: 'wait=60' },
      });
      answered++;
      return response;
    });
    // Kill the victim once it has finished a few jobs (so it is really taking work), not after a
    // fixed number of answers: on a busy machine the other worker can answer the first 40 while
    // the victim is still on its first jobs. And only while jobs wait in the queue: then each slot
    // of the victim's takes the next job as it finishes one (BullMQ fetches it in the same step),
    // so it dies holding jobs. Without a backlog it could be killed idle, between jobs.
    const redis = new Redis(services.redisUrl);
    const waiting = () => redis.llen(`${stack!.env.REDIS_PREFIX}:inference-onnx:wait`);
    try {
      await eventually(
        async () => (victimDone() >= 5 && (await waiting()) >= 2 ? true : undefined),
        60_000,
        'the victim at work, with a backlog',
      );
    } finally {
      redis.disconnect();
    }
    const answeredAtKill = answered;
    victim.signal('SIGKILL');
    const responses = await Promise.all(requests);

    // Killed mid-load: a backlog was still waiting for answers.
    expect(answeredAtKill).toBeLessThan(total - 50);
    expect((await victim.exited).signal).toBe('SIGKILL');
    // The victim was working when it died: it finished some jobs, and others were in its hands.
    expect(victimDone()).toBeGreaterThan(0);

    // Every accepted request reaches a terminal state: answered now, or later through its job.
    const unexpected = responses
      .filter((r) => r.status !== 200 && r.status !== 202)
      .map((r) => `${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    expect(unexpected).toEqual([]);
    const finals: JobBody[] = await Promise.all(
      responses.map((r) => (r.status === 200 ? r.body : pollJob(stack!.baseUrl, r.body.id))),
    );
    expect(finals.map((j) => j.status)).toEqual(Array(total).fill('succeeded'));
    // The jobs the victim held were recovered by the survivor's stalled-job check, not lost.
    const survivor = stack.workers[1]!;
    const recovered = survivor.logs().filter((l) => String(l.msg).startsWith('job stalled'));
    expect(recovered.length).toBeGreaterThan(0);
    expect(new Set(finals.map((j) => j.id)).size).toBe(total);
    // The workers were batching, so the victim died holding batches.
    expect(Math.max(...finals.map((j) => j.timings?.batch_size ?? 0))).toBeGreaterThan(1);
  });
});
