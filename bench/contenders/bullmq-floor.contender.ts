import { randomUUID } from 'node:crypto';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import type { JobSpec } from '../../shared/jobs/job-spec.js';
import { inferenceJobOptions } from '../../shared/queues/bullmq-objects.js';
import { JobName, QueueName } from '../../shared/queues/queues.js';
import { BenchProcess } from '../bench-process.js';
import { BENCH_MODEL } from '../in-process-pipeline.js';
import { unlinkPrefix } from '../redis-keys.js';
import type { ClosedLoopContender, ContenderContext } from './contender.js';

/**
 * The least a queued request can cost: add a job with the gateway's job options and data shape,
 * wait for its completion event, with a worker (`bench/bullmq-floor-worker.ts`) that does nothing.
 * Queue and QueueEvents live in this process, the worker in its own, on a prefix of their own.
 */
export async function startBullmqFloor(ctx: ContenderContext): Promise<ClosedLoopContender> {
  const { config, teardown } = ctx;
  const prefix = `bench-floor-${process.pid}`;
  const cleaner = new Redis(config.redis.url);
  teardown.add('floor: Redis connection', () => void cleaner.disconnect());
  teardown.add(
    `floor: keys under ${prefix}`,
    async () => void (await unlinkPrefix(cleaner, prefix)),
  );

  const worker = BenchProcess.start(
    'bullmq-floor-worker',
    ['bench/bullmq-floor-worker.ts', '--redis-url', config.redis.url, '--prefix', prefix],
    { logDir: ctx.logDir },
  );
  teardown.add('floor worker process', () => worker.stop());

  const connection = new Redis(config.redis.url, { maxRetriesPerRequest: null });
  teardown.add('floor: queue connection', () => void connection.disconnect());
  const queue = new Queue<JobSpec>(QueueName.InferenceOnnx, {
    connection,
    prefix,
    defaultJobOptions: inferenceJobOptions(config.jobs),
  });
  teardown.add('floor: queue', () => queue.close());
  // Each job being waited for listens for the queue's 'closing': one per concurrent client.
  queue.setMaxListeners(0);
  // QueueEvents reads on a duplicate of the connection it is given.
  const eventsConnection = new Redis(config.redis.url, { maxRetriesPerRequest: null });
  teardown.add('floor: events connection', () => void eventsConnection.disconnect());
  const events = new QueueEvents(QueueName.InferenceOnnx, { connection: eventsConnection, prefix });
  teardown.add('floor: queue events', () => events.close());
  await Promise.all([
    queue.waitUntilReady(),
    events.waitUntilReady(),
    worker.waitForLine(/floor worker ready/),
  ]);

  let counter = 0;
  return {
    name: 'floor',
    load: 'closed-loop',
    pids: { worker: worker.pid },
    usesRedis: true,
    async send() {
      // Shaped like the gateway's job: an image key of the same length, a request id, the mode.
      const n = (++counter).toString(16).padStart(64, '0');
      const job = await queue.add(
        JobName.Infer,
        {
          model: BENCH_MODEL,
          imageKey: `images/sha256/${n.slice(0, 2)}/${n}`,
          params: {},
          requestId: randomUUID(),
          mode: 'sync',
          owner: 'anonymous',
        },
        { jobId: randomUUID() },
      );
      await job.waitUntilFinished(events);
      return { ok: true };
    },
  };
}
