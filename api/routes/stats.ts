import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { errors, withCause } from '../../shared/errors/index.js';
import type { StatsStore } from '../../shared/stats/stats-store.js';
import { ProblemResponses } from '../http/schemas.js';
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
const Details = Type.Object({}, { additionalProperties: true });
const StatsSchema = Type.Object({
  uptime_seconds: Type.Integer({ description: "The answering process's own." }),
  since: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  totals: Details,
  window: Details,
  queues: Type.Record(Type.String(), Type.Record(Type.String(), Type.Integer())),
});

export async function statsRoutes(app: FastifyInstance, opts: StatsRoutesOptions) {
  const startedAt = Date.now();

  app.get(
    '/stats',
    {
      schema: {
        summary: 'Request and job totals, recent rates, error rates and latency percentiles',
        tags: ['observability'],
        response: { 200: StatsSchema, ...ProblemResponses },
      },
    },
    async () => {
      const [snapshot, queues] = await Promise.all([
        opts.stats.read(),
        readQueueCounts(opts.queues, opts.queueTimeoutMs),
      ]).catch((err: Error) => {
        throw withCause(new errors.QUEUE_UNAVAILABLE(), err);
      });
      return {
        uptime_seconds: Math.round((Date.now() - startedAt) / 1000),
        ...snapshot,
        queues: Object.fromEntries(queues as QueueCounts),
      };
    },
  );
}
