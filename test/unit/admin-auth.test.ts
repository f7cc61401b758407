import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { adminAuthPlugin } from '../../api/plugins/admin-auth.js';
import { problemDetailsPlugin } from '../../api/plugins/problem-details.js';

const KEY = 'k3y-for-the-admin-routes-0123456789';
let app: FastifyInstance | undefined;

afterEach(async () => {
  await app?.close();
  app = undefined;
});

/** An app with one guarded route under /admin and one open route beside it. */
async function build(apiKey: string | undefined): Promise<FastifyInstance> {
  const built = Fastify({ loggerInstance: pino({ level: 'silent' }) as FastifyBaseLogger });
  app = built;
  await built.register(problemDetailsPlugin, { maxUploadBytes: 1024 });
  await built.register(async (admin) => {
    await admin.register(adminAuthPlugin, { apiKey });
    admin.get('/admin/thing', async () => ({ ok: true }));
  });
  built.get('/open', async () => ({ ok: true }));
  await built.ready();
  return built;
}

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('admin key', () => {
  it.each([
    ['a bearer token', { authorization: `Bearer ${KEY}` }],
    ['an X-API-Key header', { 'x-api-key': KEY }],
    ['Basic credentials with the key as password', { authorization: basic('admin', KEY) }],
    ['a lower-case scheme', { authorization: `bearer ${KEY}` }],
  ])('lets %s through', async (_what, headers) => {
    const res = await (await build(KEY)).inject({ url: '/admin/thing', headers });
    expect(res.statusCode).toBe(200);
  });

  it.each([
    ['no key', {}],
    ['a wrong key', { authorization: 'Bearer wrong-key-wrong-key-wrong' }],
    ['the key with a suffix', { 'x-api-key': `${KEY}x` }],
    ['a prefix of the key', { 'x-api-key': KEY.slice(0, -1) }],
    ['the key as Basic user name', { authorization: basic(KEY, '') }],
    ['an unknown scheme', { authorization: `Token ${KEY}` }],
  ])('answers 401 with a problem and a challenge for %s', async (_what, headers) => {
    const res = await (await build(KEY)).inject({ url: '/admin/thing', headers });
    expect(res.statusCode).toBe(401);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.json()).toMatchObject({ code: 'ADMIN_UNAUTHORIZED', status: 401 });
    expect(res.headers['www-authenticate']).toEqual([
      'Bearer realm="ai-gateway admin"',
      'Basic realm="ai-gateway admin", charset="UTF-8"',
    ]);
  });

  it('answers 403 ADMIN_DISABLED to everyone when no key is configured', async () => {
    const res = await (await build(undefined)).inject({
      url: '/admin/thing',
      headers: { authorization: 'Bearer anything-at-all-really' },
    });
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({
      code: 'ADMIN_DISABLED',
      detail: 'Admin routes are disabled: the server has no ADMIN_API_KEY',
    });
  });

  it('guards only its own scope', async () => {
    const res = await (await build(KEY)).inject({ url: '/open' });
    expect(res.statusCode).toBe(200);
  });
});
