import { Socket } from 'node:net';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { createApiResources } from '../../api/api-resources.js';
import { ModelRegistry } from '../../shared/models/registry.js';
import { INFERENCE_QUEUES } from '../../shared/queues/index.js';
import { eventually, registryDocument, testConfig } from '../support/inference-stack.js';
import { cleanRedisPrefix, uniquePrefix } from '../support/services.js';
import { sharedServices } from '../support/shared-services.js';

const services = sharedServices();
const prefix = uniquePrefix();

afterAll(async () => {
  await cleanRedisPrefix(services.redisUrl, prefix);
});

/** This process's open sockets to the test Redis. */
function redisSockets(): number {
  const port = Number(new URL(services.redisUrl).port || 6379);
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  return handles.filter((h) => h instanceof Socket && !h.destroyed && h.remotePort === port).length;
}

describe('ApiResources', () => {
  it('opens each Redis connection once: the command client and one per queue-event listener (regression: each listener left an idle connection open beside its own)', async () => {
    const before = redisSockets();
    const config = testConfig(services, { prefix, bucket: uniquePrefix() });
    const resources = await createApiResources(config, pino({ level: 'silent' }), {
      registry: ModelRegistry.fromDocument(registryDocument()),
      skipStoreInit: true,
    });
    try {
      const listeners = Object.values(INFERENCE_QUEUES).length;
      expect(redisSockets() - before).toBe(1 + listeners);
    } finally {
      await resources.close();
    }
    await eventually(
      () => (redisSockets() === before ? true : undefined),
      5_000,
      'every connection closed',
    );
  });
});
