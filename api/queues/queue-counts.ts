import type { QueueName } from '../../shared/queues/index.js';
import { QUEUE_STATES, type QueueState } from '../metrics/api-metrics.js';
import type { QueueSet } from './queue-set.js';

export type QueueCounts = Map<QueueName, Record<QueueState, number>>;

/**
 * Jobs per state in every queue (one Redis transaction per queue, all at once), or a rejection
 * after `timeoutMs`: a scrape or /stats must not hang on a slow Redis.
 */
export async function readQueueCounts(queues: QueueSet, timeoutMs: number): Promise<QueueCounts> {
  const reads = Promise.all(
    [...queues.byName].map(async ([name, queue]) => {
      const counts = await queue.getJobCounts(...QUEUE_STATES);
      const byState = Object.fromEntries(QUEUE_STATES.map((s) => [s, counts[s] ?? 0]));
      return [name, byState as Record<QueueState, number>] as const;
    }),
  );
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`queue counts took longer than ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    return new Map(await Promise.race([reads, timeout]));
  } finally {
    clearTimeout(timer);
  }
}
