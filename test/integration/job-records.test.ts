import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobRecords } from '../../shared/jobs/job-records.js';
import { cleanRedisPrefix, uniquePrefix } from '../support/services.js';
import { sharedServices } from '../support/shared-services.js';

const services = sharedServices();
let redis: Redis;
const prefix = uniquePrefix();
let records: JobRecords;

beforeAll(async () => {
  redis = new Redis(services.redisUrl);
  records = new JobRecords(redis, prefix, 60, 1000);
});
afterAll(async () => {
  redis?.disconnect();
  await cleanRedisPrefix(services.redisUrl, prefix);
});

describe('job records: the submission in the hash', () => {
  it('writes no field for a setting left unset (ioredis would write it empty)', async () => {
    await records.create({
      id: 'unset',
      model: 'm',
      backend: 'onnx',
      createdAt: 1_700_000_000_000,
      requestId: 'r',
      submission: { mode: 'sync', version: undefined, priority: undefined, owner: 'acme' },
    });

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
    expect((await records.get('unset'))?.submission).toEqual({ mode: 'sync', owner: 'acme' });
  });

  it('reads back every setting given, a priority of 0 too', async () => {
    const webhook = { url: 'https://example.test/hook', events: ['completed' as const] };
    await records.create({
      id: 'set',
      model: 'm',
      backend: 'onnx',
      createdAt: 1_700_000_000_000,
      requestId: 'r',
      submission: {
        version: '3',
        mode: 'async',
        priority: 0,
        deadline: 1_700_000_060_000,
        webhook,
        owner: 'acme',
      },
    });

    expect((await records.get('set'))?.submission).toEqual({
      version: '3',
      mode: 'async',
      priority: 0,
      deadline: 1_700_000_060_000,
      webhook,
      owner: 'acme',
    });
  });
});
