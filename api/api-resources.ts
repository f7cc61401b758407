import type { QueueEvents, Telemetry } from 'bullmq';
import { configuredTenantIds } from '../shared/auth/configured-tenants.js';
import { BackendStatusStore } from '../shared/backends/backend-status.js';
import { ResultCache } from '../shared/cache/result-cache.js';
import type { Config } from '../shared/config/config.js';
import { JobForwarder } from '../shared/jobs/job-forwarder.js';
import { JobLifecycle } from '../shared/jobs/job-lifecycle.js';
import { JobReader } from '../shared/jobs/job-reader.js';
import { JobRecords } from '../shared/jobs/job-records.js';
import { WebhookDeliveries } from '../shared/jobs/webhook-deliveries.js';
import type { Logger } from '../shared/logging/logger.js';
import { createMetricsRegistry, createUsageMetrics } from '../shared/metrics/index.js';
import { BACKEND_KINDS } from '../shared/models/model-spec.js';
import { ModelRegistry } from '../shared/models/registry.js';
import { openQueueEvents } from '../shared/queues/bullmq-objects.js';
import { FairScheduler } from '../shared/queues/fair-scheduler.js';
import { INFERENCE_QUEUES, type QueueName } from '../shared/queues/index.js';
import { InferenceQueues } from '../shared/queues/inference-queues.js';
import {
  createRedis,
  describeRedisUrl,
  type RedisClient,
  waitForRedis,
} from '../shared/redis/redis.js';
import { StatsStore } from '../shared/stats/stats-store.js';
import { createObjectStore, IMAGE_PREFIX, type ObjectStore } from '../shared/storage/index.js';
import { UsageLedger } from '../shared/usage/usage-ledger.js';
import { loadSigningSecrets } from '../shared/webhooks/load-signing-secrets.js';
import { WebhookQueue } from '../shared/webhooks/webhook-queue.js';
import type { AppDeps } from './app.js';
import { ApiKeyConfigError, ApiKeyRing } from './auth/api-key-ring.js';
import { ResultLookup } from './cache/result-lookup.js';
import { ImageStore } from './images/image-store.js';
import { CompletionWaiter } from './jobs/completion-waiter.js';
import { IdempotencyKeys } from './jobs/idempotency-keys.js';
import { JobCanceller } from './jobs/job-canceller.js';
import { JobEnqueuer } from './jobs/job-enqueuer.js';
import { JobEventStreams } from './jobs/job-event-stream.js';
import { JobLookup } from './jobs/job-lookup.js';
import { JobSubmitter } from './jobs/job-submitter.js';
import { OrphanSweeper } from './jobs/orphan-sweeper.js';
import { type ApiMetrics, createApiMetrics } from './metrics/api-metrics.js';
import { QueueSet } from './queues/queue-set.js';
import { QuotaCounters } from './quotas/quota-counters.js';
import { BackendStatusCache } from './routing/backend-status-cache.js';
import { ModelRouter } from './routing/router.js';

/** How often this process's request counts are written to the shared stats. */
const STATS_FLUSH_MS = 1000;
/** How often this process refills every backend's window of async jobs (FairScheduler.start). */
const FAIR_REFILL_INTERVAL_MS = 1000;

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
  /** BullMQ telemetry when tracing is on. */
  telemetry?: Telemetry;
}

/** Everything an API process holds open, and the one way to release it. */
export interface ApiResources {
  deps: Omit<AppDeps, 'isClosing'>;
  redis: RedisClient;
  store: ObjectStore;
  queues: InferenceQueues;
  records: JobRecords;
  waiter: CompletionWaiter;
  statusCache: BackendStatusCache;
  /** Every queue of the system, for the dashboard, queue metrics and /stats. */
  queueSet: QueueSet;
  metrics: ApiMetrics;
  stats: StatsStore;
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
  const keys = loadKeys(config, logger);
  const redis = createRedis(config.redis, 'command');
  await waitForRedis(redis, config.redis.commandTimeoutMs).catch((err: Error) => {
    redis.disconnect();
    throw new Error(
      `Redis at ${describeRedisUrl(config.redis.url)} is unreachable: ${err.message}`,
    );
  });
  const webhookSecrets = await loadSigningSecrets(config, redis, logger).catch((err: Error) => {
    redis.disconnect();
    throw err;
  });
  const store = createObjectStore(config.storage);
  if (!options.skipStoreInit) {
    await store.init();
    const expiry = await store.expire(IMAGE_PREFIX, config.images.retentionDays);
    if (expiry === 'unsupported') {
      logger.warn(
        { days: config.images.retentionDays },
        'the S3 server takes no lifecycle rules: uploaded images are not deleted; expire "images/" there by other means',
      );
    }
  }

