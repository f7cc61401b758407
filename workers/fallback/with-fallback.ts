import { parseJobFailure, withCause } from '../../shared/errors/index.js';
import { FALLBACK_CODES, type JobForwarder } from '../../shared/jobs/job-forwarder.js';
import type { Logger } from '../../shared/logging/logger.js';
import type { InferenceBackend } from '../backends/inference-backend.js';
import type { InferenceProcessor } from '../inference-processor.js';
import { isLastAttempt } from '../job-attempts.js';
import { JobForwardedError } from './job-forwarded-error.js';

export interface FallbackOptions {
  backend: InferenceBackend;
  forwarder: JobForwarder;
  logger: Logger;
}

/**
 * Wraps a processor with fallback: a job that fails here for a reason another backend may not share
 * (servers down, too slow, model not loaded) moves to the next backend of its model when this was
 * its last attempt, or at once when no server of this backend can take requests (retrying here is
 * pointless). The failure is still thrown, unrecoverable after a move, so this queue records it
 * and does not retry a job that now lives elsewhere. A job whose client chose the backend stays.
 */
export function withFallback(
  processor: InferenceProcessor,
  { backend, forwarder, logger }: FallbackOptions,
): InferenceProcessor {
  return async (job, inlineImage) => {
    try {
      return await processor(job, inlineImage);
    } catch (err) {
      const failure = parseJobFailure((err as Error).message);
      const last = isLastAttempt(job, err) || !(backend.canServe?.() ?? true);
      if (job.data.pinned || !FALLBACK_CODES.has(failure.code) || !last) throw err;
      const log = logger.child({
        jobId: job.id,
        requestId: job.data.requestId,
        model: job.data.model,
      });
      let to: string | undefined;
      try {
        to = await forwarder.forward(job, backend.kind, failure);
      } catch (forwardError) {
        log.error(
          { err: (forwardError as Error).message },
          'moving the job to another backend failed',
        );
        throw err;
      }
      if (!to) throw err;
      log.warn({ from: backend.kind, to, code: failure.code }, 'job moved to another backend');
      // The cause goes along for the worker's log of the attempt.
      throw withCause(new JobForwardedError((err as Error).message, to), (err as Error).cause);
    }
  };
}
