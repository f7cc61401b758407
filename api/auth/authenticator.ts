import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { ApiKeyRing, KeyRateLimit } from './api-key-ring.js';
import { presentedKey, presentsCredentials } from './credentials.js';

/**
 * Who a route lets in: `public` anyone; `tenant` a client with an API key (anyone while no keys
 * are configured); `admin` the admin key only.
 */
export type AuthMode = 'public' | 'tenant' | 'admin';

/** Who a request is, as far as its credentials show. */
export type Principal =
  /** A client with one of the configured API keys: the tenant `id`. */
  | { kind: 'key'; id: string; rateLimit?: KeyRateLimit }
  /** The admin key, on an admin route. */
  | { kind: 'admin' }
  /** No credentials. */
  | { kind: 'anonymous' }
  /** Credentials that match no key. */
  | { kind: 'invalid' };

const digest = (key: string) => createHash('sha256').update(key, 'utf8').digest();

/**
 * Tells who a request is from the key it presents: an API key from the ring on tenant and public
 * routes, the admin key on admin routes. Keys are compared as SHA-256 digests in constant time.
 * Nothing here logs or keeps a presented key.
 */
export class Authenticator {
  private readonly adminDigest: Buffer | undefined;

  constructor(
    private readonly ring: ApiKeyRing,
    adminKey: string | undefined,
  ) {
    this.adminDigest = adminKey === undefined ? undefined : digest(adminKey);
  }

  /** No API keys configured: tenant routes are open to anyone, as one anonymous tenant. */
  get open(): boolean {
    return this.ring.open;
  }

  /** Whether an admin key is configured at all (without one, admin routes answer 403). */
  get adminEnabled(): boolean {
    return this.adminDigest !== undefined;
  }

  identify(request: FastifyRequest, mode: AuthMode): Principal {
    if (mode === 'admin') {
      const given = presentedKey(request, { basic: true });
      if (given === undefined) return { kind: 'anonymous' };
      const ok = this.adminDigest !== undefined && timingSafeEqual(digest(given), this.adminDigest);
      return ok ? { kind: 'admin' } : { kind: 'invalid' };
    }
    const given = presentedKey(request, { basic: false });
    if (given === undefined) {
      // An Authorization header in a scheme we do not take is a wrong credential, not none.
      return presentsCredentials(request) && !this.open
        ? { kind: 'invalid' }
        : { kind: 'anonymous' };
    }
    const key = this.ring.verify(given);
    if (key)
      return { kind: 'key', id: key.id, ...(key.rateLimit ? { rateLimit: key.rateLimit } : {}) };
    // While the API is open a stray key changes nothing: everyone is the anonymous tenant.
    return this.open ? { kind: 'anonymous' } : { kind: 'invalid' };
  }
}
