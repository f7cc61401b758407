import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobError } from '../../shared/errors/index.js';
import { JobLifecycle } from '../../shared/jobs/job-lifecycle.js';
import { JobRecords } from '../../shared/jobs/job-records.js';
import { WebhookDeliveries } from '../../shared/jobs/webhook-deliveries.js';
import { UsageLedger } from '../../shared/usage/usage-ledger.js';
import { testSpec } from '../support/job-spec.js';
import { cleanRedisPrefix, uniquePrefix } from '../support/services.js';
import { sharedServices } from '../support/shared-services.js';

const services = sharedServices();
let redis: Redis;
const prefix = uniquePrefix();
let records: JobRecords;
let lifecycle: JobLifecycle;
let counter = 0;

beforeAll(async () => {
  redis = new Redis(services.redisUrl);
  records = new JobRecords(redis, { prefix, retentionSeconds: 60, maxPerOwner: 1000 });
  lifecycle = new JobLifecycle(
    redis,
    records,
    new UsageLedger(redis, prefix, { retentionDays: 1 }),
  );
});
afterAll(async () => {
  redis?.disconnect();
  await cleanRedisPrefix(services.redisUrl, prefix);
});

async function newJob(): Promise<string> {
  const id = `job-${++counter}`;
  await records.create({
    id,
    spec: testSpec({ model: 'm', requestId: 'r' }),
    backend: 'onnx',
    createdAt: Date.now(),
  });
  return id;
}

describe('job lifecycle on the record: cancel and settle, one winner', () => {
  it('a cancel requested first wins over the worker settling', async () => {
    const id = await newJob();
    expect(await lifecycle.requestCancel(id, 1000)).toEqual({ kind: 'requested', at: 1000 });
    // Asking again changes nothing.
    expect(await lifecycle.requestCancel(id, 2000)).toEqual({ kind: 'requested', at: 1000 });
    expect(await lifecycle.isCancelRequested(id)).toBe(true);
    expect(await lifecycle.settle(id, { outcome: 'succeeded' }, 3000)).toBe('canceled');
    expect(await lifecycle.requestCancel(id)).toEqual({ kind: 'canceled', at: 3000 });
    expect((await records.get(id))?.lifecycle).toEqual({
      cancelRequestedAt: 1000,
      canceledAt: 3000,
    });
  });

  it('a worker that settled first wins over a later cancel', async () => {
    const id = await newJob();
    expect(await lifecycle.settle(id, { outcome: 'succeeded' })).toBe('settled');
    expect(await lifecycle.requestCancel(id)).toEqual({ kind: 'finished', outcome: 'succeeded' });
    expect(await lifecycle.isCancelRequested(id)).toBe(false);
  });

  it('a queued job is confirmed canceled once; a cancel can be withdrawn only before that', async () => {
    const id = await newJob();
    expect(await lifecycle.confirmCanceled(id)).toBe(false); // nothing requested
    await lifecycle.requestCancel(id, 10);
    expect(await lifecycle.confirmCanceled(id, 20)).toBe(true);
    expect(await lifecycle.confirmCanceled(id, 30)).toBe(false);
    expect(await lifecycle.withdrawCancel(id)).toBe(false);

    const other = await newJob();
    await lifecycle.requestCancel(other);
    expect(await lifecycle.withdrawCancel(other)).toBe(true);
    expect(await lifecycle.isCancelRequested(other)).toBe(false);
  });

  it('never writes to a record that does not exist (that would create a key without a TTL)', async () => {
    expect(await lifecycle.requestCancel('gone')).toEqual({ kind: 'missing' });
    expect(await lifecycle.settle('gone', { outcome: 'failed' })).toBe('settled');
    expect(await lifecycle.confirmCanceled('gone')).toBe(false);
    expect(await redis.exists(records.key('gone'))).toBe(0);
  });
});

describe('webhook deliveries beside the record', () => {
  it('are kept in order, trimmed, and expire with the record', async () => {
    const id = await newJob();
    const deliveries = new WebhookDeliveries(redis, records, 3);
    for (let attempt = 1; attempt <= 4; attempt++) {
      await deliveries.add(id, {
        webhook_id: `msg_${id}_completed`,
        event: 'completed',
        attempt,
        at: new Date().toISOString(),
        duration_ms: 1,
        status_code: 500,
        error: jobError('WEBHOOK_REJECTED', 500),
        outcome: 'retrying',
      });
    }
    expect((await deliveries.list(id)).map((d) => d.attempt)).toEqual([2, 3, 4]);
    // The job is still running: neither the record nor its deliveries expire yet.
    expect(await redis.ttl(`${records.key(id)}:deliveries`)).toBe(-1);
    await lifecycle.settle(id, { outcome: 'succeeded' });
    const ttl = await redis.ttl(`${records.key(id)}:deliveries`);
    expect(ttl).toBeGreaterThan(50);
    expect(ttl).toBeLessThanOrEqual(60);

    await deliveries.add('gone', (await deliveries.list(id))[0]!);
    expect(await redis.exists(`${records.key('gone')}:deliveries`)).toBe(0);
  });
});

