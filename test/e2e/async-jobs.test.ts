import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AiGatewayClient, type ApiError, type Job } from '../../client/index.js';
import { renderTextLine } from '../fixtures/images.js';
import { imageForm } from '../support/http.js';
import { pool } from '../support/pool.js';
import { sharedServices } from '../support/shared-services.js';
import { type Stack, startStack } from '../support/stack.js';

const KEYS = { acme: 'acme-e2e-key-0123456789', globex: 'globex-e2e-key-0123456789' };

describe('async submission: POST /jobs and polling, with API keys', () => {
  const services = sharedServices();
  let stack: Stack;
  let client: AiGatewayClient;
  let image: Buffer;

  beforeAll(async () => {
    stack = await startStack(services, { apiKeys: KEYS });
    client = new AiGatewayClient({ baseUrl: stack.baseUrl, apiKey: KEYS.acme });
    image = await renderTextLine('Async');
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('answers 202 with Location and the queued job resource', async () => {
    const response = await fetch(`${stack.baseUrl}/jobs`, {
      method: 'POST',
      headers: stack.headers,
      body: imageForm(image, { model: 'text_orientation', top_k: '1' }),
    });
    expect(response.status).toBe(202);
    const job = (await response.json()) as Job;
    expect(response.headers.get('location')).toBe(`/jobs/${job.id}`);
    expect(job).toMatchObject({
      model: 'text_orientation',
      backend: 'onnx',
      priority: 5,
      deadline: null,
      webhook: null,
      webhook_deliveries: [],
      urls: { get: `/jobs/${job.id}`, cancel: `/jobs/${job.id}` },
    });
    expect(['queued', 'processing', 'succeeded']).toContain(job.status);
    const done = await client.wait(job.id);
    expect(done.status).toBe('succeeded');
    expect(done.result).toMatchObject({ task: 'classification', predictions: [{}] });
  });

  it('takes the model as a query parameter for a raw image body', async () => {
    const response = await fetch(`${stack.baseUrl}/jobs?model=text_orientation&priority=2`, {
      method: 'POST',
      headers: { ...stack.headers, 'content-type': 'image/png' },
      body: new Uint8Array(image),
    });
    expect(response.status).toBe(202);
    expect(((await response.json()) as Job).priority).toBe(2);
  });

  it('POST /predict with Prefer: respond-async is the same submission', async () => {
    const response = await fetch(`${stack.baseUrl}/predict/text_orientation`, {
      method: 'POST',
      headers: { ...stack.headers, prefer: 'respond-async' },
      body: imageForm(image, { priority: '3' }),
    });
    expect(response.status).toBe(202);
    expect(response.headers.get('preference-applied')).toBe('respond-async');
    const job = (await response.json()) as Job;
    expect(job.priority).toBe(3);
    expect((await client.wait(job.id)).status).toBe('succeeded');
  });

  it('refuses a submission without a model, with a bad priority, or for an unknown model', async () => {
    const cases: [Record<string, string>, number, string][] = [
      [{}, 400, 'VALIDATION_FAILED'],
      [{ model: 'text_orientation', priority: '0' }, 400, 'VALIDATION_FAILED'],
      [{ model: 'text_orientation', priority: '11' }, 400, 'VALIDATION_FAILED'],
      [{ model: 'text_orientation', colour: 'red' }, 400, 'VALIDATION_FAILED'],
      [{ model: 'nope' }, 404, 'MODEL_NOT_FOUND'],
    ];
    for (const [fields, status, code] of cases) {
      const response = await fetch(`${stack.baseUrl}/jobs`, {
        method: 'POST',
        headers: stack.headers,
        body: imageForm(image, fields),
      });
      expect(response.status, JSON.stringify(fields)).toBe(status);
      expect(((await response.json()) as { code: string }).code).toBe(code);
    }
    await expect(client.get('no-such-job')).rejects.toMatchObject({
      status: 404,
      code: 'JOB_NOT_FOUND',
    } satisfies Partial<ApiError>);
  });

  it("lists a key's own jobs, newest first; another key sees none of them, no key gets 401", async () => {
    const mine = [];
    for (let i = 0; i < 3; i++) mine.push(await client.submit('text_orientation', image));
    const listed: Job[] = [];
    for await (const job of client.jobs({ limit: 2 })) listed.push(job);
    expect(listed.slice(0, 3).map((j) => j.id)).toEqual(mine.reverse().map((j) => j.id));

    const globex = new AiGatewayClient({ baseUrl: stack.baseUrl, apiKey: KEYS.globex });
    expect((await globex.list()).jobs).toEqual([]);
    await expect(globex.get(mine[0]!.id)).rejects.toMatchObject({
      status: 404,
      code: 'JOB_NOT_FOUND',
    });
    const nobody = new AiGatewayClient({ baseUrl: stack.baseUrl });
    await expect(nobody.list()).rejects.toMatchObject({ status: 401, code: 'API_KEY_REQUIRED' });
  });

  it('1,000 async jobs all end succeeded, polled by the client', async () => {
    const count = 1000;
    const started = performance.now();
    const submitted = await pool(
      Array.from({ length: count }, (_, i) => i),
      24,
      () => client.submit('text_orientation', image),
    );
    const submittedMs = performance.now() - started;
    expect(new Set(submitted.map((j) => j.id)).size).toBe(count);

    const finished = await pool(submitted, 100, (job) =>
      client.wait(job.id, { timeoutMs: 240_000, maxDelayMs: 1000 }),
    );
    const totalMs = performance.now() - started;
    const statuses = new Map<string, number>();
    for (const job of finished) statuses.set(job.status, (statuses.get(job.status) ?? 0) + 1);
    expect(Object.fromEntries(statuses)).toEqual({ succeeded: count });
    expect(finished.every((job) => job.result?.task === 'classification')).toBe(true);
    // How long it took is reported, not asserted: it measures the machine as much as the code
    // (about 28 s on an idle 2-core machine, 48 s with two other busy processes), and the
    // throughput figures belong to bench/. A job lost or stuck still fails the wait above.
    console.log(
      `1000 async jobs: submitted in ${(submittedMs / 1000).toFixed(1)} s, all succeeded after ${(totalMs / 1000).toFixed(1)} s`,
    );
  }, 300_000);
});
