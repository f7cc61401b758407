import { QueueEvents } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { BackendStatusStore } from '../shared/backends/backend-status.js';
import { BackendStatusCache } from '../shared/backends/backend-status-cache.js';
import type { Config } from '../shared/config/config.js';
import type { Logger } from '../shared/logging/logger.js';
import { ModelRegistry } from '../shared/models/registry.js';
import { INFERENCE_QUEUES, type QueueName } from '../shared/queues/index.js';
import { InferenceQueues } from '../shared/queues/inference-queues.js';
import { createRedis, type Redis, waitForRedis } from '../shared/redis/redis.js';
import { ModelRouter } from '../shared/routing/router.js';
import { createObjectStore, type ObjectStore } from '../shared/storage/index.js';
import { buildApp } from './app.js';
import { ImageUploads } from './inference/image-uploads.js';
import { InferenceService } from './inference/inference-service.js';
import { CompletionWaiter } from './jobs/completion-waiter.js';

/** How often the API re-reads worker reports; routing uses the cached picture in between. */
const STATUS_REFRESH_MS = 1000;

/**
 * The API process: builds its connections and services, serves HTTP, and shuts down in order.
 * `close()` stops accepting, drains in-flight requests, then closes listeners and connections;
 * it is idempotent and runs every step even when one fails.
 */
export class ApiServer {
  private closing: Promise<void> | undefined;

  private constructor(
    readonly app: FastifyInstance,
    private readonly logger: Logger,
    private readonly resources: {
      redis: Redis;
      store: ObjectStore;
      queues: InferenceQueues;
      events: QueueEvents[];
      eventConnections: Redis[];
      waiter: CompletionWaiter;
      statusCache: BackendStatusCache;
    },
  ) {}

  static async start(config: Config, logger: Logger): Promise<ApiServer> {
    const registry = ModelRegistry.load(config.models.configPath);
    const redis = createRedis(config.redis, 'command');
    await waitForRedis(redis, config.redis.commandTimeoutMs).catch((err: Error) => {
      redis.disconnect();
      throw new Error(`Redis at ${config.redis.url} is unreachable: ${err.message}`);
    });
    const store = createObjectStore(config.storage);
    await store.init();

    const queues = new InferenceQueues(redis, config.redis.prefix, config.jobs);
    const eventsByQueue = new Map<QueueName, QueueEvents>();
    // QueueEvents reads from a duplicate of the client it is given and leaves the original open:
    // the originals are closed at shutdown.
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
      STATUS_REFRESH_MS,
      logger,
    );
    await statusCache.start();
    const router = new ModelRouter(registry, statusCache);
    const images = new ImageUploads(store);
    const service = new InferenceService({ images, queues, waiter, logger });

    let server: ApiServer | undefined;
    const app = await buildApp({
      config,
      logger,
      registry,
      router,
      service,
      backendStatus: statusCache,
      redis,
      store,
      isClosing: () => server?.closing !== undefined,
    });
    server = new ApiServer(app, logger, {
      redis,
      store,
      queues,
      events: [...eventsByQueue.values()],
      eventConnections,
      waiter,
      statusCache,
    });
    await app.listen({ host: config.http.host, port: config.http.port });
    return server;
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const { redis, store, queues, events, eventConnections, waiter, statusCache } = this.resources;
    const step = async (name: string, fn: () => unknown) => {
      try {
        await fn();
        this.logger.debug({ step: name }, 'shutdown step done');
      } catch (err) {
        this.logger.warn({ step: name, err: String(err) }, 'shutdown step failed');
      }
    };
    // In order: stop taking requests and let the running ones finish, then release what they used.
    await step('http', () => this.app.close());
    await step('waiter', () => waiter.close());
    await step('status', () => statusCache.stop());
    await step('events', () => Promise.all(events.map((e) => e.close())));
    await step('event connections', () => {
      for (const connection of eventConnections) connection.disconnect();
    });
    await step('queues', () => queues.close());
    await step('store', () => store.close());
    await step('redis', () => redis.quit());
  }
}
