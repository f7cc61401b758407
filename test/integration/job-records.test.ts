import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobRecords } from '../../shared/jobs/job-records.js';
import { testSpec } from '../support/job-spec.js';
import { cleanRedisPrefix, uniquePrefix } from '../support/services.js';
import { sharedServices } from '../support/shared-services.js';

const services = sharedServices();
let redis: Redis;
const prefix = uniquePrefix();
let records: JobRecords;

beforeAll(async () => {
  redis = new Redis(services.redisUrl);
  records = new JobRecords(redis, { prefix, retentionSeconds: 60, maxPerOwner: 1000 });
});
afterAll(async () => {
  redis?.disconnect();
  await cleanRedisPrefix(services.redisUrl, prefix);
});

describe('job records: the spec in the hash', () => {
  it('writes no field for a setting left unset (ioredis would write it empty)', async () => {
    const spec = testSpec({ mode: 'sync', version: undefined, priority: undefined, owner: 'acme' });
    await records.create({ id: 'unset', spec, backend: 'onnx', createdAt: 1_700_000_000_000 });

    const fields = await redis.hgetall(records.key('unset'));
    expect(Object.keys(fields).sort()).toEqual([
      'backend',
      'created_at',
      'mode',
      'model',
      'owner',
      'request_id',
      'route',
    ]);
    expect((await records.get('unset'))?.spec).toEqual({
      model: 'm',
      mode: 'sync',
      owner: 'acme',
      requestId: 'r',
    });
  });

  it("keeps a sync job's record a compact hash: the worker's inputs stay in the job", async () => {
    const spec = testSpec({
      requestId: 'f47ac10b-58cc-4372-a567-0e02b2c3d479',
      imageKey: `images/sha256/3f/${'3f'.repeat(32)}`,
      resultCache: { scope: 'owner:acme', definition: 'f'.repeat(32), ttlSeconds: 60 },
      params: { topK: 5 },
    });
    await records.create({ id: 'compact', spec, backend: 'onnx', createdAt: 1_700_000_000_000 });
    expect(await redis.object('ENCODING', records.key('compact'))).toBe('listpack');
  });

  it('reads back every setting given, a priority of 0 too', async () => {
    const webhook = { url: 'https://example.test/hook', events: ['completed' as const] };
    const spec = testSpec({
      version: '3',
      mode: 'async',
      priority: 0,
      deadline: 1_700_000_060_000,
      webhook,
      owner: 'acme',
    });
    await records.create({ id: 'set', spec, backend: 'onnx', createdAt: 1_700_000_000_000 });

    expect((await records.get('set'))?.spec).toEqual({
      model: 'm',
      version: '3',
      mode: 'async',
      priority: 0,
      deadline: 1_700_000_060_000,
      webhook,
      owner: 'acme',
      requestId: 'r',
    });
  });
});
