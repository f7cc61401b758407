import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyRequest,
} from 'fastify';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiKeyRing } from '../../api/auth/api-key-ring.js';
import { Authenticator } from '../../api/auth/authenticator.js';
import type { TokenVerifier } from '../../api/auth/token-verifier.js';
import { ownerOf } from '../../api/http/owner.js';
import { authPlugin, authScope } from '../../api/plugins/auth.js';
import { problemDetailsPlugin } from '../../api/plugins/problem-details.js';

const ADMIN_KEY = 'k3y-for-the-admin-routes-0123456789';
const ACME_KEY = 'acme-key-0123456789abcdef';
const GLOBEX_KEY = 'globex-key-0123456789abcdef';
let app: FastifyInstance | undefined;

afterEach(async () => {
  await app?.close();
  app = undefined;
});

/** An app with a tenant route, a public route, and an admin route in an admin scope. */
async function build(
  options: { keys?: string; adminKey?: string } = { keys: `acme:${ACME_KEY},globex:${GLOBEX_KEY}` },
): Promise<FastifyInstance> {
  const built = Fastify({ loggerInstance: pino({ level: 'silent' }) as FastifyBaseLogger });
  app = built;
  await built.register(problemDetailsPlugin, { maxUploadBytes: 1024 });
  await built.register(authPlugin, {
    authenticator: new Authenticator(ApiKeyRing.load(options.keys, undefined), options.adminKey),
  });
  built.get('/thing', async (request) => ({ owner: ownerOf(request) }));
  built.get('/open', { config: { auth: 'public' } }, async (request) => ({
    owner: ownerOf(request),
  }));
  await built.register(async (admin) => {
    await admin.register(authScope, { mode: 'admin' });
    admin.get('/admin/thing', async () => ({ ok: true }));
  });
  await built.ready();
  return built;
}

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('API keys on tenant routes', () => {
  it.each([
    ['a bearer token', { authorization: `Bearer ${ACME_KEY}` }, 'acme'],
    ['a lower-case scheme', { authorization: `bearer ${ACME_KEY}` }, 'acme'],
    ['an X-API-Key header', { 'x-api-key': GLOBEX_KEY }, 'globex'],
  ])('lets %s through, as the key id', async (_what, headers, owner) => {
    const res = await (await build()).inject({ url: '/thing', headers });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ owner });
  });

  it('answers 401 API_KEY_REQUIRED with a Bearer challenge when no key is given', async () => {
    const res = await (await build()).inject({ url: '/thing' });
    expect(res.statusCode).toBe(401);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.headers['www-authenticate']).toBe('Bearer realm="ai-gateway"');
    expect(res.json()).toMatchObject({ code: 'API_KEY_REQUIRED', status: 401 });
  });

  it.each([
    ['a wrong key', { authorization: 'Bearer wrong-key-wrong-key-wrong' }],
    ['the key with a suffix', { 'x-api-key': `${ACME_KEY}x` }],
    ['a prefix of the key', { 'x-api-key': ACME_KEY.slice(0, -1) }],
    ['an empty bearer', { authorization: 'Bearer' }],
    ['the key in Basic credentials', { authorization: basic('acme', ACME_KEY) }],
    ['an unknown scheme', { authorization: `Token ${ACME_KEY}` }],
    ['the admin key', { authorization: `Bearer ${ADMIN_KEY}` }],
  ])('answers 401 API_KEY_INVALID for %s', async (_what, headers) => {
    const res = await (await build({ keys: `acme:${ACME_KEY}`, adminKey: ADMIN_KEY })).inject({
      url: '/thing',
      headers,
    });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({ code: 'API_KEY_INVALID' });
    expect(res.headers['www-authenticate']).toBe(
      'Bearer realm="ai-gateway", error="invalid_token"',
    );
    expect(res.body).not.toContain(ACME_KEY.slice(0, 8));
  });

  it('lets everyone in as "anonymous" while no keys are configured, whatever they send', async () => {
    const open = await build({});
    for (const headers of [
      {},
      { authorization: 'Bearer whatever-whatever' },
      { 'x-api-key': 'x' },
    ]) {
      const res = await open.inject({ url: '/thing', headers });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ owner: 'anonymous' });
    }
  });

  it('public routes need no key, and still know a valid one', async () => {
    const built = await build();
    expect((await built.inject({ url: '/open' })).json()).toEqual({ owner: 'anonymous' });
    const bad = await built.inject({ url: '/open', headers: { 'x-api-key': 'nope-nope-nope' } });
    expect(bad.statusCode).toBe(200);
    const good = await built.inject({ url: '/open', headers: { 'x-api-key': ACME_KEY } });
    expect(good.json()).toEqual({ owner: 'acme' });
  });

  it('unknown routes answer 404 to anyone', async () => {
    const res = await (await build()).inject({ url: '/nowhere' });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({ code: 'ROUTE_NOT_FOUND' });
  });
});

