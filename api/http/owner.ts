import type { FastifyRequest } from 'fastify';
import { ANONYMOUS_OWNER } from '../../shared/jobs/job-records.js';
import type { Authenticator } from '../auth/authenticator.js';
import { errors } from './errors.js';

/**
 * Who a request acts for: the id of its API key, or `anonymous` while the API is open. Jobs and
 * idempotency keys belong to it; another owner's job is not found.
 */
export function ownerOf(request: Pick<FastifyRequest, 'principal'>): string {
  return request.principal?.kind === 'key' ? request.principal.id : ANONYMOUS_OWNER;
}

/**
 * Whose figures (GET /stats, GET /usage) a request may read, from its `?tenant=`: the admin key's
 * choice (undefined: every tenant; one that cannot exist is TENANT_NOT_FOUND), or the asking
 * tenant's own (naming another is TENANT_FORBIDDEN).
 */
export function readableTenant(
  request: Pick<FastifyRequest, 'principal'> & { query: { tenant?: string } },
  tenants: Pick<Authenticator, 'isTenant'>,
): string | undefined {
  const asked = request.query.tenant;
  if (request.principal?.kind === 'admin') {
    if (asked !== undefined && asked !== ANONYMOUS_OWNER && !tenants.isTenant(asked)) {
      throw new errors.TENANT_NOT_FOUND(asked);
    }
    return asked;
  }
  const own = ownerOf(request);
  if (asked !== undefined && asked !== own) throw new errors.TENANT_FORBIDDEN(asked);
  return own;
}
