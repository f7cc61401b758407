import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderTextLine, rotate180 } from '../fixtures/images.js';
import { predict } from '../support/http.js';
import { eventually } from '../support/inference-stack.js';
import { sharedServices } from '../support/shared-services.js';
import { type Stack, startStack } from '../support/stack.js';

describe('POST /predict/text_orientation with the real PaddleOCR classifier', () => {
  const services = sharedServices();
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack(services);
  });
  afterAll(async () => {
    await stack?.stop();
  });

  for (const format of ['png', 'jpeg'] as const) {
    it(`classifies upright text as 0 and the same text turned 180 degrees as 180 (${format})`, async () => {
      const upright = await renderTextLine('Quarterly report 2026: inference gateway', format);
      const turned = await rotate180(upright);

      const [a, b] = await Promise.all([
        predict(stack.baseUrl, 'text_orientation', upright),
        predict(stack.baseUrl, 'text_orientation', turned),
      ]);

      expect(a.status).toBe(200);
      expect(b.status).toBe(200);
      expect(a.body.status).toBe('succeeded');
      expect(a.body.backend).toBe('onnx');
      expect(a.body.result?.predictions?.[0]?.label).toBe('0');
      expect(a.body.result?.predictions?.[0]?.score).toBeGreaterThan(0.8);
      expect(b.body.result?.predictions?.[0]?.label).toBe('180');
      expect(b.body.result?.predictions?.[0]?.score).toBeGreaterThan(0.8);
    });
  }

  it('answers with the job resource: id, timings, Content-Location, and the request id carried to the worker', async () => {
    const requestId = `e2e-${Date.now()}`;
    const { status, body, headers } = await predict(
      stack.baseUrl,
      'text_orientation',
      await renderTextLine('Request tracing test'),
      { headers: { 'x-request-id': requestId } },
    );

    expect(status).toBe(200);
    expect(headers.get('x-request-id')).toBe(requestId);
    expect(headers.get('content-location')).toBe(`/jobs/${body.id}`);
    expect(body).toMatchObject({
      model: 'text_orientation',
      version: '1',
      request_id: requestId,
      urls: { get: `/jobs/${body.id}` },
    });
    const timings = body.timings as Record<string, number>;
    expect(timings.inference_ms).toBeGreaterThan(0);
    expect(timings.total_ms).toBeGreaterThanOrEqual(timings.queue_ms ?? 0);

    const job = await (await fetch(`${stack.baseUrl}/jobs/${body.id}`)).json();
    expect(job).toMatchObject({ id: body.id, status: 'succeeded' });

    // Log lines come through the worker's stdout pipe and may trail the HTTP answer.
    const workerLine = await eventually(() =>
      stack.workers[0]!.logs().find((l) => l.msg === 'job done' && l.requestId === requestId),
    );
    expect(workerLine).toMatchObject({ jobId: body.id, model: 'text_orientation' });
  });

  it('honours top_k', async () => {
    const { body } = await predict(stack.baseUrl, 'text_orientation', await renderTextLine(), {
      fields: { top_k: '1' },
    });
    expect(body.result?.predictions).toHaveLength(1);
  });
});
