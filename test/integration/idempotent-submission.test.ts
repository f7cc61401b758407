import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobResource } from '../../shared/jobs/job-resource.js';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import { type InProcessWorker, startInProcessWorker } from '../support/in-process-worker.js';
import { solidPng } from '../support/inference-stack.js';
import { TcpProxy } from '../support/tcp-proxy.js';

let stack: InProcessWorker;
let api: TestApi;
let redis: Redis;
let image: Buffer;

beforeAll(async () => {
  stack = await startInProcessWorker();
  api = await buildTestApi(stack.config, { registry: stack.registry });
  redis = new Redis(stack.services.redisUrl);
  image = await solidPng([0, 255, 0]);
});

afterAll(async () => {
  redis?.disconnect();
  await api?.close();
  await stack?.stop();
});

const submit = (key: string) =>
  api.app.inject({
    method: 'POST',
    url: '/jobs?model=colour',
    payload: image,
    headers: { 'content-type': 'image/png', 'idempotency-key': key },
  });

describe('a retry with the Idempotency-Key of a request that died before committing it', () => {
  it('answers the job that request made, at once, instead of 409 until the key lapses', async () => {
    const key = `died-${stack.config.redis.prefix}`;
    const first = await submit(key);
    expect(first.statusCode).toBe(202);
    const job = first.json<JobResource>();
    // The API that made the job died between making it and committing the key: the claim is left
    // pending, as a crash or a Redis outage at that moment leaves it.
    const claim = `${stack.config.redis.prefix}:idempotency:anonymous:${createHash('sha256').update(key).digest('hex')}`;
    expect(await redis.hget(claim, 'job_id')).toBe(job.id);
    await redis.hset(claim, 'state', 'pending');

    const started = Date.now();
    const retry = await submit(key);
    expect(retry.statusCode).toBe(202);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(retry.json<JobResource>().id).toBe(job.id);
    // Not after the wait for a live claimant (10 s): the job's record says it exists.
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

describe('regression: a claim whose answer was lost (Redis went away as it ran)', () => {
  it('is released, so a retry with the key makes the job instead of waiting out the claim', async () => {
    // A second API whose Redis connections pass a proxy that can lose an answer.
    const proxy = await TcpProxy.start(stack.services.redisUrl);
    const config = {
      ...stack.config,
      redis: {
        ...stack.config.redis,
        url: `redis://127.0.0.1:${proxy.port}`,
        // The lost answer is a timed-out command within half a second.
        commandTimeoutMs: 500,
      },
    };
    const lossy = await buildTestApi(config, { registry: stack.registry });
    try {
      const key = `lost-${stack.config.redis.prefix}`;
      const send = () =>
        lossy.app.inject({
          method: 'POST',
          url: '/jobs?model=colour',
          payload: image,
          headers: { 'content-type': 'image/png', 'idempotency-key': key },
        });
      // The claim is the first command that names the key's hash; it runs, its answer is lost.
      const lost = proxy.loseAnswerTo(createHash('sha256').update(key).digest('hex'), 1000);
      const first = await send();
      expect(first.statusCode).toBe(503);
      expect(first.json()).toMatchObject({ code: 'QUEUE_UNAVAILABLE' });
      await lost;

      // The client retries as the 503 invites it to, while the API reconnects.
      const started = Date.now();
      let retry = await send();
      while (retry.statusCode === 503 && Date.now() - started < 5000) retry = await send();
      // Not 409 IDEMPOTENCY_KEY_IN_USE after 10 s of waiting for a claimant that is gone, nor
      // for the claim's 60 s lease: the claim was released once Redis answered again.
      expect(retry.statusCode).toBe(202);
      expect(Date.now() - started).toBeLessThan(5000);
      expect(await redis.hget(claimKey(key), 'state')).toBe('committed');
      expect(await redis.hget(claimKey(key), 'job_id')).toBe(retry.json<JobResource>().id);
    } finally {
      await lossy.close();
      await proxy.close();
    }
  });
});

function claimKey(key: string): string {
  return `${stack.config.redis.prefix}:idempotency:anonymous:${createHash('sha256').update(key).digest('hex')}`;
}
