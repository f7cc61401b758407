import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../shared/config/config.js';

function configError(env: NodeJS.ProcessEnv): string {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).message;
  }
  throw new Error(`expected ${JSON.stringify(env)} to be rejected`);
}

const JWKS = 'https://id.example.com/.well-known/jwks.json';
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const PEM = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const PUBLIC_JWK = rsa.publicKey.export({ format: 'jwk' });

describe('JWT settings', () => {
  it('are off by default: no tokens', () => {
    expect(loadConfig({}).auth.jwt).toBeUndefined();
  });

  it('take a JWKS URL with safe defaults: asymmetric algorithms, 30 s skew, the tenant in sub', () => {
    expect(loadConfig({ JWT_JWKS_URL: JWKS }).auth.jwt).toEqual({
      keys: { kind: 'jwks', url: JWKS, timeoutMs: 3000, cooldownMs: 30_000 },
      algorithms: ['RS256', 'ES256', 'EdDSA'],
      clockToleranceSeconds: 30,
      tenantClaim: 'sub',
    });
  });

  it('read every setting', () => {
    const jwt = loadConfig({
      JWT_JWKS_URL: 'http://idp.internal/jwks',
      JWT_JWKS_ALLOW_HTTP: 'true',
      JWT_JWKS_TIMEOUT_MS: '1500',
      JWT_JWKS_COOLDOWN_SECONDS: '0',
      JWT_ISSUER: 'https://id.example.com/',
      JWT_AUDIENCE: 'ai-gateway',
      JWT_ALGORITHMS: ' PS256 , ES384 ',
      JWT_CLOCK_TOLERANCE_SECONDS: '5',
      JWT_TENANT_CLAIM: 'https://example.com/tenant',
      JWT_ADMIN_SCOPE: 'gateway:admin',
    }).auth.jwt;
    expect(jwt).toEqual({
      keys: { kind: 'jwks', url: 'http://idp.internal/jwks', timeoutMs: 1500, cooldownMs: 0 },
      issuer: 'https://id.example.com/',
      audience: 'ai-gateway',
      algorithms: ['PS256', 'ES384'],
      clockToleranceSeconds: 5,
      tenantClaim: 'https://example.com/tenant',
      adminScope: 'gateway:admin',
    });
  });

  it('refuse an http JWKS URL unless allowed, and one with credentials', () => {
    const message = configError({ JWT_JWKS_URL: 'http://idp.internal/jwks' });
    expect(message).toContain('JWT_JWKS_URL');
    expect(message).toContain('JWT_JWKS_ALLOW_HTTP=true');
    expect(configError({ JWT_JWKS_URL: 'https://user:pw@idp.example.com/jwks' })).toContain(
      'JWT_JWKS_URL must not carry credentials',
    );
    expect(configError({ JWT_JWKS_URL: 'ftp://idp.example.com/jwks' })).toContain('JWT_JWKS_URL');
  });

  it('take one key source, not both', () => {
    expect(configError({ JWT_JWKS_URL: JWKS, JWT_PUBLIC_KEY: PEM })).toContain(
      'JWT_JWKS_URL and JWT_PUBLIC_KEY: set one of them, not both',
    );
  });

  it.each(['JWT_ISSUER', 'JWT_AUDIENCE', 'JWT_ADMIN_SCOPE'])(
    'refuse %s while tokens are off, rather than ignore it',
    (name) => {
      expect(configError({ [name]: 'x' })).toContain(
        `${name} is set, but tokens are off: set JWT_JWKS_URL or JWT_PUBLIC_KEY`,
      );
    },
  );

  it.each([
    ['HS256', 'is an HMAC algorithm'],
    ['RS256,hs512', 'is an HMAC algorithm'],
    ['none', '"none" (unsigned tokens) is never accepted'],
    ['RS256,NONE', 'never accepted'],
    ['RS257', '"RS257" is not one of RS256'],
    [' , ', 'list at least one algorithm'],
  ])('refuse JWT_ALGORITHMS=%s', (value, expected) => {
    const message = configError({ JWT_JWKS_URL: JWKS, JWT_ALGORITHMS: value });
    expect(message).toContain('JWT_ALGORITHMS');
    expect(message).toContain(expected);
  });

  it('keep a static public key as a public JWK, from PEM (lines or \\n escapes) or a JWK', () => {
    const expected = { kind: 'static', jwk: PUBLIC_JWK };
    expect(loadConfig({ JWT_PUBLIC_KEY: PEM }).auth.jwt?.keys).toEqual(expected);
    const escaped = PEM.trim().replaceAll('\n', '\\n');
    expect(loadConfig({ JWT_PUBLIC_KEY: escaped }).auth.jwt?.keys).toEqual(expected);
    const jwk = JSON.stringify({ ...PUBLIC_JWK, kid: 'k1', use: 'sig' });
    expect(loadConfig({ JWT_PUBLIC_KEY: jwk }).auth.jwt?.keys).toEqual(expected);
  });

  it.each([
    ['a private key (PEM)', rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()],
    ['a private JWK', JSON.stringify(rsa.privateKey.export({ format: 'jwk' }))],
    [
      'an HMAC secret JWK',
      JSON.stringify({ kty: 'oct', k: randomBytes(32).toString('base64url') }),
    ],
    ['text that is no key', 'not a key'],
    ['a broken PEM', '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----'],
    ['broken JSON', '{"kty": "RSA"'],
  ])('refuse %s as JWT_PUBLIC_KEY', (_what, value) => {
    expect(configError({ JWT_PUBLIC_KEY: value })).toContain('JWT_PUBLIC_KEY');
  });

  it.each([
    ['JWT_CLOCK_TOLERANCE_SECONDS', '301'],
    ['JWT_CLOCK_TOLERANCE_SECONDS', '-1'],
    ['JWT_JWKS_TIMEOUT_MS', '50'],
    ['JWT_JWKS_COOLDOWN_SECONDS', 'soon'],
    ['JWT_ADMIN_SCOPE', 'two words'],
  ])('refuse %s=%s', (name, value) => {
    expect(configError({ JWT_JWKS_URL: JWKS, [name]: value })).toContain(name);
  });
});
