import { rm } from 'node:fs/promises';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../shared/config/config.js';
import { ModelRegistry } from '../../shared/models/registry.js';
import { OnnxRuntimeBackend } from '../../workers/backends/onnx-runtime.backend.js';
import { InferenceWorker } from '../../workers/inference-worker.js';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import {
  createModelRepository,
  eventually,
  registryDocument,
  solidPng,
  testConfig,
} from '../support/inference-stack.js';
import { cleanRedisPrefix, uniquePrefix } from '../support/services.js';
import { sharedServices } from '../support/shared-services.js';

const MAX_WAITING = 3;

const services = sharedServices();
let repository: string;
let prefix: string;
let config: Config;
let worker: InferenceWorker;
const apps: TestApi[] = [];
const registry = ModelRegistry.fromDocument(registryDocument());
let image: Buffer;

beforeAll(async () => {
  repository = await createModelRepository();
  prefix = uniquePrefix();
  config = testConfig(
    services,
    { prefix, bucket: uniquePrefix(), modelRepository: repository },
    { QUEUE_MAX_WAITING: String(MAX_WAITING), SYNC_WAIT_SECONDS: '10' },
  );
  worker = await InferenceWorker.start({
    config,
    registry,
    backend: new OnnxRuntimeBackend({ repository }),
    logger: pino({ level: 'silent' }),
  });
  image = await solidPng([0, 255, 0]);
});

afterAll(async () => {
  await Promise.allSettled(apps.map((a) => a.close()));
  await worker?.close();
  if (prefix) await cleanRedisPrefix(services.redisUrl, prefix);
  if (repository) await rm(repository, { recursive: true, force: true });
});

async function api(appConfig: Config): Promise<TestApi> {
  const built = await buildTestApi(appConfig, { registry });
  apps.push(built);
  return built;
}

const submit = (target: TestApi, url = '/jobs?model=colour') =>
  target.app.inject({
    method: 'POST',
    url,
    payload: image,
    headers: { 'content-type': 'image/png' },
  });

describe('admission control: a full queue', () => {
  it('takes QUEUE_MAX_WAITING jobs while no worker takes any, refuses the rest with 503 QUEUE_FULL, and takes work again once the queue drains', async () => {
    const target = await api(config);
    const queue = target.queues.queue('onnx');
    // A stopped worker: the queue is paused, so jobs wait.
    await queue.pause();
    try {
      const answers = await Promise.all(Array.from({ length: 12 }, () => submit(target)));
      const accepted = answers.filter((r) => r.statusCode === 202);
      const refused = answers.filter((r) => r.statusCode === 503);
      expect(accepted).toHaveLength(MAX_WAITING);
      expect(refused).toHaveLength(12 - MAX_WAITING);
      for (const res of refused) {
        expect(res.json()).toMatchObject({ code: 'QUEUE_FULL', status: 503 });
        expect(res.json().detail).toMatch(/^The inference-onnx queue is full \(\d+ jobs waiting/);
        expect(res.headers['retry-after']).toBe('5');
      }
      const waiting = () => queue.getJobCountByTypes('waiting', 'prioritized', 'delayed');
      expect(await waiting()).toBe(MAX_WAITING);

      // Once counted from Redis, the limit holds for sync requests too, before the upload is read.
      await target.statusCache.refresh();
      const sync = await submit(target, '/predict/colour');
      expect(sync.statusCode).toBe(503);
      expect(sync.json()).toMatchObject({ code: 'QUEUE_FULL' });
      expect((await target.app.inject({ url: '/health/live' })).statusCode).toBe(200);
    } finally {
      await queue.resume();
    }

    await eventually(async () =>
      (await queue.getJobCountByTypes('waiting', 'prioritized', 'delayed')) === 0
        ? true
        : undefined,
    );
    await target.statusCache.refresh();
    const again = await submit(target);
    expect(again.statusCode).toBe(202);
  });

  it('QUEUE_MAX_WAITING=0 means no limit', async () => {
    const unlimited = testConfig(
      services,
      { prefix, bucket: config.storage.bucket, modelRepository: repository },
      { QUEUE_MAX_WAITING: '0' },
    );
    const target = await api(unlimited);
    const queue = target.queues.queue('onnx');
    await queue.pause();
    try {
      const answers = await Promise.all(Array.from({ length: 8 }, () => submit(target)));
      expect(answers.map((r) => r.statusCode)).toEqual(Array(8).fill(202));
    } finally {
      await queue.resume();
    }
  });
});

describe('load shedding under pressure', () => {
  it('answers 503 OVERLOADED while the event loop lags, still serves health probes, and recovers', async () => {
    const pressured = testConfig(
      services,
      { prefix, bucket: config.storage.bucket, modelRepository: repository },
      { MAX_EVENT_LOOP_DELAY_MS: '5' },
    );
    const target = await api(pressured);
    await eventually(() => (target.app.memoryUsage().eventLoopDelay < 5 ? true : undefined));

    // Block the event loop well past one sampling interval, let the sampler see it, then ask. The
    // sampler reads and resets its histogram on its own timer: the lag may show one interval
    // (500 ms) late, and a new sample may clear it between our read and the request. So the whole
    // step is tried again until a request meets a lagging sample.
    const shed = await eventually(
      async () => {
        const until = Date.now() + 1_000;
        while (Date.now() < until) {
          // busy
        }
        await eventually(
          () => (target.app.memoryUsage().eventLoopDelay > 5 ? true : undefined),
          2_000,
          'the sampler to see the lag',
        );
        const answer = await target.app.inject({ url: '/models' });
        return answer.statusCode === 503 ? answer : undefined;
      },
      15_000,
      'a request shed while the event loop lags',
    );
    expect(shed.statusCode).toBe(503);
    expect(shed.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(shed.json()).toMatchObject({ code: 'OVERLOADED', status: 503 });
    expect(shed.json().detail).toMatch(/event loop (lags \d+ ms|blocked)/);
    expect(shed.headers['retry-after']).toBe('2');
    expect((await target.app.inject({ url: '/health/live' })).statusCode).toBe(200);
    expect((await target.app.inject({ url: '/metrics' })).statusCode).toBe(200);

    await eventually(
      async () =>
        (await target.app.inject({ url: '/models' })).statusCode === 200 ? true : undefined,
      10_000,
      'recovery',
    );
  });
});
