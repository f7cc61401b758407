import { randomUUID } from 'node:crypto';
import { type Job, QueueEvents, UnrecoverableError, Worker } from 'bullmq';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { type CompletionEvents, CompletionWaiter } from '../../api/jobs/completion-waiter.js';
import { followJob } from '../../api/jobs/follow-job.js';
import { JobEventStreams } from '../../api/jobs/job-event-stream.js';
import { jobFailure } from '../../shared/errors/index.js';
import type { InferenceResult } from '../../shared/jobs/inference-result.js';
import { JobForwarder } from '../../shared/jobs/job-forwarder.js';
import { JobReader } from '../../shared/jobs/job-reader.js';
import { ANONYMOUS_OWNER } from '../../shared/jobs/job-records.js';
import type { JobSpec } from '../../shared/jobs/job-spec.js';
import { WebhookDeliveries } from '../../shared/jobs/webhook-deliveries.js';
import type { BackendKind } from '../../shared/models/model-spec.js';
import { ModelRegistry } from '../../shared/models/registry.js';
import { INFERENCE_QUEUES, type QueueName } from '../../shared/queues/index.js';
import type { InferenceBackend } from '../../workers/backends/inference-backend.js';
import { withFallback } from '../../workers/fallback/with-fallback.js';
import { eventually } from '../support/inference-stack.js';
import { testSpec } from '../support/job-spec.js';
import { createJobWorld, type JobWorld } from '../support/job-world.js';
import { sharedServices } from '../support/shared-services.js';

type Processor = (job: Job<JobSpec, InferenceResult>) => Promise<InferenceResult>;

const input = { width: 8, height: 8 };
const registry = ModelRegistry.fromDocument({
  models: {
    both: { task: 'raw', backends: { tensorflow: {}, onnx: {} }, input },
    tf_only: { task: 'raw', backends: { tensorflow: {} }, input },
  },
});
const result: InferenceResult = {
  version: '1',
  backend: 'onnx',
  result: { task: 'raw', outputs: {} },
  timings: { fetch_ms: 0, preprocess_ms: 0, inference_ms: 0, postprocess_ms: 0 },
  startedAt: 0,
  finishedAt: 0,
  attempts: 1,
};

const services = sharedServices();
let world: World | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

/** A job world with a completion waiter over both queues and workers that the test starts. */
interface World extends JobWorld {
  waiter: CompletionWaiter;
  forwarder: JobForwarder;
  startWorker(backend: BackendKind, processor: Processor): Promise<void>;
  /** Resolves once the world has heard `jobId`'s `completed` event in `backend`'s queue. */
  completedHeard(backend: BackendKind, jobId: string): Promise<void>;
}

async function createWorld(reconcileIntervalMs = 60_000): Promise<World> {
  const base = await createJobWorld(services, { registry });
  const { connect, queues, records, status } = base;
  const prefix = base.config.redis.prefix;
  const events = new Map<QueueName, QueueEvents>(
    (['onnx', 'tensorflow'] as const).map((b) => [
      INFERENCE_QUEUES[b],
      new QueueEvents(INFERENCE_QUEUES[b], { connection: connect('blocking'), prefix }),
    ]),
  );
  base.onClose(() => Promise.allSettled([...events.values()].map((e) => e.close())));
  await Promise.all([...events.values()].map((e) => e.waitUntilReady()));
  const waiter = new CompletionWaiter({
    events: events as Map<QueueName, CompletionEvents>,
    isFinished: (queue, ids) => queues.areFinished(queue, ids),
    reconcileIntervalMs,
  });
  const workers: Worker[] = [];
  base.onClose(() => Promise.allSettled(workers.map((w) => w.close())));
  base.onClose(() => waiter.close());
  return {
    ...base,
    waiter,
    forwarder: new JobForwarder({ registry, records, queues, status }),
    async startWorker(backend, processor) {
      const worker = new Worker(INFERENCE_QUEUES[backend], processor, {
        connection: connect('blocking'),
        prefix,
        concurrency: 4,
      });
      workers.push(worker);
      await worker.waitUntilReady();
    },
    completedHeard(backend, jobId) {
      const queueEvents = events.get(INFERENCE_QUEUES[backend])!;
      return new Promise((resolve) => {
        const onCompleted = (event: { jobId: string }) => {
          if (event.jobId !== jobId) return;
          queueEvents.off('completed', onCompleted);
          resolve();
        };
        queueEvents.on('completed', onCompleted);
      });
    },
  };
}

/** A TF backend as the fallback wrapper sees it. */
function tfBackend(canServe = true): InferenceBackend {
  return {
    kind: 'tensorflow',
    load: async () => ({}),
    infer: async () => {
      throw new Error('not called');
    },
    close: async () => undefined,
    canServe: () => canServe,
  };
}

