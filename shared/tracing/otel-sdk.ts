import { trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  NodeTracerProvider,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-node';
import { BullMQOtel } from 'bullmq-otel';
import type { TracedService, Tracing } from './tracing.js';

/** Spans batched and sent over OTLP/HTTP to `<endpoint>/v1/traces`. */
export function otlpSpanProcessor(endpoint: string): SpanProcessor {
  const url = `${endpoint.replace(/\/+$/, '')}/v1/traces`;
  return new BatchSpanProcessor(new OTLPTraceExporter({ url }));
}

/**
 * Registers a tracer provider for the process (AsyncLocalStorage context, W3C trace context
 * propagation) with the given span processor. Tests pass an in-memory one.
 */
export function createTracing(service: TracedService, processor: SpanProcessor): Tracing {
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': service }),
    spanProcessors: [processor],
  });
  provider.register();
  let stopped: Promise<void> | undefined;
  return {
    telemetry: new BullMQOtel({ tracerName: 'bullmq' }),
    tracer: trace.getTracer(service),
    shutdown() {
      stopped ??= provider.shutdown().finally(() => trace.disable());
      return stopped;
    },
  };
}
