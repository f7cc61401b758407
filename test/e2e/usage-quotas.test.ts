/**
 * Usage and quotas per key as real processes serve them (issue 14): an API and an ONNX worker,
 * keys with quotas in a keys file both read. A key past its quota gets 429 QUOTA_EXCEEDED with
 * Retry-After and the RateLimit-Policy/RateLimit fields until the admin resets it; GET /usage
 * reads what each key used; the worker's /metrics counts the same per key id.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderTextLine } from '../fixtures/images.js';
import { predict } from '../support/http.js';
import { parsePrometheusText, sampleValue } from '../support/prometheus-text.js';
import { sharedServices } from '../support/shared-services.js';
import { type Stack, startStack } from '../support/stack.js';

const KEYS = {
  acme: 'acme-usage-e2e-key-0123456789',
  globex: 'globex-usage-e2e-key-0123456789',
};
const ADMIN = 'admin-usage-e2e-key-0123456789';
const QUOTA = 3;

describe('usage and quotas per key', () => {
  const services = sharedServices();
  let stack: Stack;
  let dir: string;
  let workerMetricsUrl: string;
  let image: Buffer;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ai-gateway-usage-e2e-'));
    const keysFile = path.join(dir, 'keys.json');
    await writeFile(
      keysFile,
      JSON.stringify({
        keys: [
          { id: 'acme', key: KEYS.acme, quota: { images_per_day: QUOTA } },
          { id: 'globex', key: KEYS.globex },
        ],
      }),
    );
    stack = await startStack(services, {
      // A key from API_KEYS beside the file's: the stack waits for the model with it.
      apiKeys: { initech: 'initech-usage-e2e-key-0123456789' },
      adminKey: ADMIN,
      env: { API_KEYS_FILE: keysFile, RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_REQUESTS: '1000' },
    });
    workerMetricsUrl = stack.workers[0]!.logs().find((l) => l.msg === 'worker metrics listening')
      ?.url as string;
    image = await renderTextLine();
  });
  afterAll(async () => {
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const as = (who: keyof typeof KEYS | 'admin') => ({
    authorization: `Bearer ${who === 'admin' ? ADMIN : KEYS[who]}`,
  });
  const getJson = async (url: string, who: keyof typeof KEYS | 'admin') => {
    const res = await fetch(`${stack.baseUrl}${url}`, { headers: as(who) });
    return {
      status: res.status,
      body: (await res.json()) as Record<string, unknown>,
      headers: res.headers,
    };
  };

  it('refuses past the quota with 429, Retry-After at midnight UTC and what is left, until the admin resets it', async () => {
    for (let i = 1; i <= QUOTA; i++) {
      const { status, headers } = await predict(stack.baseUrl, 'text_orientation', image, {
        headers: as('acme'),
      });
      expect(status).toBe(200);
      expect(headers.get('ratelimit-policy')).toBe(`"images_per_day";q=${QUOTA};w=86400`);
      expect(headers.get('ratelimit')).toMatch(
        new RegExp(`^"images_per_day";r=${QUOTA - i};t=\\d+$`),
      );
      // The per-window rate limit keeps its own fields.
      expect(headers.get('ratelimit-limit')).toBe('1000');
    }
    const now = Date.now();
    const midnight = Math.floor(now / 86_400_000 + 1) * 86_400_000;
    const refused = await predict(stack.baseUrl, 'text_orientation', image, {
      headers: as('acme'),
    });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('content-type')).toContain('application/problem+json');
    expect(refused.body).toMatchObject({
      code: 'QUOTA_EXCEEDED',
      status: 429,
      detail: `The quota images_per_day (${QUOTA}) is used up; it renews at ${new Date(midnight).toISOString()}`,
    });
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(Math.abs(retryAfter - (midnight - now) / 1000)).toBeLessThan(10);
    expect(refused.headers.get('ratelimit')).toBe(`"images_per_day";r=0;t=${retryAfter}`);
    // Another key is not touched.
    expect(
      (await predict(stack.baseUrl, 'text_orientation', image, { headers: as('globex') })).status,
    ).toBe(200);

    const quotas = await getJson('/usage/quotas', 'acme');
    expect(quotas.body).toEqual({
      tenant: 'acme',
      quotas: [
        {
          policy: 'images_per_day',
          limit: QUOTA,
          used: QUOTA,
          remaining: 0,
          resets_at: new Date(midnight).toISOString(),
        },
      ],
    });

    const reset = await fetch(`${stack.baseUrl}/admin/quotas/acme`, {
      method: 'DELETE',
      headers: as('admin'),
    });
    expect(reset.status).toBe(200);
    expect(await reset.json()).toEqual({
      tenant: 'acme',
      used: { images_per_day: QUOTA, jobs_per_month: 0 },
    });
    const after = await predict(stack.baseUrl, 'text_orientation', image, { headers: as('acme') });
    expect(after.status).toBe(200);
    expect(after.headers.get('ratelimit')).toMatch(/^"images_per_day";r=2;t=\d+$/);
  });

  it('reads each key its usage, and the admin every key', async () => {
    const today = new Date().toISOString().slice(0, 10);
    const own = await getJson('/usage', 'acme');
    expect(own.status).toBe(200);
    const [acme] = own.body.tenants as {
      tenant: string;
      totals: Record<string, unknown>;
      days: unknown[];
    }[];
    // Four succeeded; the one refused used nothing.
    expect(acme).toMatchObject({
      tenant: 'acme',
      totals: {
        requests: QUOTA + 1,
        images: QUOTA + 1,
        jobs: { succeeded: QUOTA + 1, failed: 0, canceled: 0 },
        uploaded_bytes: (QUOTA + 1) * image.length,
      },
      days: [{ date: today }],
    });
    expect((acme!.totals.inference_ms as number) > 0).toBe(true);

    const all = await getJson(`/usage?from=${today}&to=${today}`, 'admin');
    expect((all.body.tenants as { tenant: string }[]).map((t) => t.tenant)).toEqual([
      'acme',
      'globex',
    ]);
    expect((await getJson('/usage?tenant=acme', 'globex')).status).toBe(403);
  });

  it("counts the same in the worker's /metrics, by key id", async () => {
    const worker = parsePrometheusText(await (await fetch(workerMetricsUrl)).text());
    const acme = { tenant: 'acme', model: 'text_orientation' };
    expect(
      sampleValue(worker, 'ai_gateway_usage_jobs_total', { ...acme, status: 'succeeded' }),
    ).toBe(QUOTA + 1);
    expect(sampleValue(worker, 'ai_gateway_usage_images_total', acme)).toBe(QUOTA + 1);
    expect(sampleValue(worker, 'ai_gateway_usage_uploaded_bytes_total', acme)).toBe(
      (QUOTA + 1) * image.length,
    );
    expect(sampleValue(worker, 'ai_gateway_usage_requests_total', { tenant: 'globex' })).toBe(1);
    // The API process ended none of these jobs: its counters exist, at nothing for them.
    const api = parsePrometheusText(await (await fetch(`${stack.baseUrl}/metrics`)).text());
    expect(sampleValue(api, 'ai_gateway_usage_requests_total', acme) ?? 0).toBe(0);
  });
});
