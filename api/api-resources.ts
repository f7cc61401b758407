import { QueueEvents } from 'bullmq';
import { BackendStatusStore } from '../shared/backends/backend-status.js';
import { BackendStatusCache } from '../shared/backends/backend-status-cache.js';
import type { Config } from '../shared/config/config.js';
import { JobLifecycle } from '../shared/jobs/job-lifecycle.js';
import { JobReader } from '../shared/jobs/job-reader.js';
import { JobRecords } from '../shared/jobs/job-records.js';
import { WebhookDeliveries } from '../shared/jobs/webhook-deliveries.js';
import type { Logger } from '../shared/logging/logger.js';
import { ModelRegistry } from '../shared/models/registry.js';
import { INFERENCE_QUEUES, type QueueName } from '../shared/queues/index.js';
import { InferenceQueues } from '../shared/queues/inference-queues.js';
import { createRedis, type Redis, waitForRedis } from '../shared/redis/redis.js';
import { ModelRouter } from '../shared/routing/router.js';
import { createObjectStore, type ObjectStore } from '../shared/storage/index.js';
import { WebhookQueue } from '../shared/webhooks/webhook-queue.js';
import type { AppDeps } from './app.js';
import { ImageUploads } from './inference/image-uploads.js';
import { InferenceService } from './inference/inference-service.js';
import { CompletionWaiter } from './jobs/completion-waiter.js';
import { IdempotencyKeys } from './jobs/idempotency-keys.js';

export interface ApiResourcesOptions {
  /** The registry to serve; default: the file `MODELS_CONFIG` names. */
  registry?: ModelRegistry;
  /**
   * How often worker reports are re-read; routing uses the cached picture in between.
   * @defaultValue 1000
   */
  statusRefreshMs?: number;
  /**
   * Skip creating the bucket at start-up (for a test whose storage is meant to be unreachable).
   * @defaultValue false
   */
  skipStoreInit?: boolean;
}

/** Everything an API process holds open, and the one way to release it. */
export interface ApiResources {
  deps: Omit<AppDeps, 'isClosing'>;
  redis: Redis;
  store: ObjectStore;
  queues: InferenceQueues;
  records: JobRecords;
  waiter: CompletionWaiter;
  statusCache: BackendStatusCache;
  /** Closes listeners and connections in order; every step runs even when one fails. */
  close(onStepError?: (step: string, err: unknown) => void): Promise<void>;
}

/**
 * Opens the API's connections and builds its services: Redis, storage (bucket created), the
 * inference queues, one QueueEvents listener per queue feeding the completion waiter, the backend
 * status cache, the router. The HTTP app is built on top by the caller.
 */
export async function createApiResources(
  config: Config,
  logger: Logger,
  options: ApiResourcesOptions = {},
): Promise<ApiResources> {
  const registry = options.registry ?? ModelRegistry.load(config.models.configPath);
  const redis = createRedis(config.redis, 'command');
  await waitForRedis(redis, config.redis.commandTimeoutMs).catch((err: Error) => {
    redis.disconnect();
    throw new Error(`Redis at ${config.redis.url} is unreachable: ${err.message}`);
  });
  const store = createObjectStore(config.storage);
  if (!options.skipStoreInit) await store.init();

  const queues = new InferenceQueues(redis, config.redis.prefix, config.jobs);
  const records = new JobRecords(redis, config.redis.prefix, config.jobs.retentionSeconds);
  const webhooks = new WebhookQueue(redis, config.redis.prefix, config);
  const eventsByQueue = new Map<QueueName, QueueEvents>();
  // QueueEvents reads on a duplicate of the client it is given and leaves the original open: the
  // originals are closed at shutdown.
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
    options.statusRefreshMs ?? 1000,
    logger,
  );
  await statusCache.start();
  const router = new ModelRouter(registry, statusCache);
  const service = new InferenceService({
    images: new ImageUploads(store),
    records,
    queues,
    waiter,
    reader: new JobReader(records, queues, new WebhookDeliveries(redis, records)),
    lifecycle: new JobLifecycle(redis, records),
    webhooks,
    idempotency: new IdempotencyKeys(redis, config.redis.prefix, {
      retentionSeconds: config.jobs.retentionSeconds,
    }),
    logger,
  });

  const close = async (onStepError?: (step: string, err: unknown) => void) => {
    const steps: [string, () => unknown][] = [
      ['waiter', () => waiter.close()],
      ['status', () => statusCache.stop()],
      ['events', () => Promise.all([...eventsByQueue.values()].map((e) => e.close()))],
      [
        'event connections',
        () => {
          for (const connection of eventConnections) connection.disconnect();
        },
      ],
      ['queues', () => queues.close()],
      ['webhook queue', () => webhooks.close()],
      ['store', () => store.close()],
      ['redis', () => (redis.status === 'ready' ? redis.quit() : redis.disconnect())],
    ];
    for (const [name, step] of steps) {
      try {
        await step();
      } catch (err) {
        onStepError?.(name, err);
      }
    }
  };

  return {
    deps: { config, logger, registry, router, service, backendStatus: statusCache, redis, store },
    redis,
    store,
    queues,
    records,
    waiter,
    statusCache,
    close,
  };
}
