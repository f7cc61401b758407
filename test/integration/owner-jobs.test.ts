import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiResources } from '../../api/api-resources.js';
import { JobRecords } from '../../shared/jobs/job-records.js';
import { OwnerJobs } from '../../shared/jobs/owner-jobs.js';
import { ModelRegistry } from '../../shared/models/registry.js';
import { registryDocument, testConfig } from '../support/inference-stack.js';
import { testSpec } from '../support/job-spec.js';
import { cleanRedisPrefix, uniquePrefix } from '../support/services.js';
import { sharedServices } from '../support/shared-services.js';

const services = sharedServices();
let redis: Redis;
const prefix = uniquePrefix();

beforeAll(async () => {
  redis = new Redis(services.redisUrl);
});

afterAll(async () => {
  redis?.disconnect();
  await cleanRedisPrefix(services.redisUrl, prefix);
});

/** Owners' indexes are written by the job record's creation: a record per added job. */
function indexed(retentionSeconds: number, maxPerOwner = 100_000) {
  const records = new JobRecords(redis, {
    prefix,
    retentionSeconds,
    maxPerOwner,
  });
  const add = (owner: string, id: string, createdAt: number) =>
    records.create({ id, spec: testSpec({ owner }), backend: 'onnx', createdAt });
  return { index: records.owners, add };
}

async function all(index: OwnerJobs, owner: string, limit = 2): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await index.page(owner, limit, cursor);
    ids.push(...page.ids);
    cursor = page.next;
  } while (cursor);
  return ids;
}

describe('OwnerJobs', () => {
  it('pages newest first, ties broken by id, with no job twice or missed while jobs are added', async () => {
    const { index, add } = indexed(3600);
    const now = Date.now();
    await add('acme', 'job-a', now - 3000);
    await add('acme', 'job-c', now - 1000);
    await add('acme', 'job-b', now - 1000);
    await add('acme', 'job-d', now);

    const first = await index.page('acme', 2);
    expect(first.ids).toEqual(['job-d', 'job-c']);
    // A job added between pages is newer than the cursor: the next page goes on from where it was.
    await add('acme', 'job-e', now + 1);
    const second = await index.page('acme', 2, first.next);
    expect(second).toEqual({ ids: ['job-b', 'job-a'] });
    expect(await all(index, 'acme', 3)).toEqual(['job-e', 'job-d', 'job-c', 'job-b', 'job-a']);
    expect(await all(index, 'nobody')).toEqual([]);
  });

  it("the API's records keep at most JOB_RETENTION_COUNT jobs per owner, and 15 more between trims", async () => {
    const apiPrefix = uniquePrefix();
    const config = testConfig(
      services,
      { prefix: apiPrefix, bucket: uniquePrefix() },
      { JOB_RETENTION_COUNT: '100' },
    );
    const resources = await createApiResources(config, pino({ level: 'silent' }), {
      registry: ModelRegistry.fromDocument(registryDocument()),
      skipStoreInit: true,
    });
    try {
      const key = resources.records.owners.key('busy');
      const add = (i: number) =>
        resources.records.create({
          id: `job-${String(i).padStart(3, '0')}`,
          spec: testSpec({ owner: 'busy' }),
          backend: 'onnx',
          createdAt: 1_796_000_000_000 + i,
        });
      // One addition in 16 trims (the first, the 17th, ...): between trims the set may grow by 15.
      for (let i = 0; i < 112; i++) {
        await add(i);
        expect(await redis.zcard(key)).toBeLessThanOrEqual(115);
      }
      expect(await redis.zcard(key)).toBe(112);
      await add(112);
      const kept = await redis.zrange(key, '0', '-1');
      expect(kept).toHaveLength(100);
      expect(kept[0]).toMatch(/:job-013$/);
      expect(kept.at(-1)).toMatch(/:job-112$/);
    } finally {
      await resources.close();
      await cleanRedisPrefix(services.redisUrl, apiPrefix);
    }
  });

  it('drops entries past the retention and past the most per owner, and expires the set', async () => {
    const { index, add } = indexed(60, 3);
    const now = Date.now();
    await add('old', 'stale', now - 61_000);
    await add('old', 'fresh', now);
    expect(await all(index, 'old')).toEqual(['fresh']);

    // Additions 2 to 16 of this index: the last one trims (one in 16).
    for (let i = 1; i <= 15; i++) await add('busy', `job-${i}`, now + i);
    expect(await all(index, 'busy')).toEqual(['job-15', 'job-14', 'job-13']);
    expect(await redis.zcard(index.key('busy'))).toBe(3);
    // The retention (60 s) plus the renewal interval (a tenth of it).
    const ttl = await redis.ttl(index.key('busy'));
    expect(ttl).toBeGreaterThan(56);
    expect(ttl).toBeLessThanOrEqual(66);
  });

  it("renews an owner's expiry once per renewal interval, not at every addition", () => {
    const { index } = indexed(60);
    const ttlAt = (owner: string, now: number) => index.entry(owner, 'job', now, now).ttlSeconds;
    expect(ttlAt('a', 0)).toBe(66);
    expect(ttlAt('a', 5_999)).toBeUndefined();
    expect(ttlAt('b', 5_999)).toBe(66);
    expect(ttlAt('a', 6_000)).toBe(66);
    expect(ttlAt('a', 6_001)).toBeUndefined();
  });

  it('drops entries past the retention from memory too, one addition in a few', async () => {
    const { index, add } = indexed(60);
    const now = Date.now();
    for (let i = 0; i < 20; i++) await add('ageing', `stale-${i}`, now - 61_000 - i);
    for (let i = 0; i < 20; i++) await add('ageing', `fresh-${i}`, now + i);
    const members = await redis.zrange(index.key('ageing'), '0', '-1');
    expect(members.filter((m) => m.includes('stale')).length).toBeLessThan(20);
    expect(members.filter((m) => m.includes('fresh'))).toHaveLength(20);
  });

  it('refuses a cursor it did not make', async () => {
    const index = new OwnerJobs(redis, prefix, { retentionSeconds: 60 });
    for (const cursor of ['', 'abc', Buffer.from('1:2').toString('base64url')]) {
      await expect(index.page('acme', 2, cursor)).rejects.toThrow(RangeError);
    }
  });
});
