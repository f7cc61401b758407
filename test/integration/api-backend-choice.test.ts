import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import { type InProcessWorker, startInProcessWorker } from '../support/in-process-worker.js';
import { solidPng } from '../support/inference-stack.js';
import { multipartBody } from '../support/raw-http.js';

let stack: InProcessWorker;
let api: TestApi;
let red: Buffer;

beforeAll(async () => {
  stack = await startInProcessWorker();
  api = await buildTestApi(stack.config, { registry: stack.registry });
  red = await solidPng([255, 0, 0]);
});

afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

/** A multipart body: the fields, then the red image as `file`. */
function form(fields: Record<string, string>) {
  const { body, contentType } = multipartBody([
    ...Object.entries(fields).map(([name, value]) => ({ name, value })),
    { name: 'file', data: red, filename: 'red.png' },
  ]);
  return { payload: body, headers: { 'content-type': contentType } };
}

describe('choosing the backend per request', () => {
  it('backend=onnx in the query runs there, and the job stays pinned to it', async () => {
    const res = await api.app.inject({
      method: 'POST',
      url: '/predict/colour?backend=onnx',
      payload: red,
      headers: { 'content-type': 'image/png' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      backend: 'onnx',
      route: [{ backend: 'onnx', error: null }],
    });
    const job = await api.queues.queue('onnx').getJob(res.json<{ id: string }>().id);
    expect(job?.data.pinned).toBe(true);
  });

  it('a backend the model does not have is 404 MODEL_BACKEND_NOT_FOUND, before any upload is read', async () => {
    const res = await api.app.inject({
      method: 'POST',
      url: '/predict/colour?backend=tensorflow',
      payload: red,
      headers: { 'content-type': 'image/png' },
    });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({
      code: 'MODEL_BACKEND_NOT_FOUND',
      detail: 'Model "colour" is not served by backend "tensorflow"; its backends: onnx',
    });
  });

  it('an unknown backend is 400, in the query or as a multipart field', async () => {
    const query = await api.app.inject({
      method: 'POST',
      url: '/predict/colour?backend=gpu',
      payload: red,
      headers: { 'content-type': 'image/png' },
    });
    expect(query.statusCode).toBe(400);
    expect(query.json()).toMatchObject({ code: 'VALIDATION_FAILED' });
    expect(query.json<{ detail: string }>().detail).toContain('backend');

    const field = await api.app.inject({
      method: 'POST',
      url: '/predict/colour',
      ...form({ backend: 'gpu' }),
    });
    expect(field.statusCode).toBe(400);
    expect(field.json()).toMatchObject({ code: 'VALIDATION_FAILED' });
  });

  it('the multipart field works like the query parameter', async () => {
    const ok = await api.app.inject({
      method: 'POST',
      url: '/predict/colour',
      ...form({ backend: 'onnx' }),
    });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toMatchObject({ backend: 'onnx' });
    const wrong = await api.app.inject({
      method: 'POST',
      url: '/predict/colour',
      ...form({ backend: 'tensorflow' }),
    });
    expect(wrong.statusCode).toBe(404);
    expect(wrong.json()).toMatchObject({ code: 'MODEL_BACKEND_NOT_FOUND' });
  });
});
