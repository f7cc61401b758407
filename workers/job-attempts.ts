import { UnrecoverableError } from 'bullmq';
import { JobForwardedError } from './fallback/job-forwarded-error.js';

interface AttemptedJob {
  attemptsMade: number;
  opts: { attempts?: number };
}

/**
 * Whether the failure of the attempt now running ends the job in this queue: the error says no
 * retry can help, or this was the last attempt BullMQ allows. Inside the processor, where
 * `attemptsMade` does not count the running attempt yet.
 */
export function isLastAttempt(job: AttemptedJob, err: unknown): boolean {
  return err instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
}

/** Whether the job left this queue for another backend's (fallback): it goes on there. */
export function wasForwarded(err: unknown): boolean {
  return err instanceof JobForwardedError;
}
