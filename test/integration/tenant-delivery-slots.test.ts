import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TenantDeliverySlots } from '../../workers/webhooks/tenant-delivery-slots.js';
import { eventually } from '../support/inference-stack.js';
import { cleanRedisPrefix, uniquePrefix } from '../support/services.js';
import { sharedServices } from '../support/shared-services.js';

describe('per-tenant webhook delivery slots in Redis', () => {
  const services = sharedServices();
  let redis: Redis;
  const prefix = uniquePrefix();

  beforeAll(async () => {
    redis = new Redis(services.redisUrl);
  });
  afterAll(async () => {
    redis?.disconnect();
    if (services) await cleanRedisPrefix(services.redisUrl, prefix);
  });

  it('gives each tenant at most its cap, and a released slot to the next delivery', async () => {
    const slots = new TenantDeliverySlots(redis, prefix, { cap: 2, leaseMs: 60_000 });
    const first = await slots.take('acme');
    const second = await slots.take('acme');
    expect([first.taken, second.taken]).toEqual([true, true]);
    expect(await slots.take('acme')).toEqual({ taken: false, held: 2 });
    // Another tenant's slots are its own.
    expect((await slots.take('globex')).taken).toBe(true);

    if (!first.taken) throw new Error('unreachable');
    await slots.release('acme', first.holder);
    expect((await slots.take('acme')).taken).toBe(true);
    expect((await slots.take('acme')).taken).toBe(false);
  });

  it('frees a slot whose holder never released it (a worker that died) when its lease ends', async () => {
    const slots = new TenantDeliverySlots(redis, prefix, { cap: 1, leaseMs: 300 });
    expect((await slots.take('initech')).taken).toBe(true);
    expect((await slots.take('initech')).taken).toBe(false);
    const claim = await eventually(
      async () => {
        const next = await slots.take('initech');
        return next.taken ? next : undefined;
      },
      5_000,
      'the lapsed slot',
    );
    expect(claim.taken).toBe(true);
    // The key itself expires with its last lease: nothing is left behind in Redis.
    const ttl = await redis.pttl(`${prefix}:webhook-slots:initech`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(300);
  });
});
