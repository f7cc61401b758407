import type { FastifyRequest } from 'fastify';

/** Everyone is one client until API keys exist. */
export const ANONYMOUS = 'anonymous';

/**
 * Who a request acts for: the scope of its idempotency keys and, later, of the jobs it may see.
 * The seam for API keys: once they exist, this answers the key's owner.
 */
export function ownerOf(_request: FastifyRequest): string {
  return ANONYMOUS;
}