const silent = pino({ level: 'silent' });
const failingTf =
  (attempts: number[]): Processor =>
  async (job) => {
    attempts.push(job.attemptsMade + 1);
    throw jobFailure(
      'BACKEND_UNAVAILABLE',
      'TF Serving: server 1 of 1 is unreachable (ECONNREFUSED)',
    );
  };

/**
 * A TF Serving worker behind the fallback whose every attempt fails as unreachable; `canServe`
 * is what its backend says of itself. Returns the attempt numbers it saw, as they happen.
 */
async function startFailingTfWorker(world: World, canServe = true): Promise<number[]> {
  const attempts: number[] = [];
  await world.startWorker(
    'tensorflow',
    withFallback(failingTf(attempts), {
      backend: tfBackend(canServe),
      forwarder: world.forwarder,
      logger: silent,
    }),
  );
  return attempts;
}

describe('JobRecords.forward', () => {
  it('moves a record once, keeping the error that made it move', async () => {
    world = await createWorld();
    const id = randomUUID();
    await world.records.create({
      id,
      spec: testSpec({ model: 'both', requestId: 'r' }),
      backend: 'tensorflow',
      createdAt: 1000,
    });
    const error = {
      code: 'BACKEND_TIMEOUT',
      message: 'The backend did not answer within 30000 ms',
    };
    expect(await world.records.forward(id, { from: 'tensorflow', to: 'onnx', error }, 2000)).toBe(
      true,
    );
    // The same move again (a retried transition after a crash) changes nothing.
    expect(await world.records.forward(id, { from: 'tensorflow', to: 'onnx', error }, 3000)).toBe(
      false,
    );
    expect(await world.records.get(id)).toMatchObject({
      backend: 'onnx',
      route: [
        { backend: 'tensorflow', at: 1000, error },
        { backend: 'onnx', at: 2000 },
      ],
    });
    expect(
      await world.records.forward(randomUUID(), { from: 'tensorflow', to: 'onnx', error }),
    ).toBe(false);
  });
});

describe('fallback in the worker', () => {
  it('moves a job to the next backend after its last attempt, under the same id', async () => {
    world = await createWorld();
    await world.reportWorker('onnx');
    const attempts = await startFailingTfWorker(world);
    await world.startWorker('onnx', async () => result);
    const id = await world.submit('both');

    const moved = await eventually(async () => {
      const state = await world!.queues.queue('onnx').getJobState(id);
      return state === 'completed' ? state : undefined;
    }, 10_000);
    expect(moved).toBe('completed');
    expect(attempts).toEqual([1, 2, 3]);
    const old = await world.queues.get('tensorflow', id);
    expect(old?.state).toBe('failed');
    expect(old?.job.failedReason).toContain('BACKEND_UNAVAILABLE');
    expect(await world.records.get(id)).toMatchObject({
      backend: 'onnx',
      route: [
        { backend: 'tensorflow', error: { code: 'BACKEND_UNAVAILABLE' } },
        { backend: 'onnx' },
      ],
    });
  });

  it('moves at once when no server of the backend can take requests (circuits open)', async () => {
    world = await createWorld();
    await world.reportWorker('onnx');
    const attempts = await startFailingTfWorker(world, false);
    await world.startWorker('onnx', async () => result);
    const id = await world.submit('both');
    await eventually(async () =>
      (await world!.queues.queue('onnx').getJobState(id)) === 'completed' ? true : undefined,
    );
    expect(attempts).toEqual([1]);
  });

  it('keeps the job where it is when no other backend serves the model, or the client chose it', async () => {
    world = await createWorld();
    await world.reportWorker('onnx');
    await startFailingTfWorker(world);
    const tfOnly = await world.submit('tf_only', {}, 2);
    const pinned = await world.submit('both', { pinned: true }, 2);
    for (const id of [tfOnly, pinned]) {
      await eventually(async () =>
        (await world!.queues.queue('tensorflow').getJobState(id)) === 'failed' ? true : undefined,
      );
      expect((await world.records.get(id))?.route).toHaveLength(1);
      expect(await world.queues.queue('onnx').getJob(id)).toBeUndefined();
    }
  });

  it('does not move a job to a backend with no live worker', async () => {
    world = await createWorld();
    await startFailingTfWorker(world);
    const id = await world.submit('both', {}, 1);
    await eventually(async () =>
      (await world!.queues.queue('tensorflow').getJobState(id)) === 'failed' ? true : undefined,
    );
    expect(await world.queues.queue('onnx').getJob(id)).toBeUndefined();
  });
});

