import { withCause } from '../../shared/errors/index.js';
import type { JobRecord, JobRecords, NewJobRecord } from '../../shared/jobs/job-records.js';
import { describeJob, type JobResource } from '../../shared/jobs/job-resource.js';
import type { Logger } from '../../shared/logging/logger.js';
import { FairScheduler } from '../../shared/queues/fair-scheduler.js';
import type {
  InferenceJob,
  InferenceQueues,
  JobEntry,
} from '../../shared/queues/inference-queues.js';
import { errors } from '../http/errors.js';
import type { ImageStore } from '../images/image-store.js';
import type { CompletionWaiter } from './completion-waiter.js';
import { type FollowedJob, followJob, type JobWait } from './follow-job.js';
import type { JobLookup } from './job-lookup.js';

/** A job just made: as it was accepted, and as it ended within the wait. */
export interface MadeJob {
  job: JobResource;
  /** The job once it has finished, within the wait; `undefined` when the wait ran out first. */
  outcome: Promise<JobResource | undefined>;
}

/** The upload a job's image comes from. */
export interface UploadedImage {
  bytes: Buffer;
  contentType: string;
}

export interface JobEnqueuerDeps {
  images: ImageStore;
  records: JobRecords;
  queues: InferenceQueues;
  /** Orders async jobs fairly across owners (sync jobs go straight to their queue). */
  scheduler: FairScheduler;
  waiter: CompletionWaiter;
  /** Reads back a job whose end the completion event does not describe. */
  jobs: JobLookup;
  logger: Logger;
}

/**
 * Puts a new job in its backend's queue: the image inline in the job's record when its spec says
 * so, into storage (content-addressed) otherwise; the record and the job in one round trip; and,
 * when the caller will wait, a waiter registered before the job is added so its completion cannot
 * be missed. A job that completes within the wait is answered from its completion event, without
 * reading it back.
 */
export class JobEnqueuer {
  constructor(private readonly deps: JobEnqueuerDeps) {}

  async enqueue(record: NewJobRecord, image: UploadedImage, wait: JobWait): Promise<MadeJob> {
    const { id: jobId, spec, backend } = record;
    if (!spec.imageInline) {
      await this.deps.images.save(image.bytes, image.contentType, spec.imageKey);
    }
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
    // Not `image.bytes` in the callback below: a closure here would keep the upload alive (its
    // context is shared with the outcome's) for the whole sync wait.
    const inlineImage = spec.imageInline ? image.bytes : undefined;
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
      job: queued,
      outcome: followed.then((end) => this.describeEnd(added.staged, entry, end)),
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
    if (!result || end.backend !== record.backend || record.spec.webhook) {
      return this.deps.jobs.get(record.id);
    }
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
}
