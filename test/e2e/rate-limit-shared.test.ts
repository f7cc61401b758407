/**
 * The rate limit as two API processes on one Redis enforce it: one budget per key whichever
 * instance a request reaches, counted atomically under concurrency, and reset for both by one
 * admin call.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, type ServiceProcess, startApi } from '../support/processes.js';
import { sharedServices } from '../support/shared-services.js';
import { type Stack, startStack } from '../support/stack.js';

const KEYS = {
  acme: 'acme-shared-limit-key-0123',
  globex: 'globex-shared-limit-key-0123',
  initech: 'initech-shared-limit-key-0123',
};
const ADMIN = 'admin-shared-limit-key-0123';
const BUDGET = 10;

describe('one rate limit across API instances', () => {
  const services = sharedServices();
  let stack: Stack;
  let second: ServiceProcess;
  let urls: [string, string];

  beforeAll(async () => {
    stack = await startStack(services, {
      workers: 0,
      apiKeys: KEYS,
      adminKey: ADMIN,
      env: {
        RATE_LIMIT_ENABLED: 'true',
        RATE_LIMIT_REQUESTS: String(BUDGET),
        RATE_LIMIT_WINDOW: '120',
      },
    });
    const port = await freePort();
    second = startApi({ ...stack.env, PORT: String(port) });
    await second.waitForLog(/Server listening/);
    urls = [stack.baseUrl, `http://127.0.0.1:${port}`];
  });
  afterAll(async () => {
    await second?.stop();
    await stack?.stop();
  });

  const get = (instance: 0 | 1, key: string) =>
    fetch(`${urls[instance]}/models`, { headers: { authorization: `Bearer ${key}` } });

  it('shares one budget per key between the instances, and refuses past it on either', async () => {
    for (let i = 0; i < BUDGET; i++) {
      const res = await get((i % 2) as 0 | 1, KEYS.acme);
      expect(res.status).toBe(200);
      expect(res.headers.get('ratelimit-remaining')).toBe(String(BUDGET - 1 - i));
    }
    for (const instance of [0, 1] as const) {
      const refused = await get(instance, KEYS.acme);
      expect(refused.status).toBe(429);
      expect(await refused.json()).toMatchObject({ code: 'RATE_LIMITED' });
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(refused.headers.get('ratelimit-limit')).toBe(String(BUDGET));
    }
    // Another key is untouched.
    expect((await get(1, KEYS.globex)).status).toBe(200);
  });

  it('counts concurrent requests exactly: of 40 at once over both instances, BUDGET get through', async () => {
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) => get((i % 2) as 0 | 1, KEYS.initech)),
    );
    const statuses = answers.map((r) => r.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(BUDGET);
    expect(statuses.filter((s) => s === 429)).toHaveLength(40 - BUDGET);
  });

  it('one admin reset on one instance frees the key on both', async () => {
    expect((await get(0, KEYS.acme)).status).toBe(429);
    const reset = await fetch(`${urls[1]}/admin/rate-limits/acme`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(reset.status).toBe(200);
    expect(await reset.json()).toMatchObject({ client: 'acme', kind: 'key' });
    const again = await get(0, KEYS.acme);
    expect(again.status).toBe(200);
    expect(again.headers.get('ratelimit-remaining')).toBe(String(BUDGET - 1));
    expect((await get(1, KEYS.acme)).headers.get('ratelimit-remaining')).toBe(String(BUDGET - 2));
  });

  it('the reset needs the admin key', async () => {
    const refused = await fetch(`${urls[0]}/admin/rate-limits/acme`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${KEYS.globex}` },
    });
    expect(refused.status).toBe(401);
    expect(await refused.json()).toMatchObject({ code: 'ADMIN_UNAUTHORIZED' });
  });
});
