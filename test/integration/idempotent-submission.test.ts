import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobResource } from '../../shared/jobs/job-resource.js';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import { type InProcessWorker, startInProcessWorker } from '../support/in-process-worker.js';
import { solidPng } from '../support/inference-stack.js';

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
