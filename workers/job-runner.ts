import { jobFailure, parseJobFailure } from '../shared/errors/index.js';
import type { JobLifecycle } from '../shared/jobs/job-lifecycle.js';
import type { Logger } from '../shared/logging/logger.js';
import type { WebhookQueue } from '../shared/webhooks/webhook-queue.js';
import type { InferenceProcessor } from './inference-processor.js';
import { isLastAttempt, wasForwarded } from './job-attempts.js';
import type { ResultCacheWriter } from './result-cache-writer.js';

export interface JobRunnerDeps {
  lifecycle: JobLifecycle;
  webhooks: WebhookQueue;
  logger: Logger;
  /** The result-cache entry of a succeeded job; absent: nothing is remembered. */
  remember?: ResultCacheWriter;
}

type Job = Parameters<InferenceProcessor>[0];

/** What the worker's BullMQ processor calls per job, and what it calls for a job BullMQ gave up on. */
export interface JobRunner {
  run(job: Job): ReturnType<InferenceProcessor>;
  /** BullMQ failed the job without running it (it stalled too often): settle it and say so. */
  abandoned(job: Job): Promise<void>;
  /**
   * BullMQ has recorded the job's end in this queue (completed, or failed for good and not moved
   * to another backend): its inline image is no longer needed.
   */
  ended(job: Job): Promise<void>;
}

/**
 * The life of one inference job in this worker, each transition one atomic step on the job record
 * (JobLifecycle), in the order it happens:
 *
 * 1. start, in one round trip: the first start is recorded and the inline image (if any) comes
 *    back; a job first picked up after its deadline fails DEADLINE_EXCEEDED without running, one
 *    whose cancel was requested first ends canceled (a retry, a recovered stall or a fallback of a
 *    job that started in time is not late);
 * 2. the `started` webhook is queued (when asked for), at the first start only;
 * 3. the processor runs its stages, and checks for a cancel request before the model when
 *    preparing its input took a while ({@link checkNotCanceled});
 * 4. before the result (or a final failure) goes back to BullMQ, the outcome is settled on the job
 *    record; if a cancel was requested first the job ends JOB_CANCELED instead, without a result;
 *    a success is remembered in the result cache (when the job asks for it) in the same step, so
 *    before its completion can reach anyone: a client that repeats the request after its answer
 *    finds it;
 * 5. the `completed` webhook is queued for every final outcome.
 *
 * A failure that will be retried settles nothing, but a cancel request stops the retries. A job
 * moved to another backend (fallback) settles nothing here either: it is finished there.
 */
export function createJobRunner(processor: InferenceProcessor, deps: JobRunnerDeps): JobRunner {
  const { lifecycle, webhooks } = deps;
  const completed = (job: Job) => webhooks.notify(job.id!, job.data, 'completed');
  const canceled = async (job: Job) => {
    deps.logger.info({ jobId: job.id, requestId: job.data.requestId }, 'job canceled');
    await completed(job);
    return jobFailure('JOB_CANCELED');
  };

  const run = async (job: Job) => {
    const { data } = job;
    const start = await lifecycle.begin(job.id!, {
      deadline: data.deadline,
      inlineImage: data.imageInline === true,
    });
    switch (start.kind) {
      case 'canceled':
        await lifecycle.settle(job.id!, { outcome: 'failed', code: 'JOB_CANCELED' });
        throw await canceled(job);
      case 'late':
        if (
          (await lifecycle.settle(job.id!, { outcome: 'failed', code: 'DEADLINE_EXCEEDED' })) ===
          'canceled'
        ) {
          throw await canceled(job);
        }
        await completed(job);
        throw jobFailure('DEADLINE_EXCEEDED', new Date(data.deadline!).toISOString());
      case 'missing':
        // A record lives as long as its job: without one (deleted from Redis by hand, evicted), no
        // cancel, deadline or webhook of the job can be honoured, and its result could not be read.
        throw jobFailure('JOB_NOT_FOUND', job.id!);
      case 'started':
        await webhooks.notify(job.id!, job.data, 'started');
        break;
      case 'resumed':
        break;
    }

    let result: Awaited<ReturnType<InferenceProcessor>>;
    try {
      result = await processor(job, 'image' in start ? start.image : undefined);
    } catch (err) {
      // Moved to another backend: its life goes on there, where it will be settled.
      if (wasForwarded(err)) throw err;
      const final = isLastAttempt(job, err);
      const outcome = final
        ? await lifecycle.settle(job.id!, {
            outcome: 'failed',
            code: parseJobFailure((err as Error).message).code,
          })
        : await cancelBeforeRetry(job);
      if (outcome === 'canceled') throw await canceled(job);
      if (final) await completed(job);
      throw err;
    }
    const remember = deps.remember?.(job, result);
    const settled = await lifecycle.settle(
      job.id!,
      { outcome: 'succeeded', inferenceMs: result.timings.inference_ms },
      Date.now(),
      { webhooks: data.webhook !== undefined, remember },
    );
    if (settled === 'canceled') throw await canceled(job);
    await completed(job);
    return result;
  };

  const cancelBeforeRetry = async (job: Job) => {
    if (!(await lifecycle.isCancelRequested(job.id!))) return 'retry';
    await lifecycle.confirmCanceled(job.id!);
    return 'canceled';
  };

  return {
    run,
    async abandoned(job) {
      // A job whose workers kept dying: the gateway's fault, so its quota charge goes back.
      await lifecycle.settle(job.id!, { outcome: 'failed', code: 'INFERENCE_FAILED' });
      await completed(job);
    },
    async ended(job) {
      if (job.data.imageInline) await lifecycle.releaseImage(job.id!);
    },
  };
}

/**
 * How long a job must have been running before the check ahead of its model asks Redis. The start
 * step has just checked for a cancel, and the settle step checks again after the model, so a
 * request that lands in between always ends the job canceled; this check only saves the model's
 * time, which pays for a round trip when preparing the input took a while (a large image, a slow
 * store), not for the few milliseconds of a small one.
 */
export const CANCEL_CHECK_AFTER_MS = 20;

/** The check before the model runs: a job whose cancel was requested goes no further. */
export async function checkNotCanceled(
  lifecycle: JobLifecycle,
  job: Job,
  now = Date.now(),
): Promise<void> {
  if (job.processedOn !== undefined && now - job.processedOn < CANCEL_CHECK_AFTER_MS) return;
  if (await lifecycle.isCancelRequested(job.id!)) throw jobFailure('JOB_CANCELED');
}
