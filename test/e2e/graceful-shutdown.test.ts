import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderTextLine } from '../fixtures/images.js';
import { pollJob, predict } from '../support/http.js';
import { eventually } from '../support/inference-stack.js';
import { sharedServices } from '../support/shared-services.js';
import { type Stack, startStack } from '../support/stack.js';

/** The 'incoming request' lines allArrived counts are written at debug. */
const ARRIVALS_LOGGED = { LOG_LEVEL: 'debug' };

/**
 * Waits until the API has logged `count` incoming POST /predict requests: only a request that has
 * arrived is "already waiting" when SIGTERM comes; one still connecting is refused, as it should be.
 */
async function allArrived(stack: Stack, count: number): Promise<void> {
  await eventually(
    () =>
      stack.api.lines.filter((l) => l.includes('"incoming request"') && l.includes('/predict/'))
        .length >= count
        ? true
        : undefined,
    20_000,
    `${count} requests at the API`,
  );
}

describe('SIGTERM', () => {
  const services = sharedServices();
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack(services, {
      env: {
        ...ARRIVALS_LOGGED,
        // Tests here freeze a worker with SIGSTOP; the API counts it gone 3 heartbeats after its last
        // report. A 3 s heartbeat leaves at least 6 s for a frozen worker's requests on a busy host.
        WORKER_HEARTBEAT_MS: '3000',
      },
    });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('drains the API: requests already waiting get their answers, then the process exits 0', async () => {
    const worker = stack.workers[0]!;
    const image = await renderTextLine();
    // Freeze the worker so the requests are still waiting when the API is told to stop.
    worker.signal('SIGSTOP');
    const inFlight = Array.from({ length: 10 }, () =>
      predict(stack.baseUrl, 'text_orientation', image),
    );
    await allArrived(stack, 10);

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

describe('SIGTERM while the jobs take longer than the grace period', () => {
  const services = sharedServices();
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack(services, {
      env: {
        ...ARRIVALS_LOGGED,
        SHUTDOWN_TIMEOUT_MS: '4000',
        SYNC_WAIT_SECONDS: '60',
        SYNC_WAIT_MAX_SECONDS: '60',
      },
    });
  });
  afterAll(async () => {
    stack?.workers[0]?.signal('SIGCONT');
    await stack?.stop();
  });

  it('answers the waiting requests 202 with Location before exiting, and the jobs are not lost', async () => {
    const worker = stack.workers[0]!;
    const image = await renderTextLine();
    worker.signal('SIGSTOP');
    const inFlight = Array.from({ length: 5 }, () =>
      predict(stack.baseUrl, 'text_orientation', image),
    );
    await allArrived(stack, 5);

    const stopped = Date.now();
    stack.api.signal('SIGTERM');
    const responses = await Promise.all(inFlight);
    const answeredAfter = Date.now() - stopped;
    expect(responses.map((r) => r.status)).toEqual(Array(5).fill(202));
    for (const r of responses) expect(r.headers.get('location')).toBe(`/jobs/${r.body.id}`);
    // Answered well within the 4 s grace period, not cut off at its end; exit 0 is a clean exit
    // (the forced exit at the end of the grace period would be 1).
    expect(answeredAfter).toBeLessThan(3_500);
    expect(await stack.api.exited).toEqual({ code: 0, signal: null });

    // The jobs carry on: a new API instance and the thawed worker finish them.
    worker.signal('SIGCONT');
    const { startApi } = await import('../support/processes.js');
    const api = startApi(stack.env);
    try {
      await api.waitForLog(/Server listening/);
      for (const r of responses) {
        const job = await pollJob(stack.baseUrl, r.body.id);
        expect(job.status).toBe('succeeded');
      }
    } finally {
      await api.stop();
    }
  });
});
