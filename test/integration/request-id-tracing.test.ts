import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import { type InProcessWorker, startInProcessWorker } from '../support/in-process-worker.js';
import { captureLogger, eventually, type LogLine, solidPng } from '../support/inference-stack.js';
import {
  FAILING_MODEL,
  injectPredict,
  observabilityRegistry,
} from '../support/observability-stack.js';
import { uniquePrefix } from '../support/services.js';

let stack: InProcessWorker;
let api: TestApi;
const apiLog = captureLogger('info');
const workerLog = captureLogger('info');

beforeAll(async () => {
  stack = await startInProcessWorker({
    registry: observabilityRegistry,
    env: { SYNC_WAIT_SECONDS: '10' },
    logger: workerLog.logger,
  });
  api = await buildTestApi(stack.config, { registry: stack.registry, logger: apiLog.logger });
});

afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

const withId = (lines: LogLine[], id: string) => lines.filter((l) => l.requestId === id);

describe('one request followed end to end by its id', () => {
  it("keeps the caller's X-Request-Id from the API's log lines to the worker's", async () => {
    const id = `trace-${uniquePrefix()}`;
    const { res } = await injectPredict(api, 'colour', await solidPng([0, 255, 0]), {
      'x-request-id': id,
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-request-id']).toBe(id);
    const job = res.json<{ id: string; request_id: string }>();
    expect(job.request_id).toBe(id);

    const completed = await eventually(() =>
      withId(apiLog.lines, id).find((l) => l.msg === 'request completed'),
    );
    expect(completed).toMatchObject({ jobId: job.id, model: 'colour', backend: 'onnx' });
    const done = await eventually(() =>
      withId(workerLog.lines, id).find((l) => l.msg === 'job done'),
    );
    expect(done).toMatchObject({ jobId: job.id, model: 'colour', backend: 'onnx' });
    // Nothing else was logged under this id.
    expect(withId(workerLog.lines, id).every((l) => l.jobId === job.id)).toBe(true);
  });

  it('generates an id when none is given (or the given one is not sane) and carries that one', async () => {
    const { res } = await injectPredict(api, FAILING_MODEL, await solidPng([0, 255, 0]), {
      'x-request-id': 'not sane: has spaces',
    });
    expect(res.statusCode).toBe(500);
    const id = res.headers['x-request-id'] as string;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.json()).toMatchObject({ request_id: id, code: 'INFERENCE_FAILED' });

    expect(withId(apiLog.lines, id).map((l) => l.msg)).toContain('request completed');
    // The failure is logged by the worker under the same id.
    const failed = await eventually(() =>
      withId(workerLog.lines, id).find((l) => l.msg === 'job attempt failed'),
    );
    expect(failed.err).toMatch(/^INFERENCE_FAILED: /);
  });
});
