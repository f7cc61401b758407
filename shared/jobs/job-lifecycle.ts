import type { RedisClient } from '../redis/redis.js';
import { defineCommands } from '../redis/redis-commands.js';
import { refundsQuota, type UsageLedger } from '../usage/usage-ledger.js';
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
  ) {
    defineCommands(redis);
  }

  async requestCancel(jobId: string, now = Date.now()): Promise<CancelRequest> {
    const [kind, value] = await this.redis.jobRequestCancel(this.records.key(jobId), now);
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
    const [confirmed, counted] = await this.redis.jobConfirmCanceled(
      this.records.key(jobId),
      this.records.deliveriesKey(jobId),
      now,
      this.records.ttlSeconds,
      ...this.usage.scriptArgs(now),
    );
    if (counted) this.usage.counted(counted);
    return confirmed === 1;
  }

  /**
   * Takes back a cancel request for a job its queue already reports finished (a terminal state
   * BullMQ never leaves), so the record does not contradict it. False when the job was canceled
   * (by its worker) after all.
   */
  async withdrawCancel(jobId: string): Promise<boolean> {
    return (await this.redis.jobWithdrawCancel(this.records.key(jobId))) === 1;
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
    const [kind, image] = await this.redis.jobBeginBuffer(
      this.records.key(jobId),
      deadline === undefined ? '' : deadline,
      now,
      inlineImage ? '1' : '0',
    );
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
    const [verdict, counted] = await this.redis.jobSettle(keys.length, ...keys, ...args);
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
