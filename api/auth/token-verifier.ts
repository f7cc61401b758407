import {
  createRemoteJWKSet,
  type JWK,
  type JWTPayload,
  type JWTVerifyGetKey,
  errors as jose,
  jwtVerify,
} from 'jose';
import type { JwtConfig } from '../../shared/config/jwt-options.js';
import { type ErrorCode, withCause } from '../../shared/errors/index.js';
import { errors } from '../http/errors.js';
import { isTenantId } from './tenant-id.js';

/** A refusal, as the catalogue error to answer with. */
export interface CredentialRefusal {
  code: ErrorCode;
  message: string;
}

/** What a token shows: its tenant and whether it opens the admin routes, or why it is refused. */
export type TokenOutcome =
  | { ok: true; tenant: string; admin: boolean }
  | { ok: false; refusal: CredentialRefusal };

/** The issuer's key set could not be fetched: a fault on our side of the request, not the token's. */
class KeySetUnavailable extends Error {
  override name = 'KeySetUnavailable';
}

/**
 * Verifies JWT bearer tokens with jose: the signature against the issuer's JWKS (cached by jose,
 * fetched again for an unknown `kid` at most once per cooldown, each fetch bounded by a timeout)
 * or a static public key; then `exp` (required) and `nbf` with the configured clock tolerance,
 * `iss` and `aud` when configured; only the listed (asymmetric) algorithms. The tenant is a claim,
 * held to the rules of an API key's id.
 */
export class TokenVerifier {
  private readonly key: JWTVerifyGetKey;

  constructor(private readonly config: JwtConfig) {
    const { keys } = config;
    if (keys.kind === 'jwks') this.key = remoteKeySet(keys);
    else {
      // A JWK, so jose checks its type against each token's alg: an RSA key never verifies HS256.
      const jwk = keys.jwk as JWK;
      this.key = async () => jwk;
    }
  }

  /** The scope or role that opens the admin routes; absent: no token opens them. */
  get adminScope(): string | undefined {
    return this.config.adminScope;
  }

  async verify(token: string): Promise<TokenOutcome> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.key, {
        algorithms: this.config.algorithms,
        clockTolerance: this.config.clockToleranceSeconds,
        requiredClaims: ['exp'],
        // jose checks a claim for every one of these that is not undefined.
        issuer: this.config.issuer,
        audience: this.config.audience,
      }));
    } catch (err) {
      return { ok: false, refusal: refusalOf(err) };
    }
    const tenant = payload[this.config.tenantClaim];
    if (!isTenantId(tenant)) {
      return {
        ok: false,
        refusal: new errors.TOKEN_TENANT_INVALID(this.config.tenantClaim),
      };
    }
    return { ok: true, tenant, admin: this.grantsAdmin(payload) };
  }

  /** The admin scope in `scope` (space-separated, OAuth 2.0) or in a `roles` array. */
  private grantsAdmin(payload: JWTPayload): boolean {
    const wanted = this.config.adminScope;
    if (wanted === undefined) return false;
    const { scope, roles } = payload;
    const scopes = typeof scope === 'string' ? scope.split(' ') : [];
    return scopes.includes(wanted) || (Array.isArray(roles) && roles.includes(wanted));
  }
}

/**
 * jose's remote key set, with its failures to fetch told apart from a key set that was fetched
 * and has no matching key: the first is 503 (retry), the second the token's fault.
 */
function remoteKeySet(source: Extract<JwtConfig['keys'], { kind: 'jwks' }>): JWTVerifyGetKey {
  const keySet = createRemoteJWKSet(new URL(source.url), {
    timeoutDuration: source.timeoutMs,
    cooldownDuration: source.cooldownMs,
  });
  return async (header, token) => {
    try {
      return await keySet(header, token);
    } catch (err) {
      if (err instanceof jose.JOSEError && !isFetchFailure(err)) throw err;
      throw new KeySetUnavailable('the JWKS cannot be fetched', { cause: err });
    }
  };
}

/** jose's own errors from fetching: a timeout, a non-200 answer, a body that is no key set. */
function isFetchFailure(err: InstanceType<typeof jose.JOSEError>): boolean {
  return (
    err instanceof jose.JWKSTimeout ||
    err instanceof jose.JWKSInvalid ||
    err.constructor === jose.JOSEError
  );
}

function refusalOf(err: unknown): CredentialRefusal {
  if (err instanceof KeySetUnavailable) {
    return withCause(new errors.AUTH_UNAVAILABLE(), err.cause);
  }
  if (err instanceof jose.JWTExpired) return new errors.TOKEN_EXPIRED(dateOf(err.payload.exp));
  if (err instanceof jose.JWTClaimValidationFailed) {
    if (err.claim === 'nbf') return new errors.TOKEN_NOT_YET_VALID(dateOf(err.payload.nbf));
    if (err.claim === 'iss') return new errors.TOKEN_ISSUER();
    if (err.claim === 'aud') return new errors.TOKEN_AUDIENCE();
    return new errors.TOKEN_INVALID(`its "${err.claim}" claim is ${err.reason}`);
  }
  if (err instanceof jose.JWKSNoMatchingKey) return new errors.TOKEN_KEY_UNKNOWN();
  if (err instanceof jose.JOSEAlgNotAllowed) {
    return new errors.TOKEN_INVALID('its alg is not one this service accepts');
  }
  if (err instanceof jose.JWSSignatureVerificationFailed) {
    return new errors.TOKEN_INVALID('its signature does not verify');
  }
  // Malformed parts, unsupported header parameters, a key of the wrong type for its alg.
  return new errors.TOKEN_INVALID('it cannot be verified');
}

function dateOf(seconds: unknown): string {
  return typeof seconds === 'number' ? new Date(seconds * 1000).toISOString() : 'unknown';
}
