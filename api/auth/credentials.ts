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
  const authorization = request.headers.authorization ?? '';
  const [scheme = '', value = ''] = authorization.trim().split(/\s+/, 2);
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
