import { withCause } from '../../shared/errors/index.js';
import type { JobLifecycle } from '../../shared/jobs/job-lifecycle.js';
import type { JobRecords } from '../../shared/jobs/job-records.js';
import type { JobResource } from '../../shared/jobs/job-resource.js';
import type { Logger } from '../../shared/logging/logger.js';
import type { FairScheduler } from '../../shared/queues/fair-scheduler.js';
import type { InferenceQueues } from '../../shared/queues/inference-queues.js';
import type { WebhookQueue } from '../../shared/webhooks/webhook-queue.js';
import { errors } from '../http/errors.js';
import type { JobLookup } from './job-lookup.js';

export interface JobCancellerDeps {
  records: JobRecords;
  lifecycle: JobLifecycle;
  queues: InferenceQueues;
  /** A queued job it cancels leaves the fair scheduler's pending set. */
  scheduler: FairScheduler;
  webhooks: WebhookQueue;
  /** Reads the canceled job back, as the answer. */
  jobs: JobLookup;
  logger: Logger;
}

/**
 * Cancels a job that has not finished (DELETE /jobs/{id}). A queued job leaves its queue and is
 * canceled at once; a running one is marked, and its worker ends it canceled at its next check
 * (before running the model, or before handing back a result), which it cannot pass once marked:
 * so the answer, `canceled`, holds. A finished job answers JOB_FINISHED.
 */
export class JobCanceller {
  constructor(private readonly deps: JobCancellerDeps) {}

  /** With `owner`, another owner's job is not found. */
  async cancel(jobId: string, owner?: string): Promise<JobResource> {
    if (owner !== undefined) {
      const record = await this.deps.records.get(jobId).catch((err: Error) => {
        throw withCause(new errors.QUEUE_UNAVAILABLE(), err);
      });
      if (!record || record.spec.owner !== owner) throw new errors.JOB_NOT_FOUND(jobId);
    }
    const request = await this.deps.lifecycle.requestCancel(jobId).catch((err: Error) => {
      throw withCause(new errors.QUEUE_UNAVAILABLE(), err);
    });
    if (request.kind === 'missing') throw new errors.JOB_NOT_FOUND(jobId);
    if (request.kind === 'finished') throw new errors.JOB_FINISHED(jobId, request.outcome);
    if (request.kind === 'requested') await this.removeIfQueued(jobId);
    const job = await this.deps.jobs.get(jobId, owner);
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
      const { spec } = record;
      if (await this.deps.lifecycle.confirmCanceled(jobId)) {
        await this.deps.webhooks.notify(jobId, spec, 'completed');
      }
      this.deps.logger.info({ jobId, requestId: spec.requestId }, 'queued job canceled');
      // Last, and only tidying: a job waiting for its fair turn leaves its key's pending set (the
      // scheduler skips a removed job anyway, so a failure here changes nothing).
      await this.deps.scheduler
        .forget(record.backend, spec.owner, jobId)
        .catch((err: Error) => this.deps.logger.warn({ jobId, err: err.message }, 'forget failed'));
    } catch (err) {
      if ((err as { code?: string }).code === 'JOB_FINISHED') throw err;
      throw withCause(new errors.QUEUE_UNAVAILABLE(), err);
    }
  }
}
