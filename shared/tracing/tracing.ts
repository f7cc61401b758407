import type { Tracer } from '@opentelemetry/api';
import type { Telemetry } from 'bullmq';

/** Names the spans' source: one service per process role. */
export type TracedService = 'ai-gateway-api' | 'ai-gateway-worker';

/** What a traced process hands its parts: BullMQ's telemetry and a tracer for its own spans. */
export interface Tracing {
  /** For BullMQ queues and workers: job spans, and the trace context carried inside each job. */
  telemetry: Telemetry;
  tracer: Tracer;
  /** Flushes spans still buffered, then stops; idempotent. */
  shutdown(): Promise<void>;
}

/**
 * OpenTelemetry tracing for this process when an OTLP endpoint is configured, else undefined. With
 * tracing off the SDK is not even loaded, nothing is registered and no hook runs per request.
 */
export async function startTracing(
  endpoint: string | undefined,
  service: TracedService,
): Promise<Tracing | undefined> {
  if (!endpoint) return undefined;
  const { createTracing, otlpSpanProcessor } = await import('./otel-sdk.js');
  return createTracing(service, otlpSpanProcessor(endpoint));
}
