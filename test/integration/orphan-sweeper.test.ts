import { randomUUID } from 'node:crypto';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { OrphanSweeper } from '../../api/jobs/orphan-sweeper.js';
import { BackendStatusCache } from '../../api/routing/backend-status-cache.js';
import { JobForwarder } from '../../shared/jobs/job-forwarder.js';
import { JobLifecycle } from '../../shared/jobs/job-lifecycle.js';
import { JobReader } from '../../shared/jobs/job-reader.js';
import type { JobSpec } from '../../shared/jobs/job-spec.js';
import { WebhookDeliveries } from '../../shared/jobs/webhook-deliveries.js';
import { ModelRegistry } from '../../shared/models/registry.js';
import { FairScheduler } from '../../shared/queues/fair-scheduler.js';
import { INFERENCE_QUEUES, QueueName } from '../../shared/queues/index.js';
import { UsageLedger } from '../../shared/usage/usage-ledger.js';
import { WebhookQueue } from '../../shared/webhooks/webhook-queue.js';
import { eventually } from '../support/inference-stack.js';
import { testSpec } from '../support/job-spec.js';
import { addAsyncJob, createJobWorld, type JobWorld } from '../support/job-world.js';
import { sharedServices } from '../support/shared-services.js';

const AFTER_MS = 60_000;
const LOCK_MS = 1000;
const WEBHOOK = { url: 'https://hooks.example/done', events: ['completed' as const] };
/** The fair scheduler's window: async jobs beyond it wait parked. */
const WINDOW = 4;
const registry = ModelRegistry.fromDocument({
  models: {
    both: { task: 'raw', backends: { tensorflow: {}, onnx: {} }, input: { width: 8, height: 8 } },
    tf_only: { task: 'raw', backends: { tensorflow: {} }, input: { width: 8, height: 8 } },
  },
});
const silent = pino({ level: 'silent' });

const services = sharedServices();
let world: World | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

interface World extends JobWorld {
  reader: JobReader;
  /** A sweeper as an API process runs it (each call: another process). */
  sweeper(): Promise<OrphanSweeper>;
  /** Queues an async job with a webhook for TF Serving, with its record, as the API does. */
  submitAsync(model: string, data?: Partial<JobSpec>): Promise<string>;
  /** Queues an async job for TF Serving as the API does now: parked for its fair turn. */
  submitParked(model: string): Promise<string>;
  webhooksQueued(): Promise<number>;
}

async function createWorld(): Promise<World> {
  const base = await createJobWorld(services, {
    registry,
    env: {
      // A dead worker's job is noticed within seconds.
      WORKER_LOCK_DURATION_MS: String(LOCK_MS),
      WORKER_STALLED_INTERVAL_MS: '1000',
    },
  });
  const { config, redis, queues, records, status } = base;
  const webhooks = new WebhookQueue(redis, config.redis.prefix, config);
  base.onClose(() => webhooks.close());
  const scheduler = new FairScheduler(redis, config.redis.prefix, queues, { window: WINDOW });
  return {
    ...base,
    reader: new JobReader(records, queues, new WebhookDeliveries(redis, records)),
    async sweeper() {
      const cache = new BackendStatusCache({ store: status, intervalMs: 60_000, logger: silent });
      await cache.refresh();
      const sweeper = new OrphanSweeper({
        redis,
        config,
        queues,
        status: cache,
        forwarder: new JobForwarder({ registry, records, queues, status }),
        lifecycle: new JobLifecycle(
          redis,
          records,
          new UsageLedger(redis, config.redis.prefix, { retentionDays: 1 }),
        ),
        webhooks,
        scheduler,
        logger: silent,
        afterMs: AFTER_MS,
      });
      base.onClose(() => sweeper.stop());
      return sweeper;
    },
    submitAsync(model, data = {}) {
      return base.submit(model, { webhook: WEBHOOK, ...data });
    },
    async submitParked(model) {
      const id = randomUUID();
      const owner = 'tenant';
      await records.create({
        id,
        spec: testSpec({ model, requestId: 'test', owner, mode: 'async', priority: 5 }),
        backend: 'tensorflow',
        createdAt: Date.now(),
      });
      const data: JobSpec = {
        model,
        imageKey: 'images/none',
        params: {},
        requestId: 'test',
        mode: 'async',
        owner,
      };
      await addAsyncJob(queues, scheduler, 'tensorflow', { id, owner, priority: 5, data });
      return id;
    },
    async webhooksQueued() {
      const queue = new Queue(QueueName.Webhooks, {
        connection: redis,
        prefix: config.redis.prefix,
      });
      try {
        return await queue.count();
      } finally {
        await queue.close();
      }
    },
  };
}

