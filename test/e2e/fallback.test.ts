import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { solidPng } from '../fixtures/images.js';
import {
  type BackendModels,
  RED,
  TF_MODELS,
  writeBackendModels,
} from '../support/backend-models.js';
import { predict } from '../support/http.js';
import { sharedServices } from '../support/shared-services.js';
import { type Stack, startStack } from '../support/stack.js';

interface RouteStep {
  backend: string;
  at: string;
  error: { code: string; message: string } | null;
}

describe('fallback when TF Serving goes down', () => {
  const services = sharedServices();
  let models: BackendModels;
  let stack: Stack;
  let red: Buffer;

  beforeAll(async () => {
    models = await writeBackendModels();
    stack = await startStack(services, {
      workers: 1,
      tensorflowWorkers: 1,
      tfServing: { replicas: 1, models: TF_MODELS },
      readyModels: ['colour_tf', 'colour_both'],
      env: {
        ...models.env,
        // The probes stay quiet: the API keeps routing to TF Serving after it dies, so these tests
        // see the jobs themselves fail there and move on (or not).
        HEALTH_CHECK_INTERVAL_MS: '600000',
        BREAKER_VOLUME_THRESHOLD: '1000',
        JOB_ATTEMPTS: '3',
        JOB_BACKOFF_MS: '100',
      },
    });
    red = await solidPng({ r: RED[0], g: RED[1], b: RED[2] });
  });
  afterAll(async () => {
    await stack?.stop();
    await models?.remove();
  });

  it('a model on both backends runs on TF Serving first, as the registry orders them', async () => {
    const { status, body } = await predict(stack.baseUrl, 'colour_both', red);
    expect(status).toBe(200);
    expect(body.backend).toBe('tensorflow');
  });

  describe('with TF Serving down', () => {
    beforeAll(async () => {
      await stack.tfServing[0]!.server.down();
    });

    it('a model on both backends is answered by onnx, and the job says why it moved', async () => {
      const started = Date.now();
      const { status, body } = await predict(stack.baseUrl, 'colour_both', red);
      expect(status).toBe(200);
      expect(body).toMatchObject({ status: 'succeeded', backend: 'onnx' });
      expect(body.result?.predictions?.[0]?.label).toBe('red');
      const route = body.route as RouteStep[];
      expect(route.map((s) => s.backend)).toEqual(['tensorflow', 'onnx']);
      expect(route[0]!.error).toMatchObject({
        code: 'BACKEND_UNAVAILABLE',
        message: expect.stringContaining('is unreachable'),
      });
      expect(route[1]!.error).toBeNull();
      // Three attempts on TF Serving with 100 + 200 ms of backoff, then the move: seconds, not more.
      expect(Date.now() - started).toBeLessThan(10_000);

      // The job keeps its id: GET /jobs/{id} tells the same story.
      const job = (await (await fetch(`${stack.baseUrl}/jobs/${body.id}`)).json()) as typeof body;
      expect(job).toMatchObject({ id: body.id, status: 'succeeded', backend: 'onnx' });
      expect((job.route as RouteStep[]).map((s) => s.backend)).toEqual(['tensorflow', 'onnx']);
      const moved = stack.workers
        .flatMap((w) => w.logs())
        .find((l) => l.msg === 'job moved to another backend' && l.jobId === body.id);
      expect(moved).toMatchObject({ from: 'tensorflow', to: 'onnx', code: 'BACKEND_UNAVAILABLE' });
    });

    it('a model only on TF Serving is 503 BACKEND_UNAVAILABLE with Retry-After, within seconds', async () => {
      const started = Date.now();
      const { status, body, headers } = await predict(stack.baseUrl, 'colour_tf', red, {
        headers: { prefer: 'wait=60' },
      });
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(status).toBe(503);
      expect(headers.get('retry-after')).toMatch(/^\d+$/);
      expect(headers.get('content-type')).toContain('application/problem+json');
      expect(body).toMatchObject({ code: 'BACKEND_UNAVAILABLE', job_id: expect.any(String) });
      expect(body.detail).toContain('TF Serving');
      expect(body.detail).toContain('is unreachable');
    });

    it('a request that chose TF Serving stays there: 503, no fallback', async () => {
      const { status, body } = await predict(stack.baseUrl, 'colour_both', red, {
        fields: { backend: 'tensorflow' },
      });
      expect(status).toBe(503);
      expect(body.code).toBe('BACKEND_UNAVAILABLE');
      const job = (await (await fetch(`${stack.baseUrl}/jobs/${body.job_id}`)).json()) as {
        backend: string;
        route: RouteStep[];
      };
      expect(job.backend).toBe('tensorflow');
      expect(job.route.map((s) => s.backend)).toEqual(['tensorflow']);
    });
  });
});
