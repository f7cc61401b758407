import type { ChainableCommander } from 'ioredis';
import { CATALOGUE, isErrorCode } from '../errors/index.js';
import type { RedisClient } from '../redis/redis.js';
import { utcDay } from './usage-periods.js';

/** How a job ended, as usage counts it: the job resource's final statuses. */
export type UsageOutcome = 'succeeded' | 'failed' | 'canceled';
export const USAGE_OUTCOMES: readonly UsageOutcome[] = ['succeeded', 'failed', 'canceled'];

/** One job's end, as it was counted (once) in its owner's usage. */
export interface CountedJob {
  /** The job's owner: an API key id, a token's tenant, or `anonymous`. */
  tenant: string;
  model: string;
  outcome: UsageOutcome;
  /** 1 when the model ran on the job's image to a result (not for an answer from the cache). */
  images: number;
  inferenceMs: number;
  uploadedBytes: number;
}

/** A tenant's figures for a model, a day, or a whole range. */
export interface UsageFigures {
  /** Accepted submissions (sync or async, answers from the result cache too) that ended. */
  requests: number;
  /** Images a model ran on to a result. */
  images: number;
  jobs: Record<UsageOutcome, number>;
  /** Model time of the jobs that succeeded, as their `timings.inference_ms` say. */
  inference_ms: number;
  /** Bytes of the images of those submissions, as uploaded. */
  uploaded_bytes: number;
}

export interface DayUsage {
  date: string;
  totals: UsageFigures;
  models: Record<string, UsageFigures>;
}

export interface TenantUsage {
  tenant: string;
  totals: UsageFigures;
  models: Record<string, UsageFigures>;
  /** Days with any usage, oldest first. */
  days: DayUsage[];
}

export interface UsageLedgerOptions {
  /** How long a day's counts are kept (USAGE_RETENTION_DAYS). */
  retentionDays: number;
  /**
   * Called in the process that counted a job, once per job (the Prometheus counters follow the
   * Redis counts this way, summed over every process by Prometheus).
   */
  onCounted?: (job: CountedJob) => void;
}

/**
 * The hash fields of one model's figures: `<model>|<figure>` (model time in microseconds). Its
 * requests are the sum of its outcomes: each job adds one to exactly one, so a field of their own
 * would cost a command per job and say nothing more (a `requests` field written before is left
 * out).
 */
const FIGURES = ['images', ...USAGE_OUTCOMES, 'inference_us', 'uploaded_bytes'] as const;

/**
 * Usage per tenant, per UTC day and model, in Redis: one hash per tenant and day
 * (`<prefix>:usage:<tenant>:<day>`, fields `<model>|<figure>`) and, per day, the set of tenants
 * with usage (`<prefix>:usage:tenants:<day>`), each kept USAGE_RETENTION_DAYS. A job is counted on
 * the day it ends, by the atomic step that ends it (`count_usage`, the Lua include
 * `shared/redis/commands/includes/count-usage.lua`, or {@link stage} for an answer from the result
 * cache, which ends as it is created): unlike the batched counts of GET /stats, usage is never
 * counted twice nor lost to a failed write, since it caps quotas and may be billed.
 */
