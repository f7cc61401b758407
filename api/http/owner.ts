import type { FastifyRequest } from 'fastify';
import { ANONYMOUS_OWNER } from '../../shared/jobs/job-records.js';

/**
 * Who a request acts for: the id of its API key, or `anonymous` while the API is open. Jobs and
 * idempotency keys belong to it; another owner's job is not found.
 */
export function ownerOf(request: FastifyRequest): string {
  return request.principal?.kind === 'key' ? request.principal.id : ANONYMOUS_OWNER;
}
