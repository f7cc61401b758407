import { type Job, UnrecoverableError } from 'bullmq';
import { JOB_QUEUES, type JobName, type QueueName } from '../shared/queues/index.js';

export type JobHandler<Data, Result> = (job: Job<Data, Result>, token?: string) => Promise<Result>;

/**
 * The processor of one queue: each job goes to the handler of its type. Built at start-up, it
 * refuses to exist when a job type routed to this queue (JOB_QUEUES) has no handler, so a new job
 * type cannot be queued where nothing would run it. A job of a type the queue does not take fails
 * at once, unrecoverable: it was put there by mistake.
 */
export function dispatchJobs<Data, Result>(
  queue: QueueName,
  handlers: Partial<Record<JobName, JobHandler<Data, Result>>>,
): JobHandler<Data, Result> {
  for (const [name, queues] of Object.entries(JOB_QUEUES) as [JobName, readonly QueueName[]][]) {
    if (queues.includes(queue) && !handlers[name]) {
      throw new Error(`No handler for job type "${name}", which runs on queue ${queue}`);
    }
  }
  return (job, token) => {
    const handler = handlers[job.name as JobName];
    if (!handler) throw new UnrecoverableError(`No handler for job type "${job.name}" on ${queue}`);
    return handler(job, token);
  };
}
