import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../../shared/config/config.js';
import type { RedisClient } from '../../shared/redis/redis.js';
import { errors } from '../http/errors.js';
import { isOperationalPath } from '../http/operational-paths.js';
import { counterName, rateLimitClientOf } from '../rate-limit/rate-limit-clients.js';

export interface RateLimitOptions {
  config: Config['rateLimit'];
  redis: RedisClient;
  /** Where the counters live in Redis (RateLimitCounters resets them there). */
  nameSpace: string;
  /** Called for each request the limiter refuses (for metrics). */
  onExceeded?: (request: FastifyRequest) => void;
}

/**
 * Request budgets, counted in Redis so every API instance shares them: per API key (a key's own
 * `rate_limit` overrides the global one), or per client address without a valid key, so wrong
 * keys are counted too. The admin key is not limited. Answers past the budget are 429 with
 * `Retry-After` and `RateLimit-*` headers.
 *
 * When Redis cannot be reached the limiter lets requests through (fail open): a Redis outage
 * should not turn into an API outage for reads that do not need the queue, and the queue, which
 * needs Redis too, refuses new work with QUEUE_UNAVAILABLE anyway. GET /health says so.
 *
 * Its hook runs in each route's onRequest hooks (added as routes are registered), after the
 * app-wide hook that identifies the request's key: register it before the auth plugin, whose
 * check then runs after it.
 */
export const rateLimitPlugin = fp(
  async (app: FastifyInstance, opts: RateLimitOptions) => {
    const { max, windowSeconds } = opts.config;
    const budget = (request: FastifyRequest) => {
      const principal = request.principal;
      const own = principal?.kind === 'key' ? principal.rateLimit : undefined;
      return own ?? { requests: max, windowSeconds };
    };
    await app.register(rateLimit, {
      global: true,
      max: (request) => budget(request).requests,
      timeWindow: (request) => budget(request).windowSeconds * 1000,
      redis: opts.redis,
      nameSpace: opts.nameSpace,
      skipOnError: true,
      enableDraftSpec: true,
      keyGenerator: (request) => counterName(rateLimitClientOf(request)),
      allowList: (request) => isOperationalPath(request.url) || request.principal?.kind === 'admin',
      onExceeded: opts.onExceeded,
      errorResponseBuilder: (request, context) => {
        const { requests, windowSeconds: window } = budget(request);
        return new errors.RATE_LIMITED(requests, window, Math.ceil(context.ttl / 1000));
      },
    });
  },
  { name: 'rate-limit' },
);
