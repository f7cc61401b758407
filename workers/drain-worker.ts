import type { Job, Worker } from 'bullmq';
import type { Logger } from '../shared/logging/logger.js';

export interface DrainOptions {
  /** How long jobs in progress may take to finish. */
  timeoutMs: number;
  /** Jobs in progress with their lock tokens; handed back to the queue when time runs out. */
  active?: Iterable<{ job: Job; token: string }>;
  logger: Logger;
}

/**
 * Stops a BullMQ worker gracefully: it takes no new jobs and the ones in progress may finish
 * within `timeoutMs`; after that, those listed in `active` are handed back to the queue at once (the
 * others wait for the stalled-job check). Resolves whether everything finished in time.
 *
 * pause() is what waits; close() is called exactly once, at the end, because a second close()
 * returns the first one's promise: a forced close after a graceful one would still wait for a
 * hung job.
 */
export async function drainWorker(worker: Worker, options: DrainOptions): Promise<boolean> {
  const graceful = worker.pause().then(() => true);
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), options.timeoutMs);
    timer.unref();
  });
  const finished = await Promise.race([graceful, expired]);
  clearTimeout(timer);
  if (!finished) {
    const unfinished = [...(options.active ?? [])];
    await Promise.allSettled(unfinished.map(({ job, token }) => job.moveToWait(token)));
    options.logger.warn(
      { returned: unfinished.length },
      'shutdown timeout: unfinished jobs returned to the queue',
    );
  }
  await worker.close(!finished).catch(() => undefined);
  return finished;
}

/** Closes a Redis connection: politely when it is up, at once when it is not (quit would wait). */
export async function closeRedis(redis: {
  status: string;
  quit(): Promise<unknown>;
  disconnect(): void;
}): Promise<void> {
  if (redis.status !== 'ready') return redis.disconnect();
  await redis.quit().catch(() => redis.disconnect());
}
