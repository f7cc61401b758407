import type { RedisClient } from '../../shared/redis/redis.js';
import { defineCommands } from '../../shared/redis/redis-commands.js';
import { nextUtcDay, nextUtcMonth, utcDay, utcMonth } from '../../shared/usage/usage-periods.js';
import { API_COMMANDS } from '../redis/api-commands.js';
import { type KeyQuota, QUOTA_POLICIES, type QuotaPolicy } from './key-quota.js';

/** Where one policy of a tenant's quota stands in its current period. */
export interface PolicyStanding {
  policy: QuotaPolicy;
  limit: number;
  used: number;
  remaining: number;
  /** Epoch ms of the period's end (the next UTC midnight, or the first of the next month). */
  resetsAt: number;
  /** The period's length in seconds (a day, or this month's days). */
  windowSeconds: number;
}

/** What a charge did: taken from every policy, or refused by those already at their limit. */
export type QuotaCharge =
  | { accepted: true; standing: PolicyStanding[]; counters: string[] }
  | { accepted: false; standing: PolicyStanding[]; refused: PolicyStanding[] };

/** A counter outlives its period by this much, so a refund that comes just after still finds it. */
const GRACE_SECONDS = 3600;

/**
 * Each tenant's quota counters in Redis, one per policy and period
 * (`<prefix>:quota:<tenant>:images_per_day:<YYYY-MM-DD>`, `…:jobs_per_month:<YYYY-MM>`), shared by
 * every API instance. A submission is charged (atomically, against every policy at once) after
 * everything else has accepted it and before its job is created; a job that is not created, or
 * that ends without a result through no fault of its tenant's (`count-usage.lua`), gets its charge
 * back. A new period starts with a new counter, so nothing has to be reset at midnight.
 */
export class QuotaCounters {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {
    defineCommands(redis, API_COMMANDS);
  }

  /** Takes one image and one job from `tenant`'s quota, or refuses without taking anything. */
  async charge(tenant: string, quota: KeyQuota, now = Date.now()): Promise<QuotaCharge> {
    const periods = this.periods(tenant, quota, now);
    const args = periods.flatMap((p) => [p.limit, Math.ceil(p.resetsAt / 1000) + GRACE_SECONDS]);
    // Every counter is checked before any is taken from, in one step (`quota-charge.lua`).
    const [accepted, ...used] = await this.redis.quotaCharge(
      periods.length,
      ...periods.map((p) => p.counter),
      ...args,
    );
    const standing = periods.map((p, i) => standingOf(p, used[i] ?? 0));
    if (accepted === 1) {
      return { accepted: true, standing, counters: periods.map((p) => p.counter) };
    }
    return { accepted: false, standing, refused: standing.filter((s) => s.used + 1 > s.limit) };
  }

  /** Gives a charge back (its job was never created). */
  async refund(counters: readonly string[]): Promise<void> {
    if (counters.length > 0) await this.redis.quotaRefund(counters.length, ...counters);
  }

  /** Where `tenant`'s quota stands now, without taking from it. */
  async standing(tenant: string, quota: KeyQuota, now = Date.now()): Promise<PolicyStanding[]> {
    const periods = this.periods(tenant, quota, now);
    if (periods.length === 0) return [];
    const used = await this.redis.mget(...periods.map((p) => p.counter));
    return periods.map((p, i) => standingOf(p, Number(used[i] ?? 0)));
  }

  /**
   * Clears `tenant`'s counters of the current periods (every policy, whether the key has it or
   * not): its next submission starts from nothing. Returns what each had used.
   */
  async reset(tenant: string, now = Date.now()): Promise<Record<QuotaPolicy, number>> {
    const pipeline = this.redis.pipeline();
    for (const policy of QUOTA_POLICIES) pipeline.getdel(this.counter(tenant, policy, now));
    const results = (await pipeline.exec()) ?? [];
    const used = {} as Record<QuotaPolicy, number>;
    QUOTA_POLICIES.forEach((policy, i) => {
      const [err, value] = results[i] ?? [null, null];
      if (err) throw err;
      used[policy] = Number(value ?? 0);
    });
    return used;
  }

  private periods(tenant: string, quota: KeyQuota, now: number) {
    return QUOTA_POLICIES.flatMap((policy) => {
      const limit = quota[policy];
      if (limit === undefined) return [];
      const daily = policy === 'images_per_day';
      const resetsAt = daily ? nextUtcDay(now) : nextUtcMonth(now);
      const startsAt = daily ? resetsAt - 86_400_000 : Date.UTC(...monthOf(now));
      return [
        {
          policy,
          limit,
          resetsAt,
          windowSeconds: Math.round((resetsAt - startsAt) / 1000),
          counter: this.counter(tenant, policy, now),
        },
      ];
    });
  }

  private counter(tenant: string, policy: QuotaPolicy, now: number): string {
    const period = policy === 'images_per_day' ? utcDay(now) : utcMonth(now);
    return `${this.prefix}:quota:${tenant}:${policy}:${period}`;
  }
}

function monthOf(ms: number): [number, number, number] {
  const at = new Date(ms);
  return [at.getUTCFullYear(), at.getUTCMonth(), 1];
}

function standingOf(
  period: { policy: QuotaPolicy; limit: number; resetsAt: number; windowSeconds: number },
  used: number,
): PolicyStanding {
  return {
    policy: period.policy,
    limit: period.limit,
    used,
    remaining: Math.max(0, period.limit - used),
    resetsAt: period.resetsAt,
    windowSeconds: period.windowSeconds,
  };
}
