import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../shared/config/config.js';
import { AddConnection } from '../../shared/queues/add-connection.js';
import { FairScheduler } from '../../shared/queues/fair-scheduler.js';
import { InferenceQueues } from '../../shared/queues/inference-queues.js';
import { redisOptions, waitForRedis } from '../../shared/redis/redis.js';
import { testSpec } from '../support/job-spec.js';
import { cleanRedisPrefix, uniquePrefix } from '../support/services.js';
import { sharedServices } from '../support/shared-services.js';

const services = sharedServices();
const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function connect(prefix: string) {
  const config = loadConfig({ REDIS_URL: services.redisUrl, REDIS_PREFIX: prefix });
  const redis = new Redis(services.redisUrl, redisOptions(config.redis, 'command'));
  await waitForRedis(redis, 5_000);
  closers.push(async () => {
    await cleanRedisPrefix(services.redisUrl, prefix);
    redis.disconnect();
  });
  return { redis, config };
}

const data = testSpec({ requestId: 'test', mode: 'async', owner: 'k' });

describe('the connection jobs are added on', () => {
  it('adds a job of each kind (waiting, prioritized, parked and admitted) in its MULTI', async () => {
    const prefix = uniquePrefix();
    const { redis, config } = await connect(prefix);
    const queues = new InferenceQueues(redis, { prefix, jobs: config.jobs });
    closers.push(() => queues.close());
    const scheduler = new FairScheduler(redis, prefix, queues, { window: 1 });
    const [waiting, prioritized, parked] = [randomUUID(), randomUUID(), randomUUID()];

    await queues.addAtomically('onnx', waiting, data, {}, (t) => t.set(`${prefix}:beside`, 'x'));
    await queues.addAtomically('onnx', prioritized, data, { priority: 3 }, () => undefined);
    const admitted = await queues.addAtomically(
      'onnx',
      parked,
      data,
      FairScheduler.parked(5),
      () => undefined,
      (t) => scheduler.stageAdmit(t, 'onnx', { id: parked, owner: 'k', priority: 5 }),
    );

    const queue = queues.queue('onnx');
    expect(await queue.getJobState(waiting)).toBe('waiting');
    expect(await redis.get(`${prefix}:beside`)).toBe('x');
    expect(await queue.getJobState(prioritized)).toBe('prioritized');
    expect(await queue.getJobState(parked)).toBe('delayed');
    // The window (1) is full with the prioritized job: the admission claimed nothing.
    expect(admitted.afterReply).toEqual([]);
    expect(await scheduler.pendingCount('onnx', 'k')).toBe(1);
  });

  it('copies only the scripts an add runs onto each MULTI, not the 60-odd BullMQ defines (regression: 0.2 ms of CPU per MULTI)', async () => {
    const prefix = uniquePrefix();
    const { redis } = await connect(prefix);
    // The way BullMQ's queues leave the shared connection: every script of theirs defined on it.
    for (let i = 0; i < 60; i++) {
      redis.defineCommand(`someScript${i}:1.0.0`, { lua: 'return 1', numberOfKeys: 0 });
    }
    const adds = new AddConnection(redis);
    closers.push(() => adds.close());

    const transaction = await adds.multi();
    const scripts = Object.keys(transaction).filter(
      (name) => typeof (transaction as unknown as Record<string, unknown>)[name] === 'function',
    );
    expect(scripts.filter((name) => name.includes(':') && !name.endsWith('Buffer')).sort()).toEqual(
      ['addDelayedJob', 'addPrioritizedJob', 'addStandardJob'].map((n) =>
        expect.stringMatching(new RegExp(`^${n}:`)),
      ),
    );
    expect(scripts).toContain('fairAdmit');
    expect(scripts.some((name) => name.startsWith('someScript'))).toBe(false);
    // Never executed: nothing is sent.
  });

  it('adds nothing while the connection it duplicates is not ready', async () => {
    const prefix = uniquePrefix();
    const { redis } = await connect(prefix);
    const adds = new AddConnection(redis);
    closers.push(() => adds.close());
    await adds.multi();

    const ended = once(redis, 'end');
    redis.disconnect();
    await ended;

    await expect(adds.multi()).rejects.toThrow(/Redis connection is end/);
  });
});
