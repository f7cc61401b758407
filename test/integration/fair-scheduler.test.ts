import { randomUUID } from 'node:crypto';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { JobLifecycle } from '../../shared/jobs/job-lifecycle.js';
import type { JobSpec } from '../../shared/jobs/job-spec.js';
import { FairScheduler } from '../../shared/queues/fair-scheduler.js';
import { INFERENCE_QUEUES } from '../../shared/queues/index.js';
import { InferenceQueues } from '../../shared/queues/inference-queues.js';
import { waitForRedis } from '../../shared/redis/redis.js';
import { UsageLedger } from '../../shared/usage/usage-ledger.js';
import { testSpec } from '../support/job-spec.js';
import { addAsyncJob, createJobWorld, type JobWorld } from '../support/job-world.js';
import { sharedServices } from '../support/shared-services.js';

const BACKEND = 'onnx';

const services = sharedServices();
let world: World | undefined;

afterEach(async () => {
  await world?.close();
  world = undefined;
});

interface Taken {
  id: string;
  owner: string;
  priority: number;
}

interface World extends JobWorld {
  prefix: string;
  scheduler: FairScheduler;
  /** Another API process's scheduler, on its own connection. */
  otherScheduler(): Promise<FairScheduler>;
  /** Adds an async job as the API does; answers its id. */
  add(owner: string, priority?: number, options?: { dispatch?: boolean }): Promise<string>;
  /** A worker takes the next job, finishes it, and refills the window as real workers do. */
  take(): Promise<Taken | undefined>;
  takeAll(): Promise<Taken[]>;
  counts(): Promise<{ prioritized: number; delayed: number }>;
}

async function createWorld(
  // The two processes of a test share the window and weights.
  options: { window: number; weights?: Record<string, number> },
): Promise<World> {
  const base = await createJobWorld(services);
  const { config, redis, queues } = base;
  const prefix = config.redis.prefix;
  const schedulerOn = (client: Redis, q: InferenceQueues) =>
    new FairScheduler(client, prefix, q, {
      window: options.window,
      weightOf: (owner) => options.weights?.[owner] ?? 1,
    });
  const scheduler = schedulerOn(redis, queues);
  const taker = new Worker(INFERENCE_QUEUES[BACKEND], null, {
    connection: base.connect('blocking'),
    prefix,
    autorun: false,
  });
  base.onClose(() => taker.close());
  const take = async (): Promise<Taken | undefined> => {
    const token = randomUUID();
    const job = await taker.getNextJob(token, { block: false });
    if (!job) return undefined;
    await scheduler.refill(BACKEND);
    await job.moveToCompleted('done', token, false);
    const data = job.data as JobSpec;
    return { id: job.id!, owner: data.owner!, priority: job.opts.priority! };
  };
  return {
    ...base,
    prefix,
    scheduler,
    async otherScheduler() {
      const client = base.connect('command');
      await waitForRedis(client, 5_000);
      const q = new InferenceQueues(client, { prefix, jobs: config.jobs });
      base.onClose(() => q.close());
      return schedulerOn(client, q);
    },
    async add(owner, priority = 5, addOptions = {}) {
      const id = randomUUID();
      const data: JobSpec = {
        model: 'm',
        imageKey: 'images/none',
        params: {},
        requestId: 'test',
        mode: 'async',
        owner,
      };
      await addAsyncJob(queues, scheduler, BACKEND, { id, owner, priority, data }, addOptions);
      return id;
    },
    take,
    async takeAll() {
      const taken: Taken[] = [];
      for (let job = await take(); job; job = await take()) taken.push(job);
      return taken;
    },
    async counts() {
      const counts = await queues.queue(BACKEND).getJobCounts('prioritized', 'delayed');
      return { prioritized: counts.prioritized ?? 0, delayed: counts.delayed ?? 0 };
    },
  };
}

describe('fair scheduler: the window', () => {
  it('lets a lone job on an idle system run at once, without waiting for a refill', async () => {
    world = await createWorld({ window: 4 });
    const id = await world.add('a');
    expect(await world.queues.queue(BACKEND).getJobState(id)).toBe('prioritized');
  });

  it('keeps at most the window runnable; the rest wait parked (queued, counted as delayed)', async () => {
    world = await createWorld({ window: 4 });
    for (let i = 0; i < 10; i++) await world.add('a');
    expect(await world.counts()).toEqual({ prioritized: 4, delayed: 6 });
    expect(await world.scheduler.pendingCount(BACKEND, 'a')).toBe(6);
    // Each job a worker takes lets the next one in.
    await world.take();
    expect(await world.counts()).toEqual({ prioritized: 4, delayed: 5 });
    expect(await world.takeAll()).toHaveLength(9);
    expect(await world.counts()).toEqual({ prioritized: 0, delayed: 0 });
  });
});