export class UsageLedger {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly options: UsageLedgerOptions,
  ) {
    if (!(options.retentionDays >= 1)) throw new RangeError('retentionDays must be at least 1');
  }

  /** The arguments of the Lua `count_usage` after outcome and refund: prefix, day, ttl. */
  scriptArgs(now: number): [string, string, number] {
    return [this.prefix, utcDay(now), this.ttlSeconds];
  }

  /** Reads a script's reply from the Lua `count_usage` and tells `onCounted`. */
  counted(reply: unknown): CountedJob | undefined {
    if (!Array.isArray(reply) || reply.length < 6) return undefined;
    const [tenant, model, outcome, images, us, bytes] = reply.map(String) as string[];
    const job: CountedJob = {
      tenant: tenant!,
      model: model!,
      outcome: outcome as UsageOutcome,
      images: Number(images),
      inferenceMs: Number(us) / 1000,
      uploadedBytes: Number(bytes),
    };
    this.options.onCounted?.(job);
    return job;
  }

  /**
   * Queues the count of a job that ends as it is created (an answer from the result cache) on the
   * transaction that creates it, so it is counted once, with its record. Call {@link counted} with
   * the job once the transaction has run.
   */
  stage(transaction: ChainableCommander, job: CountedJob, now: number): void {
    const day = utcDay(now);
    const usage = this.dayKey(job.tenant, day);
    const index = this.indexKey(day);
    transaction.hincrby(usage, `${job.model}|${job.outcome}`, 1);
    if (job.images > 0) transaction.hincrby(usage, `${job.model}|images`, job.images);
    const us = Math.round(job.inferenceMs * 1000);
    if (us > 0) transaction.hincrby(usage, `${job.model}|inference_us`, us);
    if (job.uploadedBytes > 0) {
      transaction.hincrby(usage, `${job.model}|uploaded_bytes`, job.uploadedBytes);
    }
    transaction.expire(usage, this.ttlSeconds);
    transaction.sadd(index, job.tenant).expire(index, this.ttlSeconds);
  }

  /** Tells `onCounted` of a job counted by {@link stage}. */
  notify(job: CountedJob): void {
    this.options.onCounted?.(job);
  }

  /**
   * The usage of each tenant (or of `tenant` only) on the given days (`YYYY-MM-DD`, in order), in
   * two round trips at most: which tenants had usage, then their figures.
   */
  async read(days: readonly string[], tenant?: string): Promise<TenantUsage[]> {
    let tenants: string[];
    if (tenant !== undefined) tenants = [tenant];
    else {
      const pipeline = this.redis.pipeline();
      for (const day of days) pipeline.smembers(this.indexKey(day));
      const sets = (await exec(pipeline)) as string[][];
      tenants = [...new Set(sets.flat())].sort();
    }
    if (tenants.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of tenants) {
      for (const day of days) pipeline.hgetall(this.dayKey(id, day));
    }
    const hashes = (await exec(pipeline)) as Record<string, string>[];
    return tenants.map((id, t) => {
      const usage: TenantUsage = { tenant: id, totals: emptyFigures(), models: {}, days: [] };
      days.forEach((date, d) => {
        const fields = hashes[t * days.length + d] ?? {};
        if (Object.keys(fields).length === 0) return;
        const day: DayUsage = { date, totals: emptyFigures(), models: {} };
        for (const [field, raw] of Object.entries(fields)) {
          const bar = field.lastIndexOf('|');
          const model = field.slice(0, bar);
          const figure = field.slice(bar + 1);
          const n = Number(raw);
          if (bar <= 0 || !Number.isFinite(n)) continue;
          day.models[model] ??= emptyFigures();
          usage.models[model] ??= emptyFigures();
          for (const into of [day.totals, day.models[model], usage.totals, usage.models[model]]) {
            add(into, figure, n);
          }
        }
        usage.days.push(day);
      });
      return usage;
    });
  }

  private dayKey(tenant: string, day: string): string {
    return `${this.prefix}:usage:${tenant}:${day}`;
  }

  private indexKey(day: string): string {
    return `${this.prefix}:usage:tenants:${day}`;
  }

  private get ttlSeconds(): number {
    return this.options.retentionDays * 86_400;
  }
}

export function emptyFigures(): UsageFigures {
  return {
    requests: 0,
    images: 0,
    jobs: { succeeded: 0, failed: 0, canceled: 0 },
    inference_ms: 0,
    uploaded_bytes: 0,
  };
}

function add(into: UsageFigures, figure: string, n: number): void {
  if (!(FIGURES as readonly string[]).includes(figure)) return;
  if (USAGE_OUTCOMES.includes(figure as UsageOutcome)) {
    into.jobs[figure as UsageOutcome] += n;
    into.requests += n;
  } else if (figure === 'inference_us')
    into.inference_ms = (Math.round(into.inference_ms * 1000) + n) / 1000;
  else into[figure as 'images' | 'uploaded_bytes'] += n;
}

async function exec(pipeline: ReturnType<RedisClient['pipeline']>): Promise<unknown[]> {
  const results = (await pipeline.exec()) ?? [];
  return results.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}

/**
 * Whether a job that failed gives its quota charge back: when the failure is on the gateway's side
 * (its catalogue code is a 5xx: a backend down or too slow, a deadline the queue missed, a worker
 * fault), not the tenant's (a 4xx: an image that cannot be decoded, a cancel).
 */
export function refundsQuota(code: string | undefined): boolean {
  const spec = isErrorCode(code) ? CATALOGUE[code] : CATALOGUE.INFERENCE_FAILED;
  return spec.status >= 500;
}
