import type { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AiGatewayClient, type Job } from '../../client/index.js';
import { QueueName } from '../../shared/queues/index.js';
import { renderTextLine } from '../fixtures/images.js';
import { pool } from '../support/pool.js';
import { sharedServices } from '../support/shared-services.js';
import { openQueue, type Stack, startStack } from '../support/stack.js';

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
};

const finishedAt = (job: Job) => Date.parse(job.completed_at!);
/** When a worker took the job off the queue (BullMQ's `processedOn`, the job's `started_at`). */
const takenAt = (job: Job) => Date.parse(job.started_at!);

/**
 * One worker (WORKER_CONCURRENCY 1: it holds two batches at most), so a burst of async jobs is a
 * real backlog: sync requests carry no BullMQ priority and are taken before every prioritised
 * (async) job.
 */
describe('priorities: sync before async, async by priority', () => {
  const services = sharedServices();
  let stack: Stack;
  let client: AiGatewayClient;
  let image: Buffer;
  let queue: Queue;

  beforeAll(async () => {
    stack = await startStack(services, { env: { WORKER_CONCURRENCY: '1' } });
    client = new AiGatewayClient({ baseUrl: stack.baseUrl });
    image = await renderTextLine('Priorities');
    queue = openQueue(stack, QueueName.InferenceOnnx);
  });
  afterAll(async () => {
    await queue?.resume();
    await queue?.close();
    await stack?.stop();
  });

  async function syncLatencies(count: number): Promise<{ ms: number[]; doneAt: number }> {
    const ms: number[] = [];
    for (let i = 0; i < count; i++) {
      const started = performance.now();
      const job = await client.predict('text_orientation', image);
      expect(job.status).toBe('succeeded');
      ms.push(performance.now() - started);
    }
    return { ms, doneAt: Date.now() };
  }

  it('a burst of async jobs does not starve sync requests', async () => {
    const idle = await syncLatencies(10);

    const burst = await pool(
      Array.from({ length: 1200 }, (_, i) => i),
      24,
      () => client.submit('text_orientation', image),
    );
    const loaded = await syncLatencies(10);

    const done = await pool(burst, 50, (job) => client.wait(job.id, { timeoutMs: 240_000 }));
    expect(done.every((job) => job.status === 'succeeded')).toBe(true);
    const stillQueued = done.filter((job) => finishedAt(job) > loaded.doneAt).length;
    console.log(
      `sync p50/max: idle ${percentile(idle.ms, 50).toFixed(0)}/${Math.max(...idle.ms).toFixed(0)} ms, ` +
        `behind 1200 async jobs ${percentile(loaded.ms, 50).toFixed(0)}/${Math.max(...loaded.ms).toFixed(0)} ms; ` +
        `${stillQueued} async jobs were still queued when the sync requests had finished`,
    );
    // Without priorities each sync request would queue behind the whole backlog (seconds). The
    // worker drains hundreds of batched jobs a second, so the burst is sized to outlast the
    // sync requests with a backlog to spare.
    expect(stillQueued).toBeGreaterThanOrEqual(100);
    expect(Math.max(...loaded.ms)).toBeLessThan(2_000);
  }, 300_000);

  it('async jobs run in priority order: 1 before 5 before 10', async () => {
    // Paused while every job is submitted, so the order they run in is the queue's choice alone,
    // however fast the worker drains compared with how fast this machine submits.
    await queue.pause();
    const backlog = await pool(
      Array.from({ length: 400 }, (_, i) => i),
      24,
      () => client.submit('text_orientation', image, { priority: 5 }),
    );
    const [last, first] = await Promise.all([
      pool(Array.from({ length: 20 }), 4, () =>
        client.submit('text_orientation', image, { priority: 10 }),
      ),
      pool(Array.from({ length: 20 }), 4, () =>
        client.submit('text_orientation', image, { priority: 1 }),
      ),
    ]);
    await queue.resume();
    const wait = (jobs: Job[]) =>
      pool(jobs, 50, (job) => client.wait(job.id, { timeoutMs: 240_000 }));
    const [done5, done10, done1] = await Promise.all([wait(backlog), wait(last), wait(first)]);

    const latestFirst = Math.max(...done1.map(finishedAt));
    // Priority 1 jobs overtook the priority 5 backlog (all but the few in the queue's fair-scheduling
    // window when they came, FAIR_QUEUE_WINDOW); priority 10 jobs waited for it:
    // none was taken before the last of the backlog. (Taken, not finished: the worker holds two
    // batches at once, so the backlog's last jobs and the first priority 10 ones may run side by
    // side and finish in either order.)
    const overtaken = done5.filter((job) => finishedAt(job) > latestFirst).length;
    console.log(
      `${overtaken} of ${done5.length} priority 5 jobs finished after the last priority 1 job`,
    );
    expect(overtaken).toBeGreaterThanOrEqual(300);
    const lastBacklogTaken = Math.max(...done5.map(takenAt));
    expect(done10.every((job) => takenAt(job) >= lastBacklogTaken)).toBe(true);
    expect(done1.every((job) => job.priority === 1)).toBe(true);
  }, 300_000);
});
