import type { AddressInfo } from 'node:net';
import type { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ACCESS_LOG_MESSAGE } from '../../api/http/access-log.js';
import { AiGatewayClient, type JobEvent } from '../../client/index.js';
import type { JobResource } from '../../shared/jobs/job-resource.js';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import { type InProcessWorker, startInProcessWorker } from '../support/in-process-worker.js';
import { captureLogger, eventually, solidPng } from '../support/inference-stack.js';

const KEYS = {
  acme: 'acme-key-0123456789abcdef',
  globex: 'globex-key-0123456789abcdef',
} as const;
type Tenant = keyof typeof KEYS;

let stack: InProcessWorker;
let api: TestApi;
let baseUrl: string;
let image: Buffer;
let onnx: Queue;
const apiLog = captureLogger('info', 'api');

beforeAll(async () => {
  stack = await startInProcessWorker({
    env: {
      API_KEYS: Object.entries(KEYS)
        .map(([id, key]) => `${id}:${key}`)
        .join(','),
      JOB_EVENTS_HEARTBEAT_MS: '200',
    },
  });
  api = await buildTestApi(stack.config, { registry: stack.registry, logger: apiLog.logger });
  baseUrl = await listen(api.app);
  image = await solidPng([0, 0, 255]);
  onnx = api.queues.queue('onnx');
});

afterEach(async () => {
  await onnx.resume();
});

afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

const client = (tenant: Tenant, url = baseUrl) =>
  new AiGatewayClient({ baseUrl: url, apiKey: KEYS[tenant] });

/** A job submitted while its queue is paused: it stays queued until the test resumes the queue. */
async function queuedJob(tenant: Tenant = 'acme'): Promise<JobResource> {
  await onnx.pause();
  const job = await client(tenant).submit('colour', image);
  expect(job.status).toBe('queued');
  return job;
}

/** Every event of the stream until it ends; `after` runs once the first event is in. */
async function collect(
  events: AsyncGenerator<JobEvent>,
  after?: (first: JobEvent) => Promise<unknown>,
): Promise<JobEvent[]> {
  const seen: JobEvent[] = [];
  for await (const event of events) {
    seen.push(event);
    if (seen.length === 1) await after?.(event);
  }
  return seen;
}

/** A raw GET of the stream: status, headers, and the whole body once the server ends it. */
async function rawStream(jobId: string, tenant: Tenant, headers: Record<string, string> = {}) {
  const res = await fetch(`${baseUrl}/jobs/${jobId}/events`, {
    headers: { authorization: `Bearer ${KEYS[tenant]}`, ...headers },
    signal: AbortSignal.timeout(20_000),
  });
  return { res, body: await res.text() };
}

