import { ErrorCode } from 'bullmq';
import type { ChainableCommander } from 'ioredis';
import type { BackendKind } from '../models/model-spec.js';
import type { RedisClient } from '../redis/redis.js';
import { defineCommands, type FairClaimArgs, type FairKeys } from '../redis/redis-commands.js';
import type { InferenceQueues } from './inference-queues.js';

/**
 * How long an async job is parked in BullMQ's `delayed` set: far beyond any backlog the scheduler
 * is meant to hold, so only the scheduler promotes it. Should every process stop dispatching for
 * that long, BullMQ promotes it by itself: the job then runs out of its fair turn, but it runs.
 * (BullMQ scores a delayed job `(timestamp + delay) * 4096`: 30 days keeps that below 2^53.)
 */
export const PARK_DELAY_MS = 30 * 86_400_000;

/**
 * Job priorities the scheduler orders (1 first): the API's scale is 1–10. `fair-admit-7.lua` scores
 * a pending job `priority * 2^49 + arrival`, exact up to 16 * 2^49 = 2^53.
 */
const MAX_PRIORITY = 15;
/** A refill under way, settled either way once it is done; `next`: the one asked for meanwhile. */
interface RunningRefill {
  done: Promise<void>;
  next?: Promise<number>;
}

const noop = () => undefined;

/** An async job as the scheduler needs it. */
export interface FairJob {
  id: string;
  /** The API key id (or token tenant, or `anonymous`) whose turn it takes. */
  owner: string;
  /** The BullMQ priority: orders the jobs of one owner (1 first). */
  priority: number;
}

export interface FairSchedulerOptions {
  /**
   * Most async jobs runnable in a backend's BullMQ queue at once (FAIR_QUEUE_WINDOW): the rest wait
   * parked, in fair order. Larger keeps big worker pools fed between refills; smaller lets a new
   * key's jobs in sooner.
   * @defaultValue 16
   */
  window?: number;
  /**
   * An owner's share of the workers relative to the others' (the keys file's `weight`).
   * @defaultValue every owner 1
   */
  weightOf?: (owner: string) => number;
  /**
   * How old a claim must be before another process promotes its jobs (the claimer died between
   * claim and promotion; a promotion takes a round trip).
   * @defaultValue 5000
   */
  reclaimAfterMs?: number;
  /** Where a failed background refill is reported. */
  onError?: (err: unknown) => void;
}

/**
 * Fair scheduling of async jobs across owners (API keys), on top of BullMQ's open-source features.
 *
 * Every async job is added to its backend's BullMQ queue at acceptance, parked in the `delayed`
 * set ({@link PARK_DELAY_MS}), in the same MULTI as its record and its entry in its owner's pending
 * set here. So it is durable, visible as `queued`, cancelable, counted in the queue depth (and by
 * KEDA) and found by its idempotency key from the start, through BullMQ's own machinery. Only a
 * small window of async jobs ({@link FairSchedulerOptions.window}) is runnable (BullMQ's
 * `prioritized` set) at a time; when there is room, the scheduler picks the next job by stride
 * scheduling (weighted fair queuing at one job per turn): the ready owner with the lowest pass goes
 * next and its pass grows by 1/weight. Within one owner, jobs go by priority, then arrival. Sync
 * jobs carry no priority and go to BullMQ's `wait` list, before every async job, as before.
 *
 * A dispatch is two steps: a Lua claim (window room, owner, job, passes: one atomic decision, so
 * several API processes and workers may dispatch at once) and BullMQ's `promote` of each claimed
 * job. A process that dies in between leaves its claims behind; the next claim anywhere, once they
 * are {@link FairSchedulerOptions.reclaimAfterMs} old, promotes them again (a second promotion of a
 * job is refused by BullMQ and ignored here). The window is refilled when a job is admitted (in the
 * admitting MULTI, so a lone job on an idle system is runnable one round trip later), when a worker
 * takes an async job, by the orphan sweeper, and once a second by every API process.
 *
 * Why not fair tags mapped onto BullMQ priorities (start-time fair queuing): a job's tag is fixed
 * when it is added, so a key's later priority 1 job could not overtake its own earlier ones without
 * renumbering them, the tags grow without bound against BullMQ's 2^21 priorities, and computing a
 * tag atomically with BullMQ's add would need BullMQ's script changed.
 */
