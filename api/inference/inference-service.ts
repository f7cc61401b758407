import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CachedResult } from '../../shared/cache/result-cache.js';
import { withCause } from '../../shared/errors/index.js';
import type { JobLifecycle } from '../../shared/jobs/job-lifecycle.js';
import type { JobReader } from '../../shared/jobs/job-reader.js';
import type { JobRecord, JobRecords, NewJobRecord } from '../../shared/jobs/job-records.js';
import { describeJob, type JobResource } from '../../shared/jobs/job-resource.js';
import type { OwnerJobsPage } from '../../shared/jobs/owner-jobs.js';
import type { Logger } from '../../shared/logging/logger.js';
import { FairScheduler } from '../../shared/queues/fair-scheduler.js';
import type {
  InferenceJob,
  InferenceQueues,
  JobEntry,
} from '../../shared/queues/inference-queues.js';
import type { CountedJob, UsageLedger } from '../../shared/usage/usage-ledger.js';
import type { WebhookQueue } from '../../shared/webhooks/webhook-queue.js';
import { errors } from '../http/errors.js';
import type { Submission } from '../http/submission.js';
import type { CompletionWaiter } from '../jobs/completion-waiter.js';
import { type FollowedJob, followJob } from '../jobs/follow-job.js';
import type { IdempotencyKeys } from '../jobs/idempotency-keys.js';
import type { KeyQuota } from '../quotas/key-quota.js';
import type { PolicyStanding, QuotaCharge, QuotaCounters } from '../quotas/quota-counters.js';
import { quotaHeaders, secondsUntil } from '../quotas/quota-headers.js';
import type { ImageUploads } from './image-uploads.js';
import type { ResultLookup } from './result-lookup.js';

export interface JobPage {
  jobs: JobResource[];
  /** The cursor of the next page; absent on the last. */
  next?: string;
}

/** A job a request made (or found again by its idempotency key), and how it ended. */
export interface AcceptedJob {
  jobId: string;
  /** The idempotency key matched an earlier submission: this is its job, no new one was made. */
  replayed: boolean;
  /** The job as it was accepted (a replay: as it is now). */
  job: JobResource;
  /** The job once it has finished, within the wait; `undefined` when the wait ran out first. */
  outcome: Promise<JobResource | undefined>;
  /** Where the owner's quota stands after this submission (absent: no quota, or a replay). */
  quota?: PolicyStanding[];
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
  /** Orders async jobs fairly across owners (sync jobs go straight to their queue). */
  scheduler: FairScheduler;
  logger: Logger;
  /** The result cache; absent: every request runs its model. */
  results?: ResultLookup;
  /** Where an answer from the result cache, which ends as it is created, is counted. */
  usage: UsageLedger;
  /** Quota counters, for submissions that carry a quota. */
  quotas: QuotaCounters;
  /**
   * How long a request waits for a concurrent request with the same idempotency key to create its
   * job before answering IDEMPOTENCY_KEY_IN_USE.
   * @defaultValue 10000
   */
  idempotencyWaitMs?: number;
}

type Wait = { timeoutMs: number; signal?: AbortSignal };

/**
 * Turns an accepted upload into a job: the image inline in the job's record when it is small, into
 * storage (content-addressed) otherwise; the record and a small job in the chosen backend's queue,
 * in one round trip; and, when the caller will wait, a waiter registered before the job is added
 * so its completion cannot be missed. A job that completes within the wait is answered from its
 * completion event, without reading it back. A request whose answer is in the result cache gets a
 * job that is succeeded as it is created: its record holds the answer, nothing is stored or
 * queued, and its `completed` webhook is queued at once. Also the API side of a job's life: reading
 * it and canceling it.
 */
export class InferenceService {
  constructor(private readonly deps: InferenceServiceDeps) {}

  async submit(submission: Submission, wait: Wait = { timeoutMs: 0 }): Promise<AcceptedJob> {
    const { owner, requestId } = submission.spec;
    const jobId = randomUUID();
    const { idempotency } = submission;
    if (idempotency) {
      const earlier = await this.claimKey(owner, idempotency, jobId);
      if (earlier) {
        this.deps.logger.debug({ jobId: earlier, requestId }, 'job replayed');
        const job = await this.get(earlier);
        if (!job) throw new errors.JOB_NOT_FOUND(earlier);
        return {
          jobId: earlier,
          replayed: true,
          job,
          outcome: this.waitForExisting(earlier, wait),
        };
      }
    }
    try {
      const accepted = await this.create(jobId, submission, wait);
      if (idempotency && !(await this.deps.idempotency.commit(owner, idempotency.key, jobId))) {
        // The job exists; the commit is tried again until Redis is back or the key's lease runs
        // out (then a retry would make a second job).
        this.deps.logger.warn({ jobId }, 'idempotency key not committed yet');
      }
      return accepted;
    } catch (err) {
      if (idempotency) await this.deps.idempotency.release(owner, idempotency.key, jobId);
      throw err;
    }
  }

