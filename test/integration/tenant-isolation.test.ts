import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobResource } from '../../shared/jobs/job-resource.js';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import { type InProcessWorker, startInProcessWorker } from '../support/in-process-worker.js';
import { solidPng } from '../support/inference-stack.js';

const KEYS = {
  acme: 'acme-key-0123456789abcdef',
  globex: 'globex-key-0123456789abcdef',
} as const;
type Tenant = keyof typeof KEYS;

let stack: InProcessWorker;
let api: TestApi;
let image: Buffer;

beforeAll(async () => {
  stack = await startInProcessWorker({
    env: {
      API_KEYS: Object.entries(KEYS)
        .map(([id, key]) => `${id}:${key}`)
        .join(','),
      SYNC_WAIT_SECONDS: '10',
    },
  });
  api = await buildTestApi(stack.config, { registry: stack.registry });
  image = await solidPng([0, 0, 255]);
});

afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

const as = (tenant: Tenant) => ({ authorization: `Bearer ${KEYS[tenant]}` });

async function submit(tenant: Tenant, headers: Record<string, string> = {}): Promise<JobResource> {
  const res = await api.app.inject({
    method: 'POST',
    url: '/jobs?model=colour',
    payload: image,
    headers: { 'content-type': 'image/png', ...as(tenant), ...headers },
  });
  expect(res.statusCode).toBe(202);
  return res.json<JobResource>();
}

const get = (url: string, tenant?: Tenant) =>
  api.app.inject({ url, headers: tenant ? as(tenant) : {} });

function expectNotFound(res: LightMyRequestResponse, id: string) {
  expect(res.statusCode).toBe(404);
  expect(res.json()).toMatchObject({
    code: 'JOB_NOT_FOUND',
    detail: `Job "${id}" does not exist or has expired`,
  });
}

describe('tenant isolation', () => {
  it("answers 404 for another tenant's job on GET and DELETE, exactly as for a job that does not exist", async () => {
    const job = await submit('acme');

    expectNotFound(await get(`/jobs/${job.id}`, 'globex'), job.id);
    expectNotFound(
      await api.app.inject({ method: 'DELETE', url: `/jobs/${job.id}`, headers: as('globex') }),
      job.id,
    );
    const missing = '00000000-0000-4000-8000-000000000000';
    expectNotFound(await get(`/jobs/${missing}`, 'globex'), missing);

    // The owner still sees it, not canceled by the other tenant's attempt.
    const own = await get(`/jobs/${job.id}`, 'acme');
    expect(own.statusCode).toBe(200);
    expect(own.json<JobResource>().status).not.toBe('canceled');
  });

  it('lets the owner cancel, and nobody without a key read or cancel', async () => {
    const job = await submit('acme', { 'cancel-after': '1h' });
    expect((await get(`/jobs/${job.id}`)).statusCode).toBe(401);
    const anonymous = await api.app.inject({ method: 'DELETE', url: `/jobs/${job.id}` });
    expect(anonymous.statusCode).toBe(401);
    const canceled = await api.app.inject({
      method: 'DELETE',
      url: `/jobs/${job.id}`,
      headers: as('acme'),
    });
    // Canceled, or finished first (the worker is fast): either way the owner may ask.
    expect([200, 409]).toContain(canceled.statusCode);
  });

  it('scopes idempotency keys per tenant: the same key makes one job per tenant', async () => {
    const headers = { 'idempotency-key': `shared-key-${stack.config.redis.prefix}` };
    const acme = await submit('acme', headers);
    const globex = await submit('globex', headers);
    const again = await submit('acme', headers);
    expect(globex.id).not.toBe(acme.id);
    expect(again.id).toBe(acme.id);
  });
});

describe('GET /jobs', () => {
  it("lists only one's own jobs, newest first, in pages linked by a cursor", async () => {
    const tenantPrefix = await get('/jobs?limit=100', 'acme');
    const before = tenantPrefix.json<{ jobs: JobResource[] }>().jobs.map((j) => j.id);
    const mine: string[] = [];
    for (let i = 0; i < 5; i++) mine.push((await submit('acme')).id);
    const theirs = (await submit('globex')).id;

    const pages: JobResource[][] = [];
    let next: string | null = '/jobs?limit=2';
    while (next) {
      const res = await get(next, 'acme');
      expect(res.statusCode).toBe(200);
      const body = res.json<{ jobs: JobResource[]; next: string | null }>();
      expect(body.jobs.length).toBeLessThanOrEqual(2);
      if (body.next) expect(res.headers.link).toBe(`<${body.next}>; rel="next"`);
      else expect(res.headers.link).toBeUndefined();
      pages.push(body.jobs);
      next = body.next;
    }
    const listed = pages.flat().map((j) => j.id);
    expect(listed).toEqual([...mine.reverse(), ...before]);
    expect(listed).not.toContain(theirs);
    expect(new Set(listed).size).toBe(listed.length);
    const created = pages.flat().map((j) => Date.parse(j.created_at));
    expect(created).toEqual([...created].sort((a, b) => b - a));

    const globex = (await get('/jobs', 'globex')).json<{ jobs: JobResource[] }>().jobs;
    expect(globex.map((j) => j.id)).toContain(theirs);
    expect(globex.map((j) => j.id)).not.toContain(mine[0]);
  });

  it('refuses a cursor it did not make, a limit out of range and unknown parameters', async () => {
    for (const url of [
      '/jobs?cursor=bm90LWEtY3Vyc29y',
      '/jobs?cursor=%00%ff',
      '/jobs?limit=0',
      '/jobs?limit=101',
      '/jobs?status=failed',
    ]) {
      const res = await get(url, 'acme');
      expect(res.statusCode, url).toBe(400);
      expect(res.json(), url).toMatchObject({ code: 'VALIDATION_FAILED' });
    }
  });

  it('needs a key', async () => {
    const res = await get('/jobs');
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({ code: 'API_KEY_REQUIRED' });
  });
});
