import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderTextLine } from '../fixtures/images.js';
import { predict } from '../support/http.js';
import { startServices, type TestServices } from '../support/services.js';
import { type Stack, startStack } from '../support/stack.js';

describe('SIGTERM', () => {
  let services: TestServices;
  let stack: Stack;

  beforeAll(async () => {
    services = await startServices();
    stack = await startStack(services);
  });
  afterAll(async () => {
    await stack?.stop();
    await services?.stop();
  });

  it('drains the API: requests already waiting get their answers, then the process exits 0', async () => {
    const worker = stack.workers[0]!;
    const image = await renderTextLine();
    // Freeze the worker so the requests are still waiting when the API is told to stop.
    worker.signal('SIGSTOP');
    const inFlight = Array.from({ length: 10 }, () =>
      predict(stack.baseUrl, 'text_orientation', image),
    );
    await stack.api.waitForLog(/"incoming request"/);
    await new Promise((r) => setTimeout(r, 500));

    stack.api.signal('SIGTERM');
    await stack.api.waitForLog(/"shutting down"/);
    // New connections are refused while the old ones finish.
    await expect(fetch(`${stack.baseUrl}/health/live`)).rejects.toThrow();

    worker.signal('SIGCONT');
    const responses = await Promise.all(inFlight);
    expect(responses.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(await stack.api.exited).toEqual({ code: 0, signal: null });
  });

  it('stops a worker cleanly: active work finished, exit 0', async () => {
    const worker = stack.workers[0]!;
    worker.signal('SIGTERM');
    expect(await worker.exited).toEqual({ code: 0, signal: null });
    expect(worker.lines.some((l) => l.includes('"worker closed"'))).toBe(true);
  });
});
