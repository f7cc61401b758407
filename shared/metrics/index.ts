import { collectDefaultMetrics, Registry } from 'prom-client';

export { type BackendLabel, modelLabeler, UNKNOWN } from './labels.js';
export {
  createUsageMetrics,
  TOKEN_TENANTS,
  tenantLabeler,
  type UsageMetrics,
} from './usage-metrics.js';
export {
  createWebhookMetrics,
  type WebhookDelivery,
  type WebhookMetrics,
  type WebhookOutcome,
} from './webhook-metrics.js';
export {
  createWorkerMetrics,
  type WorkerMetrics,
  type WorkerMetricsOptions,
} from './worker-metrics.js';

/**
 * A fresh registry with Node's process metrics (CPU, memory, event-loop lag, GC): one per process,
 * never the module-level default registry, so tests can build several side by side.
 */
export function createMetricsRegistry(): Registry {
  const register = new Registry();
  collectDefaultMetrics({ register });
  return register;
}
