import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { FastifyServerFactory } from 'fastify';
import { type Config, ConfigError } from '../../shared/config/config.js';
import { CATALOGUE, type ErrorCode } from '../../shared/errors/index.js';
import type { Logger } from '../../shared/logging/logger.js';
import { PROBLEM_CONTENT_TYPE, problemType } from '../plugins/problem-details.js';

/** Fastify's own default: longer than the idle timeout of common load balancers (60 s). */
const KEEP_ALIVE_TIMEOUT_MS = 72_000;

/**
 * The API's HTTP server: HTTPS in-process when TLS_CERT_FILE and TLS_KEY_FILE are set (for
 * deployments without a TLS-terminating proxy), plain HTTP otherwise. Slow clients are cut off:
 * headers and body must arrive within REQUEST_TIMEOUT_MS (checked every second, not Node's default
 * 30 s), which is what keeps slow-loris connections from piling up.
 */
export function apiServerFactory(config: Config['http']): FastifyServerFactory {
  const timeouts = {
    requestTimeout: config.requestTimeoutMs,
    headersTimeout: Math.min(config.requestTimeoutMs, 60_000),
    connectionsCheckingInterval: Math.min(config.requestTimeoutMs, 1000),
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
  };
  const tls = config.tls ? readTls(config.tls) : undefined;
  return (handler) =>
    tls
      ? https.createServer({ ...timeouts, ...tls }, handler)
      : http.createServer<typeof IncomingMessage, typeof ServerResponse>(timeouts, handler);
}

function readTls(files: { certFile: string; keyFile: string }): { cert: Buffer; key: Buffer } {
  const read = (name: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new ConfigError(`${name} ${path} cannot be read: ${(err as Error).message}`);
    }
  };
  return { cert: read('TLS_CERT_FILE', files.certFile), key: read('TLS_KEY_FILE', files.keyFile) };
}

type ClientErrorCode = Extract<
  ErrorCode,
  'MALFORMED_REQUEST' | 'REQUEST_TIMEOUT' | 'HEADERS_TOO_LARGE'
>;

const CLIENT_ERRORS: Record<string, ClientErrorCode> = {
  ERR_HTTP_REQUEST_TIMEOUT: 'REQUEST_TIMEOUT',
  HPE_HEADER_OVERFLOW: 'HEADERS_TOO_LARGE',
};

/**
 * Answers requests Node's HTTP parser refuses before Fastify sees them (malformed HTTP, headers
 * over 16 KiB, a request not received in time) with a problem body like every other error,
 * instead of Fastify's bare JSON, then closes the connection.
 */
export function clientErrorHandler(logger: Logger) {
  return (err: Error & { code?: string }, socket: Socket): void => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const code = CLIENT_ERRORS[err.code ?? ''] ?? 'MALFORMED_REQUEST';
    const spec = CATALOGUE[code];
    const requestId = randomUUID();
    const body = JSON.stringify({
      type: problemType(code),
      title: spec.title,
      status: spec.status,
      detail: spec.message,
      code,
      request_id: requestId,
    });
    logger.info({ requestId, code, reason: err.code }, 'malformed request refused');
    if (socket.writable) {
      socket.write(
        `HTTP/1.1 ${spec.status} ${http.STATUS_CODES[spec.status]}\r\n` +
          `Content-Type: ${PROBLEM_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
          `X-Request-Id: ${requestId}\r\nConnection: close\r\n\r\n${body}`,
      );
    }
    socket.destroy(err);
  };
}
