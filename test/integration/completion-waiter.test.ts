import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { type Job, QueueEvents, UnrecoverableError, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type CompletionEvents,
  CompletionWaiter,
  type CompletionWaiterOptions,
} from '../../api/jobs/completion-waiter.js';
import { type Config, loadConfig } from '../../shared/config/config.js';
import type { JobSpec } from '../../shared/jobs/job-spec.js';
import { INFERENCE_QUEUES, JobName, QueueName } from '../../shared/queues/index.js';
import { InferenceQueues } from '../../shared/queues/inference-queues.js';
import { redisOptions } from '../../shared/redis/redis.js';
import { eventually } from '../support/inference-stack.js';
import { testSpec } from '../support/job-spec.js';
import { cleanRedisPrefix, uniquePrefix } from '../support/services.js';
import { sharedServices } from '../support/shared-services.js';

const QUEUE = QueueName.InferenceOnnx;
const FAIL_MODEL = 'always-fails';

type Processor = (job: Job<JobSpec>) => Promise<unknown>;

/** Trivial processors: this file tests the waiter, not inference. */
const succeed: Processor = async (job) => ({ echoed: job.id });
const failOnRequest: Processor = async (job) => {
  if (job.data.model === FAIL_MODEL) throw new UnrecoverableError('INVALID_IMAGE: test failure');
  return { echoed: job.id };
};

function jobData(model = 'noop'): JobSpec {
  return testSpec({ model, requestId: randomUUID() });
}

/**
 * One test's world: its own key prefix, an InferenceQueues, one QueueEvents on the ONNX queue, a
 * waiter over them, and (when a test asks) an in-process worker. Every Redis connection it opens
 * is named after the prefix, so `CLIENT LIST` can count exactly this test's connections.
 */
interface Harness {
  prefix: string;
  queues: InferenceQueues;
  events: QueueEvents;
  waiter: CompletionWaiter;
  /** A waiter over other event sources, closed with the harness. */
  makeWaiter(options: Partial<CompletionWaiterOptions>): CompletionWaiter;
  startWorker(processor: Processor, concurrency?: number): Promise<Worker>;
  /** Connections whose client name starts with the prefix. */
  countConnections(): Promise<number>;
  close(): Promise<void>;
}

const services = sharedServices();
const open: Harness[] = [];

afterEach(async () => {
  await Promise.all(open.splice(0).map((h) => h.close()));
});

async function harness(waiterOptions: Partial<CompletionWaiterOptions> = {}): Promise<Harness> {
  const prefix = uniquePrefix();
  const config: Config = loadConfig({ REDIS_URL: services.redisUrl, REDIS_PREFIX: prefix });
  const named = (purpose: 'command' | 'blocking', name: string) =>
    new Redis(services.redisUrl, {
      ...redisOptions(config.redis, purpose),
      connectionName: `${prefix}:${name}`,
    });
  const redis = named('command', 'queues');
  // BullMQ duplicates a client handed to a blocking reader and leaves the original open: keep it
  // to close it ourselves.
  const eventsTemplate = named('blocking', 'events');
  const connections: Redis[] = [redis, eventsTemplate];
  const workers: Worker[] = [];
  const waiters: CompletionWaiter[] = [];

  const queues = new InferenceQueues(redis, { prefix, jobs: config.jobs });
  const events = new QueueEvents(QUEUE, { connection: eventsTemplate, prefix });

  const makeWaiter = (options: Partial<CompletionWaiterOptions>) => {
    const waiter = new CompletionWaiter({
      events: new Map<QueueName, CompletionEvents>([[QUEUE, events]]),
      isFinished: (queue, ids) => queues.areFinished(queue, ids),
      // Long enough that only queue events can settle waiters within a test, unless a test
      // asks for reconciliation.
      reconcileIntervalMs: 60_000,
      ...options,
    });
    waiters.push(waiter);
    return waiter;
  };

  const h: Harness = {
    prefix,
    queues,
    events,
    waiter: makeWaiter(waiterOptions),
    makeWaiter,
    async startWorker(processor, concurrency = 50) {
      const connection = named('blocking', 'worker');
      connections.push(connection);
      const worker = new Worker<JobSpec>(INFERENCE_QUEUES.onnx, processor, {
        connection,
        prefix,
        concurrency,
      });
      workers.push(worker);
      await worker.waitUntilReady();
      return worker;
    },
    async countConnections() {
      const list = String(await redis.client('LIST'));
      return list
        .split('\n')
        .filter((line) => /(?:^| )name=(\S*)/.exec(line)?.[1]?.startsWith(prefix)).length;
    },
    async close() {
      for (const waiter of waiters) waiter.close();
      await Promise.allSettled(workers.map((w) => w.close()));
      await events.close().catch(() => undefined);
      await queues.close();
      for (const connection of connections) connection.disconnect();
      await cleanRedisPrefix(services.redisUrl, prefix);
    },
  };
  // Registered before anything can fail or hang, so afterEach cleans up a failed set-up too.
  open.push(h);
  await events.waitUntilReady();
  await warmUp(queues, events);
  return h;
}

