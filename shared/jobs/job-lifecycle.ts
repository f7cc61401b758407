import type { RedisClient } from '../redis/redis.js';
import { RedisScript } from '../redis/redis-script.js';
import { COUNT_USAGE_LUA, refundsQuota, type UsageLedger } from '../usage/usage-ledger.js';
import { INLINE_IMAGE_FIELD, type JobRecords } from './job-records.js';

/**
 * The outcome a worker commits to: a success with the model's time, or a failure with its
 * catalogue code (which decides whether the job's quota charge is given back).
 */
export type Settlement =
  | { outcome: 'succeeded'; inferenceMs?: number }
  | { outcome: 'failed'; code?: string };

/** What a cancel request found, decided atomically on the job record. */
export type CancelRequest =
  | { kind: 'missing' }
  /** Cancellation is requested (now or before): a queued job can be removed, a running one stops. */
  | { kind: 'requested'; at: number }
  | { kind: 'canceled'; at: number }
  /** A worker committed to an outcome first: too late to cancel. */
  | { kind: 'finished'; outcome: 'succeeded' | 'failed' };

// Every script leaves a missing record alone: writing to it would create a key without a TTL.
const REQUEST_CANCEL = new RedisScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local f = redis.call('HMGET', KEYS[1], 'canceled_at', 'settled', 'cancel_requested_at')
if f[1] then return {'canceled', f[1]} end
if f[2] then return {'finished', f[2]} end
if f[3] then return {'requested', f[3]} end
redis.call('HSET', KEYS[1], 'cancel_requested_at', ARGV[1])
return {'requested', ARGV[1]}
`);

/** How a worker's pick-up of a job went, decided on the job record in one step. */
export type JobStart =
  /** The first start, recorded now; `image` is the job's inline image, when asked for. */
  | { kind: 'started'; image?: Buffer }
  /** A later attempt (retry, recovered stall, fallback) of a job that started in time. */
  | { kind: 'resumed'; image?: Buffer }
  /** First picked up after its deadline: it must not run. */
  | { kind: 'late' }
  /** A cancel was requested before the worker got to it: it must not run. */
  | { kind: 'canceled' }
  /** The record is gone (deleted by hand, evicted): nothing is known of the job beyond its queue entry. */
  | { kind: 'missing' };

// The field names are the record's own (job-records.ts). A queued job confirmed canceled has left
// its queue and never runs, so its inline image goes at once.
// KEYS[1] the record, KEYS[2] its deliveries; ARGV[1] now, ARGV[2] the retention, ARGV[3..5] the
// usage ledger's prefix, day and retention. The first confirmation counts the job's usage.
const CONFIRM_CANCELED = new RedisScript(`${COUNT_USAGE_LUA}
if redis.call('HEXISTS', KEYS[1], 'cancel_requested_at') == 0 then return {0} end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[1], '${INLINE_IMAGE_FIELD}')
if redis.call('HSETNX', KEYS[1], 'canceled_at', ARGV[1]) == 0 then return {0} end
return {1, count_usage(KEYS[1], 'canceled', '0', ARGV[3], ARGV[4], ARGV[5], '0')}
`);

const WITHDRAW_CANCEL = new RedisScript(`
if redis.call('HEXISTS', KEYS[1], 'canceled_at') == 1 then return 0 end
return redis.call('HDEL', KEYS[1], 'cancel_requested_at')
`);

// KEYS[1] the record; ARGV[1] the deadline ('' for none), ARGV[2] now, ARGV[3] '1' to return the
// inline image. One read answers everything the worker needs before it can start.
const BEGIN = new RedisScript(`
local fields = {'backend', 'started_at', 'cancel_requested_at'}
if ARGV[3] == '1' then fields[4] = '${INLINE_IMAGE_FIELD}' end
local f = redis.call('HMGET', KEYS[1], unpack(fields))
if not f[1] then return {'missing'} end
if f[3] then return {'canceled'} end
if f[2] then return {'resumed', f[4]} end
if ARGV[1] ~= '' and tonumber(ARGV[2]) > tonumber(ARGV[1]) then return {'late'} end
redis.call('HSET', KEYS[1], 'started_at', ARGV[2])
return {'started', f[4]}
`);

// The retention runs from the end of a job, not its creation: a record (and its webhook
// deliveries, KEYS[2], which exist only for a job with a webhook: ARGV[9] '1') is kept that long
// after it settles, however long the job waited or ran.
// ARGV: 1 the outcome, 2 now, 3 the retention, 4 '1' to give the quota charge back, 5..7 the usage
// ledger's prefix, day and retention, 8 the model's time, 9 '1' for a job with a webhook, 10..11
// the result-cache entry (KEYS[3], optional) and its TTL. The step that lands the terminal state
// (settled, or canceled) the first time counts the job's usage: a retry, a stall run again or a
// fallback lands nothing new, so nothing is counted twice. The cache entry of a success is written
// in the same step unless the job ends canceled, so commitment and cache cost one round trip.
const SETTLE = new RedisScript(`${COUNT_USAGE_LUA}
local function remember()
  if KEYS[3] then redis.call('SET', KEYS[3], ARGV[10], 'EX', ARGV[11]) end
end
local f = redis.call('HMGET', KEYS[1], 'cancel_requested_at', 'settled', 'backend')
if not f[3] then
  remember()
  return {'settled'}
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
if ARGV[9] == '1' then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
if f[1] then
  if redis.call('HSETNX', KEYS[1], 'canceled_at', ARGV[2]) == 0 then return {'canceled'} end
  return {'canceled', count_usage(KEYS[1], 'canceled', '0', ARGV[5], ARGV[6], ARGV[7], '0')}
