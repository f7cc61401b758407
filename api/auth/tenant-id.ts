import { isIP } from 'node:net';
import { ANONYMOUS_OWNER } from '../../shared/jobs/job-records.js';

/**
 * What a tenant id looks like, whether an API key's id or a token's tenant claim: it names the
 * owner of jobs and a rate-limit counter in Redis, and appears in logs and admin URLs.
 */
export const TENANT_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/**
 * Ids no tenant may take: `anonymous`, the one tenant of an open API, and IP addresses, which name
 * clients without credentials in `DELETE /admin/rate-limits/{client}`.
 */
export function isReservedTenantId(id: string): boolean {
  return id === ANONYMOUS_OWNER || isIP(id) !== 0;
}

/** Whether a value can name a tenant. */
export function isTenantId(id: unknown): id is string {
  return typeof id === 'string' && TENANT_ID.test(id) && !isReservedTenantId(id);
}
