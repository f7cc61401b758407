import { randomUUID } from 'node:crypto';
import type { RedisClient } from '../../shared/redis/redis.js';
import { RedisScript } from '../../shared/redis/redis-script.js';

// KEYS[1]: the tenant's slots, a sorted set of holders scored by when their lease runs out.
// ARGV[1]: the cap; ARGV[2]: the lease in ms; ARGV[3]: the new holder.
// Leases past their end are dropped first: a worker that died holding a slot frees it within one
// lease, however busy the tenant stays. Redis's clock, so every worker counts alike.
// Returns the slots held after the call, negative when the cap refused a new one.
const TAKE = new RedisScript(`
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
if held >= tonumber(ARGV[1]) then return -held end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return held + 1
`);

export interface TenantDeliverySlotsOptions {
  /** Deliveries of one tenant in flight at once, across every webhooks worker. */
  cap: number;
  /** Longest a slot is held: past it the slot is free again, released or not. */
  leaseMs: number;
}

/** A slot taken, or the cap that refused one. */
export type SlotClaim = { taken: true; holder: string } | { taken: false; held: number };

/**
 * The per-tenant cap on webhook deliveries in flight (`<prefix>:webhook-slots:<tenant>`), shared
 * by every webhooks worker through Redis, so one tenant whose receivers hang cannot hold every
 * worker's slots while other tenants' messages wait.
 */
export class TenantDeliverySlots {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly options: TenantDeliverySlotsOptions,
  ) {
    if (options.cap < 1) throw new RangeError('cap must be at least 1');
    if (options.leaseMs <= 0) throw new RangeError('leaseMs must be positive');
  }

  private key(tenant: string): string {
    return `${this.prefix}:webhook-slots:${tenant}`;
  }

  /** Takes one of the tenant's slots if it has one free; release it with {@link release}. */
  async take(tenant: string): Promise<SlotClaim> {
    const holder = randomUUID();
    const held = Number(
      await TAKE.run(
        this.redis,
        [this.key(tenant)],
        [this.options.cap, this.options.leaseMs, holder],
      ),
    );
    return held > 0 ? { taken: true, holder } : { taken: false, held: -held };
  }

  async release(tenant: string, holder: string): Promise<void> {
    await this.redis.zrem(this.key(tenant), holder);
  }
}