end
remember()
if f[2] then return {'settled'} end
redis.call('HSET', KEYS[1], 'settled', ARGV[1])
return {'settled', count_usage(KEYS[1], ARGV[1], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8])}
`);

/** What a worker's settle step writes beside the record. */
export interface SettleOptions {
  /**
   * Whether the job has a webhook subscription, so a deliveries list whose retention starts now.
   * @defaultValue true
   */
  webhooks?: boolean;
  /** A result-cache entry to write with a success (not when the job ends canceled instead). */
  remember?: { key: string; value: string; ttlSeconds: number };
}

/**
 * The state transitions of a job that BullMQ does not know about: cancellation and a worker's
 * commitment to an outcome. Both sides race on one field set of the job record, each change a Lua
 * script, so exactly one wins:
 *
 * - the API's {@link requestCancel} marks the job `cancel_requested` unless a worker has already
 *   settled it (then the answer is 409);
 * - the worker's {@link settle}, just before it hands a result (or a final failure) to BullMQ,
 *   commits to that outcome unless a cancel was requested first (then it ends the job canceled).
 *
 * A queued job whose cancel was requested is removed from its queue by the API and
 * {@link confirmCanceled}; a running one is stopped by its worker at the next check.
 */
export class JobLifecycle {
  constructor(
    private readonly redis: RedisClient,
    private readonly records: JobRecords,
    /** Where each job's end is counted, once, by the step that lands it. */
    private readonly usage: UsageLedger,
  ) {}

  async requestCancel(jobId: string, now = Date.now()): Promise<CancelRequest> {
    const [kind, value] = (await REQUEST_CANCEL.run(
      this.redis,
      [this.records.key(jobId)],
      [now],
    )) as [string, string | undefined];
    switch (kind) {
      case 'requested':
      case 'canceled':
        return { kind, at: Number(value) };
      case 'finished':
        return { kind, outcome: value as 'succeeded' | 'failed' };
      default:
        return { kind: 'missing' };
    }
  }

  /** Marks a job whose cancel was requested as canceled; true the first time. */
  async confirmCanceled(jobId: string, now = Date.now()): Promise<boolean> {
    const [confirmed, counted] = (await CONFIRM_CANCELED.run(
      this.redis,
      [this.records.key(jobId), this.records.deliveriesKey(jobId)],
      [now, this.records.ttlSeconds, ...this.usage.scriptArgs(now)],
    )) as [number, unknown];
    if (counted) this.usage.counted(counted);
    return confirmed === 1;
  }

  /**
   * Takes back a cancel request for a job its queue already reports finished (a terminal state
   * BullMQ never leaves), so the record does not contradict it. False when the job was canceled
   * (by its worker) after all.
   */
  async withdrawCancel(jobId: string): Promise<boolean> {
    return (await WITHDRAW_CANCEL.run(this.redis, [this.records.key(jobId)])) === 1;
  }

  /**
   * A worker picks the job up. The first time it is `started` (recorded), or `late` when that is
   * after its deadline; after a retry, a recovered stall or a move to another backend it is
   * `resumed`: a job that started in time is never late. A job whose cancel was requested first is
   * `canceled`. With `inlineImage`, the job's image comes back in the same step.
   */
  async begin(
    jobId: string,
    options: { deadline?: number | undefined; inlineImage?: boolean } = {},
    now = Date.now(),
  ): Promise<JobStart> {
    const { deadline, inlineImage = false } = options;
    const [kind, image] = (await BEGIN.runBuffer(
      this.redis,
      [this.records.key(jobId)],
      [deadline === undefined ? '' : deadline, now, inlineImage ? '1' : '0'],
    )) as [Buffer, Buffer | null | undefined];
    const verdict = kind.toString() as JobStart['kind'];
    if ((verdict === 'started' || verdict === 'resumed') && image) return { kind: verdict, image };
    return { kind: verdict };
  }

  /** Whether a cancel was requested: the worker's check before it runs the model. */
  async isCancelRequested(jobId: string): Promise<boolean> {
    return (await this.redis.hexists(this.records.key(jobId), 'cancel_requested_at')) === 1;
  }

  /**
   * A worker commits to an outcome. Answers `canceled` when a cancel was requested first: the
   * worker must then end the job canceled instead. The first time, the job's usage is counted in
   * the same step; `options.remember` is written in it too when the answer is `settled`.
   */
  async settle(
    jobId: string,
    settlement: Settlement,
    now = Date.now(),
    options: SettleOptions = {},
  ): Promise<'settled' | 'canceled'> {
    const refund = settlement.outcome === 'failed' && refundsQuota(settlement.code);
    const inferenceMs = settlement.outcome === 'succeeded' ? (settlement.inferenceMs ?? 0) : 0;
    const { webhooks = true, remember } = options;
    const keys = [this.records.key(jobId), this.records.deliveriesKey(jobId)];
    const args: (string | number)[] = [
      settlement.outcome,
      now,
      this.records.ttlSeconds,
      refund ? '1' : '0',
      ...this.usage.scriptArgs(now),
      inferenceMs,
      webhooks ? '1' : '0',
    ];
    if (remember && remember.ttlSeconds > 0) {
      keys.push(remember.key);
      args.push(remember.value, remember.ttlSeconds);
    }
    const [verdict, counted] = (await SETTLE.run(this.redis, keys, args)) as [
      'settled' | 'canceled',
      unknown,
    ];
    if (counted) this.usage.counted(counted);
    return verdict;
  }

  /**
   * Drops a job's inline image once BullMQ has recorded its end. Not at settle: a worker killed
   * between settling and BullMQ's finish leaves a stalled job that runs again, and needs it.
   */
  async releaseImage(jobId: string): Promise<void> {
    await this.redis.hdel(this.records.key(jobId), INLINE_IMAGE_FIELD);
  }
}
