import underPressure from '@fastify/under-pressure';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../../shared/config/config.js';
import { errors } from '../http/errors.js';
import { isOperationalPath } from '../http/operational-paths.js';

const DESCRIBE: Record<string, (value: number) => string> = {
  // No sample at all in an interval: the loop was blocked for all of it.
  eventLoopDelay: (ms) =>
    Number.isFinite(ms) ? `event loop lags ${Math.round(ms)} ms` : 'event loop blocked',
  heapUsedBytes: (bytes) => `heap ${Math.round(bytes / 2 ** 20)} MiB`,
  rssBytes: (bytes) => `resident memory ${Math.round(bytes / 2 ** 20)} MiB`,
};

/**
 * Sheds load when this process is overloaded: while the event loop lags more than
 * MAX_EVENT_LOOP_DELAY_MS (the mean lag over a sampling interval), or memory passes
 * MAX_HEAP_USED_BYTES / MAX_RSS_BYTES (sampled by @fastify/under-pressure), new requests are
 * answered at once with 503 OVERLOADED and `Retry-After`, before any work is spent on them. Health
 * probes and metrics are still served. Registered first, so a shed request costs nothing else.
 */
export const loadSheddingPlugin = fp(
  async (app: FastifyInstance, opts: Config['admission']) => {
    await app.register(underPressure, {
      maxEventLoopDelay: opts.maxEventLoopDelayMs,
      maxHeapUsedBytes: opts.maxHeapUsedBytes,
      maxRssBytes: opts.maxRssBytes,
      sampleInterval: sampleIntervalMs(opts.maxEventLoopDelayMs),
      pressureHandler: (request, _reply, type, value) => {
        if (isOperationalPath(request.url)) return undefined;
        const what = DESCRIBE[type]?.(Number(value)) ?? type;
        request.log.warn({ pressure: type, value }, 'request shed');
        // A rejection goes to the error handler: a problem body, with Retry-After.
        return Promise.reject(new errors.OVERLOADED(what));
      },
    });
  },
  { name: 'load-shedding' },
);

/**
 * Half a second, or the lag limit when it is longer. An interval in which the loop never got to
 * record a single sample reads as an infinite lag ("event loop blocked"): with an interval at least
 * as long as the limit, that only happens when the loop really was stalled past the limit, so a
 * shorter stall (a busy host, a long garbage collection) does not shed requests under a 1 s limit.
 */
function sampleIntervalMs(maxEventLoopDelayMs: number): number {
  return Math.max(500, maxEventLoopDelayMs);
}
