import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AiGatewayClient, type Job } from '../../client/index.js';
import { renderTextLine } from '../fixtures/images.js';
import { imageForm } from '../support/http.js';
import { eventually } from '../support/inference-stack.js';
import { startServices, type TestServices } from '../support/services.js';
import { type Stack, startStack } from '../support/stack.js';

describe('Idempotency-Key: the same request is the same job', () => {
  let services: TestServices;
  let stack: Stack;
  let client: AiGatewayClient;
  let image: Buffer;

  beforeAll(async () => {
    services = await startServices();
    stack = await startStack(services);
    client = new AiGatewayClient({ baseUrl: stack.baseUrl });
    image = await renderTextLine('Exactly once');
  });
  afterAll(async () => {
    await stack?.stop();
    await services?.stop();
  });

  const submit = (key: string, fields: Record<string, string> = {}, picture = image) =>
    fetch(`${stack.baseUrl}/jobs`, {
      method: 'POST',
      headers: { 'idempotency-key': key },
      body: imageForm(picture, { model: 'text_orientation', ...fields }),
    });

  /** How many times the worker ran the job. */
  const runs = (jobId: string) =>
    stack.workers[0]!.logs().filter((l) => l.msg === 'job done' && l.jobId === jobId).length;

  it('a resubmission returns the same job, marked replayed, and the model runs once', async () => {
    const key = randomUUID();
    const first = await submit(key);
    expect(first.status).toBe(202);
    const job = (await first.json()) as Job;
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    await client.wait(job.id);

    const again = await submit(key);
    expect(again.status).toBe(202);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    const replayed = (await again.json()) as Job;
    expect(replayed).toMatchObject({ id: job.id, status: 'succeeded' });

    // A sync request with the key gets the finished job at once.
    const sync = await fetch(`${stack.baseUrl}/predict/text_orientation`, {
      method: 'POST',
      headers: { 'idempotency-key': key },
      body: imageForm(image),
    });
    expect(sync.status).toBe(200);
    expect(((await sync.json()) as Job).id).toBe(job.id);
    // The worker's 'job done' line reaches us through its stdout pipe, which may lag behind the
    // API's answers: wait for the one run, then give a second run time to show up.
    await eventually(() => (runs(job.id) >= 1 ? true : undefined), 10_000, "the job's run");
    await new Promise((r) => setTimeout(r, 300));
    expect(runs(job.id)).toBe(1);
  });

  it('concurrent identical requests with one key make one job', async () => {
    const key = randomUUID();
    const answers = await Promise.all(Array.from({ length: 12 }, () => submit(key)));
    expect(answers.map((a) => a.status)).toEqual(Array(12).fill(202));
    const ids = new Set(await Promise.all(answers.map(async (a) => ((await a.json()) as Job).id)));
    expect(ids.size).toBe(1);
    const [id] = [...ids];
    await client.wait(id!);
    await eventually(() => (runs(id!) >= 1 ? true : undefined), 10_000, "the job's run");
    await new Promise((r) => setTimeout(r, 300));
    expect(runs(id!)).toBe(1);
  });

  it('the same key with a different request answers 422 IDEMPOTENCY_KEY_REUSED', async () => {
    const key = randomUUID();
    const original = (await (await submit(key)).json()) as Job;
    const variants = [
      submit(key, { top_k: '1' }),
      submit(key, {}, await renderTextLine('Another image')),
      submit(key, { priority: '1' }),
    ];
    for (const response of await Promise.all(variants)) {
      expect(response.status).toBe(422);
      const problem = (await response.json()) as { code: string; detail: string };
      expect(problem.code).toBe('IDEMPOTENCY_KEY_REUSED');
      expect(problem.detail).toContain(original.id);
    }
  });

  it('different keys make different jobs; a malformed key is refused', async () => {
    const [a, b] = await Promise.all([submit(randomUUID()), submit(randomUUID())]);
    expect(((await a.json()) as Job).id).not.toBe(((await b.json()) as Job).id);
    const bad = await submit('x'.repeat(256));
    expect(bad.status).toBe(400);
  });
});
