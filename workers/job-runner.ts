import { jobFailure } from '../shared/errors/index.js';
import type { JobLifecycle } from '../shared/jobs/job-lifecycle.js';
import type { Logger } from '../shared/logging/logger.js';
import type { WebhookQueue } from '../shared/webhooks/webhook-queue.js';
import type { InferenceProcessor } from './inference-processor.js';
import { isLastAttempt, wasForwarded } from './job-attempts.js';

export interface LifecycleGuardDeps {
  lifecycle: JobLifecycle;
  webhooks: WebhookQueue;
  logger: Logger;
}

type Job = Parameters<InferenceProcessor>[0];

/**
 * The job's life around the processor, in the order it happens:
 *
 * 1. the first start is recorded on the job record; a job first picked up after its deadline fails
 *    DEADLINE_EXCEEDED without running (a retry, a recovered stall or a fallback of a job that
 *    started in time is not late);
 * 2. the `started` webhook is queued (when asked for), at the first start only;
 * 3. the processor runs, and checks for a cancel request before the model ({@link checkNotCanceled});
 * 4. before the result (or a final failure) goes back to BullMQ, the worker settles the outcome on
 *    the job record; if a cancel was requested first the job ends JOB_CANCELED instead, without a
 *    result;
 * 5. the `completed` webhook is queued for every final outcome.
 *
 * A failure that will be retried settles nothing, but a cancel request stops the retries. A job
 * moved to another backend (fallback) settles nothing here either: it is finished there.
 */
export function guardLifecycle(
  processor: InferenceProcessor,
  deps: LifecycleGuardDeps,
): InferenceProcessor {
  const { lifecycle, webhooks } = deps;
  const completed = (job: Job) =>
    webhooks.notify(job.id!, 'completed', job.data.webhook, job.data.requestId);
  const canceled = async (job: Job) => {
    deps.logger.info({ jobId: job.id, requestId: job.data.requestId }, 'job canceled');
    await completed(job);
    return jobFailure('JOB_CANCELED');
  };

  return async (job) => {
    const { data } = job;
    const start = await lifecycle.begin(job.id!, data.deadline);
    if (start === 'late') {
      if ((await lifecycle.settle(job.id!, 'failed')) === 'canceled') throw await canceled(job);
      await completed(job);
      throw jobFailure('DEADLINE_EXCEEDED', new Date(data.deadline!).toISOString());
    }
    if (start === 'started')
      await webhooks.notify(job.id!, 'started', data.webhook, data.requestId);

    let result: Awaited<ReturnType<InferenceProcessor>>;
    try {
      result = await processor(job);
    } catch (err) {
      // Moved to another backend: its life goes on there, where it will be settled.
      if (wasForwarded(err)) throw err;
      const final = isLastAttempt(job, err);
      const outcome = final
        ? await lifecycle.settle(job.id!, 'failed')
        : await cancelBeforeRetry(lifecycle, job.id!);
      if (outcome === 'canceled') throw await canceled(job);
      if (final) await completed(job);
      throw err;
    }
    if ((await lifecycle.settle(job.id!, 'succeeded')) === 'canceled') throw await canceled(job);
    await completed(job);
    return result;
  };
}

/** The check before the model runs: a job whose cancel was requested goes no further. */
export async function checkNotCanceled(lifecycle: JobLifecycle, job: Job): Promise<void> {
  if (await lifecycle.isCancelRequested(job.id!)) throw jobFailure('JOB_CANCELED');
}

async function cancelBeforeRetry(lifecycle: JobLifecycle, jobId: string) {
  if (!(await lifecycle.isCancelRequested(jobId))) return 'retry';
  await lifecycle.confirmCanceled(jobId);
  return 'canceled';
}
