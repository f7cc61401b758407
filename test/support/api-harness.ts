/**
 * The API's dependencies wired as api/server.ts wires them, without listening on a port, so a test
 * drives the real app through `app.inject()` against real Redis, BullMQ and S3.
 */
import { QueueEvents } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { buildApp } from '../../api/app.js';
import { ImageUploads } from '../../api/inference/image-uploads.js';
import { InferenceService } from '../../api/inference/inference-service.js';
import { CompletionWaiter } from '../../api/jobs/completion-waiter.js';
import { BackendStatusStore } from '../../shared/backends/backend-status.js';
import { BackendStatusCache } from '../../shared/backends/backend-status-cache.js';
import type { Config } from '../../shared/config/config.js';
import type { Logger } from '../../shared/logging/logger.js';
import type { ModelRegistry } from '../../shared/models/registry.js';
import { INFERENCE_QUEUES, type QueueName } from '../../shared/queues/index.js';
import { InferenceQueues } from '../../shared/queues/inference-queues.js';
import { createRedis, type Redis, waitForRedis } from '../../shared/redis/redis.js';
import { ModelRouter } from '../../shared/routing/router.js';
import { createObjectStore, type ObjectStore } from '../../shared/storage/index.js';

export interface TestApiOptions {
  registry: ModelRegistry;
  /** @defaultValue a silent logger */
  logger?: Logger;
  /**
   * Skip `store.init()`, for a test whose storage is meant to be unreachable.
   * @defaultValue false
   */
  skipStoreInit?: boolean;
  /**
   * How often worker reports are re-read (api/server.ts: 1000 ms).
   * @defaultValue 100
   */
  statusRefreshMs?: number;
}

export interface TestApi {
  app: FastifyInstance;
  redis: Redis;
  store: ObjectStore;
  queues: InferenceQueues;
  waiter: CompletionWaiter;
  statusCache: BackendStatusCache;
  /** Idempotent; releases everything the factory opened. */
  close(): Promise<void>;
}

export async function buildTestApi(config: Config, options: TestApiOptions): Promise<TestApi> {
  const logger = options.logger ?? pino({ level: 'silent' });
  const redis = createRedis(config.redis, 'command');
  await waitForRedis(redis, config.redis.commandTimeoutMs).catch((err: Error) => {
    redis.disconnect();
    throw err;
  });
  const store = createObjectStore(config.storage);
  if (!options.skipStoreInit) await store.init();

  const queues = new InferenceQueues(redis, config.redis.prefix, config.jobs);
  const eventsByQueue = new Map<QueueName, QueueEvents>();
  // BullMQ reads events on a duplicate of the client it is given and leaves the original open.
  const eventConnections: Redis[] = [];
  for (const name of Object.values(INFERENCE_QUEUES)) {
    const connection = createRedis(config.redis, 'blocking');
    eventConnections.push(connection);
    eventsByQueue.set(name, new QueueEvents(name, { connection, prefix: config.redis.prefix }));
  }
  await Promise.all([...eventsByQueue.values()].map((e) => e.waitUntilReady()));
  const waiter = new CompletionWaiter({
    events: eventsByQueue,
    isFinished: (queue, ids) => queues.areFinished(queue, ids),
    onError: (err) => logger.warn({ err: String(err) }, 'waiter reconciliation failed'),
  });

  const statusCache = new BackendStatusCache(
    new BackendStatusStore(redis, config.redis.prefix, config.worker.heartbeatMs * 3),
    options.statusRefreshMs ?? 100,
    logger,
  );
  await statusCache.start();
  const router = new ModelRouter(options.registry, statusCache);
  const service = new InferenceService({
    images: new ImageUploads(store),
    queues,
    waiter,
    logger,
  });

  let closing: Promise<void> | undefined;
  const app = await buildApp({
    config,
    logger,
    registry: options.registry,
    router,
    service,
    backendStatus: statusCache,
    redis,
    store,
    isClosing: () => closing !== undefined,
  });
  await app.ready();

  const shutdown = async () => {
    // The order of api/server.ts; every step runs even when one fails.
    const steps: (() => unknown)[] = [
      () => app.close(),
      () => waiter.close(),
      () => statusCache.stop(),
      () => Promise.all([...eventsByQueue.values()].map((e) => e.close())),
      () => {
        for (const connection of eventConnections) connection.disconnect();
      },
      () => queues.close(),
      () => store.close(),
      () => (redis.status === 'ready' ? redis.quit() : redis.disconnect()),
    ];
    for (const step of steps) {
      try {
        await step();
      } catch {
        // A dependency a test broke on purpose (Redis disconnected) fails its step; go on.
      }
    }
  };
  return {
    app,
    redis,
    store,
    queues,
    waiter,
    statusCache,
    close() {
      closing ??= shutdown();
      return closing;
    },
  };
}
