import { rm } from 'node:fs/promises';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../shared/config/config.js';
import { ModelRegistry } from '../../shared/models/registry.js';
import { OnnxRuntimeBackend } from '../../workers/backends/onnx-runtime.backend.js';
import { InferenceWorker } from '../../workers/inference-worker.js';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import {
  createModelRepository,
  eventually,
  registryDocument,
  solidPng,
  testConfig,
} from '../support/inference-stack.js';
import {
  cleanRedisPrefix,
  startServices,
  type TestServices,
  uniquePrefix,
} from '../support/services.js';

let services: TestServices;
let repository: string;
let config: Config;
let worker: InferenceWorker;
let api: TestApi;
const prefix = uniquePrefix();

beforeAll(async () => {
  services = await startServices();
  repository = await createModelRepository();
  const registry = ModelRegistry.fromDocument(registryDocument());
  config = testConfig(services, { prefix, bucket: uniquePrefix(), modelRepository: repository });
  worker = await InferenceWorker.start({
    config,
    registry,
    backend: new OnnxRuntimeBackend({ repository }),
    logger: pino({ level: 'silent' }),
  });
  api = await buildTestApi(config, { registry });
  await api.app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await api?.close();
  await worker?.close();
  await cleanRedisPrefix(services.redisUrl, prefix);
  if (repository) await rm(repository, { recursive: true, force: true });
  await services?.stop();
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
