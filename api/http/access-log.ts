import { type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import { isOperationalPath } from './operational-paths.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The job the request submitted, waited for or read, once a route knows it (access log). */
    jobId: string | null;
  }
}

/** One answered request, as the access log writes it (beside pino's time, level and requestId). */
interface AccessLogLine {
  method: string;
  /** The route's template (`/predict/:model`), never the URL: no ids or query strings. */
  route: string;
  status: number;
  /** The catalogue code of a problem answer. */
  code?: string;
  /**
   * The credential's kind (never the credential): `key` (a tenant's API key or token), `admin`,
   * `anonymous`, `invalid` or `refused`.
   */
  auth?: string;
  /** The tenant: the API key's id, or the token's tenant claim. */
  tenant?: string;
  model?: string;
  backend?: string;
  jobId?: string;
  /** The request body's declared length (Content-Length); absent for a chunked body. */
  bytesIn?: number;
  /** The answer body's length (Content-Length); absent for a streamed answer. */
  bytesOut?: number;
  /** From arrival to the last byte handed to the socket. */
  durationMs: number;
  /**
   * A streamed answer that ended before it was complete: the client hung up (the usual end of a
   * job event stream a client stops following), or was cut off for not reading.
   */
  aborted?: true;
}

/** The access log's message: filter on it to ship only these lines. */
export const ACCESS_LOG_MESSAGE = 'request completed';

/**
 * Fastify's per-request logging, reshaped into an access log: one line per answered request, at
 * `info`, written after the onResponse hooks (so it sees what the routes and plugins learnt),
 * instead of Fastify's two (`incoming request` drops to `debug`). Probes and scrapes write none. A
 * long-lived answer (a job event stream) writes its line once, when it ends: finished, or cut short
 * ({@link streamError}).
 */
export class AccessLogController extends LogController {
  constructor(options: { requestIdLogLabel: string }) {
    super({
      ...options,
      // Probes and scrapes every few seconds would drown the request log.
      disableRequestLogging: (request: { url?: string }) => isOperationalPath(request.url ?? ''),
    });
  }

  override incomingRequest(request: FastifyRequest): void {
    if (this.isLogDisabled(request)) return;
    request.log.debug({ req: request }, 'incoming request');
  }

  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ): void {
    if (this.isLogDisabled(request)) return;
    const line = accessLogLine(request, reply);
    if (error) reply.log.error({ ...line, err: error }, ACCESS_LOG_MESSAGE);
    else reply.log.info(line, ACCESS_LOG_MESSAGE);
  }

  /**
   * A streamed answer that did not finish. Its response never finishes, so Fastify runs no
   * onResponse hook and calls no {@link requestCompleted} for it: this is its one line, instead of
   * Fastify's `stream closed prematurely`. A hang-up is how clients stop following a stream, so it
   * is `info`; any other failure `error`.
   */
  override streamError(error: Error, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return;
    const line: AccessLogLine = { ...accessLogLine(request, reply), aborted: true };
    if ((error as { code?: string }).code === 'ERR_STREAM_PREMATURE_CLOSE') {
      reply.log.info(line, ACCESS_LOG_MESSAGE);
    } else reply.log.error({ ...line, err: error }, ACCESS_LOG_MESSAGE);
  }
}

/**
 * The access-log fields of one answered request, as one object: those not known are undefined,
 * which pino leaves out of the line.
 */
function accessLogLine(request: FastifyRequest, reply: FastifyReply): AccessLogLine {
  const principal = request.principal;
  const labels = request.inference;
  return {
    method: request.method,
    route: request.routeOptions.url ?? 'unmatched',
    status: reply.statusCode,
    code: reply.problemCode ?? undefined,
    auth: principal?.kind,
    tenant: principal?.kind === 'key' ? principal.id : undefined,
    model: labels?.model ?? (request.params as { model?: string } | null)?.model,
    backend: labels?.backend,
    jobId: request.jobId ?? undefined,
    bytesIn: length(request.headers['content-length']),
    bytesOut: length(reply.getHeader('content-length')),
    durationMs: Math.round(reply.elapsedTime * 10) / 10,
  };
}

function length(header: unknown): number | undefined {
  const value = Number(header);
  return header !== undefined && Number.isSafeInteger(value) ? value : undefined;
}
