import type { FastifyInstance } from 'fastify';
import { errors } from '../../shared/errors/index.js';
import type { StatsStore } from '../../shared/stats/stats-store.js';
import { type QueueCounts, readQueueCounts } from '../queues/queue-counts.js';
import type { QueueSet } from '../queues/queue-set.js';

export interface StatsRoutesOptions {
  stats: StatsStore;
  queues: QueueSet;
  queueTimeoutMs: number;
}

/**
 * GET /stats: request and job totals per backend and model, the recent window's rate, error rate
 * and latency percentiles, and queue counts. Everything but `uptime_seconds` is read from Redis,
 * so every API instance answers the same.
 */
export async function statsRoutes(app: FastifyInstance, opts: StatsRoutesOptions) {
  const startedAt = Date.now();

  app.get('/stats', async () => {
    const [snapshot, queues] = await Promise.all([
      opts.stats.read(),
      readQueueCounts(opts.queues, opts.queueTimeoutMs),
    ]).catch((err: Error) => {
      throw new errors.QUEUE_UNAVAILABLE(err.message);
    });
    return {
      uptime_seconds: Math.round((Date.now() - startedAt) / 1000),
      ...snapshot,
      queues: Object.fromEntries(queues as QueueCounts),
    };
  });
}
