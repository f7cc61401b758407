import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CachedResult, ResultCacheTerms } from '../../shared/cache/result-cache.js';
import { withCause } from '../../shared/errors/index.js';
import type { JobLifecycle } from '../../shared/jobs/job-lifecycle.js';
import type { JobReader } from '../../shared/jobs/job-reader.js';
import type { JobRecord, JobRecords, NewJobRecord } from '../../shared/jobs/job-records.js';
import { ANONYMOUS_OWNER } from '../../shared/jobs/job-records.js';
import { describeJob, type JobResource } from '../../shared/jobs/job-resource.js';
import type { OwnerJobsPage } from '../../shared/jobs/owner-jobs.js';
import type { Logger } from '../../shared/logging/logger.js';
import { FairScheduler } from '../../shared/queues/fair-scheduler.js';
import type { InferenceJobData } from '../../shared/queues/index.js';
import type {
  InferenceJob,
  InferenceQueues,
  JobEntry,
} from '../../shared/queues/inference-queues.js';
import { imageKey } from '../../shared/storage/index.js';
import type { CountedJob, UsageLedger } from '../../shared/usage/usage-ledger.js';
import type { WebhookQueue } from '../../shared/webhooks/webhook-queue.js';
import type { WebhookSubscription } from '../../shared/webhooks/webhook-subscription.js';
import { errors } from '../http/errors.js';
import type { CompletionWaiter } from '../jobs/completion-waiter.js';
import { type FollowedJob, followJob } from '../jobs/follow-job.js';
import type { IdempotencyKeys } from '../jobs/idempotency-keys.js';
import type { KeyQuota } from '../quotas/key-quota.js';
import type { PolicyStanding, QuotaCharge, QuotaCounters } from '../quotas/quota-counters.js';
import { quotaHeaders, secondsUntil } from '../quotas/quota-headers.js';
import type { Route } from '../routing/router.js';
import type { ImageUploads } from './image-uploads.js';
import type { ResultLookup } from './result-lookup.js';

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
  /** `Cache-Control: no-cache` or `no-store`: run the model even if the answer is cached. */
  bypassCache?: boolean;
  /** The owner's quota; absent: none. */
  quota?: KeyQuota;
}

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
   * Images up to this size travel in the job's record, not through object storage
   * (INLINE_IMAGE_MAX_BYTES).
   * @defaultValue 0
   */
  inlineImageMaxBytes?: number;
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
  private readonly inlineImageMaxBytes: number;

  constructor(private readonly deps: InferenceServiceDeps) {
    this.inlineImageMaxBytes = deps.inlineImageMaxBytes ?? 0;
    if (this.inlineImageMaxBytes < 0) throw new RangeError('inlineImageMaxBytes must be >= 0');
  }

  async submit(request: SubmitRequest, wait: Wait = { timeoutMs: 0 }): Promise<AcceptedJob> {
    const owner = request.owner ?? ANONYMOUS_OWNER;
    const jobId = randomUUID();
    const { idempotency } = request;
    if (idempotency) {
      const earlier = await this.claimKey(owner, idempotency, jobId);
      if (earlier) {
        this.deps.logger.debug({ jobId: earlier, requestId: request.requestId }, 'job replayed');
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
      const submission = await this.create(jobId, owner, request, wait);
      if (idempotency && !(await this.deps.idempotency.commit(owner, idempotency.key, jobId))) {
        // The job exists; the commit is tried again until Redis is back or the key's lease runs
        // out (then a retry would make a second job).
        this.deps.logger.warn({ jobId }, 'idempotency key not committed yet');
      }
      return submission;
    } catch (err) {
      if (idempotency) await this.deps.idempotency.release(owner, idempotency.key, jobId);
      throw err;
    }
  }

  private async create(
    jobId: string,
    owner: string,
    request: SubmitRequest,
    wait: Wait,
  ): Promise<AcceptedJob> {
    const hash = request.imageKey ?? imageKey(request.image);
    const lookup = this.deps.results
      ? await this.deps.results.lookup({
          route: request.route,
          owner,
          imageKey: hash,
          params: request.params,
          bypass: request.bypassCache === true,
          requestId: request.requestId,
        })
      : {};
    // Charged once everything else has accepted the submission; given back if its job is not made.
    const charge = await this.charge(owner, request);
    try {
      if (lookup.hit) return await this.answerFromCache(jobId, owner, request, lookup.hit, charge);
      return await this.enqueue(jobId, owner, request, wait, lookup, hash, charge);
    } catch (err) {
      if (charge) {
        await this.deps.quotas.refund(charge.counters).catch((refundErr: Error) => {
          // The job was not made; its charge stays taken until the period ends.
          this.deps.logger.warn(
            { err: refundErr.message, requestId: request.requestId, owner },
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
    request: SubmitRequest,
  ): Promise<Extract<QuotaCharge, { accepted: true }> | undefined> {
    if (!request.quota) return undefined;
    const now = Date.now();
    const charge = await this.deps.quotas.charge(owner, request.quota, now).catch((err: Error) => {
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
    owner: string,
    request: SubmitRequest,
    wait: Wait,
    lookup: { terms?: ResultCacheTerms },
    hash: string,
    charge: Extract<QuotaCharge, { accepted: true }> | undefined,
  ): Promise<AcceptedJob> {
    const inline = request.image.length <= this.inlineImageMaxBytes;
    const key = inline
      ? hash
      : await this.deps.images.save(request.image, request.contentType, hash);

    const { backend } = request.route;
    // Called off when the job cannot be added, or when the caller's signal aborts (a listener
    // rather than AbortSignal.any, which costs more per request).
    const abandon = new AbortController();
    if (wait.signal?.aborted) abandon.abort();
    else wait.signal?.addEventListener('abort', () => abandon.abort(), { once: true });
    const followed =
      wait.timeoutMs > 0
        ? followJob(this.deps, jobId, backend, wait.timeoutMs, abandon.signal)
        : Promise.resolve(undefined);
    // Sync jobs carry no priority: BullMQ runs those before every prioritised (async) job.
    const priority = request.mode === 'async' ? request.priority : undefined;
    const data: InferenceJobData = {
      model: request.route.model.name,
      ...(request.version ? { version: request.version } : {}),
      imageKey: key,
      ...(inline ? { imageInline: true } : {}),
      params: request.params,
      requestId: request.requestId,
      owner,
      mode: request.mode,
      ...(request.deadline !== undefined ? { deadline: request.deadline } : {}),
      ...(request.webhook ? { webhook: request.webhook } : {}),
      ...(request.route.pinned ? { pinned: true } : {}),
    };
    if (lookup.terms) data.resultCache = lookup.terms;
    const record = newRecord(jobId, owner, request, charge);
    // Not `request.image` in the callback below: a closure here would keep the request, and with
    // it the upload, alive (its context is shared with the outcome's) for the whole sync wait.
    const inlineImage = inline ? request.image : undefined;
    // The record and the job in one transaction: both exist, or neither (a failed or timed-out
    // MULTI leaves nothing to clean up), in one round trip. An async job is added parked, with its
    // admission to the fair scheduler in the same transaction, and runs when its turn comes.
    const { scheduler } = this.deps;
    let added: { job: InferenceJob; staged: JobRecord; afterReply?: unknown };
    try {
      added = await this.deps.queues.addAtomically(
        backend,
        jobId,
        data,
        priority ? FairScheduler.parked(priority) : {},
        (transaction) => this.deps.records.stage(transaction, record, inlineImage),
        priority
          ? (transaction) =>
              scheduler.stageAdmit(transaction, backend, { id: jobId, owner, priority })
          : undefined,
      );
    } catch (err) {
      abandon.abort();
      throw withCause(new errors.QUEUE_UNAVAILABLE(), err);
    }
    this.deps.logger.debug({ jobId, backend, requestId: request.requestId }, 'job queued');
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
      data,
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
      ...(charge ? { quota: charge.standing } : {}),
    };
  }

  /**
   * A job answered from the result cache: its record, settled succeeded with the answer, and the
   * `completed` webhook (when asked for), then the answer. Nothing is stored or queued: no worker
   * ever sees it. The record comes first, so the webhook's reader finds the job finished.
   */
  private async answerFromCache(
    jobId: string,
    owner: string,
    request: SubmitRequest,
    hit: CachedResult,
    charge: Extract<QuotaCharge, { accepted: true }> | undefined,
  ): Promise<AcceptedJob> {
    const record: NewJobRecord = {
      ...newRecord(jobId, owner, request, charge),
      cachedResult: hit,
    };
    // It ends as it is created: counted in its owner's usage in the same transaction.
    const counted: CountedJob = {
      tenant: owner,
      model: record.model,
      outcome: 'succeeded',
      images: 0,
      inferenceMs: 0,
      uploadedBytes: request.image.length,
    };
    let created: JobRecord;
    try {
      created = await this.deps.records.create(record, undefined, (transaction) =>
        this.deps.usage.stage(transaction, counted, record.createdAt),
      );
      this.deps.usage.notify(counted);
      await this.deps.webhooks.notify(
        { id: jobId, webhook: request.webhook, requestId: request.requestId, owner },
        'completed',
      );
    } catch (err) {
      throw withCause(new errors.QUEUE_UNAVAILABLE(), err);
    }
    this.deps.logger.debug(
      { jobId, computedBy: hit.jobId, requestId: request.requestId },
      'job answered from the result cache',
    );
    const job = describeJob({ record: created })!;
    return {
      jobId,
      replayed: false,
      job,
      outcome: Promise.resolve(job),
      ...(charge ? { quota: charge.standing } : {}),
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
      if (!record || (record.submission?.owner ?? ANONYMOUS_OWNER) !== owner) {
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
          {
            id: jobId,
            webhook: record.submission?.webhook,
            requestId: record.requestId,
            owner: record.submission?.owner,
          },
          'completed',
        );
      }
      this.deps.logger.info({ jobId, requestId: record.requestId }, 'queued job canceled');
      // Last, and only tidying: a job waiting for its fair turn leaves its key's pending set (the
      // scheduler skips a removed job anyway, so a failure here changes nothing).
      await this.deps.scheduler
        .forget(record.backend, record.submission?.owner ?? ANONYMOUS_OWNER, jobId)
        .catch((err: Error) => this.deps.logger.warn({ jobId, err: err.message }, 'forget failed'));
    } catch (err) {
      if ((err as { code?: string }).code === 'JOB_FINISHED') throw err;
      throw withCause(new errors.QUEUE_UNAVAILABLE(), err);
    }
  }
}

/** A new job's record: where it goes, and the submission's own settings. */
function newRecord(
  jobId: string,
  owner: string,
  request: SubmitRequest,
  charge: { counters: string[] } | undefined,
): NewJobRecord {
  // Sync jobs carry no priority: BullMQ runs those before every prioritised (async) job.
  const priority = request.mode === 'async' ? request.priority : undefined;
  return {
    id: jobId,
    model: request.route.model.name,
    backend: request.route.backend,
    createdAt: Date.now(),
    requestId: request.requestId,
    imageBytes: request.image.length,
    ...(charge ? { quotaCharge: charge.counters } : {}),
    submission: {
      ...(request.version ? { version: request.version } : {}),
      mode: request.mode,
      ...(priority !== undefined ? { priority } : {}),
      ...(request.deadline !== undefined ? { deadline: request.deadline } : {}),
      ...(request.webhook ? { webhook: request.webhook } : {}),
      owner,
    },
  };
}
