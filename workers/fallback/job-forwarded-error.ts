import { UnrecoverableError } from 'bullmq';

/**
 * The failure a job ends with in a queue it has left: it now lives in another backend's queue under
 * the same id. Unrecoverable, so this queue does not retry it; distinct, so the job's lifecycle is
 * not settled here (it goes on elsewhere: no final outcome, no `completed` webhook yet).
 */
export class JobForwardedError extends UnrecoverableError {
  constructor(
    message: string,
    readonly to: string,
  ) {
    super(message);
  }
}