describe('fair scheduler: refills', () => {
  it('serves the refills asked for while one runs by one more after it (a worker taking four jobs at once)', async () => {
    world = await createWorld({ window: 4 });
    for (let i = 0; i < 10; i++) await world.add('a');
    const connection = new Redis(services.redisUrl, { maxRetriesPerRequest: null });
    const taker = new Worker(INFERENCE_QUEUES[BACKEND], null, {
      connection,
      prefix: world.prefix,
      autorun: false,
    });
    const tokens = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    const jobs = await Promise.all(tokens.map((t) => taker.getNextJob(t, { block: false })));
    expect(jobs.every(Boolean)).toBe(true);
    const claims = vi.spyOn(world.redis, 'fairRefill');

    const promoted = await Promise.all(tokens.map(() => world!.scheduler.refill(BACKEND)));

    // The first found room for four; the three asked for meanwhile ran as one, which found none.
    expect(claims).toHaveBeenCalledTimes(2);
    expect(promoted).toEqual([4, 0, 0, 0]);
    expect(await world.counts()).toEqual({ prioritized: 4, delayed: 2 });
    await taker.close();
    connection.disconnect();
  });
});

describe('fair scheduler: order', () => {
  it("orders one key's jobs by priority, then arrival", async () => {
    world = await createWorld({ window: 1 });
    const first = await world.add('a', 5);
    const fives = [await world.add('a', 5), await world.add('a', 5)];
    const tens = [await world.add('a', 10)];
    const ones = [await world.add('a', 1), await world.add('a', 1)];
    const taken = (await world.takeAll()).map((job) => job.id);
    // The first was runnable before the others arrived.
    expect(taken).toEqual([first, ...ones, ...fives, ...tens]);
  });

  it("serves a key that arrives behind another's backlog next, then takes turns", async () => {
    world = await createWorld({ window: 2 });
    for (let i = 0; i < 30; i++) await world.add('a');
    for (let i = 0; i < 5; i++) await world.add('b');
    const owners = (await world.takeAll()).map((job) => job.owner);
    // The window's two, then turn about: b's five are done within the first 2 + 10.
    expect(owners.slice(0, 12).join('')).toBe('aababababab' + 'a');
    expect(owners.lastIndexOf('b')).toBe(10);
  });

  it('gives two busy keys with weights 3 and 1 three jobs to one', async () => {
    world = await createWorld({ window: 2, weights: { heavy: 3 } });
    for (let i = 0; i < 40; i++) await world.add('light');
    for (let i = 0; i < 60; i++) await world.add('heavy');
    const owners = (await world.takeAll()).map((job) => job.owner);
    // After the window (light's first two): 3 heavy to 1 light while both are busy, every turn one
    // job; heavy, the newcomer, starts level with light's next turn, so it may lead by one.
    const busy = owners.slice(2, 2 + 80);
    expect(busy.filter((o) => o === 'heavy')).toHaveLength(60);
    expect(busy.filter((o) => o === 'light')).toHaveLength(20);
    for (let i = 0; i + 8 <= busy.length; i++) {
      const heavy = busy.slice(i, i + 8).filter((o) => o === 'heavy').length;
      expect(Math.abs(heavy - 6)).toBeLessThanOrEqual(1);
    }
  });

  it('gives a key that goes idle and comes back no credit for the time it was away', async () => {
    world = await createWorld({ window: 1 });
    for (let i = 0; i < 3; i++) await world.add('b');
    expect(await world.takeAll()).toHaveLength(3);
    for (let i = 0; i < 20; i++) await world.add('a');
    for (let i = 0; i < 6; i++) await world.take();
    // b was away while a ran alone: it comes back at the current virtual time, not ahead by the six
    // turns a had.
    for (let i = 0; i < 4; i++) await world.add('b');
    const owners = (await world.takeAll()).map((job) => job.owner);
    expect(owners.slice(0, 9).join('')).toBe('abababab' + 'a');
  });
});

