import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { CATALOGUE, type ErrorCode, errors } from '../../shared/errors/index.js';
import { problemType, sendProblem } from './problem-details.js';

export interface AdminAuthOptions {
  /** The admin key; absent: every route in the scope answers 403 ADMIN_DISABLED. */
  apiKey: string | undefined;
}

/** Browsers prompt for Basic credentials, so a person can open the dashboard without a tool. */
const CHALLENGES = [
  'Bearer realm="ai-gateway admin"',
  'Basic realm="ai-gateway admin", charset="UTF-8"',
];

/**
 * Guards every route of the scope it is registered in with the admin key, given as
 * `Authorization: Bearer <key>`, `X-API-Key: <key>` or Basic credentials whose password is the key.
 * Keys are compared in constant time (as SHA-256 digests, so lengths do not leak either).
 *
 * The answer is sent here rather than thrown: routes in the scope (bull-board's) may have an error
 * handler of their own, and these answers must stay problem details.
 */
export const adminAuthPlugin = fp(
  async (app: FastifyInstance, opts: AdminAuthOptions) => {
    const expected = opts.apiKey === undefined ? undefined : digest(opts.apiKey);
    app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
      if (expected === undefined) return reject(request, reply, 'ADMIN_DISABLED');
      const given = presentedKey(request);
      if (given !== undefined && timingSafeEqual(digest(given), expected)) return;
      reply.header('www-authenticate', CHALLENGES);
      request.log.info({ presented: given !== undefined }, 'admin key rejected');
      return reject(request, reply, 'ADMIN_UNAUTHORIZED');
    });
  },
  { name: 'admin-auth', encapsulate: false },
);

function presentedKey(request: FastifyRequest): string | undefined {
  const header = request.headers['x-api-key'];
  if (typeof header === 'string' && header) return header;
  const authorization = request.headers.authorization ?? '';
  const [scheme = '', value = ''] = authorization.trim().split(/\s+/, 2);
  if (/^bearer$/i.test(scheme) && value) return value;
  if (/^basic$/i.test(scheme) && value) {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon >= 0) return decoded.slice(colon + 1);
  }
  return undefined;
}

function digest(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

function reject(
  request: FastifyRequest,
  reply: FastifyReply,
  code: Extract<ErrorCode, 'ADMIN_DISABLED' | 'ADMIN_UNAUTHORIZED'>,
) {
  const spec = CATALOGUE[code];
  return sendProblem(reply, {
    type: problemType(code),
    title: spec.title,
    status: spec.status,
    detail: new errors[code]().message,
    code,
    request_id: request.id,
  });
}
