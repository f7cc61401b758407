import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../shared/config/config.js';
import { loadConfig } from '../../shared/config/config.js';
import type { JobResource } from '../../shared/jobs/job-resource.js';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import { type InProcessWorker, startInProcessWorker } from '../support/in-process-worker.js';
import { solidPng } from '../support/inference-stack.js';
import {
  hmacWithPublicKey,
  type SigningKey,
  TokenIssuer,
  unsignedToken,
} from '../support/token-issuer.js';

const ISSUER = 'https://id.example.test/';
const AUDIENCE = 'ai-gateway';
const ADMIN_SCOPE = 'gateway:admin';
const ACME_KEY = 'acme-key-0123456789abcdef';
/** The claims of a token that passes every check but the ones a test changes. */
const claims = (sub: string, extra: Record<string, unknown> = {}) => ({
  iss: ISSUER,
  aud: AUDIENCE,
  sub,
  ...extra,
});

let stack: InProcessWorker;
let issuer: TokenIssuer;
/** Tokens from a JWKS, API keys beside them, and an admin scope. */
let api: TestApi;
let baseUrl: string;
let image: Buffer;

/** A running API on the stack's Redis and storage with its own settings, over real HTTP. */
async function listeningApi(env: Record<string, string>): Promise<{ api: TestApi; url: string }> {
  const config: Config = {
    ...stack.config,
    auth: loadConfig({ ...env, NODE_ENV: 'test' }).auth,
  };
  const built = await buildTestApi(config, { registry: stack.registry });
  const address = await built.app.listen({ host: '127.0.0.1', port: 0 });
  return { api: built, url: address };
}

beforeAll(async () => {
  issuer = await TokenIssuer.start();
  issuer.publish(await TokenIssuer.createKey('key-1'));
  stack = await startInProcessWorker({ env: { SYNC_WAIT_SECONDS: '10' } });
  ({ api, url: baseUrl } = await listeningApi({
    API_KEYS: `acme:${ACME_KEY}`,
    JWT_JWKS_URL: issuer.jwksUrl,
    JWT_JWKS_ALLOW_HTTP: 'true',
    // Every unknown kid is looked up again at once, so a rotation shows without waiting 30 s.
    JWT_JWKS_COOLDOWN_SECONDS: '0',
    JWT_ISSUER: ISSUER,
    JWT_AUDIENCE: AUDIENCE,
    JWT_ADMIN_SCOPE: ADMIN_SCOPE,
  }));
  image = await solidPng([0, 0, 255]);
});