  private async create(jobId: string, submission: Submission, wait: Wait): Promise<AcceptedJob> {
    const { spec } = submission;
    const hit = await this.deps.results?.lookup({
      spec,
      route: submission.route,
      bypass: submission.bypassCache,
    });
    // Charged once everything else has accepted the submission; given back if its job is not made.
    const charge = await this.charge(spec.owner, submission.quota);
    try {
      if (hit) return await this.answerFromCache(jobId, submission, hit, charge);
      return await this.enqueue(jobId, submission, wait, charge);
    } catch (err) {
      if (charge) {
        await this.deps.quotas.refund(charge.counters).catch((refundErr: Error) => {
          // The job was not made; its charge stays taken until the period ends.
          this.deps.logger.warn(
            { err: refundErr.message, requestId: spec.requestId, owner: spec.owner },
            'quota charge not given back',
          );
        });
      }
      throw err;
    }
  }

  /**
   * Takes the submission from its owner's quota, or refuses it with QUOTA_EXCEEDED (with
   * `Retry-After` at the end of the period that ran out, and the quota's RateLimit headers).
   */
  private async charge(
    owner: string,
    quota: KeyQuota | undefined,
  ): Promise<Extract<QuotaCharge, { accepted: true }> | undefined> {
    if (!quota) return undefined;
    const now = Date.now();
    const charge = await this.deps.quotas.charge(owner, quota, now).catch((err: Error) => {
      throw withCause(new errors.QUEUE_UNAVAILABLE(), err);
    });
    if (charge.accepted) return charge;
    const [first] = charge.refused;
    const renews = Math.max(...charge.refused.map((s) => s.resetsAt));
    const error = new errors.QUOTA_EXCEEDED(
      first!.policy,
      first!.limit,
      new Date(renews).toISOString(),
    );
    throw Object.assign(error, {
      headers: {
        'retry-after': String(secondsUntil(renews, now)),
        ...quotaHeaders(charge.standing, now),
      },
    });
  }

  private async enqueue(
    jobId: string,
    submission: Submission,
    wait: Wait,
    charge: Extract<QuotaCharge, { accepted: true }> | undefined,
  ): Promise<AcceptedJob> {
    const { spec, route } = submission;
    if (!spec.imageInline) {
      await this.deps.images.save(submission.image, submission.contentType, spec.imageKey);
    }

    const { backend } = route;
    // Called off when the job cannot be added, or when the caller's signal aborts (a listener
    // rather than AbortSignal.any, which costs more per request).
    const abandon = new AbortController();
    if (wait.signal?.aborted) abandon.abort();
    else wait.signal?.addEventListener('abort', () => abandon.abort(), { once: true });
    const followed =
      wait.timeoutMs > 0
        ? followJob(this.deps, jobId, backend, wait.timeoutMs, abandon.signal)
        : Promise.resolve(undefined);
    const { priority } = spec;
    const record = newRecord(jobId, submission, charge);
    // Not `submission.image` in the callback below: a closure here would keep the submission, and
    // with it the upload, alive (its context is shared with the outcome's) for the whole sync wait.
    const inlineImage = spec.imageInline ? submission.image : undefined;
    // The record and the job in one transaction: both exist, or neither (a failed or timed-out
    // MULTI leaves nothing to clean up), in one round trip. An async job is added parked, with its
    // admission to the fair scheduler in the same transaction, and runs when its turn comes.
    const { scheduler } = this.deps;
    let added: { job: InferenceJob; staged: JobRecord; afterReply?: unknown };
    try {
      added = await this.deps.queues.addAtomically(
        backend,
        jobId,
        spec,
        priority ? FairScheduler.parked(priority) : {},
        (transaction) => this.deps.records.stage(transaction, record, inlineImage),
        priority
          ? (transaction) =>
              scheduler.stageAdmit(transaction, backend, { id: jobId, owner: spec.owner, priority })
          : undefined,
      );
    } catch (err) {
      abandon.abort();
      throw withCause(new errors.QUEUE_UNAVAILABLE(), err);
    }
    this.deps.logger.debug({ jobId, backend, requestId: spec.requestId }, 'job queued');
    if (Array.isArray(added.afterReply) && added.afterReply.length > 0) {
      // Accepted either way: a claim whose promotion fails here is taken over by the next refill.
      await scheduler
        .dispatch(backend, added.afterReply as string[])
        .catch((err: Error) =>
          this.deps.logger.warn({ jobId, backend, err: err.message }, 'dispatch failed'),
        );
    }

    const entry: JobEntry = {
      id: jobId,
      data: spec,
      opts: priority ? { priority } : {},
      timestamp: added.job.timestamp,
      processedOn: undefined,
      finishedOn: undefined,
      attemptsMade: 0,
    };
    const queued = describeJob({
      record: added.staged,
      found: { backend, job: entry, state: priority ? 'delayed' : 'waiting' },
    })!;
    return {
      jobId,
      replayed: false,
      job: queued,
      outcome: followed.then((end) => this.describeEnd(added.staged, entry, end)),
      quota: charge?.standing,
    };
  }