describe('job lifecycle: the first start and the deadline', () => {
  it('a job first started before its deadline is never late again (retry, stall, fallback)', async () => {
    const id = await newJob();
    expect(await lifecycle.begin(id, { deadline: 5_000 }, 1_000)).toEqual({ kind: 'started' });
    // Later attempts come after the deadline: the job started in time, so it goes on.
    expect(await lifecycle.begin(id, { deadline: 5_000 }, 9_000)).toEqual({ kind: 'resumed' });
    expect(await lifecycle.begin(id, { deadline: 5_000 }, 99_000)).toEqual({ kind: 'resumed' });
  });

  it('a job first picked up after its deadline is late, and stays unstarted', async () => {
    const id = await newJob();
    expect(await lifecycle.begin(id, { deadline: 5_000 }, 6_000)).toEqual({ kind: 'late' });
    expect(await redis.hexists(records.key(id), 'started_at')).toBe(0);
  });

  it('a job without a deadline starts whenever it is picked up', async () => {
    const id = await newJob();
    expect(await lifecycle.begin(id, {}, Number.MAX_SAFE_INTEGER)).toEqual({ kind: 'started' });
  });

  it('a job whose record is gone is reported missing, and no key is created', async () => {
    expect(await lifecycle.begin('gone-too', { deadline: 1 }, 2)).toEqual({ kind: 'missing' });
    expect(await redis.exists(records.key('gone-too'))).toBe(0);
  });

  it('a job whose cancel was requested before it was picked up does not start', async () => {
    const id = await newJob();
    await lifecycle.requestCancel(id);
    expect(await lifecycle.begin(id)).toEqual({ kind: 'canceled' });
    expect(await redis.hexists(records.key(id), 'started_at')).toBe(0);
  });
});

describe('job lifecycle: inline images', () => {
  const image = Buffer.from([0xff, 0xd8, 0xff, 0x00, 0x0a, 0x0d, 0x80, 0xff, 0xd9]);
  const withImage = async () => {
    const id = `inline-${++counter}`;
    await records.create(
      {
        id,
        spec: testSpec({ model: 'm', requestId: 'r' }),
        backend: 'onnx',
        createdAt: Date.now(),
      },
      image,
    );
    return id;
  };

  it('come back byte for byte with the start, first and later attempts alike', async () => {
    const id = await withImage();
    expect(await lifecycle.begin(id, { inlineImage: true })).toEqual({ kind: 'started', image });
    expect(await lifecycle.begin(id, { inlineImage: true })).toEqual({ kind: 'resumed', image });
    // Not asked for, not sent.
    expect(await lifecycle.begin(id)).toEqual({ kind: 'resumed' });
    // Never part of the record as readers see it.
    expect(JSON.stringify(await records.get(id))).not.toContain('image');
  });

  // Regression: the image went at settle, so a worker killed between settling and BullMQ's finish
  // left a stalled job whose next run found no image and failed INVALID_IMAGE.
  it('outlive the settle (a stalled job runs again), and go when released or canceled', async () => {
    const settled = await withImage();
    await lifecycle.begin(settled, { inlineImage: true });
    await lifecycle.settle(settled, { outcome: 'succeeded' });
    expect(await lifecycle.begin(settled, { inlineImage: true })).toEqual({
      kind: 'resumed',
      image,
    });
    await lifecycle.releaseImage(settled);
    expect(await lifecycle.begin(settled, { inlineImage: true })).toEqual({ kind: 'resumed' });

    const canceled = await withImage();
    await lifecycle.requestCancel(canceled);
    expect(await lifecycle.confirmCanceled(canceled)).toBe(true);
    expect(await redis.hexists(records.key(canceled), 'image')).toBe(0);
  });
});

describe('job lifecycle: retention', () => {
  it('a record has no expiry while its job lives, however long it waits in its queue', async () => {
    const id = await newJob();
    expect(await redis.ttl(records.key(id))).toBe(-1);
    expect(await lifecycle.begin(id)).toEqual({ kind: 'started' });
    expect(await redis.ttl(records.key(id))).toBe(-1);
  });

  it('a queued job confirmed canceled keeps its record for the retention', async () => {
    const id = await newJob();
    await lifecycle.requestCancel(id);
    await lifecycle.confirmCanceled(id);
    const ttl = await redis.ttl(records.key(id));
    expect(ttl).toBeGreaterThan(50);
    expect(ttl).toBeLessThanOrEqual(60);
  });

  it('settling restarts the record’s retention, so a long wait does not shorten it', async () => {
    const id = await newJob();
    await redis.expire(records.key(id), 5);
    await lifecycle.settle(id, { outcome: 'succeeded' });
    const ttl = await redis.ttl(records.key(id));
    expect(ttl).toBeGreaterThan(50);
    expect(ttl).toBeLessThanOrEqual(60);
  });
});
