import { Counter, Histogram, type Registry } from 'prom-client';

/**
 * `delivered`: the receiver answered 2xx. `retrying`: this attempt failed and another is planned.
 * `failed`: the last attempt failed, or the receiver's answer says a retry cannot help.
 */
export type WebhookOutcome = 'delivered' | 'retrying' | 'failed';

/** What the receiver did: its status class, or why there was no answer. */
export type WebhookResponse = '2xx' | '3xx' | '4xx' | '5xx' | 'timeout' | 'network';

export interface WebhookDelivery {
  outcome: WebhookOutcome;
  /** The receiver's HTTP status; absent when the request got no answer. */
  status?: number;
  /** Why there was no answer (when `status` is absent). */
  error?: 'timeout' | 'network';
  durationSeconds: number;
}

const DELIVERY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * The metrics of webhook delivery: exported by the process that delivers (the worker in webhook
 * mode) on its /metrics, next to the default process metrics.
 */
export function createWebhookMetrics(register: Registry) {
  const registers = [register];
  const deliveries = new Counter({
    name: 'ai_gateway_webhook_deliveries_total',
    help: 'Webhook delivery attempts, by outcome and the class of the receiver answer.',
    labelNames: ['outcome', 'response'] as const,
    registers,
  });
  const deferrals = new Counter({
    name: 'ai_gateway_webhook_deferrals_total',
    help: 'Webhook deliveries put back because their tenant had every delivery slot in use (WEBHOOK_TENANT_CONCURRENCY).',
    registers,
  });
  const duration = new Histogram({
    name: 'ai_gateway_webhook_delivery_duration_seconds',
    help: 'Duration of one webhook delivery attempt.',
    buckets: DELIVERY_BUCKETS,
    registers,
  });

  return {
    register,
    /** One delivery attempt. */
    recordDelivery(delivery: WebhookDelivery): void {
      deliveries.inc({ outcome: delivery.outcome, response: responseClass(delivery) });
      duration.observe(delivery.durationSeconds);
    },
    /** A delivery put back, without an attempt, because its tenant was at its cap. */
    recordDeferral(): void {
      deferrals.inc();
    },
  };
}

function responseClass(delivery: WebhookDelivery): WebhookResponse {
  const { status } = delivery;
  if (status === undefined) return delivery.error ?? 'network';
  if (status >= 200 && status < 300) return '2xx';
  if (status >= 300 && status < 400) return '3xx';
  if (status >= 400 && status < 500) return '4xx';
  return '5xx';
}

export type WebhookMetrics = ReturnType<typeof createWebhookMetrics>;