  /**
   * A job answered from the result cache: its record, settled succeeded with the answer, and the
   * `completed` webhook (when asked for), then the answer. Nothing is stored or queued: no worker
   * ever sees it. The record comes first, so the webhook's reader finds the job finished.
   */
  private async answerFromCache(
    jobId: string,
    submission: Submission,
    hit: CachedResult,
    charge: Extract<QuotaCharge, { accepted: true }> | undefined,
  ): Promise<AcceptedJob> {
    const { spec } = submission;
    const record: NewJobRecord = { ...newRecord(jobId, submission, charge), cachedResult: hit };
    // It ends as it is created: counted in its owner's usage in the same transaction.
    const counted: CountedJob = {
      tenant: spec.owner,
      model: spec.model,
      outcome: 'succeeded',
      images: 0,
      inferenceMs: 0,
      uploadedBytes: submission.image.length,
    };
    let created: JobRecord;
    try {
      created = await this.deps.records.create(record, undefined, (transaction) =>
        this.deps.usage.stage(transaction, counted, record.createdAt),
      );
      this.deps.usage.notify(counted);
      await this.deps.webhooks.notify(jobId, spec, 'completed');
    } catch (err) {
      throw withCause(new errors.QUEUE_UNAVAILABLE(), err);
    }
    this.deps.logger.debug(
      { jobId, computedBy: hit.jobId, requestId: spec.requestId },
      'job answered from the result cache',
    );
    const job = describeJob({ record: created })!;
    return {
      jobId,
      replayed: false,
      job,
      outcome: Promise.resolve(job),
      quota: charge?.standing,
    };
  }

  /**
   * The finished job. One that completed where it was queued is described from its completion
   * event and what this request knows, with no read; anything else (a failure, a move to another
   * backend, webhook deliveries to show) is read back.
   */
  private async describeEnd(
    record: JobRecord,
    entry: JobEntry,
    end: FollowedJob | undefined,
  ): Promise<JobResource | undefined> {
    if (!end) return undefined;
    const { result } = end;
    if (!result || end.backend !== record.backend || entry.data.webhook) return this.get(record.id);
    return describeJob({
      record: { ...record, lifecycle: { settled: 'succeeded' } },
      found: {
        backend: end.backend,
        state: 'completed',
        job: {
          ...entry,
          processedOn: result.startedAt,
          finishedOn: result.finishedAt,
          attemptsMade: result.attempts,
          returnvalue: result,
        },
      },
    });
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
        .catch(async (err: Error) => {
          // The claim may have landed with only its answer lost (Redis went away): free it, or
          // every retry would find it pending until its lease runs out.
          await this.deps.idempotency.release(owner, key, jobId);
          throw withCause(new errors.QUEUE_UNAVAILABLE(), err);
        });
      if (claim.kind === 'claimed') return undefined;
      if (claim.fingerprint !== fingerprint) {
        throw new errors.IDEMPOTENCY_KEY_REUSED(key, claim.jobId);
      }
      if (claim.committed) return claim.jobId;
      // Not committed, but its job exists (record and job are added in one transaction): the
      // request that made it died or lost Redis before committing. The job is the answer.
      const made = await this.deps.records.exists(claim.jobId).catch((err: Error) => {
        throw withCause(new errors.QUEUE_UNAVAILABLE(), err);
      });
      if (made) return claim.jobId;
      if (Date.now() > until) throw new errors.IDEMPOTENCY_KEY_IN_USE(key);
      await sleep(pause);
    }
  }

  /** A wait on a job that already exists, which may have finished already. */
  private async waitForExisting(jobId: string, wait: Wait): Promise<JobResource | undefined> {
    if (wait.timeoutMs <= 0) return undefined;
    const record = await this.deps.records.get(jobId);
    const end = record
      ? await followJob(this.deps, jobId, record.backend, wait.timeoutMs, wait.signal, {
          exists: true,
        })
      : undefined;
    return record && !end ? undefined : this.get(jobId);
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
      next: page.next,
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
      if (!record || record.spec.owner !== owner) {
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
        await this.deps.webhooks.notify(jobId, record.spec, 'completed');
      }
      this.deps.logger.info({ jobId, requestId: record.spec.requestId }, 'queued job canceled');
      // Last, and only tidying: a job waiting for its fair turn leaves its key's pending set (the
      // scheduler skips a removed job anyway, so a failure here changes nothing).
      await this.deps.scheduler
        .forget(record.backend, record.spec.owner, jobId)
        .catch((err: Error) => this.deps.logger.warn({ jobId, err: err.message }, 'forget failed'));
    } catch (err) {
      if ((err as { code?: string }).code === 'JOB_FINISHED') throw err;
      throw withCause(new errors.QUEUE_UNAVAILABLE(), err);
    }
  }
}

/** A new job's record: its spec, where it goes, and what it was charged. */
function newRecord(
  jobId: string,
  submission: Submission,
  charge: { counters: string[] } | undefined,
): NewJobRecord {
  return {
    id: jobId,
    spec: submission.spec,
    backend: submission.route.backend,
    createdAt: Date.now(),
    imageBytes: submission.image.length,
    quotaCharge: charge?.counters,
  };
}
