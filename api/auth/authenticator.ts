import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { errors } from '../http/errors.js';
import type { KeyQuota } from '../quotas/key-quota.js';
import type { ApiKeyRing, KeyRateLimit } from './api-key-ring.js';
import { presentedKey, presentedToken, presentsCredentials } from './credentials.js';
import { isTenantId } from './tenant-id.js';
import type { CredentialRefusal, TokenVerifier } from './token-verifier.js';

/**
 * Who a route lets in: `public` anyone; `tenant` a client with an API key or a token (anyone
 * while neither is configured); `admin` the admin key, or a token with the admin scope;
 * `tenant-or-admin` either, for a route that answers a tenant about itself and the admin about
 * everyone.
 */
export type AuthMode = 'public' | 'tenant' | 'admin' | 'tenant-or-admin';

/** Who a request is, as far as its credentials show. */
export type Principal =
  /**
   * A tenant, `id`: a client with one of the configured API keys, or with a valid token whose
   * tenant claim is `id` (the same tenant, whichever credential it shows).
   */
  | { kind: 'key'; id: string; rateLimit?: KeyRateLimit; quota?: KeyQuota }
  /** The admin key, or a token with the admin scope, on an admin (or tenant-or-admin) route. */
  | { kind: 'admin' }
  /** No credentials. */
  | { kind: 'anonymous' }
  /** Credentials that match no key. */
  | { kind: 'invalid' }
  /**
   * A token that was refused, with the answer to give: why it is not valid (401), that it lacks
   * the admin scope on an admin route (403), or that its keys cannot be fetched now (503).
   */
  | { kind: 'refused'; refusal: CredentialRefusal };

const digest = (key: string) => createHash('sha256').update(key, 'utf8').digest();

/**
 * Tells who a request is from the credential it presents: an API key from the ring, or a JWT
 * bearer token when tokens are on, on tenant and public routes; the admin key or a token with the
 * admin scope on admin routes. A bearer value is first compared with the keys, then, if it has a
 * JWT's shape, verified as a token. Keys are compared as SHA-256 digests in constant time. Nothing
 * here logs or keeps a presented credential.
 */
export class Authenticator {
  private readonly adminDigest: Buffer | undefined;

  constructor(
    private readonly ring: ApiKeyRing,
    adminKey: string | undefined,
    private readonly tokens?: TokenVerifier,
  ) {
    this.adminDigest = adminKey === undefined ? undefined : digest(adminKey);
  }

  /**
   * No API keys configured and tokens off: tenant routes are open to anyone, as one anonymous
   * tenant.
   */
  get open(): boolean {
    return this.ring.open && this.tokens === undefined;
  }

  /**
   * Whether anything opens the admin routes: an admin key, or tokens with an admin scope (with
   * neither, admin routes answer 403).
   */
  get adminEnabled(): boolean {
    return this.adminDigest !== undefined || this.tokens?.adminScope !== undefined;
  }

  /**
   * Whether `id` can name a tenant: a configured key's id or, with tokens on, any valid tenant id
   * (a token's tenant is known only from its tokens).
   */
  isTenant(id: string): boolean {
    return this.ring.has(id) || (this.tokens !== undefined && isTenantId(id));
  }

  async identify(request: FastifyRequest, mode: AuthMode): Promise<Principal> {
    if (mode === 'admin') return this.identifyAdmin(request);
    const given = presentedKey(request, { basic: false });
    if (mode === 'tenant-or-admin' && given !== undefined && this.isAdminKey(given)) {
      return { kind: 'admin' };
    }
    if (given === undefined) {
      // An Authorization header in a scheme we do not take is a wrong credential, not none.
      return presentsCredentials(request) && !this.open
        ? { kind: 'invalid' }
        : { kind: 'anonymous' };
    }
    const key = this.ring.verify(given);
    if (key) {
      return {
        kind: 'key',
        id: key.id,
        rateLimit: key.rateLimit,
        quota: key.quota,
      };
    }
    const token = this.tokens && presentedToken(request);
    if (this.tokens && token) {
      const outcome = await this.tokens.verify(token);
      if (!outcome.ok) return { kind: 'refused', refusal: outcome.refusal };
      // On a tenant-or-admin route a token with the admin scope acts as the admin key does.
      if (mode === 'tenant-or-admin' && outcome.admin) return { kind: 'admin' };
      // A token's tenant that is also a configured key's id is that tenant: it shares its quota.
      const quota = this.ring.byId(outcome.tenant)?.quota;
      return { kind: 'key', id: outcome.tenant, quota };
    }
    // While the API is open a stray key changes nothing: everyone is the anonymous tenant.
    return this.open ? { kind: 'anonymous' } : { kind: 'invalid' };
  }

  private async identifyAdmin(request: FastifyRequest): Promise<Principal> {
    const given = presentedKey(request, { basic: true });
    if (given === undefined) return { kind: 'anonymous' };
    if (this.isAdminKey(given)) return { kind: 'admin' };
    const token = this.tokens && presentedToken(request);
    // Without an admin scope no token opens the admin routes: only the admin key does.
    const adminScope = this.tokens?.adminScope;
    if (!this.tokens || !token || adminScope === undefined) return { kind: 'invalid' };
    const outcome = await this.tokens.verify(token);
    if (!outcome.ok) return { kind: 'refused', refusal: outcome.refusal };
    return outcome.admin
      ? { kind: 'admin' }
      : { kind: 'refused', refusal: new errors.ADMIN_SCOPE_REQUIRED(adminScope) };
  }

  private isAdminKey(given: string): boolean {
    return this.adminDigest !== undefined && timingSafeEqual(digest(given), this.adminDigest);
  }
}
