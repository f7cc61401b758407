import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../shared/config/config.js';
import { JobRecords } from '../../shared/jobs/job-records.js';
import { WebhookQueue } from '../../shared/webhooks/webhook-queue.js';
import { WebhookWorker } from '../../workers/webhooks/webhook-worker.js';
import { eventually, testConfig } from '../support/inference-stack.js';
import { testSpec } from '../support/job-spec.js';
import { cleanRedisPrefix, uniquePrefix } from '../support/services.js';
import { sharedServices } from '../support/shared-services.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

/** Deliveries per webhooks worker, and per tenant across every worker. */
const CONCURRENCY = 4;
const TENANT_CAP = 2;
/** How long the slow tenant's receiver takes over every answer. */
const SLOW_MS = 1_000;
/** More than the worker's slots: without a cap, the slow backlog would take every one. */
const SLOW_JOBS = CONCURRENCY + 2;
const FAST_JOBS = 6;

/**
 * Regression (issue 11, suspected item): one tenant whose receiver hangs held every delivery slot,
 * so another tenant's messages waited behind its whole backlog.
 */
describe('webhook delivery slots shared fairly between tenants', () => {
  const services = sharedServices();
  let config: Config;
  let redis: Redis;
  let records: JobRecords;
  let queue: WebhookQueue;
  let worker: WebhookWorker;
  let slow: WebhookReceiver;
  let fast: WebhookReceiver;

  beforeAll(async () => {
    config = testConfig(
      services,
      { prefix: uniquePrefix(), bucket: uniquePrefix() },
      {
        WEBHOOK_ALLOW_PRIVATE: 'true',
        WEBHOOK_CONCURRENCY: String(CONCURRENCY),
        WEBHOOK_TENANT_CONCURRENCY: String(TENANT_CAP),
        // Deferred messages wait at most one timeout: the backlog drains soon after its slots free.
        WEBHOOK_TIMEOUT_MS: '2500',
      },
    );
    redis = new Redis(services.redisUrl);
    records = new JobRecords(redis, {
      prefix: config.redis.prefix,
      retentionSeconds: config.jobs.retentionSeconds,
      maxPerOwner: config.jobs.retentionCount,
    });
    queue = new WebhookQueue(redis, config.redis.prefix, config);
    [slow, fast] = await Promise.all([WebhookReceiver.start(), WebhookReceiver.start()]);
    slow.reply = () => ({ status: 204, delayMs: SLOW_MS });
    worker = await WebhookWorker.start({ config, logger: pino({ level: 'silent' }) });
  });

  afterAll(async () => {
    await worker?.close();
    await queue?.close();
    await Promise.allSettled([slow?.close(), fast?.close()]);
    redis?.disconnect();
    if (config) await cleanRedisPrefix(services.redisUrl, config.redis.prefix);
  });

  /** A finished job of `owner` (answered from the cache: no inference) whose message is queued. */
  async function finishedJob(owner: string, url: string): Promise<void> {
    const id = randomUUID();
    const webhook = { url, events: ['completed' as const] };
    const spec = testSpec({
      model: 'text_orientation',
      requestId: `req-${id}`,
      mode: 'async',
      owner,
      webhook,
    });
    await records.create({
      id,
      spec,
      backend: 'onnx',
      createdAt: Date.now(),
      cachedResult: {
        version: '1',
        backend: 'onnx',
        result: { task: 'classification', predictions: [] },
        jobId: id,
        computedAt: Date.now(),
      },
    });
    await queue.notify(id, spec, 'completed');
  }

  it("delivers a fast tenant's messages while a slow tenant's backlog waits, never past its cap", async () => {
    // The slow tenant's backlog is queued first: without a cap it takes every slot.
    for (let i = 0; i < SLOW_JOBS; i++) await finishedJob('tenant-slow', slow.url(`/slow/${i}`));
    for (let i = 0; i < FAST_JOBS; i++) await finishedJob('tenant-fast', fast.url(`/fast/${i}`));

    await eventually(
      () => (fast.received.length === FAST_JOBS ? true : undefined),
      10_000,
      "the fast tenant's messages",
    );
    // Every fast message came while most of the slow backlog was still queued.
    const slowSoFar = slow.received.length;
    expect(slowSoFar).toBeLessThanOrEqual(TENANT_CAP * 2);

    await eventually(
      () => (slow.received.length === SLOW_JOBS && slow.inFlight === 0 ? true : undefined),
      (SLOW_JOBS / TENANT_CAP) * SLOW_MS * 3,
      "the slow tenant's backlog",
    );
    expect(slow.maxInFlight).toBe(TENANT_CAP);
    expect(fast.maxInFlight).toBeGreaterThanOrEqual(1);
  });
});
