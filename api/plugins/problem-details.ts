import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { CATALOGUE, type ErrorCode, isErrorCode } from '../../shared/errors/index.js';
import { errors } from '../http/errors.js';

export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  request_id: string;
  [extension: string]: unknown;
}

declare module 'fastify' {
  interface FastifyReply {
    /** The catalogue code of the problem this reply answered with, for metrics. */
    problemCode: ErrorCode | null;
  }
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** A stable, documented URI per code (RFC 9457 `type`). */
export function problemType(code: ErrorCode): string {
  return `urn:ai-gateway:problem:${code.toLowerCase().replaceAll('_', '-')}`;
}

/** Seconds a client should wait before retrying, for answers where a retry can help. */
const RETRY_AFTER: Partial<Record<ErrorCode, number>> = {
  MODEL_UNAVAILABLE: 5,
  BACKEND_UNAVAILABLE: 5,
  STORAGE_UNAVAILABLE: 5,
  QUEUE_UNAVAILABLE: 5,
  SHUTTING_DOWN: 1,
  IDEMPOTENCY_KEY_IN_USE: 1,
  QUEUE_FULL: 5,
  OVERLOADED: 2,
  AUTH_UNAVAILABLE: 5,
};

/** Errors raised by Fastify and its plugins, in our vocabulary. */
const FOREIGN_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_REQ_FILE_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_INVALID_MULTIPART_CONTENT_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_FILES_LIMIT: 'TOO_MANY_FILES',
  FST_PARTS_LIMIT: 'VALIDATION_FAILED',
  FST_FIELDS_LIMIT: 'VALIDATION_FAILED',
  FST_PROTO_VIOLATION: 'VALIDATION_FAILED',
  FST_ERR_VALIDATION: 'VALIDATION_FAILED',
};

export function toProblem(
  err: FastifyError,
  requestId: string,
  limits: { maxUploadBytes: number },
): ProblemDetails {
  const code = classify(err);
  const spec = CATALOGUE[code];
  let detail: string;
  if (isErrorCode(err.code)) detail = err.message;
  else if (!spec.message.includes('%')) detail = spec.message;
  else if (code === 'PAYLOAD_TOO_LARGE')
    detail = new errors.PAYLOAD_TOO_LARGE(limits.maxUploadBytes).message;
  else if (code === 'UNSUPPORTED_MEDIA_TYPE') {
    detail = 'Send multipart/form-data with a file part named "file", or a raw image/* body';
  } else if (code === 'INTERNAL') detail = spec.message;
  else detail = err.message;
  return {
    type: problemType(code),
    title: spec.title,
    status: spec.status,
    detail,
    code,
    request_id: requestId,
  };
}

function classify(err: FastifyError): ErrorCode {
  if (isErrorCode(err.code)) return err.code;
  const foreign = FOREIGN_CODES[err.code];
  if (foreign) return foreign;
  // Busboy's parse errors carry no code or status: the client sent a malformed multipart body.
  if (/multipart|boundary|unexpected end of form|malformed part header/i.test(err.message)) {
    return 'VALIDATION_FAILED';
  }
  const status = err.statusCode ?? 500;
  return status >= 400 && status < 500 ? 'VALIDATION_FAILED' : 'INTERNAL';
}

export function sendProblem(
  reply: FastifyReply,
  problem: ProblemDetails,
  headers: Record<string, string> = {},
): FastifyReply {
  reply.problemCode = problem.code;
  const retryAfter = RETRY_AFTER[problem.code];
  if (retryAfter !== undefined && !reply.hasHeader('retry-after')) {
    reply.header('retry-after', String(retryAfter));
  }
  return reply.code(problem.status).headers(headers).type(PROBLEM_CONTENT_TYPE).send(problem);
}

/**
 * Answers a catalogue error at once: for hooks that must not leave the answer to the error handler
 * of the route's scope (a plugin's routes may have their own).
 */
export function sendError(
  request: FastifyRequest,
  reply: FastifyReply,
  err: { code: ErrorCode; message: string },
): FastifyReply {
  const spec = CATALOGUE[err.code];
  return sendProblem(reply, {
    type: problemType(err.code),
    title: spec.title,
    status: spec.status,
    detail: err.message,
    code: err.code,
    request_id: request.id,
  });
}

/** What the router refuses before any route or hook runs. */
const FRAMEWORK_DETAILS: Record<string, string> = {
  FST_ERR_BAD_URL: 'The URL is not valid: a percent-encoding in the path is malformed',
  FST_ERR_MAX_PARAM_LENGTH: 'A path parameter is longer than 100 characters',
};

/**
 * Fastify's `frameworkErrors`: URLs its router refuses (bad percent-encoding, an over-long path
 * parameter) get a problem body like every other error, not Fastify's own JSON.
 */
export function frameworkErrorHandler(
  err: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
): void {
  const detail = FRAMEWORK_DETAILS[err.code];
  reply.header('x-request-id', request.id);
  if (detail) {
    request.log.info({ code: err.code }, 'request rejected');
    sendError(request, reply, new errors.VALIDATION_FAILED(detail));
    return;
  }
  request.log.error({ err }, 'request failed');
  sendError(request, reply, new errors.INTERNAL());
}

/**
 * Every error answer is an RFC 9457 problem details body with a stable `code`: our catalogue
 * errors as declared, Fastify's and its plugins' errors mapped onto the catalogue, anything else a
 * 500 without internals (logged in full with the request id).
 */
export const problemDetailsPlugin = fp(
  async (app: FastifyInstance, opts: { maxUploadBytes: number }) => {
    app.decorateReply('problemCode', null);
    app.setErrorHandler((err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
      const problem = toProblem(err, request.id, opts);
      // As Fastify's own handler does: an error may carry the headers of its answer.
      const { headers } = err as { headers?: Record<string, string> };
      if (headers && isErrorCode(err.code)) reply.headers(headers);
      if (problem.status >= 500) request.log.error({ err }, 'request failed');
      else request.log.info({ code: problem.code, detail: problem.detail }, 'request rejected');
      return sendProblem(reply, problem);
    });
    app.setNotFoundHandler((request, reply) => {
      const err = new errors.ROUTE_NOT_FOUND(request.method, request.url.split('?')[0]);
      return sendProblem(reply, toProblem(err, request.id, opts));
    });
  },
  { name: 'problem-details' },
);
