import { randomUUID } from 'node:crypto';
import type { RedisClient } from '../../shared/redis/redis.js';
import { defineCommands } from '../../shared/redis/redis-commands.js';
import { WORKER_COMMANDS } from '../redis/worker-commands.js';

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
    defineCommands(redis, WORKER_COMMANDS);
  }

  private key(tenant: string): string {
    return `${this.prefix}:webhook-slots:${tenant}`;
  }

  /** Takes one of the tenant's slots if it has one free; release it with {@link release}. */
  async take(tenant: string): Promise<SlotClaim> {
    const holder = randomUUID();
    // Leases past their end are dropped first (`webhook-slot-take-1.lua`): a worker that died
    // holding a slot frees it within one lease, however busy the tenant stays.
    const held = Number(
      await this.redis.webhookSlotTake(
        this.key(tenant),
        this.options.cap,
        this.options.leaseMs,
        holder,
      ),
    );
    return held > 0 ? { taken: true, holder } : { taken: false, held: -held };
  }

  async release(tenant: string, holder: string): Promise<void> {
    await this.redis.zrem(this.key(tenant), holder);
  }
}
