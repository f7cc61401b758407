/**
 * A sync request waits up to SYNC_WAIT_MAX_SECONDS for its job; its upload (up to
 * MAX_UPLOAD_BYTES) is stored before the wait begins, and nothing may keep it for the wait.
 */
import { randomBytes } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import { type InProcessWorker, startInProcessWorker } from '../support/in-process-worker.js';
import { eventually } from '../support/inference-stack.js';
import { multipartBody } from '../support/raw-http.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

let stack: InProcessWorker;
let api: TestApi;
/** Every upload the API stored, held weakly: the test itself must not keep one alive. */
const stored: WeakRef<Buffer>[] = [];

beforeAll(async () => {
  stack = await startInProcessWorker({ env: { SYNC_WAIT_SECONDS: '30' } });
  api = await buildTestApi(stack.config, { registry: stack.registry });
  const store = api.store;
  const put = store.put.bind(store);
  store.put = (key, bytes, contentType) => {
    stored.push(new WeakRef(bytes));
    return put(key, bytes, contentType);
  };
});

afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

/** A PNG of noise, 1.5 MB: stored in S3 (not inline), and a different image each time. */
function noisePng(): Promise<Buffer> {
  const side = 700;
  return sharp(randomBytes(side * side * 3), { raw: { width: side, height: side, channels: 3 } })
    .png({ compressionLevel: 0 })
    .toBuffer();
}

/** Inject's promise settles with the answer: started here, awaited at the end. */
async function startSync(kind: 'raw body' | 'multipart') {
  const image = await noisePng();
  if (kind === 'raw body') {
    return api.app.inject({
      method: 'POST',
      url: '/predict/colour',
      payload: image,
      headers: { 'content-type': 'image/png' },
    });
  }
  const form = multipartBody([{ name: 'file', data: image }]);
  return api.app.inject({
    method: 'POST',
    url: '/predict/colour',
    payload: form.body,
    headers: { 'content-type': form.contentType },
  });
}

describe('a sync request waiting for its job', () => {
  it.each(['raw body', 'multipart'] as const)(
    'holds no upload once it is stored: %s (regression: each waiting request kept its upload for up to 120 s)',
    async (kind) => {
      const queue = api.queues.queue('onnx');
      // Nobody takes the jobs: the requests wait.
      await queue.pause();
      stored.length = 0;
      const waiting = 3;
      const answers: ReturnType<typeof startSync>[] = [];
      try {
        for (let i = 0; i < waiting; i++) answers.push(startSync(kind));
        await eventually(
          async () =>
            (await queue.getJobCounts('waiting')).waiting === waiting ? true : undefined,
          20_000,
        );
        expect(stored).toHaveLength(waiting);
        // Off this turn (a WeakRef keeps its target for the turn it is read in), then collect.
        await new Promise((resolve) => setImmediate(resolve));
        gc();
        expect(stored.filter((ref) => ref.deref() !== undefined)).toHaveLength(0);
      } finally {
        await queue.resume();
      }
      for (const res of await Promise.all(answers)) expect(res.statusCode).toBe(200);
    },
    60_000,
  );
});
