import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendStatusStore, type WorkerReport } from '../../shared/backends/backend-status.js';
import { cleanRedisPrefix, uniquePrefix } from '../support/services.js';
import { sharedServices } from '../support/shared-services.js';

const services = sharedServices();
let redis: Redis;
const prefix = uniquePrefix();

beforeAll(async () => {
  redis = new Redis(services.redisUrl);
});
afterAll(async () => {
  await cleanRedisPrefix(services.redisUrl, prefix);
  redis?.disconnect();
});

function report(workerId: string, reportedAt: number, heartbeatMs: number): WorkerReport {
  return {
    workerId,
    backend: 'onnx',
    host: 'test',
    pid: 1,
    startedAt: reportedAt,
    reportedAt,
    expiresAt: reportedAt + heartbeatMs * 3,
    models: { m: { state: 'ready', versions: ['1'] } },
  };
}

describe('BackendStatusStore', () => {
  it("keeps a worker alive as long as its own report says, whatever the reader's heartbeat", async () => {
    const store = new BackendStatusStore(redis, `${prefix}:a`);
    const t = 1_000_000;
    // A worker that reports every 30 s: alive for 90 s after its report.
    await store.report(report('slow', t, 30_000));
    await store.report(report('fast', t, 1_000));

    const at20s = await store.read('onnx', t + 20_000);
    expect(at20s.workers.map((w) => w.workerId)).toEqual(['slow']);
    expect(at20s.models.m?.state).toBe('ready');
    // The expired one is ignored, not yet deleted: a clock a little behind must not lose it.
    expect(await redis.hexists(`${prefix}:a:backend-status:onnx`, 'fast')).toBe(1);

    const muchLater = await store.read('onnx', t + 200_000);
    expect(muchLater.workers).toEqual([]);
    expect(await redis.hlen(`${prefix}:a:backend-status:onnx`)).toBe(0);
  });

  it('ignores and deletes an entry that does not parse, and still reads the others', async () => {
    const store = new BackendStatusStore(redis, `${prefix}:b`);
    const now = Date.now();
    await store.report(report('good', now, 5_000));
    await redis.hset(`${prefix}:b:backend-status:onnx`, 'broken', '{not json', 'old', '{"x":1}');

    const snapshot = await store.read('onnx', now);
    expect(snapshot.workers.map((w) => w.workerId)).toEqual(['good']);
    expect(await redis.hkeys(`${prefix}:b:backend-status:onnx`)).toEqual(['good']);
  });
});
