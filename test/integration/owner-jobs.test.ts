import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OwnerJobs } from '../../shared/jobs/owner-jobs.js';
import {
  cleanRedisPrefix,
  startServices,
  type TestServices,
  uniquePrefix,
} from '../support/services.js';

let services: TestServices;
let redis: Redis;
const prefix = uniquePrefix();

beforeAll(async () => {
  services = await startServices();
  redis = new Redis(services.redisUrl);
});

afterAll(async () => {
  redis?.disconnect();
  await cleanRedisPrefix(services.redisUrl, prefix);
  await services?.stop();
});

async function add(index: OwnerJobs, owner: string, id: string, createdAt: number) {
  const multi = redis.multi();
  index.add(multi, owner, id, createdAt);
  await multi.exec();
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
    const index = new OwnerJobs(redis, prefix, { retentionSeconds: 3600 });
    const now = Date.now();
    await add(index, 'acme', 'job-a', now - 3000);
    await add(index, 'acme', 'job-c', now - 1000);
    await add(index, 'acme', 'job-b', now - 1000);
    await add(index, 'acme', 'job-d', now);

    const first = await index.page('acme', 2);
    expect(first.ids).toEqual(['job-d', 'job-c']);
    // A job added between pages is newer than the cursor: the next page goes on from where it was.
    await add(index, 'acme', 'job-e', now + 1);
    const second = await index.page('acme', 2, first.next);
    expect(second).toEqual({ ids: ['job-b', 'job-a'] });
    expect(await all(index, 'acme', 3)).toEqual(['job-e', 'job-d', 'job-c', 'job-b', 'job-a']);
    expect(await all(index, 'nobody')).toEqual([]);
  });

  it('drops entries past the retention and past the most per owner, and expires the set', async () => {
    const index = new OwnerJobs(redis, prefix, { retentionSeconds: 60, maxPerOwner: 3 });
    const now = Date.now();
    await add(index, 'old', 'stale', now - 61_000);
    await add(index, 'old', 'fresh', now);
    expect(await all(index, 'old')).toEqual(['fresh']);

    for (let i = 1; i <= 5; i++) await add(index, 'busy', `job-${i}`, now + i);
    expect(await all(index, 'busy')).toEqual(['job-5', 'job-4', 'job-3']);
    const ttl = await redis.ttl(index.key('busy'));
    expect(ttl).toBeGreaterThan(50);
    expect(ttl).toBeLessThanOrEqual(60);
  });

  it('refuses a cursor it did not make', async () => {
    const index = new OwnerJobs(redis, prefix, { retentionSeconds: 60 });
    for (const cursor of ['', 'abc', Buffer.from('1:2').toString('base64url')]) {
      await expect(index.page('acme', 2, cursor)).rejects.toThrow(RangeError);
    }
  });
});
