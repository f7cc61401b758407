import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CachedResult } from '../../shared/cache/result-cache.js';
import { withCause } from '../../shared/errors/index.js';
import type { JobRecord, JobRecords, NewJobRecord } from '../../shared/jobs/job-records.js';
import { describeJob, type JobResource } from '../../shared/jobs/job-resource.js';
import type { Logger } from '../../shared/logging/logger.js';
import type { CountedJob, UsageLedger } from '../../shared/usage/usage-ledger.js';
import type { WebhookQueue } from '../../shared/webhooks/webhook-queue.js';
import type { ResultLookup } from '../cache/result-lookup.js';
import { errors } from '../http/errors.js';
import type { Submission } from '../http/submission.js';
import type { KeyQuota } from '../quotas/key-quota.js';
import type { PolicyStanding, QuotaCharge, QuotaCounters } from '../quotas/quota-counters.js';
import { quotaHeaders, secondsUntil } from '../quotas/quota-headers.js';
import type { JobWait } from './follow-job.js';
import type { IdempotencyKeys } from './idempotency-keys.js';
import type { JobEnqueuer, MadeJob } from './job-enqueuer.js';
import type { JobLookup } from './job-lookup.js';

/** A job a request made (or found again by its idempotency key), and how it ended. */
export interface AcceptedJob extends MadeJob {
  jobId: string;
  /** The idempotency key matched an earlier submission: this is its job, no new one was made. */
  replayed: boolean;
  /** Where the owner's quota stands after this submission (absent: no quota, or a replay). */
  quota?: PolicyStanding[];
}

type AcceptedCharge = Extract<QuotaCharge, { accepted: true }>;

export interface JobSubmitterDeps {
  /** Makes the job of a submission the result cache does not answer. */
  enqueuer: JobEnqueuer;
  records: JobRecords;
  idempotency: IdempotencyKeys;
  /** Quota counters, for submissions that carry a quota. */
  quotas: QuotaCounters;
  /** The result cache; absent: every request runs its model. */
  results?: ResultLookup;
  /** Where an answer from the result cache, which ends as it is created, is counted. */
  usage: UsageLedger;
  /** Queues the `completed` webhook of an answer from the result cache. */
  webhooks: WebhookQueue;
  /** Reads and follows the job an idempotency key already names. */
  jobs: JobLookup;
  logger: Logger;
  /**
   * How long a request waits for a concurrent request with the same idempotency key to create its
   * job before answering IDEMPOTENCY_KEY_IN_USE.
   * @defaultValue 10000
   */
  idempotencyWaitMs?: number;
}

/**
 * Turns a submission into a job, in this order: its idempotency key claimed (a retry of a request
 * that made a job gets that job), the result cache asked, the owner's quota charged, then the job
 * made: queued by the {@link JobEnqueuer}, or, when the cache has the answer, succeeded as it is
 * created (its record holds the answer, nothing is stored or queued, its `completed` webhook is
 * queued at once). When the job cannot be made, the charge is given back and the key released.
 */
export class JobSubmitter {
  constructor(private readonly deps: JobSubmitterDeps) {}

  async submit(submission: Submission, wait: JobWait = { timeoutMs: 0 }): Promise<AcceptedJob> {
    const { owner, requestId } = submission.spec;
    const jobId = randomUUID();
    const { idempotency } = submission;
    if (idempotency) {
      const earlier = await this.claimKey(owner, idempotency, jobId);
      if (earlier) {
        this.deps.logger.debug({ jobId: earlier, requestId }, 'job replayed');
        const job = await this.deps.jobs.get(earlier);
        if (!job) throw new errors.JOB_NOT_FOUND(earlier);
        return {
          jobId: earlier,
          replayed: true,
          job,
          outcome: this.deps.jobs.waitForEnd(earlier, wait),
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

  private async create(jobId: string, submission: Submission, wait: JobWait): Promise<AcceptedJob> {
    const { spec, route, image } = submission;
    const hit = await this.deps.results?.lookup({
      spec,
      route,
      bypass: submission.bypassCache,
    });
    // Charged once everything else has accepted the submission; given back if its job is not made.
    const charge = await this.charge(spec.owner, submission.quota);
    const record: NewJobRecord = {
      id: jobId,
      spec,
      backend: route.backend,
      createdAt: Date.now(),
      imageBytes: image.length,
      quotaCharge: charge?.counters,
    };
    try {
      const made = hit
        ? await this.answerFromCache(record, hit)
        : await this.deps.enqueuer.enqueue(
            record,
            { bytes: image, contentType: submission.contentType },
            wait,
          );
      return { jobId, replayed: false, ...made, quota: charge?.standing };
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
  ): Promise<AcceptedCharge | undefined> {
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

  /**
   * A job answered from the result cache: its record, settled succeeded with the answer, and the
   * `completed` webhook (when asked for), then the answer. Nothing is stored or queued: no worker
   * ever sees it. The record comes first, so the webhook's reader finds the job finished.
   */
  private async answerFromCache(record: NewJobRecord, hit: CachedResult): Promise<MadeJob> {
    const { id: jobId, spec } = record;
    // It ends as it is created: counted in its owner's usage in the same transaction.
    const counted: CountedJob = {
      tenant: spec.owner,
      model: spec.model,
      outcome: 'succeeded',
      images: 0,
      inferenceMs: 0,
      uploadedBytes: record.imageBytes ?? 0,
    };
    let created: JobRecord;
    try {
      created = await this.deps.records.create(
        { ...record, cachedResult: hit },
        undefined,
        (transaction) => this.deps.usage.stage(transaction, counted, record.createdAt),
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
    return { job, outcome: Promise.resolve<JobResource>(job) };
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
}
