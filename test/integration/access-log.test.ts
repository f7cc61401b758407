import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACCESS_LOG_MESSAGE } from '../../api/http/access-log.js';
import type { JobResource } from '../../shared/jobs/job-resource.js';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import { type InProcessWorker, startInProcessWorker } from '../support/in-process-worker.js';
import { captureLogger, eventually, type LogLine, solidPng } from '../support/inference-stack.js';
import { uniquePrefix } from '../support/services.js';

const KEY = 'acme-key-0123456789abcdef';
const WRONG_KEY = 'wrong-key-0123456789abcdef';

let stack: InProcessWorker;
let api: TestApi;
let image: Buffer;
// The API's own logger (redaction and all), writing into memory: the access log as it is shipped.
const apiLog = captureLogger('info', 'api');

beforeAll(async () => {
  stack = await startInProcessWorker({ env: { API_KEYS: `acme:${KEY}`, SYNC_WAIT_SECONDS: '10' } });
  api = await buildTestApi(stack.config, { registry: stack.registry, logger: apiLog.logger });
  image = await solidPng([0, 255, 0]);
});

afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

/** A request with its own request id, and the one access-log line written for it. */
async function send(
  options: { method?: 'GET' | 'POST'; url: string; key?: string; payload?: Buffer },
  headers: Record<string, string> = {},
) {
  const id = `access-${uniquePrefix()}`;
  const res = await api.app.inject({
    method: options.method ?? 'GET',
    url: options.url,
    headers: {
      'x-request-id': id,
      ...(options.key ? { authorization: `Bearer ${options.key}` } : {}),
      ...(options.payload ? { 'content-type': 'image/png' } : {}),
      ...headers,
    },
    ...(options.payload ? { payload: options.payload } : {}),
  });
  // Written once the onResponse hooks have run, which may be just after inject() resolves.
  const line = await eventually(() => accessLines(id)[0], 5000, `access line of ${id}`);
  expect(accessLines(id)).toHaveLength(1);
  return { res, line, id };
}

const linesOf = (id: string) => apiLog.lines.filter((l) => l.requestId === id);
const accessLines = (id: string): LogLine[] =>
  linesOf(id).filter((l) => l.msg === ACCESS_LOG_MESSAGE);

describe('access log', () => {
  it('writes one info line for a sync predict: credential id, route, model, backend, job, sizes, time', async () => {
    const { res, line, id } = await send({
      method: 'POST',
      url: '/predict/colour',
      key: KEY,
      payload: image,
    });
    expect(res.statusCode).toBe(200);
    const job = res.json<JobResource>();
    expect(line).toEqual({
      level: 30,
      time: expect.any(String),
      service: 'api',
      pid: process.pid,
      requestId: id,
      msg: ACCESS_LOG_MESSAGE,
      method: 'POST',
      route: '/predict/:model',
      status: 200,
      auth: 'key',
      tenant: 'acme',
      model: 'colour',
      backend: 'onnx',
      jobId: job.id,
      bytesIn: image.length,
      bytesOut: res.rawPayload.length,
      durationMs: expect.any(Number),
    });
    expect(line.durationMs).toBeGreaterThan(0);
    // Fastify's own per-request lines are not written beside it.
    expect(linesOf(id).map((l) => l.msg)).not.toContain('incoming request');
  });

  it('writes the problem code of a 4xx answer, and the route, not the URL', async () => {
    const { res, line } = await send({
      method: 'POST',
      url: '/predict/no_such_model?top_k=3',
      key: KEY,
      payload: image,
    });
    expect(res.statusCode).toBe(404);
    expect(line).toMatchObject({
      route: '/predict/:model',
      status: 404,
      code: 'MODEL_NOT_FOUND',
      tenant: 'acme',
      model: 'no_such_model',
    });
    expect(line).not.toHaveProperty('jobId');
    expect(JSON.stringify(line)).not.toContain('top_k');
  });

  it('writes a refused credential as its kind, never the key presented', async () => {
    const { res, line } = await send({ url: '/jobs', key: WRONG_KEY });
    expect(res.statusCode).toBe(401);
    expect(line).toMatchObject({ route: '/jobs', status: 401, code: 'API_KEY_INVALID' });
    expect(line.auth).toBe('invalid');
    expect(line).not.toHaveProperty('tenant');
  });

  it('writes the job id of a 202 submission, and of a job read back', async () => {
    const { res, line } = await send({
      method: 'POST',
      url: '/jobs?model=colour',
      key: KEY,
      payload: image,
    });
    expect(res.statusCode).toBe(202);
    const job = res.json<JobResource>();
    expect(line).toMatchObject({
      method: 'POST',
      route: '/jobs',
      status: 202,
      model: 'colour',
      backend: 'onnx',
      jobId: job.id,
    });

    const read = await send({ url: `/jobs/${job.id}`, key: KEY });
    expect(read.res.statusCode).toBe(200);
    expect(read.line).toMatchObject({ route: '/jobs/:id', status: 200, jobId: job.id });
  });

  it('writes no line for probes and scrapes, and no line holds an API key', async () => {
    const quiet = [`/health`, `/health/live`, `/health/ready`, `/metrics`];
    const ids: string[] = [];
    for (const url of quiet) {
      const id = `quiet-${uniquePrefix()}`;
      ids.push(id);
      const res = await api.app.inject({ url, headers: { 'x-request-id': id } });
      expect(res.statusCode, url).toBe(200);
    }
    // A request after them: once its line is written, theirs would have been.
    await send({ url: '/models', key: KEY });
    for (const id of ids) expect(linesOf(id)).toEqual([]);

    const everything = JSON.stringify(apiLog.lines);
    expect(everything).not.toContain(KEY);
    expect(everything).not.toContain(WRONG_KEY);
  });
});
