import { withCause } from '../../shared/errors/index.js';
import type { JobReader } from '../../shared/jobs/job-reader.js';
import type { JobRecords } from '../../shared/jobs/job-records.js';
import type { JobResource } from '../../shared/jobs/job-resource.js';
import type { OwnerJobsPage } from '../../shared/jobs/owner-jobs.js';
import type { InferenceQueues } from '../../shared/queues/inference-queues.js';
import { errors } from '../http/errors.js';
import type { CompletionWaiter } from './completion-waiter.js';
import { followJob, type JobWait } from './follow-job.js';

export interface JobPage {
  jobs: JobResource[];
  /** The cursor of the next page; absent on the last. */
  next?: string;
}

export interface JobLookupDeps {
  reader: JobReader;
  records: JobRecords;
  queues: InferenceQueues;
  waiter: CompletionWaiter;
}

/**
 * Finds jobs for the API: one by its id, a page of an owner's, or one once it has finished. Redis
 * failing is QUEUE_UNAVAILABLE; another owner's job is not found.
 */
export class JobLookup {
  constructor(private readonly deps: JobLookupDeps) {}

  /** The job; with `owner`, only if it is theirs. */
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

  /** The job once it has finished (it may have already), or `undefined` when the wait runs out. */
  async waitForEnd(jobId: string, wait: JobWait): Promise<JobResource | undefined> {
    if (wait.timeoutMs <= 0) return undefined;
    const record = await this.deps.records.get(jobId);
    const end = record
      ? await followJob(this.deps, jobId, record.backend, wait.timeoutMs, wait.signal, {
          exists: true,
        })
      : undefined;
    return record && !end ? undefined : this.get(jobId);
  }
}