export class FairScheduler {
  private readonly window: number;
  private readonly reclaimAfterMs: number;
  private timer: NodeJS.Timeout | undefined;
  /** The refill running for each backend, and the one asked for meanwhile. */
  private readonly refills = new Map<BackendKind, RunningRefill>();
  private ticking: Promise<unknown> | undefined;

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly queues: InferenceQueues,
    private readonly options: FairSchedulerOptions = {},
  ) {
    this.window = options.window ?? 16;
    this.reclaimAfterMs = options.reclaimAfterMs ?? 5000;
    if (!Number.isInteger(this.window) || this.window < 1) {
      throw new RangeError(`window must be a whole number >= 1, got ${this.window}`);
    }
    defineCommands(redis);
  }

  /** The BullMQ options of an async job: parked until the scheduler lets it run. */
  static parked(priority: number): { priority: number; delay: number } {
    return { priority, delay: PARK_DELAY_MS };
  }

  /**
   * Queues the admission of a job just added parked ({@link parked}) on `transaction`, after the
   * add: its reply is the job ids to {@link dispatch}. The transaction's client must have the
   * commands defined ({@link defineCommands}) before it made the transaction.
   */
  stageAdmit(
    transaction: ChainableCommander,
    backend: BackendKind,
    job: FairJob,
    now = Date.now(),
  ): void {
    if (!Number.isInteger(job.priority) || job.priority < 1 || job.priority > MAX_PRIORITY) {
      throw new RangeError(`priority must be 1..${MAX_PRIORITY}, got ${job.priority}`);
    }
    const weight = this.options.weightOf?.(job.owner) ?? 1;
    transaction.fairAdmit(
      ...this.keys(backend),
      ...this.claimArgs(backend, now),
      job.owner,
      job.id,
      job.priority,
      weight,
    );
  }

  /** Promotes claimed jobs into the window; answers how many were promoted now. */
  async dispatch(backend: BackendKind, ids: readonly string[]): Promise<number> {
    const queue = this.queues.queue(backend).getBackend();
    const promoted = await Promise.all(
      ids.map((id) =>
        queue.promote(id).then(
          () => true,
          (err: { code?: number }) => {
            // No longer parked: promoted by another process, or canceled. Its claim is done.
            if (err.code === ErrorCode.JobNotInState || err.code === ErrorCode.JobNotExist) {
              return false;
            }
            throw err;
          },
        ),
      ),
    );
    return promoted.filter(Boolean).length;
  }

  /**
   * Fills the backend's window with the next jobs in fair order; answers how many went in. One
   * refill of a backend runs at a time in this process: those asked for while it runs are served
   * together by one more after it (a worker taking several jobs at once asks once per job, and all
   * but the first of such refills found the window full again). `now` is the time the claim
   * takes as its own (tests pretend time passed); a refill served by the next one takes that one's.
   */
  refill(backend: BackendKind, now?: number): Promise<number> {
    const running = this.refills.get(backend);
    if (!running) return this.runRefill(backend, now ?? Date.now());
    running.next ??= running.done.then(() => this.runRefill(backend, Date.now()));
    return running.next;
  }

  private runRefill(backend: BackendKind, now: number): Promise<number> {
    const refill = this.claim(backend, now).then((ids) => this.dispatch(backend, ids));
    const running: RunningRefill = { done: refill.then(noop, noop) };
    this.refills.set(backend, running);
    void running.done.then(() => {
      if (this.refills.get(backend) === running) this.refills.delete(backend);
    });
    return refill;
  }

  /**
   * Claims the next jobs for the window without promoting them: the first of a refill's two steps
   * (exposed so a test can stop between them, as a crash would).
   */
  async claim(backend: BackendKind, now = Date.now()): Promise<string[]> {
    return this.redis.fairRefill(...this.keys(backend), ...this.claimArgs(backend, now));
  }

  /** Takes a canceled job out of its owner's pending set (a claim skips it anyway, later). */
  async forget(backend: BackendKind, owner: string, id: string): Promise<void> {
    await this.redis.zrem(this.pendingKey(backend, owner), id);
  }

  /** An owner's jobs waiting for their turn. */
  async pendingCount(backend: BackendKind, owner: string): Promise<number> {
    return this.redis.zcard(this.pendingKey(backend, owner));
  }

  /**
   * Refills every backend's window every `intervalMs`: takes over the claims of a process that
   * died, and catches up with any refill a lost trigger left undone.
   */
  start(backends: readonly BackendKind[], intervalMs: number): void {
    this.timer = setInterval(() => {
      this.ticking ??= Promise.all(backends.map((b) => this.refill(b)))
        .catch((err: unknown) => this.options.onError?.(err))
        .finally(() => {
          this.ticking = undefined;
        });
    }, intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.ticking;
  }

  private base(backend: BackendKind): string {
    return `${this.prefix}:fair:${backend}`;
  }

  private pendingKey(backend: BackendKind, owner: string): string {
    return `${this.base(backend)}:pending:${owner}`;
  }

  private keys(backend: BackendKind): FairKeys {
    const base = this.base(backend);
    const queueKeys = this.queues.queue(backend).keys;
    return [
      `${base}:ready`,
      `${base}:idle`,
      `${base}:state`,
      `${base}:weights`,
      `${base}:claims`,
      queueKeys.delayed!,
      queueKeys.prioritized!,
    ];
  }

  private claimArgs(backend: BackendKind, now: number): FairClaimArgs {
    return [`${this.base(backend)}:pending:`, this.window, now, this.reclaimAfterMs];
  }
}
