import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { BackendKind } from '../../shared/models/model-spec.js';
import type { StatsStore } from '../../shared/stats/stats-store.js';
import { isOperationalPath } from '../http/operational-paths.js';
import { ownerOf } from '../http/owner.js';
import type { ApiMetrics } from '../metrics/api-metrics.js';

/**
 * What an inference route learnt about its request, for the metrics and /stats: filled in as it is
 * learnt, so a request refused half-way (a model that is unavailable, an image that is not one)
 * still counts under the model it named.
 */
export interface InferenceLabels {
  model?: string;
  backend?: BackendKind;
  /** @defaultValue 'sync' */
  mode?: 'sync' | 'async';
}

/** Adds what is now known about an inference request to its labels. */
export function labelInference(request: FastifyRequest, labels: InferenceLabels): void {
  request.inference = { ...request.inference, ...labels };
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** An inference route: its requests count in ai_gateway_requests_total and /stats. */
    inference?: boolean;
  }
  interface FastifyRequest {
    /** Set by an inference route (see {@link labelInference}) as it learns its model, backend and mode. */
    inference: InferenceLabels | null;
  }
}

export interface RequestMetricsOptions {
  metrics: ApiMetrics;
  stats: StatsStore;
}

/**
 * Counts every answered request once it is sent (onResponse, off the answer's path): the HTTP
 * totals and problem codes in Prometheus, and, for inference routes, the per-model counters, the
 * duration histogram and the shared Redis stats behind GET /stats (batched by the stats store).
 */
export const requestMetricsPlugin = fp(
  async (app: FastifyInstance, opts: RequestMetricsOptions) => {
    const { metrics, stats } = opts;

    app.decorateRequest('inference', null);
    app.addHook('onResponse', async (request: FastifyRequest, reply: FastifyReply) => {
      const route = request.routeOptions.url;
      if (route && isOperationalPath(route)) return;
      const status = reply.statusCode;
      metrics.recordHttpRequest({
        method: request.method,
        route,
        status,
        problemCode: reply.problemCode,
      });
      if (!request.routeOptions.config.inference) return;

      const labels = request.inference;
      const model = labels?.model ?? namedModel(request);
      const mode = labels?.mode ?? 'sync';
      const seconds = reply.elapsedTime / 1000;
      metrics.recordInferenceRequest({
        backend: labels?.backend,
        model,
        mode,
        status,
        durationSeconds: seconds,
      });
      stats.recordRequest({
        tenant: ownerOf(request),
        backend: labels?.backend,
        model,
        status,
        latencyMs: mode === 'sync' && status === 200 ? reply.elapsedTime : undefined,
      });
    });
  },
  { name: 'request-metrics' },
);

/** The model a request names in its path or query, for one refused before its handler ran. */
function namedModel(request: FastifyRequest): string | undefined {
  const named =
    (request.params as { model?: unknown } | undefined)?.model ??
    (request.query as { model?: unknown } | undefined)?.model;
  return typeof named === 'string' ? named : undefined;
}
