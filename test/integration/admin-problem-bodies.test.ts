/**
 * Regression: the queue dashboard's routes (/admin/queues/*) have bull-board's own error handler,
 * which answered errors raised before the admin check (429 rate limit, 503 shutting down) with
 * bull-board's JSON and, in development mode (the default of `npm start`), the error's stack trace
 * with server paths. Every answer under /admin is a problem body, in every mode.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ModelRegistry } from '../../shared/models/registry.js';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import { registryDocument, testConfig } from '../support/inference-stack.js';
import { cleanRedisPrefix, uniquePrefix } from '../support/services.js';
import { sharedServices } from '../support/shared-services.js';

const ADMIN = 'admin-key-0123456789abcdef';
const BUDGET = 2;
const QUEUES = '/admin/queues/api/queues';

const services = sharedServices();
let api: TestApi;
let closing = false;
const prefix = uniquePrefix();

beforeAll(async () => {
  const config = testConfig(
    services,
    { prefix, bucket: uniquePrefix() },
    { ADMIN_API_KEY: ADMIN, RATE_LIMIT_REQUESTS: String(BUDGET), RATE_LIMIT_WINDOW: '60' },
  );
  api = await buildTestApi(config, {
    registry: ModelRegistry.fromDocument(registryDocument()),
    isClosing: () => closing,
  });
  // bull-board puts the stack in its answers only in development mode: the mode `npm start` runs.
  vi.stubEnv('NODE_ENV', 'development');
});

afterAll(async () => {
  vi.unstubAllEnvs();
  await api?.close();
  await cleanRedisPrefix(services.redisUrl, prefix);
});

function expectProblem(
  res: Awaited<ReturnType<TestApi['app']['inject']>>,
  code: string,
  status: number,
) {
  expect(res.statusCode).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = res.json();
  expect(Object.keys(body).sort()).toEqual(
    ['code', 'detail', 'request_id', 'status', 'title', 'type'].sort(),
  );
  expect(body).toMatchObject({ code, status });
  expect(res.body).not.toMatch(/node_modules|\.ts:\d+|\bat \w/);
}

describe('errors under /admin/queues before the admin check', () => {
  it('answers a rate-limited request with a problem body, without a stack', async () => {
    const ip = '198.51.100.7';
    for (let i = 0; i < BUDGET; i++) {
      const refused = await api.app.inject({ url: QUEUES, remoteAddress: ip });
      expectProblem(refused, 'ADMIN_UNAUTHORIZED', 401);
    }
    const limited = await api.app.inject({ url: QUEUES, remoteAddress: ip });
    expectProblem(limited, 'RATE_LIMITED', 429);
  });

  it('answers while shutting down with a problem body, without a stack', async () => {
    closing = true;
    try {
      const res = await api.app.inject({
        url: QUEUES,
        headers: { authorization: `Bearer ${ADMIN}` },
      });
      expectProblem(res, 'SHUTTING_DOWN', 503);
    } finally {
      closing = false;
    }
  });

  it('still serves the admin key', async () => {
    const res = await api.app.inject({
      url: QUEUES,
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toHaveProperty('queues');
  });
});