/**
 * QueueEvents reads the stream from `$`, and `waitUntilReady()` only says its connection is up, not
 * that its first XREAD has been sent: events written before that are never seen. Jobs are added
 * until one of their events arrives, which proves the read loop is running; they are then removed.
 */
async function warmUp(queues: InferenceQueues, events: QueueEvents): Promise<void> {
  const added: string[] = [];
  let seen = false;
  const onWaiting = ({ jobId }: { jobId: string }) => {
    if (added.includes(jobId)) seen = true;
  };
  events.on('waiting', onWaiting);
  try {
    await eventually(
      async () => {
        if (seen) return true;
        const jobId = `warm-up-${randomUUID()}`;
        added.push(jobId);
        await queues.add('onnx', jobId, jobData());
        return undefined;
      },
      10_000,
      'QueueEvents delivering an event',
    );
  } finally {
    events.off('waiting', onWaiting);
  }
  await Promise.all(added.map((id) => queues.queue('onnx').remove(id)));
}

async function addJobs(h: Harness, ids: string[], model?: string): Promise<void> {
  await h.queues
    .queue('onnx')
    .addBulk(ids.map((jobId) => ({ name: JobName.Infer, data: jobData(model), opts: { jobId } })));
}

const ids = (n: number) => Array.from({ length: n }, () => randomUUID());

