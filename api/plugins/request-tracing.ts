import {
  type Context,
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { isOperationalPath } from '../http/operational-paths.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The request's server span in its context (tracing on only). */
    traceContext: Context | null;
  }
}

/**
 * A server span per request, joined to the caller's trace when it sends `traceparent`. The span's
 * context is made active for the handler, so the BullMQ producer span of the job it queues (and
 * through the job, the worker's span) belongs to the same trace.
 *
 * Registered only when tracing is on. The context is entered in onRequest and again in preHandler:
 * a body parser's stream callbacks run outside the request's async context.
 */
export const requestTracingPlugin = fp(
  async (app: FastifyInstance, opts: { tracer: Tracer }) => {
    app.decorateRequest('traceContext', null);

    app.addHook('onRequest', (request: FastifyRequest, _reply: FastifyReply, done) => {
      if (isOperationalPath(request.url)) return done();
      const route = request.routeOptions.url;
      const parent = propagation.extract(ROOT_CONTEXT, request.headers);
      const span = opts.tracer.startSpan(
        `${request.method} ${route ?? 'unmatched'}`,
        {
          kind: SpanKind.SERVER,
          attributes: {
            'http.request.method': request.method,
            'url.path': request.url.split('?')[0] ?? '/',
            // The SDK leaves out an attribute whose value is undefined (an unmatched route).
            'http.route': route,
            'ai_gateway.request_id': request.id,
          },
        },
        parent,
      );
      request.traceContext = trace.setSpan(parent, span);
      context.with(request.traceContext, done);
    });

    app.addHook('preHandler', (request: FastifyRequest, _reply: FastifyReply, done) => {
      if (!request.traceContext) return done();
      context.with(request.traceContext, done);
    });

    app.addHook('onResponse', async (request: FastifyRequest, reply: FastifyReply) => {
      const span = request.traceContext && trace.getSpan(request.traceContext);
      if (!span) return;
      span.setAttribute('http.response.status_code', reply.statusCode);
      if (reply.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    });
  },
  { name: 'request-tracing' },
);