describe('followJob (the sync wait across a move)', () => {
  it('follows a job that finished in its new queue before the follower got there', async () => {
    // Reconciliation is slow here: only events and the check on arrival can settle the wait.
    world = await createWorld(60_000);
    const w = world;
    await w.reportWorker('onnx');
    const id = randomUUID();
    await w.records.create({
      id,
      spec: testSpec({ model: 'both', requestId: 'r' }),
      backend: 'tensorflow',
      createdAt: Date.now(),
    });
    const following = followJob(w, id, 'tensorflow', 20_000);
    // The TF worker moves the job and lets it finish on onnx before failing it here, so the onnx
    // "completed" event has come and gone when the follower moves on.
    const finishedOnOnnx = w.completedHeard('onnx', id);
    await w.startWorker('onnx', async () => result);
    await w.startWorker('tensorflow', async (job) => {
      await w.queues.add('onnx', id, job.data);
      await finishedOnOnnx;
      await w.records.forward(id, {
        from: 'tensorflow',
        to: 'onnx',
        error: { code: 'BACKEND_UNAVAILABLE', message: 'down' },
      });
      throw new UnrecoverableError('BACKEND_UNAVAILABLE: down');
    });
    await w.queues
      .queue('tensorflow')
      .add('infer' as never, testSpec({ model: 'both', imageKey: 'k' }), { jobId: id });
    const started = Date.now();
    // Found finished on onnx, not by an event: no result is carried, the caller reads the job.
    expect(await following).toEqual({ backend: 'onnx' });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect((await w.queues.get('onnx', id))?.state).toBe('completed');
  });

  it('a wait on one queue is not ended by the same job id finishing in another', async () => {
    world = await createWorld();
    const id = randomUUID();
    // The wait under test ends only when the test says so, so the job is sure to finish (and its
    // event to arrive) while it is still pending, however slow the machine.
    const stop = new AbortController();
    let settled = false;
    const waiting = world.waiter
      .wait(INFERENCE_QUEUES.tensorflow, id, 20_000, stop.signal)
      .finally(() => {
        settled = true;
      });
    // A wait on the queue the job really is in: it ends when the waiter has been handed the
    // job's completion event.
    const seen = world.waiter.wait(INFERENCE_QUEUES.onnx, id, 20_000);
    await world.startWorker('onnx', async () => result);
    await world.queues.add('onnx', id, testSpec({ model: 'both', imageKey: 'k' }));
    expect(await seen).toEqual({ via: 'completed', returnvalue: result });
    // The waiter hands an event to its waiters in one call: had the onnx event ended the other
    // wait too, that wait's `finally` would have run by the end of this Redis round trip.
    expect((await world.queues.get('onnx', id))?.state).toBe('completed');
    expect(settled).toBe(false);
    stop.abort();
    expect(await waiting).toBeUndefined();
  });

  it('gives up when the time runs out, wherever the job is', async () => {
    world = await createWorld();
    const id = randomUUID();
    await world.records.create({
      id,
      spec: testSpec({ model: 'both', requestId: 'r' }),
      backend: 'tensorflow',
      createdAt: Date.now(),
    });
    const started = Date.now();
    expect(await followJob(world, id, 'tensorflow', 300)).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});

describe('the job event stream across a move', () => {
  it('says `moved` when the job goes on to another backend, and ends with its result there', async () => {
    world = await createWorld();
    const w = world;
    await w.reportWorker('onnx');
    const id = await w.submit('both');
    const reader = new JobReader(w.records, w.queues, new WebhookDeliveries(w.redis, w.records));
    const streams = new JobEventStreams({
      watch: (jobId, watcher) => w.waiter.watch(jobId, watcher),
      read: (jobId, owner) => reader.read(jobId, owner),
    });
    const opened = await streams.open(id, ANONYMOUS_OWNER, undefined, silent);
    if (opened.kind !== 'open') throw new Error(`stream not opened: ${opened.kind}`);
    const events: EventSourceMessage[] = [];
    const parser = createParser({ onEvent: (event) => events.push(event) });
    opened.body.setEncoding('utf8').on('data', (text: string) => parser.feed(text));
    const ended = new Promise((resolve) => opened.body.once('end', resolve));

    await startFailingTfWorker(w);
    const moved = await eventually(() => events.find((e) => e.event === 'moved'), 10_000);
    expect(JSON.parse(moved.data)).toMatchObject({
      id,
      backend: 'onnx',
      status: 'queued',
      route: [
        { backend: 'tensorflow', error: { code: 'BACKEND_UNAVAILABLE' } },
        { backend: 'onnx', error: null },
      ],
    });
    expect(moved.id).toBe('2.0.queued');

    await w.startWorker('onnx', async () => result);
    await ended;
    expect(events[0]).toMatchObject({ event: 'queued', id: '1.0.queued' });
    expect(events.at(-1)).toMatchObject({ event: 'succeeded', id: '2.succeeded' });
    expect(JSON.parse(events.at(-1)!.data)).toMatchObject({
      backend: 'onnx',
      result: result.result,
    });
    await eventually(() => w.waiter.watching === 0 || undefined, 5_000);
  });
});
