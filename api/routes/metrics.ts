import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { summarizeReplicas } from '../../shared/backends/backend-health.js';
import { BACKEND_KINDS } from '../../shared/models/model-spec.js';
import type { ModelRegistry } from '../../shared/models/registry.js';
import { mediaResponse } from '../http/schemas.js';
import type { ApiMetrics } from '../metrics/api-metrics.js';
import { readQueueCounts } from '../queues/queue-counts.js';
import type { QueueSet } from '../queues/queue-set.js';
import type { BackendStatusCache } from '../routing/backend-status-cache.js';

export interface MetricsRoutesOptions {
  metrics: ApiMetrics;
  queues: QueueSet;
  registry: ModelRegistry;
  backendStatus: BackendStatusCache;
  /** Bound on the scrape-time queue read. */
  queueTimeoutMs: number;
}

/**
 * GET /metrics in Prometheus' text format. Gauges that describe shared state are read at scrape
 * time: queue depth per queue and state (from Redis, bounded by `queueTimeoutMs`; left out of a
 * scrape whose read fails), backend health and each replica's circuit state (the most cautious
 * state among the workers, from the cached worker reports).
 */
export const metricsRoutes: FastifyPluginAsyncTypebox<MetricsRoutesOptions> = async (app, opts) => {
  const { metrics } = opts;

  // Scraped without a key, like every Prometheus target: keep it off the public network.
  app.get(
    '/metrics',
    {
      config: { auth: 'public' },
      schema: {
        summary: "This API process's Prometheus metrics",
        tags: ['observability'],
        response: {
          200: mediaResponse('Prometheus text exposition format', {
            'text/plain': Type.String(),
          }),
        },
      },
    },
    async (request, reply) => {
      try {
        metrics.setQueueCounts(await readQueueCounts(opts.queues, opts.queueTimeoutMs));
      } catch (err) {
        metrics.clearQueueCounts();
        metrics.recordCollectFailure('queues');
        request.log.warn({ err: String(err) }, 'queue counts unavailable for this scrape');
      }
      metrics.clearCircuitStates();
      for (const backend of BACKEND_KINDS) {
        const snapshot = opts.backendStatus.snapshot(backend);
        for (const replica of summarizeReplicas(snapshot.workers)) {
          metrics.setCircuitState(backend, replica.url, replica.circuit);
        }
        const models = Object.fromEntries(
          opts.registry
            .servedBy(backend)
            .map((m) => [m.name, snapshot.models[m.name]?.state === 'ready']),
        );
        metrics.setBackendHealth(backend, snapshot.workers.length, models);
      }
      const body = await metrics.register.metrics();
      return reply.type(metrics.register.contentType).send(body);
    },
  );
};