  const queues = new InferenceQueues(redis, {
    prefix: config.redis.prefix,
    jobs: config.jobs,
    telemetry: options.telemetry,
  });
  const records = new JobRecords(redis, {
    prefix: config.redis.prefix,
    retentionSeconds: config.jobs.retentionSeconds,
    maxPerOwner: config.jobs.retentionCount,
  });
  const modelNames = registry.list().map((m) => m.name);
  // One registry per API process (per app in tests): nothing is counted in a module-level default.
  const metrics = createApiMetrics(createMetricsRegistry(), {
    models: modelNames,
    replicas: {
      tensorflow: config.backends.tensorflowServingUrls,
      onnx: config.backends.onnxRuntimeUrls,
    },
  });
  const stats = new StatsStore(redis, config.redis.prefix, {
    models: modelNames,
    windowSeconds: config.stats.windowSeconds,
    flushIntervalMs: STATS_FLUSH_MS,
    onFlushError: (err, failedWrites) =>
      logger.warn({ err: String(err), failedWrites }, 'stats write failed'),
  });
  await stats.init();
  const webhooks = new WebhookQueue(redis, config.redis.prefix, config);
  const queueSet = new QueueSet(queues, webhooks);
  const eventsByQueue = new Map<QueueName, QueueEvents>();
  // A QueueEvents reads on a duplicate of the client it is given, which it opens and closes itself:
  // the client given is a template that never connects.
  const listenerTemplate = createRedis(config.redis, 'blocking', { lazy: true });
  for (const name of Object.values(INFERENCE_QUEUES)) {
    eventsByQueue.set(
      name,
      openQueueEvents(name, { connection: listenerTemplate, prefix: config.redis.prefix }),
    );
  }
  await Promise.all([...eventsByQueue.values()].map((e) => e.waitUntilReady()));
  const waiter = new CompletionWaiter({
    events: eventsByQueue,
    isFinished: (queue, ids) => queues.areFinished(queue, ids),
    onError: (err) => logger.warn({ err: String(err) }, 'waiter reconciliation failed'),
  });

