import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { errors, withCause } from '../../shared/errors/index.js';
import type { JobLifecycle } from '../../shared/jobs/job-lifecycle.js';
import type { JobReader } from '../../shared/jobs/job-reader.js';
import type { JobRecords } from '../../shared/jobs/job-records.js';
import type { JobResource } from '../../shared/jobs/job-resource.js';
import type { OwnerJobsPage } from '../../shared/jobs/owner-jobs.js';
import type { Logger } from '../../shared/logging/logger.js';
import type { InferenceJobData } from '../../shared/queues/index.js';
import type { InferenceQueues } from '../../shared/queues/inference-queues.js';
import type { Route } from '../../shared/routing/router.js';
import type { WebhookQueue } from '../../shared/webhooks/webhook-queue.js';
import type { WebhookSubscription } from '../../shared/webhooks/webhook-subscription.js';
import { ANONYMOUS } from '../http/owner.js';
import type { CompletionWaiter } from '../jobs/completion-waiter.js';
import { followJob } from '../jobs/follow-job.js';
import type { IdempotencyKeys } from '../jobs/idempotency-keys.js';
import type { ImageUploads } from './image-uploads.js';

export interface SubmitRequest {
  route: Route;
  version?: string;
  image: Buffer;
  /** The image's storage key when the caller has hashed it already. */
  imageKey?: string;
  contentType: string;
  params: InferenceJobData['params'];
  requestId: string;
  mode: InferenceJobData['mode'];
  /** BullMQ priority of an async job (1 first); sync jobs carry none and go before all of them. */
  priority?: number;
  /** Epoch ms by which the job must have started. */
  deadline?: number;
  webhook?: WebhookSubscription;
  /** Who submits: the scope of the idempotency key. */
  owner?: string;
  /** `Idempotency-Key` and the request's fingerprint (what makes two requests the same). */
  idempotency?: { key: string; fingerprint: string };
}

export interface JobPage {
  jobs: JobResource[];
  /** The cursor of the next page; absent on the last. */
  next?: string;
}

export interface Submission {
  jobId: string;
  /** Resolves `true` when the job has finished within the wait, `false` otherwise. */
  finished: Promise<boolean>;
  /** The idempotency key matched an earlier submission: this is its job, no new one was made. */
  replayed: boolean;
}

export interface InferenceServiceDeps {
  images: ImageUploads;
  records: JobRecords;
  queues: InferenceQueues;
  waiter: CompletionWaiter;
  reader: JobReader;
  lifecycle: JobLifecycle;
  webhooks: WebhookQueue;
  idempotency: IdempotencyKeys;
  logger: Logger;
  /**
   * How long a request waits for a concurrent request with the same idempotency key to create its
   * job before answering IDEMPOTENCY_KEY_IN_USE.
   * @defaultValue 10000
   */
  idempotencyWaitMs?: number;
}

type Wait = { timeoutMs: number; signal?: AbortSignal };

/**
 * Turns an accepted upload into a job: the image into storage (content-addressed), a small job into
 * the chosen backend's queue, and, when the caller will wait, a waiter registered before the job is
 * added so its completion cannot be missed. Also the API side of a job's life: reading it back and
 * canceling it.
 */
export class InferenceService {
  constructor(private readonly deps: InferenceServiceDeps) {}

  async submit(request: SubmitRequest, wait: Wait = { timeoutMs: 0 }): Promise<Submission> {
    const owner = request.owner ?? ANONYMOUS;
    const jobId = randomUUID();
    const { idempotency } = request;
    if (idempotency) {
      const earlier = await this.claimKey(owner, idempotency, jobId);
      if (earlier) {
        this.deps.logger.debug({ jobId: earlier, requestId: request.requestId }, 'job replayed');
        return { jobId: earlier, finished: this.waitForExisting(earlier, wait), replayed: true };
      }
    }
    try {
      const submission = await this.create(jobId, owner, request, wait);
      if (idempotency) {
        await this.deps.idempotency.commit(owner, idempotency.key, jobId).catch((err: Error) => {
          // The job exists; the key's lease runs out and a retry would make a second job.
          this.deps.logger.warn({ jobId, err: err.message }, 'idempotency key not committed');
        });
      }
      return submission;
    } catch (err) {
      if (idempotency) {
        await this.deps.idempotency.release(owner, idempotency.key, jobId).catch(() => undefined);
      }
      throw err;
    }
  }

