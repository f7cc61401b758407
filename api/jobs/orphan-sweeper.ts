import { randomUUID } from 'node:crypto';
import { type Job, UnrecoverableError } from 'bullmq';
import type { Config } from '../../shared/config/config.js';
import { jobFailure } from '../../shared/errors/index.js';
import type { InferenceResult } from '../../shared/jobs/inference-result.js';
import type { JobForwarder } from '../../shared/jobs/job-forwarder.js';
import type { JobLifecycle } from '../../shared/jobs/job-lifecycle.js';
import type { JobSpec } from '../../shared/jobs/job-spec.js';
import type { Logger } from '../../shared/logging/logger.js';
import { BACKEND_KINDS, type BackendKind } from '../../shared/models/model-spec.js';
import { type InferenceWorkerOf, openOrphanTaker } from '../../shared/queues/bullmq-objects.js';
import type { FairScheduler } from '../../shared/queues/fair-scheduler.js';
import type { InferenceQueues } from '../../shared/queues/inference-queues.js';
import { createRedis, type RedisClient } from '../../shared/redis/redis.js';
import type { WebhookQueue } from '../../shared/webhooks/webhook-queue.js';
import type { BackendStatusCache } from '../routing/backend-status-cache.js';

type Taker = InferenceWorkerOf;

/** Jobs taken off one queue per sweep, so a sweep stays short; the next one takes the rest. */
const JOBS_PER_SWEEP = 500;

export interface OrphanSweeperDeps {
  redis: RedisClient;
  config: Config;
  queues: InferenceQueues;
  status: BackendStatusCache;
  forwarder: JobForwarder;
  lifecycle: JobLifecycle;
  webhooks: WebhookQueue;
  /** Lets the async jobs parked for their fair turn into the queue, as the sweep empties it. */
  scheduler: FairScheduler;
  logger: Logger;
  /** How long a backend must have had no live worker before its queued jobs are swept. */
  afterMs: number;
}

/**
 * Jobs stranded in the queue of a backend whose last worker is gone. Once the backend has had no
 * live worker for `afterMs`, each job waiting there moves to another backend that serves its model
 * (as a failed job's fallback does), or, when none can (no other backend, or the client chose this
 * one), fails `BACKEND_UNAVAILABLE` with its `completed` webhook: a client waiting on it hears back
 * instead of waiting for a worker that may never come. Jobs are taken the way a worker takes them
 * (BullMQ's lock), so a worker that returns meanwhile and this sweep never both hold one.
 *
 * Every API process runs one; a Redis lock per backend lets one of them sweep at a time.
 */
export class OrphanSweeper {
  /** Per backend, since when this process has seen it without a live worker. */
  private readonly noWorkerSince = new Map<BackendKind, number>();
  /** Per backend without workers, the BullMQ worker that takes its jobs off the queue. */
  private readonly takers = new Map<BackendKind, { taker: Taker; connection: RedisClient }>();
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<unknown> | undefined;

  constructor(private readonly deps: OrphanSweeperDeps) {}

  start(intervalMs: number): void {
    this.timer = setInterval(() => {
      this.sweeping ??= this.sweep()
        .catch((err: Error) => this.deps.logger.warn({ err: err.message }, 'orphan sweep failed'))
        .finally(() => {
          this.sweeping = undefined;
        });
    }, intervalMs);
    this.timer.unref();
  }

  /** One pass over every backend; answers how many jobs were moved or failed. */
  async sweep(now = Date.now()): Promise<number> {
    let handled = 0;
    for (const backend of BACKEND_KINDS) {
      if (this.deps.status.snapshot(backend).workers.length > 0) {
        this.noWorkerSince.delete(backend);
        await this.release(backend);
        continue;
      }
      const since = this.noWorkerSince.get(backend) ?? now;
      this.noWorkerSince.set(backend, since);
      if (now - since < this.deps.afterMs) continue;
      const held = await this.heldJobs(backend);
      if (held.queued + held.active === 0) {
        // Nothing to sweep, or nothing left (a backend never deployed is the common case): no
        // taker, and no Redis connection for one.
        await this.release(backend);
        continue;
      }
      // Also while only active jobs are left: the taker's stalled check sends the ones the dead
      // workers held back to the queue once their locks run out.
      const taker = this.taker(backend);
      if (held.queued === 0 || !(await this.lock(backend))) continue;
      handled += await this.sweepQueue(backend, taker, now - since);
    }
    return handled;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.sweeping;
    await Promise.all(BACKEND_KINDS.map((backend) => this.release(backend)));
  }