describe('CompletionWaiter with real QueueEvents and BullMQ', () => {
  it('settles 500 concurrent waits through one listener, without new Redis connections', async () => {
    const h = await harness();
    await h.startWorker(succeed);
    const baseline = await h.countConnections();
    // Events source, queue producer and worker: all named, so the count is really ours.
    expect(baseline).toBeGreaterThanOrEqual(4);

    const jobIds = ids(500);
    const waits = jobIds.map((id) => h.waiter.wait(QUEUE, id, 20_000));
    expect(h.waiter.size).toBe(500);
    expect(h.events.listenerCount('completed')).toBe(1);
    expect(h.events.listenerCount('failed')).toBe(1);
    expect(await h.countConnections()).toBe(baseline);

    await addJobs(h, jobIds);
    expect(await h.countConnections()).toBe(baseline);
    const settled = await Promise.all(waits);

    // Each settled by its own completion event, which carries the worker's return value.
    expect(settled).toEqual(
      jobIds.map((id) => ({ via: 'completed', returnvalue: { echoed: id } })),
    );
    expect(h.waiter.size).toBe(0);
    expect(h.events.listenerCount('completed')).toBe(1);
    expect(await h.countConnections()).toBe(baseline);
    const finished = await h.queues.areFinished(QUEUE, jobIds);
    expect(finished.every(Boolean)).toBe(true);
  });

  it('resolves for jobs that fail (UnrecoverableError), after one attempt', async () => {
    const h = await harness();
    await h.startWorker(failOnRequest);
    const failing = ids(10);
    const passing = ids(10);
    const waits = [...failing, ...passing].map((id) => h.waiter.wait(QUEUE, id, 10_000));
    await addJobs(h, failing, FAIL_MODEL);
    await addJobs(h, passing);

    expect(await Promise.all(waits)).toEqual([
      ...failing.map(() => ({ via: 'failed' })),
      ...passing.map((id) => ({ via: 'completed', returnvalue: { echoed: id } })),
    ]);
    const queue = h.queues.queue('onnx');
    for (const id of failing) {
      expect(await queue.getJobState(id)).toBe('failed');
      const job = await queue.getJob(id);
      expect(job?.attemptsMade).toBe(1);
      expect(job?.failedReason).toBe('INVALID_IMAGE: test failure');
    }
    for (const id of passing) expect(await queue.getJobState(id)).toBe('completed');
  });

  it('resolves nothing when the wait times out, and the job still completes later', async () => {
    const h = await harness();
    const [jobId] = ids(1) as [string];
    const started = performance.now();
    const wait = h.waiter.wait(QUEUE, jobId, 200);
    await addJobs(h, [jobId]);

    expect(await wait).toBeUndefined();
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(190);
    expect(elapsed).toBeLessThan(2_000);
    expect(h.waiter.size).toBe(0);
    expect(await h.queues.areFinished(QUEUE, [jobId])).toEqual([false]);

    // No worker was running: the job waited in the queue, and is not lost by the timeout.
    await h.startWorker(succeed);
    await eventually(
      async () => ((await h.queues.areFinished(QUEUE, [jobId]))[0] ? true : undefined),
      5_000,
      'job finished',
    );
    expect(await h.queues.queue('onnx').getJobState(jobId)).toBe('completed');
  });

  it('resolves nothing at once when the signal aborts, or was aborted before', async () => {
    const h = await harness();
    const [jobId, other] = ids(2) as [string, string];
    const controller = new AbortController();
    const started = performance.now();
    const wait = h.waiter.wait(QUEUE, jobId, 10_000, controller.signal);
    await addJobs(h, [jobId]);
    // The job is queued and no worker runs: only the abort can end the wait.
    controller.abort();

    expect(await wait).toBeUndefined();
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(h.waiter.size).toBe(0);

    expect(await h.waiter.wait(QUEUE, other, 10_000, AbortSignal.abort())).toBeUndefined();
    expect(h.waiter.size).toBe(0);
  });

  it('reconciliation settles a waiter whose completion event was missed', async () => {
    const h = await harness();
    // An events source that never emits: only the reconciliation can settle the waiter.
    const silent = new EventEmitter();
    const waiter = h.makeWaiter({
      events: new Map<QueueName, CompletionEvents>([[QUEUE, silent]]),
      reconcileIntervalMs: 100,
    });
    const worker = await h.startWorker(succeed);
    const [jobId] = ids(1) as [string];
    const completedAt = new Promise<number>((resolve) => {
      worker.on('completed', (job) => {
        if (job.id === jobId) resolve(performance.now());
      });
    });

    const wait = waiter.wait(QUEUE, jobId, 10_000).then((finished) => ({
      finished,
      at: performance.now(),
    }));
    await addJobs(h, [jobId]);
    const [done, completed] = await Promise.all([wait, completedAt]);

    expect(done.finished).toEqual({ via: 'state' });
    expect(silent.listenerCount('completed')).toBe(1);
    // Two reconciliation periods at most, plus a Redis round trip and a loaded machine.
    expect(done.at - completed).toBeLessThan(750);
  });

  // Regression: areFinished read a removed job (its hash gone) as unfinished, so a waiter on a
  // canceled or expired job hung until its timeout.
  it('reconciliation counts a removed job as finished', async () => {
    const h = await harness();
    // The real check, its answers kept, so the test can tell when a pass has looked at the job.
    const checks: boolean[][] = [];
    const waiter = h.makeWaiter({
      events: new Map<QueueName, CompletionEvents>([[QUEUE, new EventEmitter()]]),
      isFinished: async (queue, jobIds) => {
        const answer = await h.queues.areFinished(queue, jobIds);
        checks.push(answer);
        return answer;
      },
      reconcileIntervalMs: 100,
    });
    const [jobId] = ids(1) as [string];
    // No worker: the job would wait forever, until it is removed. It exists before the wait
    // starts, so every pass finds it.
    const job = await h.queues.add('onnx', jobId, jobData());
    const wait = waiter.wait(QUEUE, jobId, 10_000).then((finished) => ({
      finished,
      at: performance.now(),
    }));
    // A pass that found it waiting left its waiter waiting.
    await eventually(() => (checks.length > 0 ? true : undefined));
    expect(checks[0]).toEqual([false]);
    expect(waiter.size).toBe(1);
    const removedAt = performance.now();
    await job.remove();

    const done = await wait;
    expect(done.finished).toEqual({ via: 'state' });
    expect(done.at - removedAt).toBeLessThan(750);
    expect(await h.queues.areFinished(QUEUE, [jobId])).toEqual([true]);
  });

  it('close() settles every pending waiter unfinished and stops listening', async () => {
    const h = await harness();
    const jobIds = ids(3);
    const waits = jobIds.map((id) => h.waiter.wait(QUEUE, id, 10_000));
    await addJobs(h, jobIds);
    expect(h.waiter.size).toBe(3);

    h.waiter.close();
    expect(await Promise.all(waits)).toEqual([undefined, undefined, undefined]);
    expect(h.waiter.size).toBe(0);
    expect(h.events.listenerCount('completed')).toBe(0);
    expect(h.events.listenerCount('failed')).toBe(0);
    // Closed for good: a new wait is refused at once, and a second close is harmless.
    expect(await h.waiter.wait(QUEUE, randomUUID(), 10_000)).toBeUndefined();
    h.waiter.close();
  });
});