/** Sweeps twice, `AFTER_MS` apart: the first pass only notes that the backend has no worker. */
async function sweepAfterTimeout(sweeper: OrphanSweeper): Promise<number> {
  const now = Date.now();
  expect(await sweeper.sweep(now)).toBe(0);
  return sweeper.sweep(now + AFTER_MS);
}

describe('orphaned jobs: queued for a backend whose last worker is gone', () => {
  it('wait while the backend has had no worker for less than the timeout', async () => {
    world = await createWorld();
    const id = await world.submitAsync('tf_only');
    const sweeper = await world.sweeper();
    const now = Date.now();
    expect(await sweeper.sweep(now)).toBe(0);
    expect(await sweeper.sweep(now + AFTER_MS - 1)).toBe(0);
    expect(await world.queues.queue('tensorflow').getJobState(id)).toBe('waiting');
  });

  it('are left alone while a worker of the backend reports', async () => {
    world = await createWorld();
    await world.reportWorker('tensorflow');
    const id = await world.submitAsync('tf_only');
    expect(await sweepAfterTimeout(await world.sweeper())).toBe(0);
    expect(await world.queues.queue('tensorflow').getJobState(id)).toBe('waiting');
  });

  it('move to another backend that serves their model, and run there', async () => {
    world = await createWorld();
    await world.reportWorker('onnx');
    const id = await world.submitAsync('both');
    expect(await sweepAfterTimeout(await world.sweeper())).toBe(1);

    expect(await world.queues.queue('onnx').getJobState(id)).toBe('waiting');
    const record = await world.records.get(id);
    expect(record?.backend).toBe('onnx');
    expect(record?.route.map((step) => [step.backend, step.error?.code])).toEqual([
      ['tensorflow', 'BACKEND_UNAVAILABLE'],
      ['onnx', undefined],
    ]);
    const job = await world.reader.read(id);
    expect(job).toMatchObject({ status: 'queued', backend: 'onnx' });
  });

  it('fail BACKEND_UNAVAILABLE with their webhook when no other backend can take them', async () => {
    world = await createWorld();
    await world.reportWorker('onnx');
    const only = await world.submitAsync('tf_only');
    // The client chose TF Serving: the job does not move, though ONNX serves the model.
    const pinned = await world.submitAsync('both', { pinned: true });
    expect(await sweepAfterTimeout(await world.sweeper())).toBe(2);

    for (const id of [only, pinned]) {
      const job = await world.reader.read(id);
      expect(job).toMatchObject({ status: 'failed', backend: 'tensorflow' });
      expect(job?.error?.code).toBe('BACKEND_UNAVAILABLE');
      expect(job?.error?.message).toMatch(/no tensorflow worker has been running for 60 s/);
    }
    expect(await world.webhooksQueued()).toBe(2);
  });

  it('include the jobs the last worker held when it died, once their locks run out', async () => {
    world = await createWorld();
    await world.reportWorker('onnx');
    const id = await world.submitAsync('both');
    // A worker takes the job and dies with it: its lock is never renewed or released.
    const connection = new Redis(services.redisUrl, { maxRetriesPerRequest: null });
    const dead = new Worker(INFERENCE_QUEUES.tensorflow, null, {
      connection,
      prefix: world.config.redis.prefix,
      autorun: false,
      lockDuration: LOCK_MS,
    });
    expect((await dead.getNextJob('dead-worker', { block: false }))?.id).toBe(id);
    await dead.close(true);
    connection.disconnect();

    const sweeper = await world.sweeper();
    const now = Date.now();
    await sweeper.sweep(now);
    await eventually(
      async () => ((await sweeper.sweep(now + AFTER_MS)) === 1 ? true : undefined),
      15_000,
      "the dead worker's job swept",
    );
    expect(await world.queues.queue('onnx').getJobState(id)).toBe('waiting');
    expect((await world.records.get(id))?.backend).toBe('onnx');
  });

  it('include async jobs parked for their fair turn, beyond the window', async () => {
    world = await createWorld();
    await world.reportWorker('onnx');
    const ids: string[] = [];
    for (let i = 0; i < 3 * WINDOW; i++) ids.push(await world.submitParked('both'));
    const tensorflow = world.queues.queue('tensorflow');
    expect(await tensorflow.getJobCounts('prioritized', 'delayed')).toEqual({
      prioritized: WINDOW,
      delayed: 2 * WINDOW,
    });
    expect(await sweepAfterTimeout(await world.sweeper())).toBe(3 * WINDOW);
    const onnx = world.queues.queue('onnx');
    expect(await Promise.all(ids.map((id) => onnx.getJobState(id)))).toEqual(
      Array(3 * WINDOW).fill('prioritized'),
    );
  });

  it('are swept once when several API processes sweep at the same time', async () => {
    world = await createWorld();
    await world.reportWorker('onnx');
    const ids = await Promise.all(Array.from({ length: 20 }, () => world!.submitAsync('both')));
    const sweepers = await Promise.all([world.sweeper(), world.sweeper(), world.sweeper()]);
    const now = Date.now();
    for (const sweeper of sweepers) expect(await sweeper.sweep(now)).toBe(0);
    const handled = await Promise.all(sweepers.map((s) => s.sweep(now + AFTER_MS)));
    expect(handled.reduce((a, b) => a + b, 0)).toBe(20);
    expect(handled.filter((n) => n > 0)).toHaveLength(1);
    const onnx = world.queues.queue('onnx');
    expect(await Promise.all(ids.map((id) => onnx.getJobState(id)))).toEqual(
      Array(20).fill('waiting'),
    );
  });

  it('regression: a backend never deployed (its queue empty) gets no taker and no Redis connection; one is made for jobs and closed when they are gone', async () => {
    world = await createWorld();
    await world.reportWorker('onnx');
    const tensorflow = world.queues.queue('tensorflow');
    const sweeper = await world.sweeper();
    const now = Date.now();
    expect(await sweeper.sweep(now)).toBe(0);
    expect(await sweeper.sweep(now + AFTER_MS)).toBe(0);
    // Swept again and again, as the API's timer does: still nothing held for TF Serving.
    expect(await sweeper.sweep(now + 2 * AFTER_MS)).toBe(0);
    expect(sweeper.takingFrom).toEqual([]);
    expect(await tensorflow.getWorkersCount()).toBe(0);

    // Orphaned jobs are still swept: a taker comes for them, and goes once the queue is empty.
    const id = await world.submitAsync('both');
    expect(await sweeper.sweep(now + 3 * AFTER_MS)).toBe(1);
    expect(await world.queues.queue('onnx').getJobState(id)).toBe('waiting');
    expect(sweeper.takingFrom).toEqual(['tensorflow']);
    expect(await tensorflow.getWorkersCount()).toBe(1);
    expect(await sweeper.sweep(now + 4 * AFTER_MS)).toBe(0);
    expect(sweeper.takingFrom).toEqual([]);
    expect(await tensorflow.getWorkersCount()).toBe(0);
  });
});
