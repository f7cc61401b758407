import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  onRequestHookHandler,
  RouteOptions,
} from 'fastify';
import fp from 'fastify-plugin';
import { CATALOGUE } from '../../shared/errors/index.js';
import type { Authenticator, AuthMode, Principal } from '../auth/authenticator.js';
import type { CredentialRefusal } from '../auth/token-verifier.js';
import { errors } from '../http/errors.js';
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
const ADMIN_REALM = 'Bearer realm="ai-gateway admin"';
/** Browsers prompt for Basic credentials, so a person can open the dashboard without a tool. */
const ADMIN_CHALLENGES = [ADMIN_REALM, 'Basic realm="ai-gateway admin", charset="UTF-8"'];

export const authModeOf = (request: FastifyRequest): AuthMode =>
  request.routeOptions.config.auth ?? 'tenant';

/**
 * Authentication in two steps. First, for every request, who it is (`request.principal`), so the
 * rate limiter can count per tenant. Then, as the route's last onRequest hook (after the rate
 * limiter, so failed attempts are counted against their address), whether the route lets it in:
 * 401 with a challenge when not, 403 for admin routes while nothing opens them or for a token
 * without the admin scope, 503 when a token's keys cannot be fetched.
 *
 * Refusals are sent here rather than thrown: routes of some scopes (bull-board's) have an error
 * handler of their own, and these answers must stay problem details.
 */
export const authPlugin = fp(
  async (app: FastifyInstance, opts: AuthOptions) => {
    const { authenticator } = opts;
    app.decorateRequest('principal', null);
    app.addHook('onRequest', async (request) => {
      request.principal = await authenticator.identify(request, authModeOf(request));
    });

    const authorize: onRequestHookHandler = async function authorize(request, reply) {
      const mode = authModeOf(request);
      const principal = request.principal ?? { kind: 'anonymous' };
      if (mode === 'public') return;
      if (mode === 'admin') {
        if (!authenticator.adminEnabled) return refuse(request, reply, new errors.ADMIN_DISABLED());
        if (principal.kind === 'admin') return;
        if (principal.kind === 'refused') {
          return refuseToken(request, reply, ADMIN_REALM, principal.refusal);
        }
        reply.header('www-authenticate', ADMIN_CHALLENGES);
        return refuse(request, reply, new errors.ADMIN_UNAUTHORIZED());
      }
      if (principal.kind === 'key' || authenticator.open) return;
      if (mode === 'tenant-or-admin' && principal.kind === 'admin') return;
      if (principal.kind === 'refused') {
        return refuseToken(request, reply, TENANT_CHALLENGE, principal.refusal);
      }
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
  // Whether a credential was presented, never the credential.
  const presented = request.principal?.kind === 'invalid' || request.principal?.kind === 'refused';
  request.log.info({ code: err.code, presented }, 'request refused');
  return sendError(request, reply, err);
}

/**
 * A refused token's answer, with RFC 6750's challenge: `invalid_token` for a token that is not
 * valid (401), `insufficient_scope` for one without the admin scope (403), none when its keys
 * could not be fetched (503: the fault is not the token's).
 */
function refuseToken(
  request: FastifyRequest,
  reply: FastifyReply,
  realm: string,
  refusal: CredentialRefusal,
) {
  const status = CATALOGUE[refusal.code].status;
  if (status === 401 || status === 403) {
    const error = status === 401 ? 'invalid_token' : 'insufficient_scope';
    reply.header(
      'www-authenticate',
      `${realm}, error="${error}", error_description="${quotable(refusal.message)}"`,
    );
  } else {
    const cause = (refusal as { cause?: unknown }).cause;
    request.log.warn({ code: refusal.code, err: cause }, 'token keys unavailable');
  }
  return refuse(request, reply, refusal);
}

/** RFC 6750's error_description: printable ASCII without `"` and `\`. */
function quotable(text: string): string {
  return text.replaceAll('"', "'").replace(/[^\x20-\x21\x23-\x5b\x5d-\x7e]/g, '');
}

function toArray<T>(value: T | T[] | undefined): T[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}
