import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  onRequestHookHandler,
  RouteOptions,
} from 'fastify';
import fp from 'fastify-plugin';
import { errors } from '../../shared/errors/index.js';
import type { Authenticator, AuthMode, Principal } from '../auth/authenticator.js';
import { sendError } from './problem-details.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who the route lets in. @defaultValue 'tenant' */
    auth?: AuthMode;
  }
  interface FastifyRequest {
    /** Who the request is, from its credentials (set before any route-level hook runs). */
    principal: Principal | null;
  }
}

export interface AuthOptions {
  authenticator: Authenticator;
}

const TENANT_CHALLENGE = 'Bearer realm="ai-gateway"';
/** Browsers prompt for Basic credentials, so a person can open the dashboard without a tool. */
const ADMIN_CHALLENGES = [
  'Bearer realm="ai-gateway admin"',
  'Basic realm="ai-gateway admin", charset="UTF-8"',
];

export const authModeOf = (request: FastifyRequest): AuthMode =>
  request.routeOptions.config.auth ?? 'tenant';

/**
 * Authentication in two steps. First, for every request, who it is (`request.principal`), so the
 * rate limiter can count per key. Then, as the route's last onRequest hook (after the rate
 * limiter, so failed attempts are counted against their address), whether the route lets it in:
 * 401 with a challenge when not, 403 for admin routes while no admin key is configured.
 *
 * Refusals are sent here rather than thrown: routes of some scopes (bull-board's) have an error
 * handler of their own, and these answers must stay problem details.
 */
export const authPlugin = fp(
  async (app: FastifyInstance, opts: AuthOptions) => {
    const { authenticator } = opts;
    app.decorateRequest('principal', null);
    app.addHook('onRequest', async (request) => {
      request.principal = authenticator.identify(request, authModeOf(request));
    });

    const authorize: onRequestHookHandler = async function authorize(request, reply) {
      const mode = authModeOf(request);
      const principal = request.principal ?? { kind: 'anonymous' };
      if (mode === 'public') return;
      if (mode === 'admin') {
        if (!authenticator.adminEnabled) return refuse(request, reply, new errors.ADMIN_DISABLED());
        if (principal.kind === 'admin') return;
        reply.header('www-authenticate', ADMIN_CHALLENGES);
        return refuse(request, reply, new errors.ADMIN_UNAUTHORIZED());
      }
      if (principal.kind === 'key' || authenticator.open) return;
      if (principal.kind === 'invalid') {
        reply.header('www-authenticate', `${TENANT_CHALLENGE}, error="invalid_token"`);
        return refuse(request, reply, new errors.API_KEY_INVALID());
      }
      reply.header('www-authenticate', TENANT_CHALLENGE);
      return refuse(request, reply, new errors.API_KEY_REQUIRED());
    };
    app.addHook('onRoute', (route: RouteOptions) => {
      route.onRequest = [...toArray(route.onRequest), authorize];
    });
  },
  { name: 'auth' },
);

/**
 * Gives every route of the scope it is registered in (and of the plugins registered in it, such as
 * bull-board or Swagger UI) one auth mode.
 */
export const authScope = fp(
  async (app: FastifyInstance, opts: { mode: AuthMode }) => {
    app.addHook('onRoute', (route: RouteOptions) => {
      route.config = { ...route.config, auth: opts.mode };
    });
  },
  { name: 'auth-scope' },
);

function refuse(
  request: FastifyRequest,
  reply: FastifyReply,
  err: Parameters<typeof sendError>[2],
) {
  // Whether a key was presented, never the key.
  request.log.info(
    { code: err.code, presented: request.principal?.kind === 'invalid' },
    'request refused',
  );
  return sendError(request, reply, err);
}

function toArray<T>(value: T | T[] | undefined): T[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}
