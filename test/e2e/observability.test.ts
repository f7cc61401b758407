/**
 * What an operator sees of real processes (API and a worker started as `npm start` starts them):
 * each worker's own /metrics on WORKER_METRICS_PORT, the API's /metrics and /stats over HTTP, and
 * one request followed by its id through both processes' JSON logs, credentials left out.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderTextLine } from '../fixtures/images.js';
import { predict } from '../support/http.js';
import { eventually } from '../support/inference-stack.js';
import { parsePrometheusText, sampleValue } from '../support/prometheus-text.js';
import { sharedServices } from '../support/shared-services.js';
import { type Stack, startStack } from '../support/stack.js';

const SECRET = 'Bearer not-for-the-logs-0123456789';

describe('observability of the running processes', () => {
  const services = sharedServices();
  let stack: Stack;
  let workerMetricsUrl: string;

  beforeAll(async () => {
    stack = await startStack(services, { workers: 2 });
    // WORKER_METRICS_PORT=0 in the stack: each worker logs the port it took.
    const urls = stack.workers.map((w) => {
      const line = w.logs().find((l) => l.msg === 'worker metrics listening');
      return line?.url as string;
    });
    expect(urls.every((u) => /^http:\/\/127\.0\.0\.1:\d+\/metrics$/.test(u))).toBe(true);
    expect(new Set(urls).size).toBe(2);
    workerMetricsUrl = urls[0]!;
  });

  afterAll(async () => {
    await stack?.stop();
  });

  it('counts a request on the API, on the worker that ran it, and in /stats', async () => {
    const requestId = `e2e-observability-${Date.now()}`;
    const { status, body } = await predict(
      stack.baseUrl,
      'text_orientation',
      await renderTextLine(),
      {
        headers: { 'x-request-id': requestId, authorization: SECRET },
      },
    );
    expect(status).toBe(200);

    const api = parsePrometheusText(await (await fetch(`${stack.baseUrl}/metrics`)).text());
    const labels = { backend: 'onnx', model: 'text_orientation' };
    expect(sampleValue(api, 'ai_gateway_requests_total', { ...labels, status: '200' })).toBe(1);
    expect(
      sampleValue(api, 'ai_gateway_request_duration_seconds_count', { ...labels, mode: 'sync' }),
    ).toBe(1);
    // Both workers' reports reach the API within a status refresh (a second).
    await expect
      .poll(async () => {
        const text = await (await fetch(`${stack.baseUrl}/metrics`)).text();
        return sampleValue(parsePrometheusText(text), 'ai_gateway_backend_workers', {
          backend: 'onnx',
        });
      })
      .toBe(2);

    // Exactly one of the two workers ran the job: its /metrics says so.
    const processed = await Promise.all(
      stack.workers.map(async (w) => {
        const url = w.logs().find((l) => l.msg === 'worker metrics listening')?.url as string;
        const samples = parsePrometheusText(await (await fetch(url)).text());
        return sampleValue(samples, 'ai_gateway_jobs_processed_total', labels);
      }),
    );
    expect(processed.sort()).toEqual([0, 1]);
    const worker = parsePrometheusText(await (await fetch(workerMetricsUrl)).text());
    expect(sampleValue(worker, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
    expect((await fetch(workerMetricsUrl.replace('/metrics', '/other'))).status).toBe(404);

    const stats = (await (await fetch(`${stack.baseUrl}/stats`)).json()) as {
      totals: { requests: number; backends: Record<string, { models: Record<string, unknown> }> };
    };
    expect(stats.totals.requests).toBe(1);
    expect(stats.totals.backends.onnx?.models.text_orientation).toMatchObject({
      requests: 1,
      by_status: { '200': 1 },
    });

    // One id across both processes' logs; the credential in none of them.
    // Log lines come through the processes' stdout pipes and may trail the HTTP answers: the API
    // writes 'request completed' after it has answered.
    const apiLines = await eventually(() => {
      const lines = stack.api.logs().filter((l) => l.requestId === requestId);
      return lines.some((l) => l.msg === 'request completed') ? lines : undefined;
    });
    expect(apiLines.find((l) => l.msg === 'request completed')).toMatchObject({
      route: '/predict/:model',
      status: 200,
      jobId: body.id,
    });
    const workerLines = await eventually(() => {
      const lines = stack.workers.flatMap((w) => w.logs()).filter((l) => l.requestId === requestId);
      return lines.some((l) => l.msg === 'job done') ? lines : undefined;
    });
    expect(workerLines.find((l) => l.msg === 'job done')).toMatchObject({ jobId: body.id });
    const everything = [stack.api, ...stack.workers].flatMap((p) => p.lines).join('\n');
    expect(everything).not.toContain('not-for-the-logs');
  });
});
