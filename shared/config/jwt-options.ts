import { createPublicKey, type JsonWebKey } from 'node:crypto';
import type { Env } from './env-schema.js';
import type { Parsed } from './http-options.js';

/**
 * The signature algorithms a token may name: asymmetric ones only. `none` would accept any token,
 * and an HMAC algorithm (HS256...) verified against a public key would let anyone who has the
 * public key (everyone: it is public) sign tokens with its bytes as the shared secret.
 */
export const JWT_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
] as const;

export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

/** Where the keys that verify tokens come from: a JWKS URL, or one public key (as a JWK). */
export type JwtKeySource =
  | { kind: 'jwks'; url: string; timeoutMs: number; cooldownMs: number }
  | { kind: 'static'; jwk: JsonWebKey };

/** JWT bearer tokens, a second kind of credential beside API keys. */
export interface JwtConfig {
  keys: JwtKeySource;
  /** Absent: `iss` is not checked. */
  issuer?: string;
  /** Absent: `aud` is not checked. */
  audience?: string;
  algorithms: JwtAlgorithm[];
  /** Skew allowed between our clock and the issuer's when checking `exp` and `nbf`. */
  clockToleranceSeconds: number;
  /** The claim whose value is the tenant (like an API key's id). */
  tenantClaim: string;
  /** Absent: no token opens the admin routes. */
  adminScope?: string;
}

/** Variables that only mean something once tokens are on. */
const NEEDS_A_KEY_SOURCE = ['JWT_ISSUER', 'JWT_AUDIENCE', 'JWT_ADMIN_SCOPE'] as const;

/**
 * Tokens are on when `JWT_JWKS_URL` or `JWT_PUBLIC_KEY` is set (not both). Every error names the
 * variable at fault.
 */
export function parseJwtConfig(e: Env): Parsed<JwtConfig | undefined> {
  if (e.JWT_JWKS_URL && e.JWT_PUBLIC_KEY) {
    return { error: 'JWT_JWKS_URL and JWT_PUBLIC_KEY: set one of them, not both' };
  }
  if (!e.JWT_JWKS_URL && !e.JWT_PUBLIC_KEY) {
    const stray = NEEDS_A_KEY_SOURCE.find((name) => e[name] !== undefined);
    return stray
      ? { error: `${stray} is set, but tokens are off: set JWT_JWKS_URL or JWT_PUBLIC_KEY` }
      : { value: undefined };
  }
  const keys = e.JWT_JWKS_URL
    ? parseJwksUrl(e.JWT_JWKS_URL, e)
    : parsePublicKey(e.JWT_PUBLIC_KEY ?? '');
  if ('error' in keys) return keys;
  const algorithms = parseAlgorithms(e.JWT_ALGORITHMS);
  if ('error' in algorithms) return algorithms;
  return {
    value: {
      keys: keys.value,
      issuer: e.JWT_ISSUER,
      audience: e.JWT_AUDIENCE,
      algorithms: algorithms.value,
      clockToleranceSeconds: e.JWT_CLOCK_TOLERANCE_SECONDS,
      tenantClaim: e.JWT_TENANT_CLAIM,
      adminScope: e.JWT_ADMIN_SCOPE,
    },
  };
}

/**
 * https only: the JWKS decides who may sign tokens, so a key set fetched in the clear could be
 * swapped on the way. `JWT_JWKS_ALLOW_HTTP` is for a JWKS inside a trusted network, and tests.
 */
function parseJwksUrl(url: string, e: Env): Parsed<JwtKeySource> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { error: `JWT_JWKS_URL "${url}" is not a URL` };
  }
  const { protocol, username, password } = parsed;
  if (protocol === 'http:' && !e.JWT_JWKS_ALLOW_HTTP) {
    return {
      error: `JWT_JWKS_URL "${url}" is http: use https, or set JWT_JWKS_ALLOW_HTTP=true for a JWKS inside a trusted network`,
    };
  }
  if (username || password) {
    return { error: 'JWT_JWKS_URL must not carry credentials' };
  }
  return {
    value: {
      kind: 'jwks',
      url,
      timeoutMs: e.JWT_JWKS_TIMEOUT_MS,
      cooldownMs: e.JWT_JWKS_COOLDOWN_SECONDS * 1000,
    },
  };
}

/**
 * A PEM public key (SPKI, `-----BEGIN PUBLIC KEY-----`; `\n` written as two characters is read as
 * a line break, for environment files without multi-line values) or a public JWK as JSON, kept as
 * a JWK either way. A private key or an HMAC secret is refused: only the public half belongs here.
 */
function parsePublicKey(value: string): Parsed<JwtKeySource> {
  const text = value.trim();
  try {
    if (text.startsWith('{')) {
      const jwk = JSON.parse(text) as JsonWebKey;
      if (jwk.kty === 'oct' || jwk.d !== undefined) {
        return { error: 'JWT_PUBLIC_KEY is a secret or private JWK: give the public key only' };
      }
      return {
        value: { kind: 'static', jwk: publicJwk(createPublicKey({ key: jwk, format: 'jwk' })) },
      };
    }
    const pem = text.replaceAll('\\n', '\n');
    if (!pem.startsWith('-----BEGIN PUBLIC KEY-----')) {
      return {
        error:
          'JWT_PUBLIC_KEY is neither a PEM public key (-----BEGIN PUBLIC KEY-----) nor a JWK (JSON)',
      };
    }
    return { value: { kind: 'static', jwk: publicJwk(createPublicKey(pem)) } };
  } catch (err) {
    return { error: `JWT_PUBLIC_KEY cannot be read as a public key: ${(err as Error).message}` };
  }
}

function publicJwk(key: ReturnType<typeof createPublicKey>): JsonWebKey {
  return key.export({ format: 'jwk' });
}

function parseAlgorithms(value: string): Parsed<JwtAlgorithm[]> {
  const names = value
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
  for (const name of names) {
    if (/^none$/i.test(name)) {
      return { error: 'JWT_ALGORITHMS: "none" (unsigned tokens) is never accepted' };
    }
    if (/^HS\d+$/i.test(name)) {
      return {
        error: `JWT_ALGORITHMS: "${name}" is an HMAC algorithm: verified with a public key it would accept tokens signed with that key's bytes as the secret; list asymmetric algorithms only`,
      };
    }
    if (!(JWT_ALGORITHMS as readonly string[]).includes(name)) {
      return {
        error: `JWT_ALGORITHMS: "${name}" is not one of ${JWT_ALGORITHMS.join(', ')}`,
      };
    }
  }
  if (names.length === 0) return { error: 'JWT_ALGORITHMS: list at least one algorithm' };
  return { value: names as JwtAlgorithm[] };
}