afterAll(async () => {
  await api?.close();
  await stack?.stop();
  await issuer?.close();
});

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function call(
  path: string,
  init: { method?: string; headers?: Record<string, string>; body?: Buffer } = {},
  url = baseUrl,
) {
  const response = await fetch(`${url}${path}`, {
    method: init.method ?? 'GET',
    headers: init.headers ?? {},
    ...(init.body ? { body: new Uint8Array(init.body) } : {}),
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: (text.startsWith('{') ? JSON.parse(text) : text) as Record<string, unknown>,
  };
}

const submit = (headers: Record<string, string>) =>
  call('/jobs?model=colour', {
    method: 'POST',
    headers: { 'content-type': 'image/png', ...headers },
    body: image,
  });

/** A 401 for a token, with its code and RFC 6750's challenge. */
function expectTokenRefused(res: Awaited<ReturnType<typeof call>>, code: string) {
  expect(res.status, JSON.stringify(res.body)).toBe(401);
  expect(res.body).toMatchObject({ code, status: 401 });
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(res.headers.get('www-authenticate')).toBe(
    `Bearer realm="ai-gateway", error="invalid_token", error_description="${String(res.body.detail).replaceAll('"', "'")}"`,
  );
}

describe('a valid token', () => {
  it("acts as its tenant: the job is the tenant's, not another tenant's nor an API key owner's", async () => {
    const token = await issuer.sign(claims('initech'));
    const submitted = await submit(bearer(token));
    expect(submitted.status, JSON.stringify(submitted.body)).toBe(202);
    const job = submitted.body as unknown as JobResource;

    // Another token of the same tenant (a later one, say) sees it; the tenant's list has it.
    const again = await issuer.sign(claims('initech', { jti: 'second' }));
    const own = await call(`/jobs/${job.id}`, { headers: bearer(again) });
    expect(own.status).toBe(200);
    expect(own.body).toMatchObject({ id: job.id, model: 'colour' });
    const listed = await call('/jobs', { headers: bearer(again) });
    expect((listed.body.jobs as JobResource[]).map((j) => j.id)).toContain(job.id);

    const other = await call(`/jobs/${job.id}`, {
      headers: bearer(await issuer.sign(claims('globex'))),
    });
    expect(other.status).toBe(404);
    expect(other.body).toMatchObject({ code: 'JOB_NOT_FOUND' });
    const keyOwner = await call(`/jobs/${job.id}`, { headers: { 'x-api-key': ACME_KEY } });
    expect(keyOwner.status).toBe(404);
  });

  it("counts against its tenant's own rate-limit bucket, whichever token it is", async () => {
    const remaining = async (headers: Record<string, string>) => {
      const res = await call('/models', { headers });
      expect(res.status).toBe(200);
      return Number(res.headers.get('ratelimit-remaining'));
    };
    const first = await remaining(bearer(await issuer.sign(claims('umbrella'))));
    const second = await remaining(bearer(await issuer.sign(claims('umbrella', { jti: 'b' }))));
    expect(second).toBe(first - 1);
    // Another tenant counts in a bucket of its own.
    expect(await remaining(bearer(await issuer.sign(claims('hooli'))))).toBe(first);
    expect(await remaining(bearer(await issuer.sign(claims('umbrella'))))).toBe(second - 1);
  });

  it('leaves API keys working beside tokens, in both headers', async () => {
    expect((await submit({ authorization: `Bearer ${ACME_KEY}` })).status).toBe(202);
    expect((await submit({ 'x-api-key': ACME_KEY })).status).toBe(202);
  });

  it('passes within the clock tolerance (30 s): expired 10 s ago, valid from 10 s ahead', async () => {
    const late = await issuer.sign(claims('initech'), { expiresIn: -10 });
    expect((await call('/jobs', { headers: bearer(late) })).status).toBe(200);
    const early = await issuer.sign(claims('initech'), { notBefore: 10 });
    expect((await call('/jobs', { headers: bearer(early) })).status).toBe(200);
  });
});

describe('a refused token', () => {
  it('expired past the tolerance: 401 TOKEN_EXPIRED', async () => {
    const token = await issuer.sign(claims('initech'), { expiresIn: -60 });
    const res = await call('/jobs', { headers: bearer(token) });
    expectTokenRefused(res, 'TOKEN_EXPIRED');
    expect(res.body.detail).toMatch(/^The token expired at \d{4}-\d\d-\d\dT/);
  });

  it('not yet valid past the tolerance: 401 TOKEN_NOT_YET_VALID', async () => {
    const token = await issuer.sign(claims('initech'), { notBefore: 120 });
    expectTokenRefused(await call('/jobs', { headers: bearer(token) }), 'TOKEN_NOT_YET_VALID');
  });

  it('without exp: 401 TOKEN_INVALID', async () => {
    const token = await issuer.sign(claims('initech'), { expiresIn: null });
    const res = await call('/jobs', { headers: bearer(token) });
    expectTokenRefused(res, 'TOKEN_INVALID');
    expect(res.body.detail).toBe('The token is not valid: its "exp" claim is missing');
  });

  it.each([
    ['another issuer', { iss: 'https://evil.example.test/' }],
    ['no issuer', { iss: undefined }],
  ])('from %s: 401 TOKEN_ISSUER', async (_what, change) => {
    const token = await issuer.sign({ ...claims('initech'), ...change });
    expectTokenRefused(await call('/jobs', { headers: bearer(token) }), 'TOKEN_ISSUER');
  });

  it.each([
    ['another audience', { aud: 'another-service' }],
    ['no audience', { aud: undefined }],
  ])('for %s: 401 TOKEN_AUDIENCE', async (_what, change) => {
    const token = await issuer.sign({ ...claims('initech'), ...change });
    expectTokenRefused(await call('/jobs', { headers: bearer(token) }), 'TOKEN_AUDIENCE');
  });

  it.each([
    ['missing', { sub: undefined }],
    ['not an id', { sub: 'auth0|5f1c' }],
    ['the anonymous tenant', { sub: 'anonymous' }],
    ['an IP address', { sub: '10.0.0.1' }],
  ])('whose tenant claim is %s: 401 TOKEN_TENANT_INVALID', async (_what, change) => {
    const token = await issuer.sign({ ...claims('x'), ...change });
    expectTokenRefused(await call('/jobs', { headers: bearer(token) }), 'TOKEN_TENANT_INVALID');
  });

  it("signed with alg none: 401 TOKEN_INVALID, and the issuer's keys are not fetched", async () => {
    const fetches = issuer.fetches;
    const res = await call('/jobs', { headers: bearer(unsignedToken(claims('initech'))) });
    expectTokenRefused(res, 'TOKEN_INVALID');
    expect(res.body.detail).toBe('The token is not valid: its alg is not one this service accepts');
    expect(issuer.fetches).toBe(fetches);
  });

  it("signed HS256 with the public key's bytes as the secret: 401 TOKEN_INVALID", async () => {
    const token = await hmacWithPublicKey(issuer.keys[0] as SigningKey, claims('initech'));
    expectTokenRefused(await call('/jobs', { headers: bearer(token) }), 'TOKEN_INVALID');
  });

  it('with a forged signature: 401 TOKEN_INVALID', async () => {
    const stranger = await TokenIssuer.createKey('key-1');
    const token = await issuer.sign(claims('initech'), { key: stranger });
    const res = await call('/jobs', { headers: bearer(token) });
    expectTokenRefused(res, 'TOKEN_INVALID');
    expect(res.body.detail).toBe('The token is not valid: its signature does not verify');
  });

  it('that is a JWT in shape but garbage inside: 401 TOKEN_INVALID', async () => {
    expectTokenRefused(await call('/jobs', { headers: bearer('abc.def.ghi') }), 'TOKEN_INVALID');
  });
});

describe('key rotation', () => {
  it('looks up an unknown kid in a fresh JWKS: still unknown is 401, a rotated key is taken', async () => {
    const rotated = await TokenIssuer.createKey('key-2');
    const token = await issuer.sign(claims('initech'), { key: rotated });

    const before = issuer.fetches;
    expectTokenRefused(await call('/jobs', { headers: bearer(token) }), 'TOKEN_KEY_UNKNOWN');
    expect(issuer.fetches).toBe(before + 1);

    issuer.publish(rotated);
    const res = await call('/jobs', { headers: bearer(token) });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(issuer.fetches).toBe(before + 2);
    // Known now: the next token with it is verified from the cache.
    expect((await call('/jobs', { headers: bearer(token) })).status).toBe(200);
    expect(issuer.fetches).toBe(before + 2);
  });
});

describe('admin routes', () => {
  it('open to a token with the admin scope (in scope or in roles), for any tenant counter', async () => {
    await call('/models', { headers: bearer(await issuer.sign(claims('wayne'))) });
    const admin = await issuer.sign(claims('ops', { scope: `jobs:read ${ADMIN_SCOPE}` }));
    const reset = await call('/admin/rate-limits/wayne', {
      method: 'DELETE',
      headers: bearer(admin),
    });
    expect(reset.status, JSON.stringify(reset.body)).toBe(200);
    expect(reset.body).toEqual({ client: 'wayne', kind: 'key', counted: 1 });

    const byRole = await issuer.sign(claims('ops', { roles: ['viewer', ADMIN_SCOPE] }));
    expect((await call('/admin/queues', { headers: bearer(byRole) })).status).toBe(200);
  });

  it("GET /stats: everyone's figures for a token with the admin scope, its own for a tenant's token", async () => {
    const admin = await issuer.sign(claims('ops', { scope: ADMIN_SCOPE }));
    const all = await call('/stats', { headers: bearer(admin) });
    expect(all.status).toBe(200);
    expect(all.body).toMatchObject({ tenant: null, queues: expect.any(Object) });
    const one = await call('/stats?tenant=wayne', { headers: bearer(admin) });
    expect(one.body).toMatchObject({ tenant: 'wayne' });

    const own = await call('/stats', { headers: bearer(await issuer.sign(claims('wayne'))) });
    expect(own.body).toMatchObject({ tenant: 'wayne' });
    expect(own.body.queues).toBeUndefined();
  });

  it('answer 403 ADMIN_SCOPE_REQUIRED to a tenant token without it', async () => {
    const token = await issuer.sign(claims('initech', { scope: `${ADMIN_SCOPE}:not` }));
    const res = await call('/admin/rate-limits/initech', {
      method: 'DELETE',
      headers: bearer(token),
    });
    expect(res.status).toBe(403);
    expect(res.body).toMatchObject({
      code: 'ADMIN_SCOPE_REQUIRED',
      detail: `The token has no "${ADMIN_SCOPE}" scope or role, which admin routes need`,
    });
    expect(res.headers.get('www-authenticate')).toBe(
      `Bearer realm="ai-gateway admin", error="insufficient_scope", error_description="The token has no '${ADMIN_SCOPE}' scope or role, which admin routes need"`,
    );
  });

  it('answer 401 with the token refusal to an expired admin token', async () => {
    const token = await issuer.sign(claims('ops', { scope: ADMIN_SCOPE }), { expiresIn: -60 });
    const res = await call('/admin/queues', { headers: bearer(token) });
    expect(res.status).toBe(401);
    expect(res.body).toMatchObject({ code: 'TOKEN_EXPIRED' });
    expect(res.headers.get('www-authenticate')).toMatch(
      /^Bearer realm="ai-gateway admin", error="invalid_token"/,
    );
  });
});

describe('a static public key (JWT_PUBLIC_KEY) and a tenant claim of its own', () => {
  let key: SigningKey;
  let statics: { api: TestApi; url: string } | undefined;

  beforeAll(async () => {
    key = await TokenIssuer.createKey('static', 'ES256');
    statics = await listeningApi({
      JWT_PUBLIC_KEY: key.pem.replaceAll('\n', '\\n'),
      JWT_TENANT_CLAIM: 'https://id.example.test/tenant',
    });
  });
  afterAll(() => statics?.api.close());

  const sign = (token: Record<string, unknown>) => issuer.sign(token, { key });

  it('takes a token signed with the key, as the tenant its claim names', async () => {
    const token = await sign({ sub: 'user-1', 'https://id.example.test/tenant': 'acme' });
    const submitted = await call(
      '/jobs?model=colour',
      { method: 'POST', headers: { 'content-type': 'image/png', ...bearer(token) }, body: image },
      statics?.url,
    );
    expect(submitted.status, JSON.stringify(submitted.body)).toBe(202);
  });

  it("refuses HS256 signed with the key's PEM, alg none, and a token without the claim", async () => {
    const tenant = { 'https://id.example.test/tenant': 'acme' };
    const confused = await hmacWithPublicKey(key, tenant);
    expectTokenRefused(
      await call('/jobs', { headers: bearer(confused) }, statics?.url),
      'TOKEN_INVALID',
    );
    expectTokenRefused(
      await call('/jobs', { headers: bearer(unsignedToken(tenant)) }, statics?.url),
      'TOKEN_INVALID',
    );
    const res = await call('/jobs', { headers: bearer(await sign({ sub: 'acme' })) }, statics?.url);
    expectTokenRefused(res, 'TOKEN_TENANT_INVALID');
  });

  it('keeps the admin routes closed: no admin key, no admin scope', async () => {
    const token = await sign({ 'https://id.example.test/tenant': 'acme', scope: ADMIN_SCOPE });
    const res = await call('/admin/queues', { headers: bearer(token) }, statics?.url);
    expect(res.status).toBe(403);
    expect(res.body).toMatchObject({ code: 'ADMIN_DISABLED' });
  });
});

describe('a JWKS server that is down or hangs', () => {
  const TIMEOUT_MS = 500;
  let silent: TokenIssuer;
  let hung: { api: TestApi; url: string } | undefined;

  beforeAll(async () => {
    silent = await TokenIssuer.start();
    silent.publish(await TokenIssuer.createKey('key-1'));
    silent.hang();
    hung = await listeningApi({
      JWT_JWKS_URL: silent.jwksUrl,
      JWT_JWKS_ALLOW_HTTP: 'true',
      JWT_JWKS_TIMEOUT_MS: String(TIMEOUT_MS),
    });
  });
  afterAll(async () => {
    await hung?.api.close();
    await silent?.close();
  });

  const expectUnavailable = (res: Awaited<ReturnType<typeof call>>) => {
    expect(res.status, JSON.stringify(res.body)).toBe(503);
    expect(res.body).toMatchObject({ code: 'AUTH_UNAVAILABLE' });
    expect(res.headers.get('retry-after')).toBe('5');
    expect(res.headers.get('www-authenticate')).toBeNull();
  };

  it(`answers 503 AUTH_UNAVAILABLE with Retry-After once the fetch times out (${TIMEOUT_MS} ms)`, async () => {
    const token = await silent.sign({ sub: 'initech' });
    const started = performance.now();
    const res = await call('/jobs', { headers: bearer(token) }, hung?.url);
    const elapsed = performance.now() - started;
    expectUnavailable(res);
    expect(silent.fetches).toBeGreaterThanOrEqual(1);
    expect(elapsed).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
    // The bound, plus room for a loaded machine: never the client's own timeout.
    expect(elapsed).toBeLessThan(TIMEOUT_MS + 2500);
  });

  it('answers 503 AUTH_UNAVAILABLE at once when nothing listens there', async () => {
    const token = await silent.sign({ sub: 'initech' });
    await silent.close();
    const started = performance.now();
    expectUnavailable(await call('/jobs', { headers: bearer(token) }, hung?.url));
    expect(performance.now() - started).toBeLessThan(TIMEOUT_MS);
  });
});
