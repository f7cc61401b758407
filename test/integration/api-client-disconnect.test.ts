import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import { type InProcessWorker, startInProcessWorker } from '../support/in-process-worker.js';
import { eventually, solidPng } from '../support/inference-stack.js';

let stack: InProcessWorker;
let api: TestApi;

beforeAll(async () => {
  stack = await startInProcessWorker();
  api = await buildTestApi(stack.config, { registry: stack.registry });
  await api.app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

describe('a sync client that hangs up', () => {
  it('releases its wait at once; the job still runs to the end', async () => {
    const queue = api.queues.queue('onnx');
    // Nobody takes the job: the request would wait its full 10 s.
    await queue.pause();
    try {
      const { port } = api.app.server.address() as AddressInfo;
      const image = await solidPng([255, 0, 0]);
      const req = request({
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/predict/colour',
        headers: { 'content-type': 'image/png', prefer: 'wait=10' },
      });
      req.on('error', () => undefined);
      req.end(image);

      await eventually(async () => (api.waiter.size === 1 ? true : undefined));
      req.destroy();
      await eventually(async () => (api.waiter.size === 0 ? true : undefined), 2_000);

      const counts = await queue.getJobCounts('waiting', 'prioritized');
      expect((counts.waiting ?? 0) + (counts.prioritized ?? 0)).toBe(1);
    } finally {
      await queue.resume();
    }
  });
});