  /** Backends for which this sweeper holds a taker (and its Redis connection) now. */
  get takingFrom(): BackendKind[] {
    return [...this.takers.keys()];
  }

  /**
   * Takes jobs off the backend's queue as a worker of it would, and meanwhile runs BullMQ's
   * stalled-job check there: the jobs its last workers held when they died go back to the queue
   * once their locks run out (no worker of the backend is left to do it), and are swept next.
   */
  private taker(backend: BackendKind): Taker {
    const held = this.takers.get(backend);
    if (held) return held.taker;
    const { config } = this.deps;
    const connection = createRedis(config.redis, 'blocking');
    const taker = openOrphanTaker(backend, {
      connection,
      prefix: config.redis.prefix,
      worker: config.worker,
    });
    taker.on('error', (err) => this.deps.logger.warn({ err: err.message }, 'orphan taker error'));
    void taker.startStalledCheckTimer();
    this.takers.set(backend, { taker, connection });
    return taker;
  }

  /** The backend has a worker again (or this process stops): its own stalled check takes over. */
  private async release(backend: BackendKind): Promise<void> {
    const held = this.takers.get(backend);
    if (!held) return;
    this.takers.delete(backend);
    await held.taker.close();
    held.connection.disconnect();
  }

  /** Jobs waiting to be taken (waiting, prioritized, delayed), and those some worker holds. */
  private async heldJobs(backend: BackendKind): Promise<{ queued: number; active: number }> {
    const { active = 0, ...queued } = await this.deps.queues
      .queue(backend)
      .getJobCounts('waiting', 'prioritized', 'delayed', 'active');
    return { queued: Object.values(queued).reduce((a, b) => a + b, 0), active };
  }

  /** One sweeper per backend at a time, across every API process. */
  private async lock(backend: BackendKind): Promise<boolean> {
    const key = `${this.deps.config.redis.prefix}:orphan-sweep:${backend}`;
    const ttl = Math.max(1000, Math.min(this.deps.afterMs, 30_000));
    return (await this.deps.redis.set(key, randomUUID(), 'PX', ttl, 'NX')) === 'OK';
  }

  private async sweepQueue(
    backend: BackendKind,
    taker: Taker,
    workerlessMs: number,
  ): Promise<number> {
    const token = randomUUID();
    let handled = 0;
    for (; handled < JOBS_PER_SWEEP; handled++) {
      let job = await this.takeNext(taker, token);
      // The queue holds a window of async jobs at most; the rest are parked until let in.
      if (!job && (await this.deps.scheduler.refill(backend)) > 0) {
        job = await this.takeNext(taker, token);
      }
      if (!job) break;
      await this.rehome(job, backend, token, workerlessMs);
    }
    if (handled > 0) {
      this.deps.logger.warn({ backend, jobs: handled, workerlessMs }, 'orphaned jobs swept');
    }
    return handled;
  }

  private async takeNext(
    taker: Taker,
    token: string,
  ): Promise<Job<JobSpec, InferenceResult> | undefined> {
    return (await taker.getNextJob(token, { block: false })) as
      | Job<JobSpec, InferenceResult>
      | undefined;
  }

  /** Moves the job to another backend of its model, or fails it: it must not wait here forever. */
  private async rehome(
    job: Job<JobSpec, InferenceResult>,
    backend: BackendKind,
    token: string,
    workerlessMs: number,
  ): Promise<void> {
    const id = job.id!;
    const log = this.deps.logger.child({ jobId: id, requestId: job.data.requestId, backend });
    const reason = `no ${backend} worker has been running for ${Math.round(workerlessMs / 1000)} s`;
    const to = job.data.pinned
      ? undefined
      : await this.deps.forwarder.forward(job, backend, {
          code: 'BACKEND_UNAVAILABLE',
          message: reason,
        });
    if (to) {
      await job.moveToFailed(new UnrecoverableError(`moved to ${to}: ${reason}`), token, false);
      log.warn({ to }, 'orphaned job moved to another backend');
      return;
    }
    const outcome = await this.deps.lifecycle.settle(id, {
      outcome: 'failed',
      code: 'BACKEND_UNAVAILABLE',
    });
    const failure =
      outcome === 'canceled'
        ? jobFailure('JOB_CANCELED')
        : jobFailure('BACKEND_UNAVAILABLE', reason);
    await this.deps.webhooks.notify(id, job.data, 'completed');
    await job.moveToFailed(new UnrecoverableError(failure.message), token, false);
    log.warn(
      { code: outcome === 'canceled' ? 'JOB_CANCELED' : 'BACKEND_UNAVAILABLE' },
      'orphaned job failed',
    );
  }
}
