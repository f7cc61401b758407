import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../shared/config/config.js';
import { ModelRegistry } from '../../shared/models/registry.js';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import { registryDocument, testConfig } from '../support/inference-stack.js';
import { cleanRedisPrefix, uniquePrefix } from '../support/services.js';
import { sharedServices } from '../support/shared-services.js';

const ACME = 'acme-key-0123456789abcdef';
const GLOBEX = 'globex-key-0123456789abcdef';
const ADMIN = 'admin-key-0123456789abcdef';
const BUDGET = 3;

const services = sharedServices();
let dir: string;
const prefixes: string[] = [];
const apps: TestApi[] = [];
const registry = ModelRegistry.fromDocument(registryDocument());

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'rate-limit-keys-'));
  // globex has a budget of its own in the keys file; acme comes from API_KEYS.
  await writeFile(
    path.join(dir, 'keys.yaml'),
    `keys:\n  - id: globex\n    key: ${GLOBEX}\n    rate_limit: { requests: 5, window: 30 }\n`,
  );
});

afterAll(async () => {
  await Promise.allSettled(apps.map((a) => a.close()));
  for (const prefix of prefixes) await cleanRedisPrefix(services.redisUrl, prefix);
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** An API on a fresh prefix (fresh counters), with keys, an admin key and a budget of 3. */
async function api(extra: Record<string, string> = {}): Promise<TestApi> {
  const prefix = uniquePrefix();
  prefixes.push(prefix);
  const config: Config = testConfig(
    services,
    { prefix, bucket: uniquePrefix() },
    {
      API_KEYS: `acme:${ACME}`,
      API_KEYS_FILE: path.join(dir, 'keys.yaml'),
      ADMIN_API_KEY: ADMIN,
      RATE_LIMIT_REQUESTS: String(BUDGET),
      RATE_LIMIT_WINDOW: '60',
      ...extra,
    },
  );
  const built = await buildTestApi(config, { registry });
  apps.push(built);
  return built;
}

type Call = { key?: string; ip?: string; headers?: Record<string, string>; url?: string };

function call(target: TestApi, { key, ip = '203.0.113.1', headers = {}, url = '/models' }: Call) {
  return target.app.inject({
    url,
    remoteAddress: ip,
    headers: { ...(key ? { 'x-api-key': key } : {}), ...headers },
  });
}

const admin = (target: TestApi, method: 'DELETE' | 'GET', url: string, key = ADMIN) =>
  target.app.inject({ method, url, headers: { authorization: `Bearer ${key}` } });

function expectLimited(res: LightMyRequestResponse, limit: number, window: number) {
  expect(res.statusCode).toBe(429);
  expect(res.json()).toMatchObject({ code: 'RATE_LIMITED' });
  expect(res.json().detail).toMatch(
    new RegExp(`^Rate limit of ${limit} requests per ${window} s exceeded; retry in \\d+ s$`),
  );
  expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
  expect(res.headers['ratelimit-limit']).toBe(String(limit));
  expect(res.headers['ratelimit-remaining']).toBe('0');
}

describe('rate limit per API key', () => {
  it('counts each key on its own, from any address, and other keys are unaffected', async () => {
    const target = await api();
    for (let i = 0; i < BUDGET; i++) {
      const res = await call(target, { key: ACME, ip: `198.51.100.${i + 1}` });
      expect(res.statusCode).toBe(200);
      expect(res.headers['ratelimit-remaining']).toBe(String(BUDGET - 1 - i));
    }
    expectLimited(await call(target, { key: ACME, ip: '198.51.100.99' }), BUDGET, 60);
    expect((await call(target, { key: GLOBEX })).statusCode).toBe(200);
  });

  it("applies a key's own budget from the keys file", async () => {
    const target = await api();
    for (let i = 0; i < 5; i++) {
      const res = await call(target, { key: GLOBEX });
      expect(res.statusCode).toBe(200);
      expect(res.headers['ratelimit-limit']).toBe('5');
    }
    expectLimited(await call(target, { key: GLOBEX }), 5, 30);
  });

  it('counts requests without a valid key per address: wrong keys are throttled too', async () => {
    const target = await api();
    for (let i = 0; i < BUDGET; i++) {
      const res = await call(target, { key: `guess-${i}-0123456789abcdef`, ip: '192.0.2.7' });
      expect(res.statusCode).toBe(401);
    }
    expectLimited(await call(target, { key: 'one-more-guess-0123456789', ip: '192.0.2.7' }), 3, 60);
    // The limit is the address's, not the valid key's; another address starts afresh.
    expect((await call(target, { ip: '192.0.2.8' })).statusCode).toBe(401);
    expect((await call(target, { key: ACME, ip: '192.0.2.7' })).statusCode).toBe(200);
  });

  it('gives an IPv6 client one budget for its /64, and IPv4-mapped addresses count as IPv4', async () => {
    const target = await api({ API_KEYS: '', API_KEYS_FILE: '' });
    for (let i = 0; i < BUDGET; i++) {
      expect((await call(target, { ip: `2001:db8:1:2::${i + 1}` })).statusCode).toBe(200);
    }
    expectLimited(await call(target, { ip: '2001:db8:1:2:ffff::1' }), BUDGET, 60);
    expect((await call(target, { ip: '2001:db8:1:3::1' })).statusCode).toBe(200);

    for (let i = 0; i < BUDGET; i++) await call(target, { ip: '::ffff:192.0.2.50' });
    expectLimited(await call(target, { ip: '192.0.2.50' }), BUDGET, 60);
  });

  it('does not limit health, metrics or the admin key', async () => {
    const target = await api();
    for (let i = 0; i < BUDGET + 2; i++) {
      expect((await call(target, { url: '/health/live' })).statusCode).toBe(200);
      expect((await call(target, { url: '/metrics' })).statusCode).toBe(200);
      const reset = await admin(target, 'DELETE', '/admin/rate-limits/acme');
      expect(reset.statusCode).toBe(200);
      expect(reset.headers['ratelimit-limit']).toBeUndefined();
    }
  });
});

describe('DELETE /admin/rate-limits/{client}', () => {
  it("resets a key's counter: its next request is served, in a fresh window", async () => {
    const target = await api();
    for (let i = 0; i <= BUDGET; i++) await call(target, { key: ACME });
    expectLimited(await call(target, { key: ACME }), BUDGET, 60);

    const reset = await admin(target, 'DELETE', '/admin/rate-limits/acme');
    expect(reset.statusCode).toBe(200);
    expect(reset.json()).toEqual({ client: 'acme', kind: 'key', counted: BUDGET + 2 });

    const next = await call(target, { key: ACME });
    expect(next.statusCode).toBe(200);
    expect(next.headers['ratelimit-remaining']).toBe(String(BUDGET - 1));
    // Nothing left to reset the second time.
    expect((await admin(target, 'DELETE', '/admin/rate-limits/acme')).json()).toMatchObject({
      counted: 1,
    });
  });

  it("resets an address's counter, IPv6 by its /64", async () => {
    const target = await api();
    for (let i = 0; i <= BUDGET; i++) await call(target, { ip: '2001:db8:9::1' });
    expect((await call(target, { ip: '2001:db8:9::2' })).statusCode).toBe(429);
    const reset = await admin(target, 'DELETE', '/admin/rate-limits/2001:db8:9::77');
    expect(reset.json()).toEqual({ client: '2001:db8:9::77', kind: 'ip', counted: BUDGET + 2 });
    expect((await call(target, { ip: '2001:db8:9::1' })).statusCode).toBe(401);
  });

  it('answers 404 for a key id that is not configured, 401 without the admin key', async () => {
    const target = await api();
    const unknown = await admin(target, 'DELETE', '/admin/rate-limits/initech');
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toMatchObject({ code: 'API_KEY_NOT_FOUND' });
    for (const key of [ACME, 'not-the-admin-key-at-all']) {
      const refused = await admin(target, 'DELETE', '/admin/rate-limits/acme', key);
      expect(refused.statusCode).toBe(401);
      expect(refused.json()).toMatchObject({ code: 'ADMIN_UNAUTHORIZED' });
    }
  });
});

describe('trusted proxies', () => {
  it('ignores X-Forwarded-For from anyone by default: a forged header buys no fresh budget', async () => {
    const target = await api({ API_KEYS: '', API_KEYS_FILE: '' });
    for (let i = 0; i < BUDGET; i++) {
      const headers = { 'x-forwarded-for': `100.64.0.${i}` };
      expect((await call(target, { ip: '203.0.113.9', headers })).statusCode).toBe(200);
    }
    const forged = { 'x-forwarded-for': '100.64.9.9' };
    expectLimited(await call(target, { ip: '203.0.113.9', headers: forged }), BUDGET, 60);
  });

  it("believes a trusted proxy's X-Forwarded-For, and only the part it appended", async () => {
    const target = await api({ API_KEYS: '', API_KEYS_FILE: '', TRUST_PROXY: '10.0.0.0/8' });
    // Through the proxy: the client is the address the proxy saw, whatever the client prepended.
    for (let i = 0; i < BUDGET; i++) {
      const headers = { 'x-forwarded-for': `6.6.6.${i}, 198.51.100.20` };
      expect((await call(target, { ip: '10.1.2.3', headers })).statusCode).toBe(200);
    }
    const headers = { 'x-forwarded-for': '198.51.100.20' };
    expectLimited(await call(target, { ip: '10.9.9.9', headers }), BUDGET, 60);
    // Another client behind the same proxy has its own budget.
    const other = { 'x-forwarded-for': '198.51.100.21' };
    expect((await call(target, { ip: '10.1.2.3', headers: other })).statusCode).toBe(200);
    // Straight from outside, the header is not believed.
    for (let i = 0; i < BUDGET; i++) {
      await call(target, { ip: '203.0.113.30', headers: { 'x-forwarded-for': `6.6.7.${i}` } });
    }
    expect((await call(target, { ip: '203.0.113.30' })).statusCode).toBe(429);
  });
});

describe('Redis unreachable', () => {
  it('fails open, and GET /health says so', async () => {
    const target = await api();
    target.redis.disconnect();
    for (let i = 0; i < BUDGET + 2; i++) {
      expect((await call(target, { key: ACME })).statusCode).toBe(200);
    }
    const health = await call(target, { url: '/health' });
    expect(health.json()).toMatchObject({
      services: { redis: 'down', rate_limiter: 'degraded (fail open)' },
    });
  });
});
