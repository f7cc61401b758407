import { isIP } from 'node:net';
import { normalizeIP } from '@fastify/rate-limit';
import type { FastifyRequest } from 'fastify';
import type { RedisClient } from '../../shared/redis/redis.js';
import type { Authenticator } from '../auth/authenticator.js';

/**
 * One client as the rate limiter counts it: a tenant, by API key or token (every address using
 * them shares its budget), or, without a valid key, the client's address; an IPv6 client by its /64, the block one
 * subscriber gets, so it cannot take a fresh budget per address.
 */
export type RateLimitClient = { kind: 'key'; id: string } | { kind: 'ip'; address: string };

/** The counter's name in the store: `key:<id>` or `ip:<address>`. */
export function counterName(client: RateLimitClient): string {
  return client.kind === 'key' ? `key:${client.id}` : `ip:${client.address}`;
}

/** Who a request counts against. `request.ip` is the peer, or the trusted proxies' client. */
export function rateLimitClientOf(request: FastifyRequest): RateLimitClient {
  const principal = request.principal;
  if (principal?.kind === 'key') return { kind: 'key', id: principal.id };
  return { kind: 'ip', address: normalizeIP(request.ip) };
}

/**
 * The client an operator names in `DELETE /admin/rate-limits/{client}`: an IP address, or a
 * tenant (tenant ids are never IP addresses). Unknown tenants are `undefined`.
 */
export function parseClient(
  name: string,
  tenants: Pick<Authenticator, 'isTenant'>,
): RateLimitClient | undefined {
  if (isIP(name) !== 0) return { kind: 'ip', address: normalizeIP(name) };
  return tenants.isTenant(name) ? { kind: 'key', id: name } : undefined;
}

/** The rate limiter's counters in Redis (the store of @fastify/rate-limit, under `nameSpace`). */
export class RateLimitCounters {
  constructor(
    private readonly redis: RedisClient,
    readonly nameSpace: string,
  ) {}

  /** Clears a client's counter: its next request starts a fresh window. Returns the old count. */
  async reset(client: RateLimitClient): Promise<number> {
    const previous = await this.redis.getdel(`${this.nameSpace}${counterName(client)}`);
    return previous === null ? 0 : Number(previous);
  }
}
