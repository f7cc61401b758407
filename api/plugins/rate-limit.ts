import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../../shared/config/config.js';
import { errors } from '../../shared/errors/index.js';
import type { Redis } from '../../shared/redis/redis.js';

export interface RateLimitOptions {
  config: Config['rateLimit'];
  redis: Redis;
  prefix: string;
  /** Called for each request the limiter refuses (for metrics). */
  onExceeded?: (request: FastifyRequest) => void;
}

/** Paths never limited: orchestrators and scrapers must always get through. */
const EXEMPT = /^\/(health|metrics)(\/|$|\?)/;

/**
 * Per-client request limits, counted in Redis so every API instance shares them. When Redis cannot
 * be reached the limiter lets requests through (fail open): the queue itself then refuses work.
 */
export const rateLimitPlugin = fp(
  async (app: FastifyInstance, opts: RateLimitOptions) => {
    const { max, windowSeconds } = opts.config;
    await app.register(rateLimit, {
      global: true,
      max,
      timeWindow: windowSeconds * 1000,
      redis: opts.redis,
      nameSpace: `${opts.prefix}:rate-limit:`,
      skipOnError: true,
      enableDraftSpec: true,
      keyGenerator: (request) => request.ip,
      allowList: (request) => EXEMPT.test(request.url),
      ...(opts.onExceeded ? { onExceeded: opts.onExceeded } : {}),
      errorResponseBuilder: (_request, context) =>
        new errors.RATE_LIMITED(max, windowSeconds, Math.ceil(context.ttl / 1000)),
    });
  },
  { name: 'rate-limit' },
);
