import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelRegistry } from '../../shared/models/registry.js';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import { registryDocument, testConfig } from '../support/inference-stack.js';
import { cleanRedisPrefix, uniquePrefix } from '../support/services.js';
import { sharedServices } from '../support/shared-services.js';

const KEY = 'acme-key-0123456789abcdef';
const ADMIN = 'admin-key-0123456789abcdef';
const ORIGIN = 'https://app.example.com';

const services = sharedServices();
let dir: string;
const prefix = uniquePrefix();
const apps: TestApi[] = [];
const registry = ModelRegistry.fromDocument(registryDocument());

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tls-'));
});

afterAll(async () => {
  await Promise.allSettled(apps.map((a) => a.close()));
  await cleanRedisPrefix(services.redisUrl, prefix);
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function api(extra: Record<string, string> = {}): Promise<TestApi> {
  const config = testConfig(
    services,
    { prefix, bucket: uniquePrefix() },
    { API_KEYS: `acme:${KEY}`, ADMIN_API_KEY: ADMIN, ...extra },
  );
  const built = await buildTestApi(config, { registry });
  apps.push(built);
  return built;
}

describe('security headers', () => {
  it('sends a JSON API policy on answers and errors alike', async () => {
    const target = await api();
    for (const [url, status] of [
      ['/models', 200],
      ['/nowhere', 404],
      ['/jobs', 401],
    ] as const) {
      const res = await target.app.inject({
        url,
        headers: url === '/models' ? { 'x-api-key': KEY } : {},
      });
      expect(res.statusCode, url).toBe(status);
      expect(res.headers['content-security-policy'], url).toBe(
        "default-src 'none';frame-ancestors 'none';base-uri 'none';form-action 'none'",
      );
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['x-frame-options']).toBe('DENY');
      expect(res.headers['referrer-policy']).toBe('no-referrer');
      expect(res.headers['strict-transport-security']).toBe('max-age=31536000');
      expect(res.headers['cross-origin-resource-policy']).toBe('same-origin');
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.headers['access-control-allow-origin']).toBeUndefined();
      expect(res.headers['x-powered-by']).toBeUndefined();
    }
  });

  it('gives the dashboard a policy its page works with: own scripts only, no framing', async () => {
    const target = await api();
    const res = await target.app.inject({
      url: '/admin/queues',
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(res.statusCode).toBe(200);
    const csp = res.headers['content-security-policy'] as string;
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toMatch(/script-src[^;]*unsafe/);
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain('https://fonts.googleapis.com');
  });
});

describe('CORS', () => {
  it('is off by default: no preflight, no allow-origin', async () => {
    const target = await api();
    const preflight = await target.app.inject({
      method: 'OPTIONS',
      url: '/jobs',
      headers: { origin: ORIGIN, 'access-control-request-method': 'POST' },
    });
    expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
    expect(preflight.statusCode).toBeGreaterThanOrEqual(400);
  });

  it('answers preflights for configured origins without a key, and lets them read our headers', async () => {
    const target = await api({ CORS_ORIGINS: `${ORIGIN},http://localhost:5173` });
    const preflight = await target.app.inject({
      method: 'OPTIONS',
      url: '/jobs',
      headers: {
        origin: ORIGIN,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,idempotency-key',
      },
    });
    expect(preflight.statusCode).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe(ORIGIN);
    expect(preflight.headers['access-control-allow-headers']).toContain('authorization');
    expect(preflight.headers['access-control-allow-headers']).toContain('idempotency-key');
    expect(preflight.headers['access-control-allow-methods']).toBe('GET, POST, DELETE');
    expect(preflight.headers['access-control-max-age']).toBe('600');
    expect(preflight.headers['access-control-allow-credentials']).toBeUndefined();

    const res = await target.app.inject({
      url: '/jobs',
      headers: { origin: ORIGIN, authorization: `Bearer ${KEY}` },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['access-control-allow-origin']).toBe(ORIGIN);
    expect(res.headers['access-control-expose-headers']).toContain('ratelimit-remaining');
    expect(res.headers['access-control-expose-headers']).toContain('location');

    const stranger = await target.app.inject({
      url: '/jobs',
      headers: { origin: 'https://evil.example', authorization: `Bearer ${KEY}` },
    });
    expect(stranger.headers['access-control-allow-origin']).toBeUndefined();
  });
});

describe('TLS in-process', () => {
  it('serves HTTPS with the configured certificate and key, and nothing in plain HTTP', async () => {
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
      ],
      { stdio: 'ignore' },
    );
    const target = await api({ TLS_CERT_FILE: cert, TLS_KEY_FILE: key });
    await target.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = target.app.server.address() as { port: number };

    const agent = new Agent({ connect: { ca: await readFile(cert) } });
    try {
      const res = await undiciFetch(`https://127.0.0.1:${port}/health/live`, { dispatcher: agent });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: 'ok' });
      const keyed = await undiciFetch(`https://127.0.0.1:${port}/models`, {
        dispatcher: agent,
        headers: { 'x-api-key': KEY },
      });
      expect(keyed.status).toBe(200);
    } finally {
      await agent.close();
    }
    await expect(fetch(`http://127.0.0.1:${port}/health/live`)).rejects.toThrow();
  });

  it('refuses to start with a certificate it cannot read, naming the variable', async () => {
    await expect(
      api({
        TLS_CERT_FILE: path.join(dir, 'missing.pem'),
        TLS_KEY_FILE: path.join(dir, 'missing.pem'),
      }),
    ).rejects.toThrow(/TLS_CERT_FILE .*missing\.pem cannot be read/);
  });
});