describe('GET /jobs/{id}/events', () => {
  it('sends the job at once, then each change, the result last, then ends and lets go of its watch', async () => {
    const job = await queuedJob();
    const events = await collect(client('acme').events(job.id), async (first) => {
      expect(first).toMatchObject({ event: 'queued', id: '1.0.queued', job: { id: job.id } });
      expect(api.waiter.watching).toBe(1);
      await onnx.resume();
    });
    const last = events.at(-1)!;
    expect(last.event).toBe('succeeded');
    expect(last.id).toBe('1.succeeded');
    expect(last.job).toMatchObject({ id: job.id, status: 'succeeded', error: null });
    expect(last.job.result).toMatchObject({ task: 'classification' });
    // `processing` may fold into the result when the job is done before it could be read.
    expect(events.map((e) => e.event)).toEqual(expect.arrayContaining(['queued', 'succeeded']));
    for (const event of events.slice(1, -1)) expect(event.event).toBe('processing');
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
    await eventually(() => api.waiter.watching === 0 || undefined, 5000, 'watch released');

    // Resumed after the end: the last event and the end; resumed at the last event: nothing more.
    const resumed = await rawStream(job.id, 'acme', { 'last-event-id': '1.0.queued' });
    expect(resumed.res.status).toBe(200);
    expect(resumed.res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(resumed.body).toContain('id: 1.succeeded\nevent: succeeded\ndata: {');
    const done = await rawStream(job.id, 'acme', { 'last-event-id': '1.succeeded' });
    expect(done.res.status).toBe(204);
    expect(done.body).toBe('');
    await eventually(() => api.waiter.watching === 0 || undefined, 5000, 'watches released');
  });

  it('writes one access-log line per stream, when it ends', async () => {
    const job = await queuedJob();
    const id = `events-${job.id}`;
    const res = await fetch(`${baseUrl}/jobs/${job.id}/events`, {
      headers: { authorization: `Bearer ${KEYS.acme}`, 'x-request-id': id },
    });
    const reader = res.body!.getReader();
    await reader.read();
    expect(apiLog.lines.filter((l) => l.requestId === id)).toEqual([]);
    await onnx.resume();
    while (!(await reader.read()).done) {}
    const line = await eventually(
      () => apiLog.lines.find((l) => l.requestId === id && l.msg === ACCESS_LOG_MESSAGE),
      5000,
      'access line',
    );
    expect(line).toMatchObject({
      method: 'GET',
      route: '/jobs/:id/events',
      status: 200,
      auth: 'key',
      tenant: 'acme',
      jobId: job.id,
    });
    expect(
      apiLog.lines.filter((l) => l.requestId === id && l.msg === ACCESS_LOG_MESSAGE),
    ).toHaveLength(1);
  });

  it('ends with `canceled` when the job is canceled', async () => {
    const job = await queuedJob();
    const events = await collect(client('acme').events(job.id), () =>
      client('acme').cancel(job.id),
    );
    expect(events.map((e) => e.event)).toEqual(['queued', 'canceled']);
    expect(events[1]!.job).toMatchObject({ status: 'canceled', error: { code: 'JOB_CANCELED' } });
  });

  it('sends heartbeats while nothing happens, and lets go when the client hangs up', async () => {
    const job = await queuedJob();
    const abort = new AbortController();
    const requestId = `hang-up-${job.id}`;
    const res = await fetch(`${baseUrl}/jobs/${job.id}/events`, {
      headers: { authorization: `Bearer ${KEYS.acme}`, 'x-request-id': requestId },
      signal: abort.signal,
    });
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    while (!text.includes(': heartbeat\n\n')) {
      text += decoder.decode((await reader.read()).value, { stream: true });
    }
    expect(text.startsWith('retry: 1000\n\nid: 1.0.queued\nevent: queued\n')).toBe(true);
    expect(api.waiter.watching).toBe(1);
    abort.abort();
    await eventually(
      () => api.waiter.watching === 0 || undefined,
      5000,
      'watch released on hang-up',
    );
    // The stream's one access-log line, written when the client hung up.
    const lines = await eventually(
      () => {
        const mine = apiLog.lines.filter((l) => l.requestId === requestId);
        return mine.length > 0 ? mine : undefined;
      },
      5000,
      'access line of the hung-up stream',
    );
    expect(lines).toEqual([
      expect.objectContaining({
        msg: ACCESS_LOG_MESSAGE,
        level: 30,
        route: '/jobs/:id/events',
        status: 200,
        jobId: job.id,
        aborted: true,
      }),
    ]);
  });

  it("answers another tenant's job 404, exactly as a job that does not exist", async () => {
    const job = await client('acme').submit('colour', image);
    const theirs = await rawStream(job.id, 'globex');
    const missingId = '00000000-0000-4000-8000-000000000000';
    const missing = await rawStream(missingId, 'globex');
    expect(theirs.res.status).toBe(404);
    expect(missing.res.status).toBe(404);
    const { request_id: _a, ...theirProblem } = JSON.parse(theirs.body) as Record<string, unknown>;
    const { request_id: _b, ...missingProblem } = JSON.parse(missing.body) as Record<
      string,
      unknown
    >;
    expect(theirProblem).toEqual({
      ...missingProblem,
      detail: `Job "${job.id}" does not exist or has expired`,
    });
    expect(theirProblem.code).toBe('JOB_NOT_FOUND');
    expect(api.waiter.watching).toBe(0);
  });

  it('asks the client to reconnect when a connection has lived its time, and resumes', async () => {
    const shortLog = captureLogger('info', 'api');
    const short = await buildTestApi(
      { ...stack.config, jobEvents: { heartbeatMs: 200, maxStreamSeconds: 1 } },
      { registry: stack.registry, logger: shortLog.logger },
    );
    const ended = () =>
      shortLog.lines.filter((l) => l.msg === ACCESS_LOG_MESSAGE && l.route === '/jobs/:id/events');
    try {
      const url = await listen(short.app);
      const job = await queuedJob();
      const res = await fetch(`${url}/jobs/${job.id}/events`, {
        headers: { authorization: `Bearer ${KEYS.acme}` },
      });
      const body = await res.text();
      expect(body).toContain('id: 1.0.queued\nevent: queued\n');
      expect(body).toMatch(
        /event: reconnect\ndata: \{"reason":"max_duration","retry_ms":1000\}\n\n$/,
      );
      // The client comes back on its own after `reconnect`, without the state it already has.
      const following = collect(client('acme', url).events(job.id, { lastEventId: '1.0.queued' }));
      await eventually(
        () => ended().length >= 2 || undefined,
        10_000,
        'a resumed connection ended',
      );
      await onnx.resume();
      const events = await following;
      expect(events.at(-1)).toMatchObject({ event: 'succeeded', id: '1.succeeded' });
      expect(events.map((e) => e.event)).not.toContain('queued');
    } finally {
      await short.close();
    }
  });

  it('asks open streams to reconnect elsewhere when the API shuts down, without holding it up', async () => {
    const closing = await buildTestApi(stack.config, { registry: stack.registry });
    const url = await listen(closing.app);
    const job = await queuedJob();
    const res = await fetch(`${url}/jobs/${job.id}/events`, {
      headers: { authorization: `Bearer ${KEYS.acme}` },
    });
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    while (!text.includes('event: queued')) {
      text += decoder.decode((await reader.read()).value, { stream: true });
    }
    const closed = closing.close();
    for (let part = await reader.read(); !part.done; part = await reader.read()) {
      text += decoder.decode(part.value, { stream: true });
    }
    expect(text).toMatch(
      /event: reconnect\ndata: \{"reason":"shutting_down","retry_ms":1000\}\n\n$/,
    );
    await closed;
  });
});