  const statusStore = new BackendStatusStore(redis, config.redis.prefix);
  const statusCache = new BackendStatusCache({
    store: statusStore,
    intervalMs: options.statusRefreshMs ?? 1000,
    logger,
    // Queue depths ride along with each refresh, for least-loaded routing and admission control.
    queueDepth: async (backend) => {
      const counts = await queues
        .queue(backend)
        .getJobCounts('waiting', 'prioritized', 'delayed', 'active');
      const { active = 0, ...waiting } = counts;
      return { waiting: Object.values(waiting).reduce((sum, n) => sum + n, 0), active };
    },
  });
  await statusCache.start();
  const router = new ModelRouter(registry, statusCache, new Set(config.backends.scaledFromZero));
  const usageMetrics = createUsageMetrics(metrics.register, {
    models: modelNames,
    tenants: configuredTenantIds(config.auth),
  });
  const usage = new UsageLedger(redis, config.redis.prefix, {
    retentionDays: config.usage.retentionDays,
    onCounted: usageMetrics.recordJob,
  });
  const quotas = new QuotaCounters(redis, config.redis.prefix);
  const lifecycle = new JobLifecycle(redis, records, usage);
  const scheduler = new FairScheduler(redis, config.redis.prefix, queues, {
    window: config.jobs.fairWindow,
    weightOf: (owner) => keys.weightOf(owner),
    onError: (err) => logger.warn({ err: String(err) }, 'fair scheduler refill failed'),
  });
  // Workers refill the window as they take jobs; this catches what they cannot (a claim left by a
  // process that died, a backend with no workers yet).
  scheduler.start(BACKEND_KINDS, FAIR_REFILL_INTERVAL_MS);
  const orphans = new OrphanSweeper({
    redis,
    config,
    queues,
    status: statusCache,
    forwarder: new JobForwarder({ registry, records, queues, status: statusStore }),
    lifecycle,
    webhooks,
    scheduler,
    logger,
    afterMs: config.jobs.orphanedAfterSeconds * 1000,
  });
  if (config.jobs.orphanedAfterSeconds > 0) {
    orphans.start(Math.min(10_000, Math.max(1000, config.jobs.orphanedAfterSeconds * 250)));
  }
  const jobs = new JobLookup({
    reader: new JobReader(records, queues, new WebhookDeliveries(redis, records)),
    records,
    queues,
    waiter,
  });
  const enqueuer = new JobEnqueuer({
    images: new ImageStore(store, {
      // Half the retention: a reused image always has at least that long left to live.
      refreshAfterMs: (config.images.retentionDays * 86_400_000) / 2,
    }),
    records,
    queues,
    scheduler,
    waiter,
    jobs,
    logger,
  });
  const submitter = new JobSubmitter({
    enqueuer,
    records,
    idempotency: new IdempotencyKeys(redis, config.redis.prefix, {
      retentionSeconds: config.jobs.retentionSeconds,
    }),
    quotas,
    usage,
    webhooks,
    jobs,
    logger,
    results: new ResultLookup({
      cache: new ResultCache(redis, config.redis.prefix),
      logger,
      onLookup: ({ route, spec }, outcome) => {
        metrics.recordResultCacheLookup(route.model.name, outcome);
        stats.recordCacheLookup({
          tenant: spec.owner,
          backend: route.backend,
          model: route.model.name,
          outcome,
        });
      },
    }),
  });
  const canceller = new JobCanceller({
    records,
    lifecycle,
    queues,
    scheduler,
    webhooks,
    jobs,
    logger,
  });
  // Event streams follow their jobs on the waiter's listener: no connection of their own.
  const jobEvents = new JobEventStreams(
    {
      watch: (jobId, watcher) => waiter.watch(jobId, watcher),
      read: (jobId, owner) => jobs.get(jobId, owner),
    },
    {
      heartbeatMs: config.jobEvents.heartbeatMs,
      maxStreamMs: config.jobEvents.maxStreamSeconds * 1000,
    },
  );
  metrics.countJobEventStreams(() => waiter.watching);

  const close = async (onStepError?: (step: string, err: unknown) => void) => {
    const steps: [string, () => unknown][] = [
      ['orphan sweeper', () => orphans.stop()],
      ['fair scheduler', () => scheduler.stop()],
      ['waiter', () => waiter.close()],
      ['status', () => statusCache.stop()],
      ['stats', () => stats.close()],
      ['events', () => Promise.all([...eventsByQueue.values()].map((e) => e.close()))],
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
    deps: {
      config,
      logger,
      registry,
      router,
      submitter,
      jobs,
      canceller,
      jobEvents,
      backendStatus: statusCache,
      redis,
      store,
      queueSet,
      metrics,
      stats,
      usage,
      quotas,
      keys,
      webhookSecrets,
    },
    redis,
    store,
    queues,
    records,
    waiter,
    statusCache,
    queueSet,
    metrics,
    stats,
    close,
  };
}

/**
 * The API keys, hashed. No keys and no tokens: the API runs open, which production refuses and
 * everywhere else is said loudly at start-up.
 */
function loadKeys(config: Config, logger: Logger): ApiKeyRing {
  const keys = ApiKeyRing.load(config.auth.apiKeys, config.auth.keysFile);
  const { jwt } = config.auth;
  if (!keys.open || jwt) {
    const tokens = jwt ? (jwt.keys.kind === 'jwks' ? jwt.keys.url : 'JWT_PUBLIC_KEY') : 'off';
    logger.info({ keys: keys.size, tokens }, 'API keys loaded');
    return keys;
  }
  if (config.env === 'production') {
    throw new ApiKeyConfigError(
      'No API keys configured (API_KEYS or API_KEYS_FILE) and no tokens (JWT_JWKS_URL or JWT_PUBLIC_KEY): refusing to run open with NODE_ENV=production',
    );
  }
  logger.warn(
    'THE API IS OPEN: no API keys (API_KEYS or API_KEYS_FILE) and no tokens (JWT_JWKS_URL or JWT_PUBLIC_KEY) configured, so anyone who reaches it can use it. For local use only.',
  );
  return keys;
}
