import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { solidPng } from '../fixtures/images.js';
import {
  type BackendModels,
  BLUE,
  RED,
  TF_MODELS,
  waitForHealth,
  writeBackendModels,
} from '../support/backend-models.js';
import { callsFor, predict } from '../support/http.js';
import { eventually } from '../support/inference-stack.js';
import { sharedServices } from '../support/shared-services.js';
import { type Stack, startStack } from '../support/stack.js';

const ADMIN_KEY = 'admin-key-0123456789abcdef';

describe('a TF Serving model through the inference-tensorflow pool, on two replicas', () => {
  const services = sharedServices();
  let models: BackendModels;
  let stack: Stack;
  let red: Buffer;

  beforeAll(async () => {
    models = await writeBackendModels();
    stack = await startStack(services, {
      workers: 0,
      tensorflowWorkers: 1,
      tfServing: { replicas: 2, models: TF_MODELS },
      readyModels: ['colour_tf'],
      adminKey: ADMIN_KEY,
      env: { ...models.env, HEALTH_CHECK_INTERVAL_MS: '300', WORKER_CONCURRENCY: '8' },
    });
    red = await solidPng({ r: RED[0], g: RED[1], b: RED[2] });
  });
  afterAll(async () => {
    await stack?.stop();
    await models?.remove();
  });

  it('answers with the model on TF Serving, and the job says where it ran', async () => {
    const blue = await solidPng({ r: BLUE[0], g: BLUE[1], b: BLUE[2] });
    const [a, b] = await Promise.all([
      predict(stack.baseUrl, 'colour_tf', red),
      predict(stack.baseUrl, 'colour_tf', blue),
    ]);
    expect(a.status).toBe(200);
    expect(a.body).toMatchObject({ status: 'succeeded', backend: 'tensorflow', version: '1' });
    expect(a.body.result?.predictions?.[0]).toMatchObject({ label: 'red' });
    expect(a.body.result?.predictions?.[0]?.score).toBeGreaterThan(0.99);
    expect(b.body.result?.predictions?.[0]?.label).toBe('blue');
    expect(a.body.route).toEqual([{ backend: 'tensorflow', at: expect.any(String), error: null }]);

    // The TF worker took it from its queue and called TF Serving's predict API.
    const worker = stack.workers[0]!;
    expect(worker.logs().find((l) => l.msg === 'worker started')).toMatchObject({
      queue: 'inference-tensorflow',
    });
    // Log lines come through the worker's stdout pipe and may trail the HTTP answer.
    await eventually(() =>
      worker.logs().find((l) => l.msg === 'job done' && l.jobId === a.body.id),
    );
    const predicts = stack.tfServing.flatMap((s) =>
      s.server.requests.filter((r) => r === 'POST /v1/models/colour:predict'),
    );
    // One call per job, or one for both when the worker batched them.
    expect(predicts.length).toBeGreaterThanOrEqual(callsFor([a, b]));
    expect(callsFor([a, b])).toBeGreaterThanOrEqual(1);
  });

  it('shares the load between the two replicas', async () => {
    const before = stack.tfServing.map((s) => s.server.counts.inference);
    const responses = await Promise.all(
      Array.from({ length: 40 }, () => predict(stack.baseUrl, 'colour_tf', red)),
    );
    expect(responses.map((r) => r.status)).toEqual(Array(40).fill(200));
    const served = stack.tfServing.map((s, i) => s.server.counts.inference - before[i]!);
    // The calls carried every job once (fewer calls than jobs where the worker batched them) ...
    expect(served[0]! + served[1]!).toBe(callsFor(responses));
    // ... and each replica took a fair share of them.
    expect(Math.min(...served)).toBeGreaterThanOrEqual(Math.floor((served[0]! + served[1]!) / 4));
  });

  it('one replica down: every request still succeeds on the other, and /health says degraded', async () => {
    const [lost, kept] = stack.tfServing as [
      (typeof stack.tfServing)[0],
      (typeof stack.tfServing)[0],
    ];
    await lost.server.down();
    const keptBefore = kept.server.counts.inference;
    const lostBefore = lost.server.counts.inference;
    const responses = await Promise.all(
      Array.from({ length: 40 }, () => predict(stack.baseUrl, 'colour_tf', red)),
    );
    expect(responses.map((r) => r.status)).toEqual(Array(40).fill(200));
    expect(responses.every((r) => r.body.result?.predictions?.[0]?.label === 'red')).toBe(true);
    // Every job was answered by the replica that is up, in fewer calls than jobs where the
    // worker batched them.
    expect(lost.server.counts.inference).toBe(lostBefore);
    expect(kept.server.counts.inference - keptBefore).toBe(callsFor(responses));

    // The servers' URLs are the admin's to read.
    const health = await waitForHealth(
      stack.baseUrl,
      (h) => (h.backends.tensorflow?.replicas ?? []).some((r) => !r.healthy),
      { adminKey: ADMIN_KEY },
    );
    expect(health.status).toBe('degraded');
    expect(health.services.backends.tensorflow).toBe(true);
    expect(health.backends.tensorflow?.replicas).toEqual([
      expect.objectContaining({ url: lost.url, healthy: false }),
      expect.objectContaining({ url: kept.url, healthy: true, circuit: 'closed' }),
    ]);

    await lost.server.up();
    await waitForHealth(stack.baseUrl, (h) =>
      (h.backends.tensorflow?.replicas ?? []).every((r) => r.healthy && r.circuit === 'closed'),
    );
    const lostAfter = lost.server.counts.inference;
    // One at a time, so each is a call of its own that the pool can send either way.
    for (let i = 0; i < 10; i++) await predict(stack.baseUrl, 'colour_tf', red);
    expect(lost.server.counts.inference).toBeGreaterThan(lostAfter);
  });
});
