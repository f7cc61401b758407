import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobRecords } from '../../shared/jobs/job-records.js';
import { testSpec } from '../support/job-spec.js';
import {
  cleanRedisPrefix,
  startServices,
  type TestServices,
  uniquePrefix,
} from '../support/services.js';

let services: TestServices;
let redis: Redis;
const prefix = uniquePrefix();
let records: JobRecords;

beforeAll(async () => {
  services = await startServices();
  redis = new Redis(services.redisUrl);
  records = new JobRecords(redis, { prefix, retentionSeconds: 60, maxPerOwner: 1000 });
});
afterAll(async () => {
  redis?.disconnect();
  await cleanRedisPrefix(services.redisUrl, prefix);
  await services?.stop();
});

describe('job records: the spec in the hash', () => {
  it('reads back the spec as written, a setting left unset unset', async () => {
    const spec = testSpec({ mode: 'sync', version: undefined, priority: undefined, owner: 'acme' });
    await records.create({ id: 'unset', spec, backend: 'onnx', createdAt: 1_700_000_000_000 });

    const read = await records.get('unset');
    expect(read?.spec).toEqual(spec);
    expect(Object.keys(read!.spec)).not.toContain('version');
  });

  it('reads back every setting given, a priority of 0 too', async () => {
    const spec = testSpec({
      version: '3',
      mode: 'async',
      priority: 0,
      deadline: 1_700_000_060_000,
      webhook: { url: 'https://example.test/hook', events: ['completed'] },
      owner: 'acme',
      pinned: true,
      imageInline: true,
      resultCache: { scope: 'owner:acme', definition: 'f'.repeat(32), ttlSeconds: 60 },
    });
    await records.create({ id: 'set', spec, backend: 'onnx', createdAt: 1_700_000_000_000 });

    expect((await records.get('set'))?.spec).toStrictEqual(spec);
  });
});
