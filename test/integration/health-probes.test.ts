import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import { type InProcessWorker, startInProcessWorker } from '../support/in-process-worker.js';

let stack: InProcessWorker;
let api: TestApi;

beforeAll(async () => {
  stack = await startInProcessWorker();
  api = await buildTestApi(stack.config, { registry: stack.registry });
});

afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

describe('health probes under a flood', () => {
  it('share one storage check and one Redis ping (regression: one S3 HeadBucket per unauthenticated GET /health)', async () => {
    const storage = vi.spyOn(api.store, 'ping');
    const redis = vi.spyOn(api.redis, 'ping');
    const answers = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        api.app.inject({ url: i % 2 === 0 ? '/health' : '/health/ready' }),
      ),
    );
    for (const [i, res] of answers.entries()) {
      expect(res.json()).toMatchObject(
        i % 2 === 0 ? { services: { redis: 'up', storage: 'up' } } : { redis: 'up', storage: 'up' },
      );
    }
    // Storage (s3rver here) is asked once, however many probes came at once.
    expect(storage).toHaveBeenCalledTimes(1);
    expect(redis).toHaveBeenCalledTimes(1);
  });
});
