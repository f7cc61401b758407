import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { ApiMetrics } from '../../shared/metrics/index.js';
import type { BackendKind } from '../../shared/models/model-spec.js';
import type { StatsStore } from '../../shared/stats/stats-store.js';
import { isOperationalPath } from '../http/operational-paths.js';

/** What an inference route learnt about its request, for the metrics and /stats. */
export interface InferenceLabels {
  model: string;
  backend?: BackendKind;
  mode: 'sync' | 'async';
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** An inference route: its requests count in ai_gateway_requests_total and /stats. */
    inference?: boolean;
  }
  interface FastifyRequest {
    /** Set by an inference route's handler once it knows the model, backend and mode. */
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
      const model = labels?.model ?? (request.params as { model?: string } | undefined)?.model;
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
        backend: labels?.backend,
        model,
        status,
        ...(mode === 'sync' && status === 200 ? { latencyMs: reply.elapsedTime } : {}),
      });
    });
  },
  { name: 'request-metrics' },
);