describe('fair scheduler: atomic steps', () => {
  it('takes over the claims of a process that died between its claim and its promotion', async () => {
    world = await createWorld({ window: 2 });
    // Admitted and claimed, never promoted: the admitting process died.
    const stranded = [
      await world.add('a', 5, { dispatch: false }),
      await world.add('a', 5, { dispatch: false }),
    ];
    expect(await world.counts()).toEqual({ prioritized: 0, delayed: 2 });
    // The claims hold the window: nothing else is claimed, and fresh claims are not taken over.
    const third = await world.add('a', 5, { dispatch: false });
    expect(await world.scheduler.claim(BACKEND)).toEqual([]);
    expect(await world.counts()).toEqual({ prioritized: 0, delayed: 3 });
    // Once old enough, the next refill (any process's) promotes them.
    expect(await world.scheduler.refill(BACKEND, Date.now() + 5_001)).toBe(2);
    expect(await world.counts()).toEqual({ prioritized: 2, delayed: 1 });
    const taken = (await world.takeAll()).map((job) => job.id);
    expect(taken).toEqual([...stranded, third]);
  });

  it('promoting a claimed job twice is harmless (a slow claimer and its successor)', async () => {
    world = await createWorld({ window: 1 });
    const id = await world.add('a', 5, { dispatch: false });
    const other = await world.otherScheduler();
    expect(await other.refill(BACKEND, Date.now() + 5_001)).toBe(1);
    // The first claimer wakes up and promotes what it claimed: BullMQ refuses, nothing changes.
    expect(await world.scheduler.dispatch(BACKEND, [id])).toBe(0);
    expect(await world.counts()).toEqual({ prioritized: 1, delayed: 0 });
  });

  it('never overfills the window nor dispatches a job twice with two dispatchers at once', async () => {
    const window = 3;
    world = await createWorld({ window });
    const ids = new Set<string>();
    for (let i = 0; i < 40; i++) ids.add(await world.add(i % 2 ? 'a' : 'b'));
    const other = await world.otherScheduler();
    const taken: string[] = [];
    for (;;) {
      const job = await world.take();
      if (!job) break;
      taken.push(job.id);
      const claims = await Promise.all([
        world.scheduler.claim(BACKEND),
        other.claim(BACKEND),
        world.scheduler.claim(BACKEND),
      ]);
      const flat = claims.flat();
      expect(new Set(flat).size).toBe(flat.length);
      await Promise.all([
        world.scheduler.dispatch(BACKEND, claims[0]!),
        other.dispatch(BACKEND, claims[1]!),
        world.scheduler.dispatch(BACKEND, claims[2]!),
      ]);
      expect((await world.counts()).prioritized).toBeLessThanOrEqual(window);
    }
    expect(taken).toHaveLength(40);
    expect(new Set(taken)).toEqual(ids);
  });

  it('skips a canceled pending job without spending its key’s turn', async () => {
    world = await createWorld({ window: 1 });
    const a = [];
    for (let i = 0; i < 4; i++) a.push(await world.add('a'));
    const b = [await world.add('b'), await world.add('b')];
    // Canceled as the API does (removed from BullMQ, then from the pending set) and one removed
    // from BullMQ only (the API died before forgetting it): both are skipped.
    const queue = world.queues.queue(BACKEND);
    expect(await queue.remove(a[1]!)).toBe(1);
    await world.scheduler.forget(BACKEND, 'a', a[1]!);
    expect(await queue.remove(a[2]!)).toBe(1);
    const taken = (await world.takeAll()).map((job) => job.id);
    expect(taken).toEqual([a[0], b[0], a[3], b[1]]);
  });

  it('lets a job whose deadline passed while it waited for its turn fail without running', async () => {
    world = await createWorld({ window: 1 });
    const lifecycle = new JobLifecycle(
      world.redis,
      world.records,
      new UsageLedger(world.redis, world.prefix, { retentionDays: 1 }),
    );
    const first = await world.add('a');
    const late = randomUUID();
    const deadline = Date.now() + 50;
    await world.records.create({
      id: late,
      spec: testSpec({
        model: 'm',
        requestId: 'test',
        owner: 'a',
        mode: 'async',
        priority: 5,
        deadline,
      }),
      backend: BACKEND,
      createdAt: Date.now(),
    });
    await addAsyncJob(world.queues, world.scheduler, BACKEND, {
      id: late,
      owner: 'a',
      priority: 5,
      data: {
        model: 'm',
        imageKey: 'images/none',
        params: {},
        requestId: 'test',
        mode: 'async',
        owner: 'a',
        deadline,
      },
    });
    expect(await world.queues.queue(BACKEND).getJobState(late)).toBe('delayed');
    expect((await world.take())?.id).toBe(first);
    // Its turn comes after the deadline: the worker's start step refuses it.
    const taken = await world.take();
    expect(taken?.id).toBe(late);
    expect(await lifecycle.begin(late, { deadline }, deadline + 1)).toEqual({ kind: 'late' });
  });
});