  private async create(
    jobId: string,
    owner: string,
    request: SubmitRequest,
    wait: Wait,
  ): Promise<Submission> {
    const key = await this.deps.images.save(request.image, request.contentType, request.imageKey);

    const { backend } = request.route;
    const abandon = new AbortController();
    const finished =
      wait.timeoutMs > 0
        ? followJob(
            this.deps,
            jobId,
            backend,
            wait.timeoutMs,
            wait.signal ? AbortSignal.any([wait.signal, abandon.signal]) : abandon.signal,
          )
        : Promise.resolve(false);
    // Sync jobs carry no priority: BullMQ runs those before every prioritised (async) job.
    const priority = request.mode === 'async' ? request.priority : undefined;
    const data: InferenceJobData = {
      model: request.route.model.name,
      ...(request.version ? { version: request.version } : {}),
      imageKey: key,
      params: request.params,
      requestId: request.requestId,
      mode: request.mode,
      ...(request.deadline !== undefined ? { deadline: request.deadline } : {}),
      ...(request.webhook ? { webhook: request.webhook } : {}),
      ...(request.route.pinned ? { pinned: true } : {}),
    };
    try {
      // The record first: a job that exists in a queue can always be found.
      await this.deps.records.create({
        id: jobId,
        model: data.model,
        backend,
        createdAt: Date.now(),
        requestId: request.requestId,
        submission: {
          ...(request.version ? { version: request.version } : {}),
          mode: request.mode,
          ...(priority !== undefined ? { priority } : {}),
          ...(request.deadline !== undefined ? { deadline: request.deadline } : {}),
          ...(request.webhook ? { webhook: request.webhook } : {}),
          owner,
        },
      });
      await this.deps.queues.add(backend, jobId, data, priority ? { priority } : {});
    } catch (err) {
      abandon.abort();
      await this.dropRecordUnlessQueued(backend, jobId);
      throw withCause(new errors.QUEUE_UNAVAILABLE(), err);
    }
    this.deps.logger.debug({ jobId, backend, requestId: request.requestId }, 'job queued');
    return { jobId, finished, replayed: false };
  }

  /**
   * After a failed add: the record goes only when the queue certainly has no such job. An add that
   * timed out may still have happened, and a job without its record could not be followed,
   * canceled or moved; when in doubt the record stays and expires with the retention.
   */
  private async dropRecordUnlessQueued(backend: Route['backend'], jobId: string): Promise<void> {
    try {
      if (!(await this.deps.queues.queue(backend).getJob(jobId))) {
        await this.deps.records.delete(jobId);
      }
    } catch {
      // Redis is unreachable: nothing can be known, nothing is deleted.
    }
  }

  /**
   * Claims the idempotency key for `jobId`, or returns the job an earlier request with the same key
   * and fingerprint made. A concurrent request still creating its job is waited for.
   */
  private async claimKey(
    owner: string,
    { key, fingerprint }: { key: string; fingerprint: string },
    jobId: string,
  ): Promise<string | undefined> {
    const until = Date.now() + (this.deps.idempotencyWaitMs ?? 10_000);
    // The first request usually has its job within milliseconds; a slow one is not polled hard.
    for (let pause = 25; ; pause = Math.min(pause * 2, 500)) {
      const claim = await this.deps.idempotency
        .claim(owner, key, jobId, fingerprint)
        .catch((err: Error) => {
          throw withCause(new errors.QUEUE_UNAVAILABLE(), err);
        });
      if (claim.kind === 'claimed') return undefined;
      if (claim.fingerprint !== fingerprint) {
        throw new errors.IDEMPOTENCY_KEY_REUSED(key, claim.jobId);
      }
      if (claim.committed) return claim.jobId;
      if (Date.now() > until) throw new errors.IDEMPOTENCY_KEY_IN_USE(key);
      await sleep(pause);
    }
  }

