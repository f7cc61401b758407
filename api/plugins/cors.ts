import cors from '@fastify/cors';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

export interface CorsOptions {
  /** `*`, or the origins allowed to call the API from a browser. */
  origins: '*' | string[];
}

/** What a browser client may send beyond the CORS-safelisted headers. */
const ALLOWED_HEADERS = [
  'authorization',
  'x-api-key',
  'content-type',
  'idempotency-key',
  'prefer',
  'cancel-after',
  'x-request-id',
];

/** What a browser client may read beyond the CORS-safelisted headers. */
const EXPOSED_HEADERS = [
  'location',
  'link',
  'retry-after',
  'ratelimit-limit',
  'ratelimit-remaining',
  'ratelimit-reset',
  'x-request-id',
  'idempotent-replayed',
  'preference-applied',
  'www-authenticate',
];

/**
 * CORS for browser clients, off unless CORS_ORIGINS lists origins. Keys travel in headers, never
 * cookies, so credentials are not allowed; preflights are answered before authentication and rate
 * limiting (a browser sends no key with them) and cached for ten minutes.
 */
export const corsPlugin = fp(
  async (app: FastifyInstance, opts: CorsOptions) => {
    await app.register(cors, {
      origin: opts.origins,
      methods: ['GET', 'POST', 'DELETE'],
      allowedHeaders: ALLOWED_HEADERS,
      exposedHeaders: EXPOSED_HEADERS,
      credentials: false,
      maxAge: 600,
    });
  },
  { name: 'cors' },
);