describe('admin key on admin routes', () => {
  const keys = `acme:${ACME_KEY}`;

  it.each([
    ['a bearer token', { authorization: `Bearer ${ADMIN_KEY}` }],
    ['an X-API-Key header', { 'x-api-key': ADMIN_KEY }],
    ['Basic credentials with the key as password', { authorization: basic('admin', ADMIN_KEY) }],
    ['a lower-case scheme', { authorization: `bearer ${ADMIN_KEY}` }],
  ])('lets %s through', async (_what, headers) => {
    const res = await (await build({ keys, adminKey: ADMIN_KEY })).inject({
      url: '/admin/thing',
      headers,
    });
    expect(res.statusCode).toBe(200);
  });

  it.each([
    ['no key', {}],
    ['a wrong key', { authorization: 'Bearer wrong-key-wrong-key-wrong' }],
    ['the key with a suffix', { 'x-api-key': `${ADMIN_KEY}x` }],
    ['a prefix of the key', { 'x-api-key': ADMIN_KEY.slice(0, -1) }],
    ['the key as Basic user name', { authorization: basic(ADMIN_KEY, '') }],
    ['an unknown scheme', { authorization: `Token ${ADMIN_KEY}` }],
    ['a tenant key', { authorization: `Bearer ${ACME_KEY}` }],
  ])('answers 401 with a problem and a challenge for %s', async (_what, headers) => {
    const res = await (await build({ keys, adminKey: ADMIN_KEY })).inject({
      url: '/admin/thing',
      headers,
    });
    expect(res.statusCode).toBe(401);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.json()).toMatchObject({ code: 'ADMIN_UNAUTHORIZED', status: 401 });
    expect(res.headers['www-authenticate']).toEqual([
      'Bearer realm="ai-gateway admin"',
      'Basic realm="ai-gateway admin", charset="UTF-8"',
    ]);
  });

  it('answers 403 ADMIN_DISABLED to everyone when no admin key is configured, open API or not', async () => {
    for (const options of [{ keys }, {}]) {
      const res = await (await build(options)).inject({
        url: '/admin/thing',
        headers: { authorization: 'Bearer anything-at-all-really' },
      });
      expect(res.statusCode).toBe(403);
      expect(res.json()).toMatchObject({
        code: 'ADMIN_DISABLED',
        detail: 'Admin routes are disabled: the server has no ADMIN_API_KEY and no JWT_ADMIN_SCOPE',
      });
      await app?.close();
    }
  });

  it('the admin scope covers only its own routes', async () => {
    const res = await (await build({ keys, adminKey: ADMIN_KEY })).inject({
      url: '/thing',
      headers: { 'x-api-key': ACME_KEY },
    });
    expect(res.statusCode).toBe(200);
  });
});

describe('a token tenant that is also a configured key', () => {
  it("shares that key's quota; another token tenant has none", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'auth-quota-'));
    try {
      const file = join(dir, 'keys.json');
      writeFileSync(
        file,
        JSON.stringify({ keys: [{ id: 'acme', key: ACME_KEY, quota: { images_per_day: 5 } }] }),
      );
      // A verifier that vouches for whatever tenant it is told to: the token's checks are
      // jwt-auth.test.ts's subject, this is what the authenticator makes of a valid one.
      let tenant = 'acme';
      const tokens = {
        adminScope: undefined,
        verify: async () => ({ ok: true as const, tenant, admin: false }),
      } as unknown as TokenVerifier;
      const authenticator = new Authenticator(ApiKeyRing.load(undefined, file), undefined, tokens);
      const request = { headers: { authorization: 'Bearer aaa.bbb.ccc' } } as FastifyRequest;
      expect(await authenticator.identify(request, 'tenant')).toEqual({
        kind: 'key',
        id: 'acme',
        quota: { images_per_day: 5 },
      });
      tenant = 'org-7';
      expect(await authenticator.identify(request, 'tenant')).toEqual({ kind: 'key', id: 'org-7' });
      const byKey = { headers: { 'x-api-key': ACME_KEY } } as unknown as FastifyRequest;
      expect(await authenticator.identify(byKey, 'tenant')).toMatchObject({
        quota: { images_per_day: 5 },
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