  /** A wait on a job that already exists, which may have finished already. */
  private async waitForExisting(jobId: string, wait: Wait): Promise<boolean> {
    if (wait.timeoutMs <= 0) return false;
    const record = await this.deps.records.get(jobId);
    if (!record) return true;
    return followJob(this.deps, jobId, record.backend, wait.timeoutMs, wait.signal, {
      exists: true,
    });
  }

  /** The job; with `owner`, only if it is theirs (another owner's job is not found). */
  async get(jobId: string, owner?: string): Promise<JobResource | undefined> {
    try {
      return await this.deps.reader.read(jobId, owner);
    } catch (err) {
      throw withCause(new errors.QUEUE_UNAVAILABLE(), err);
    }
  }

  /**
   * One page of an owner's jobs, newest first, from `cursor` (the `next` of the page before). Jobs
   * that have expired since are left out, so a page may hold fewer than `limit`.
   */
  async list(owner: string, limit: number, cursor?: string): Promise<JobPage> {
    let page: OwnerJobsPage;
    try {
      page = await this.deps.records.owners.page(owner, limit, cursor);
    } catch (err) {
      if (err instanceof RangeError) throw new errors.VALIDATION_FAILED(`cursor: ${err.message}`);
      throw withCause(new errors.QUEUE_UNAVAILABLE(), err);
    }
    const jobs = await Promise.all(page.ids.map((id) => this.get(id, owner)));
    return {
      jobs: jobs.filter((job): job is JobResource => job !== undefined),
      ...(page.next ? { next: page.next } : {}),
    };
  }

  /**
   * Cancels a job that has not finished. A queued job leaves its queue and is canceled at once; a
   * running one is marked, and its worker ends it canceled at its next check (before running the
   * model, or before handing back a result), which it cannot pass once marked: so the answer,
   * `canceled`, holds. A finished job answers JOB_FINISHED.
   */
  async cancel(jobId: string, owner?: string): Promise<JobResource> {
    if (owner !== undefined) {
      const record = await this.deps.records.get(jobId).catch((err: Error) => {
        throw withCause(new errors.QUEUE_UNAVAILABLE(), err);
      });
      if (!record || (record.submission?.owner ?? ANONYMOUS) !== owner) {
        throw new errors.JOB_NOT_FOUND(jobId);
      }
    }
    const request = await this.deps.lifecycle.requestCancel(jobId).catch((err: Error) => {
      throw withCause(new errors.QUEUE_UNAVAILABLE(), err);
    });
    if (request.kind === 'missing') throw new errors.JOB_NOT_FOUND(jobId);
    if (request.kind === 'finished') throw new errors.JOB_FINISHED(jobId, request.outcome);
    if (request.kind === 'requested') await this.removeIfQueued(jobId);
    const job = await this.get(jobId, owner);
    if (!job) throw new errors.JOB_NOT_FOUND(jobId);
    return job;
  }

  private async removeIfQueued(jobId: string): Promise<void> {
    try {
      const record = await this.deps.records.get(jobId);
      if (!record) return;
      const queue = this.deps.queues.queue(record.backend);
      const state = await queue.getJobState(jobId);
      if (state === 'completed' || state === 'failed') {
        // Finished without a worker's settle (it failed by stalling too often): the queue's word
        // is final, so the cancel request is withdrawn.
        if (await this.deps.lifecycle.withdrawCancel(jobId)) {
          throw new errors.JOB_FINISHED(jobId, state === 'completed' ? 'succeeded' : 'failed');
        }
        return;
      }
      // A locked (running) job is not removed: its worker sees the mark and stops.
      if ((await queue.remove(jobId)) !== 1) return;
      if (await this.deps.lifecycle.confirmCanceled(jobId)) {
        await this.deps.webhooks.notify(
          jobId,
          'completed',
          record.submission?.webhook,
          record.requestId,
        );
      }
      this.deps.logger.info({ jobId, requestId: record.requestId }, 'queued job canceled');
    } catch (err) {
      if ((err as { code?: string }).code === 'JOB_FINISHED') throw err;
      throw withCause(new errors.QUEUE_UNAVAILABLE(), err);
    }
  }
}
