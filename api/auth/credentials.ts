import type { FastifyRequest } from 'fastify';

export interface CredentialOptions {
  /**
   * Also take Basic credentials, whose password is the key (any user name): browsers prompt for
   * those, so a person can open the admin dashboard without a tool.
   */
  basic: boolean;
}

/**
 * The key a request presents: `X-API-Key: <key>`, or `Authorization: Bearer <key>` (the scheme in
 * any case), or Basic credentials where allowed. Nothing else: never a query parameter, which
 * would land in access logs and browser history.
 */
export function presentedKey(
  request: FastifyRequest,
  options: CredentialOptions,
): string | undefined {
  const header = request.headers['x-api-key'];
  if (typeof header === 'string' && header) return header;
  const { scheme, value } = authorizationOf(request);
  if (/^bearer$/i.test(scheme) && value) return value;
  if (options.basic && /^basic$/i.test(scheme) && value) {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon >= 0) return decoded.slice(colon + 1);
  }
  return undefined;
}

/** Whether the request carries credentials at all (right or wrong). */
export function presentsCredentials(request: FastifyRequest): boolean {
  return request.headers['x-api-key'] !== undefined || request.headers.authorization !== undefined;
}

/** A JWT in compact form: three base64url parts (the last empty for an unsigned `alg: none`). */
const JWT_SHAPE = /^[\w-]+\.[\w-]+\.[\w-]*$/;

/**
 * The bearer credential when it has a JWT's shape, to be verified as a token (RFC 6750: tokens
 * come in `Authorization: Bearer`, never in `X-API-Key`).
 */
export function presentedToken(request: FastifyRequest): string | undefined {
  const { scheme, value } = authorizationOf(request);
  return /^bearer$/i.test(scheme) && JWT_SHAPE.test(value) ? value : undefined;
}

function authorizationOf(request: FastifyRequest): { scheme: string; value: string } {
  const [scheme = '', value = ''] = (request.headers.authorization ?? '').trim().split(/\s+/, 2);
  return { scheme, value };
}
